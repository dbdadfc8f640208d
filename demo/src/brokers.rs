//! The demo's brokers: the `tansu` Kafka-API broker and Mosquitto, started
//! as child processes on free loopback ports with their state in the data
//! directory.
//!
//! Why child processes and not libraries (docs/demo.md has the figures):
//! - **Kafka**: tansu's broker crate (`tansu-broker` 0.6, the release of the
//!   installed `tansu` binary) can be driven as a library, but its memory
//!   engine has no retention at all (every record stays in RAM until the
//!   process exits), so the demo's memory would grow without bound; its
//!   SQLite engine deletes by `retention.ms` but needs `libsql`, a second
//!   bundled SQLite next to the audit store's. The crate also brings 182
//!   crates the workspace does not otherwise build (an AWS SDK TLS stack
//!   with `aws-lc-sys`, OpenTelemetry/tonic, rhai, rama, jsonschema, …).
//!   The installed `tansu` binary with `sqlite://…` storage, topics
//!   created with a `retention.ms` and maintenance every minute, keeps the
//!   broker bounded and costs no build time.
//! - **MQTT**: rumqttd 0.20 as a library has shared subscriptions, QoS 1
//!   and retained messages, but ignores the MQTT 5 *Receive Maximum* a
//!   client announces — the bound `vigil ingest` relies on to stop
//!   receiving while Kafka is slow (`--max-in-flight`) — and the *Session
//!   Expiry Interval*. Mosquitto, which every integration test runs
//!   against, honours both.
//!
//! Both are killed when dropped, and (through `PR_SET_PDEATHSIG`) when the
//! demo itself dies, so no broker outlives it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::process::{Child, Command};
use vigil_service::broker_auth::{self, BrokerDir, Credentials, ServiceUsers};
use vigil_service::local_brokers;
pub use vigil_service::local_brokers::free_port;

/// How long a broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often tansu applies retention and compaction.
const TANSU_MAINTENANCE: &str = "60s";

