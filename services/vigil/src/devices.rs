//! `vigil devices …`: broker credentials for devices and services (the
//! configuration of Mosquitto's dynamic-security plugin; see
//! [`vigil_service::broker_auth`]).
//!
//! | command | does |
//! |---|---|
//! | `init --broker-dir DIR` | writes `DIR/dynamic-security.json` with Vigil's roles, issues the service users (ingest, push, actions, gateway, admin) that have no password yet |
//! | `add ID --broker-dir DIR` | issues (or replaces) device `ID`'s password; `DIR/credentials/ID.env` |
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
    },
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
                println!(
                    "issued {}: {}",
                    c.username,
                    dir.credentials_file(&c.username).display()
                );
            }
            let plugin = vigil_service::broker_auth::find_dynsec_plugin()
                .unwrap_or_else(|| vigil_service::broker_auth::DYNSEC_PLUGIN_PATHS[0].into());
            println!(
                "mosquitto.conf lines for this broker:\n{}",
                dir.mosquitto_conf(&plugin)
            );
        }
        DevicesCommand::Add { device_id, dir } => {
            let broker = BrokerDir::new(&dir.broker_dir);
            let c = broker
                .add_device(&device_id, &topics(&dir), &users)
                .with_context(|| format!("vigil devices add {device_id}"))?;
            println!(
                "issued {}: {} (restart the broker, or createClient with mosquitto_ctrl)",
                c.username,
                broker.credentials_file(&c.username).display()
            );
        }
        DevicesCommand::Remove { user, dir } => {
            let broker = BrokerDir::new(&dir.broker_dir);
            if broker.remove(&user, &topics(&dir), &users)? {
                println!(
                    "revoked {user} (restart the broker, or deleteClient with mosquitto_ctrl)"
                );
            } else {
                anyhow::bail!("{user} has no credentials in {}", dir.broker_dir.display());
            }
        }
        DevicesCommand::List(dir) => {
            for user in BrokerDir::new(&dir.broker_dir).users()? {
                println!("{user}");
            }
        }
    }
    Ok(())
}
