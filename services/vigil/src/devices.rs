//! `vigil devices …`: broker credentials for devices and services (the
//! configuration of Mosquitto's dynamic-security plugin; see
//! [`vigil_service::broker_auth`]).
//!
//! | command | does |
//! |---|---|
//! | `init --broker-dir DIR` | writes `DIR/dynamic-security.json` with Vigil's roles, issues the service users (ingest, push, actions, gateway, admin) that have no password yet |
//! | `add ID --broker-dir DIR` | issues (or replaces) device `ID`'s password; `DIR/credentials/ID.env` |
//! | `add ID --cert --ca-dir CA --broker-dir DIR [--out OUT]` | certificate mode: a client certificate with CN = `ID` signed by the CA (`OUT/ID.crt`, `OUT/ID.key`; `OUT` is `DIR/credentials` by default) and a passwordless broker client |
//! | `ca init --dir CA` | makes a local CA (`CA/ca.key`, `CA/ca.crt`) |
//! | `ca server-cert --dir CA --host H… --out OUT` | the broker's certificate (`OUT/server.crt`, `OUT/server.key`) |
//! | `ca client-cert NAME --dir CA --out OUT` | a client certificate for a service user (`vigil-ingest`, …) |
//! | `remove ID --broker-dir DIR` | revokes a user |
//! | `list --broker-dir DIR` | the users with credentials |
//!
//! The plugin reads the file when the broker starts: restart it after a
//! change, or make the same change on the running broker with
//! `mosquitto_ctrl -u vigil-admin … dynsec createClient/deleteClient`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vigil_service::broker_auth::{BrokerDir, ServiceUsers};
use vigil_service::device_ca::{DeviceCa, DEFAULT_DAYS};
use vigil_service::outln;

/// `vigil devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    pub command: DevicesCommand,
}

/// The folder the broker's auth files live in.
#[derive(Debug, Clone, Args)]
pub struct BrokerDirArg {
    /// Folder of the broker's `passwd`, `acl` and `credentials/`.
    #[arg(long, env = "VIGIL_BROKER_DIR", value_name = "DIR")]
    pub broker_dir: PathBuf,

    /// Prefix of every MQTT topic name (as the services use it).
    #[arg(long, env = "VIGIL_MQTT_TOPIC_PREFIX", default_value = vigil_schemas::topics::DEFAULT_MQTT_PREFIX)]
    pub mqtt_topic_prefix: String,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Write the ACL and issue credentials to the service users that have
    /// none (safe to run again).
    Init(BrokerDirArg),
    /// Issue (or replace) a device's credentials: its MQTT user name is
    /// its device id.
    Add {
        /// The device id.
        device_id: String,
        #[command(flatten)]
        dir: BrokerDirArg,
        /// Issue a client certificate (CN = the device id) signed by the CA
        /// in --ca-dir instead of a password, for a broker in certificate
        /// mode (deploy/mosquitto-certs.conf).
        #[arg(long, requires = "ca_dir")]
        cert: bool,
        #[command(flatten)]
        ca: CertOut,
    },
    /// The local CA of the broker's certificate mode.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Revoke a user's credentials.
    Remove {
        /// The device id (or service user).
        user: String,
        #[command(flatten)]
        dir: BrokerDirArg,
    },
    /// List the users with credentials.
    List(BrokerDirArg),
}

/// Where certificates come from and go.
#[derive(Debug, Clone, Args)]
pub struct CertOut {
    /// Folder of the CA (`vigil devices ca init`).
    #[arg(long, env = "VIGIL_DEVICE_CA_DIR", value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Folder the certificate and its key are written to (the broker
    /// folder's `credentials/` by default).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    pub days: u32,
}