/// A broker process.
#[derive(Debug)]
pub struct Broker {
    what: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Broker {
    /// Starts `tansu broker` with SQLite storage in `dir`.
    pub async fn tansu(dir: &Path) -> anyhow::Result<Self> {
        let bin = local_brokers::tansu()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = free_port()?;
        let listener = format!("tcp://127.0.0.1:{port}");
        let log = dir.join("tansu.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(bin);
        command
            .current_dir(dir)
            .arg("broker")
            .arg("--listener-url")
            .arg(&listener)
            .arg("--advertised-listener-url")
            .arg(&listener)
            .arg("--storage-engine")
            .arg(format!(
                "sqlite://tansu.db?maintenance_interval={TANSU_MAINTENANCE}"
            ))
            .arg("--silent")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        Self::launch("tansu", command, port, log).await
    }

    /// Starts Mosquitto with its persistence in `dir`; `access` is the
    /// configuration that admits clients (the dynamic-security plugin and
    /// its file, [`vigil_service::broker_auth::BrokerDir::mosquitto_conf`]).
    pub async fn mosquitto(dir: &Path, access: &str) -> anyhow::Result<Self> {
        let bin = local_brokers::mosquitto()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Mosquitto started as root switches to the `mosquitto` user; let it
        // write its persistence file here.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
        }
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        // Bounded queues for offline sessions (a stopped edge agent's
        // commands), MQTT 5 flow control left to the clients' Receive
        // Maximum; state saved every 30 s and at shutdown. The settings
        // are explained in RELIABILITY.md, "Broker settings that keep
        // data".
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n\
                 {access}\
                 persistence true\n\
                 persistence_location {dir}/\n\
                 autosave_interval 30\n\
                 max_queued_messages 100000\n\
                 log_dest file {log}\n\
                 log_type error\n\
                 log_type warning\n",
                dir = dir.display(),
                log = log.display(),
            ),
        )
        .with_context(|| format!("writing {}", conf.display()))?;
        let mut command = Command::new(bin);
        command
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self::launch("mosquitto", command, port, log).await
    }

    async fn launch(
        what: &'static str,
        mut command: Command,
        port: u16,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        command.kill_on_drop(true);
        local_brokers::die_with_parent(command.as_std_mut());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {what} ({command:?})"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("{what} exited with {status} before listening on {port}:\n{output}");
            }
            if Instant::now() > deadline {
                bail!("{what} did not listen on {port} within {START_TIMEOUT:?}");
            }
            // A broker gives no readiness event to wait on; poll its port.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(what, port, pid = child.id(), "broker started");
        Ok(Self {
            what,
            child,
            port,
            log,
        })
    }

    /// The listening port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// OS process id (for the RSS figures).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running; an exit is an error that
    /// names the log.
    pub fn check(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited with {status} (log: {})",
                self.what,
                self.log.display()
            ),
        }
    }

    /// Stops the broker with SIGTERM (Mosquitto saves its state) and waits
    /// up to five seconds before killing it.
    pub async fn stop(mut self) {
        let pid = self
            .child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The demo broker's users and what Mosquitto needs to admit them.
#[derive(Debug, Clone)]
pub struct MqttUsers {
    /// `vigil ingest`.
    pub ingest: Credentials,
    /// `vigil push`.
    pub push: Credentials,
    /// `vigil actions`.
    pub actions: Credentials,
    /// The simulated cloud-scored fleet (one gateway for all its devices).
    pub gateway: Credentials,
    /// The demo's own view of the edge agents (reads only).
    pub observer: Credentials,
    /// Each edge agent's own credentials, by device id.
    pub devices: HashMap<String, Credentials>,
    /// Mosquitto configuration lines: no anonymous clients, the
    /// dynamic-security plugin with the demo's file.
    pub access: String,
}

/// Enrols the demo's services and edge devices in `dir` (Mosquitto's
/// dynamic-security file and each user's credentials, as `vigil devices`
/// does): anonymous clients are refused and each device may act only as
/// itself. Existing service passwords are kept (a kept `--data-dir`).
pub fn enrol(dir: &Path, edge_devices: &[String]) -> anyhow::Result<MqttUsers> {
    let plugin = broker_auth::find_dynsec_plugin().context(
        "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) was not found; \
         it ships with Mosquitto 2 (Debian: package mosquitto); set VIGIL_MOSQUITTO_DYNSEC to its path",
    )?;
    let broker = BrokerDir::new(dir);
    let users = ServiceUsers::default();
    let topics = vigil_schemas::MqttTopics::default();
    broker
        .prepare(&topics, &users)
        .context("writing the demo broker's users")?;
    let mut devices = HashMap::new();
    for id in edge_devices {
        devices.insert(id.clone(), broker.add_device(id, &topics, &users)?);
    }
    // The broker, started as root, reads the file as its own user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let get = |user: &str| broker.credentials(user);
    Ok(MqttUsers {
        ingest: get(&users.ingest)?,
        push: get(&users.push)?,
        actions: get(&users.actions)?,
        gateway: get(&users.gateway)?,
        observer: get(&users.observer)?,
        devices,
        access: broker.mosquitto_conf(&plugin),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};

    /// Whether the broker on `port` admits these credentials.
    async fn admitted(port: u16, id: &str, who: Option<&Credentials>) -> bool {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        if let Some(c) = who {
            options.set_credentials(c.username.clone(), c.password.clone());
        }
        let (_client, mut events) = AsyncClient::new(options, 8);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return true,
                Ok(Ok(_)) => {}
                Ok(Err(ConnectionError::ConnectionRefused(_))) | Ok(Err(_)) | Err(_) => {
                    return false
                }
            }
        }
    }

    #[tokio::test]
    async fn the_demo_broker_refuses_anonymous_clients_and_admits_enrolled_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let users = enrol(&tmp.path().join("auth"), &["edge-00000".to_owned()]).unwrap();
        let broker = Broker::mosquitto(&tmp.path().join("mqtt"), &users.access)
            .await
            .unwrap();
        let port = broker.port();
        assert!(!admitted(port, "anonymous", None).await);
        let mut wrong = users.gateway.clone();
        wrong.password.push('x');
        assert!(!admitted(port, "wrong", Some(&wrong)).await);
        assert!(admitted(port, "fleet", Some(&users.gateway)).await);
        assert!(admitted(port, "edge", Some(&users.devices["edge-00000"])).await);
        broker.stop().await;
    }
}