/// `vigil devices ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Make a CA: `DIR/ca.key` (mode 0600) and `DIR/ca.crt` (the broker's
    /// `cafile` and the clients' --mqtt-ca-file). Never overwrites one.
    Init {
        /// The CA's folder.
        #[arg(long, env = "VIGIL_DEVICE_CA_DIR", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Issue the broker's TLS certificate, `OUT/server.crt` and
    /// `OUT/server.key`, for the names clients connect to.
    ServerCert {
        /// The CA's folder.
        #[arg(long, env = "VIGIL_DEVICE_CA_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// Host name or IP address of the broker (repeat for several).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
    /// Issue a client certificate with common name NAME (a service user
    /// such as `vigil-ingest`; devices use `vigil devices add ID --cert`,
    /// which also enrols them): `OUT/NAME.crt` and `OUT/NAME.key`.
    ClientCert {
        /// The common name (the broker user it logs in as).
        name: String,
        /// The CA's folder.
        #[arg(long, env = "VIGIL_DEVICE_CA_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
}

fn run_ca(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init { dir } => {
            let made = DeviceCa::new(&dir)
                .create()
                .context("vigil devices ca init")?;
            outln!(
                "made a CA: {} (keep it secret) and {} (the broker's cafile, the clients' \
                 --mqtt-ca-file)",
                made.key.display(),
                made.cert.display()
            )?;
        }
        CaCommand::ServerCert {
            dir,
            hosts,
            out,
            days,
        } => {
            let made = DeviceCa::new(&dir)
                .issue_server(&hosts, days, &out)
                .context("vigil devices ca server-cert")?;
            outln!(
                "issued the broker's certificate: certfile {} keyfile {}",
                made.cert.display(),
                made.key.display()
            )?;
        }
        CaCommand::ClientCert {
            name,
            dir,
            out,
            days,
        } => {
            let made = DeviceCa::new(&dir)
                .issue_client(&name, days, &out)
                .with_context(|| format!("vigil devices ca client-cert {name}"))?;
            outln!(
                "issued {name}: --mqtt-cert {} --mqtt-key {}",
                made.cert.display(),
                made.key.display()
            )?;
        }
    }
    Ok(())
}

/// Runs a `vigil devices` command.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let users = ServiceUsers::default();
    let topics =
        |arg: &BrokerDirArg| vigil_schemas::MqttTopics::with_prefix(&arg.mqtt_topic_prefix);
    match args.command {
        DevicesCommand::Init(arg) => {
            let dir = BrokerDir::new(&arg.broker_dir);
            let topics = topics(&arg);
            let issued = dir.prepare(&topics, &users).context("vigil devices init")?;
            for c in &issued {
                outln!(
                    "issued {}: {}",
                    c.username,
                    dir.credentials_file(&c.username).display()
                )?;
            }
            let plugin = vigil_service::broker_auth::find_dynsec_plugin()
                .unwrap_or_else(|| vigil_service::broker_auth::DYNSEC_PLUGIN_PATHS[0].into());
            outln!(
                "mosquitto.conf lines for this broker:\n{}",
                dir.mosquitto_conf(&plugin)
            )?;
        }
        DevicesCommand::Add {
            device_id,
            dir,
            cert: true,
            ca,
        } => {
            let broker = BrokerDir::new(&dir.broker_dir);
            let ca_dir = ca.ca_dir.context("--cert needs --ca-dir")?;
            let out = ca.out.unwrap_or_else(|| broker.credentials_dir());
            let context = || format!("vigil devices add {device_id} --cert");
            // Check the name before issuing anything for it.
            vigil_service::broker_auth::check_device_user(&device_id, &users)
                .with_context(context)?;
            let made = DeviceCa::new(&ca_dir)
                .issue_client(&device_id, ca.days, &out)
                .with_context(context)?;
            broker
                .add_cert_device(&device_id, &topics(&dir), &users)
                .with_context(context)?;
            outln!(
                "issued {device_id}: --mqtt-cert {} --mqtt-key {} --mqtt-ca-file {} \
                 (restart the broker, or createClient with mosquitto_ctrl)",
                made.cert.display(),
                made.key.display(),
                DeviceCa::new(&ca_dir).cert_file().display()
            )?;
        }
        DevicesCommand::Add { device_id, dir, .. } => {
            let broker = BrokerDir::new(&dir.broker_dir);
            let c = broker
                .add_device(&device_id, &topics(&dir), &users)
                .with_context(|| format!("vigil devices add {device_id}"))?;
            outln!(
                "issued {}: {} (restart the broker, or createClient with mosquitto_ctrl)",
                c.username,
                broker.credentials_file(&c.username).display()
            )?;
        }
        DevicesCommand::Remove { user, dir } => {
            let broker = BrokerDir::new(&dir.broker_dir);
            if broker.remove(&user, &topics(&dir), &users)? {
                outln!("revoked {user} (restart the broker, or deleteClient with mosquitto_ctrl)")?;
            } else {
                anyhow::bail!("{user} has no credentials in {}", dir.broker_dir.display());
            }
        }
        DevicesCommand::Ca(command) => run_ca(command)?,
        DevicesCommand::List(dir) => {
            for user in BrokerDir::new(&dir.broker_dir).users()? {
                outln!("{user}")?;
            }
        }
    }
    Ok(())
}
