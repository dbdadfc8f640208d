//! Real brokers for integration tests.
//!
//! [`Mosquitto`] and [`Tansu`] start the real programs (Debian's
//! `mosquitto`, the `tansu` Kafka-API broker) on free loopback ports in a
//! private temporary directory, wait until they accept connections, and
//! kill them when dropped — also when the test panics, and (through
//! `PR_SET_PDEATHSIG`) when the test process itself dies. No test talks to
//! anything but 127.0.0.1.
//!
//! Binaries are found as the demo finds them
//! ([`vigil_service::local_brokers`]: `VIGIL_MOSQUITTO_BIN` /
//! `VIGIL_TANSU_BIN`, then `PATH`, then the usual install locations); a
//! missing one fails the test with a message that says how to install it.

pub mod clients;
pub mod link;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vigil_service::local_brokers;
pub use vigil_service::local_brokers::free_port;

/// How long a broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Spawns `command` so that it dies with the test process.
fn spawn_tied(mut command: Command) -> Result<Child> {
    local_brokers::die_with_parent(&mut command);
    command
        .spawn()
        .with_context(|| format!("starting {command:?}"))
}

/// Waits until `port` accepts TCP connections or `child` exits.
fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &Path) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{what} exited with {status} before listening on {port}:\n{output}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within {START_TIMEOUT:?}");
        }
        // The broker gives no readiness event to wait on; poll the port.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A Mosquitto broker on a free loopback port.
#[derive(Debug)]
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Configuration lines that refuse anonymous clients and load users
    /// and ACLs (see [`Mosquitto::start_with_auth`]).
    auth: Option<String>,
}

impl Mosquitto {
    /// Starts a broker that queues without limit for offline persistent
    /// sessions (so a test's crash-and-restart loses nothing in the broker)
    /// and keeps its state on disk across [`Mosquitto::restart`].
    pub fn start() -> Result<Self> {
        Self::start_inner(None)
    }

    /// As [`Mosquitto::start`], with `auth`, configuration lines in place
    /// of `allow_anonymous true` (for example the dynamic-security plugin
    /// and its file, which must be readable by the broker's user).
    pub fn start_with_auth(auth: &str) -> Result<Self> {
        Self::start_inner(Some(auth.to_owned()))
    }

    fn start_inner(auth: Option<String>) -> Result<Self> {
        let dir = tempfile::tempdir().context("creating mosquitto dir")?;
        // Mosquitto started as root switches to the `mosquitto` user; let it
        // write its persistence file here.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        }
        let mut broker = Self {
            child: None,
            port: free_port()?,
            dir,
            auth,
        };
        broker.launch()?;
        Ok(broker)
    }

    fn launch(&mut self) -> Result<()> {
        let bin = local_brokers::mosquitto()?;
        let conf = self.dir.path().join("mosquitto.conf");
        // VIGIL_TEST_MOSQUITTO_LOG=all logs everything the broker does to
        // a file that outlives the test, for post-mortems.
        let verbose = std::env::var_os("VIGIL_TEST_MOSQUITTO_LOG").is_some();
        let log = if verbose {
            let kept = std::env::temp_dir().join("vigil-test-logs");
            std::fs::create_dir_all(&kept)?;
            kept.join(format!("mosquitto-{}.log", self.port))
        } else {
            self.dir.path().join("mosquitto.log")
        };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n\
                 {access}\
                 persistence true\n\
                 persistence_location {dir}/\n\
                 autosave_interval 1\n\
                 max_queued_messages 0\n\
                 max_queued_bytes 0\n\
                 max_inflight_messages 0\n\
                 log_dest file {log}\n\
                 log_type error\n\
                 log_type warning\n\
                 {extra}",
                extra = if verbose { "log_type all\n" } else { "" },
                access = self.auth.as_deref().unwrap_or("allow_anonymous true\n"),
                port = self.port,
                dir = self.dir.path().display(),
                log = log.display(),
            ),
        )?;
        let mut command = Command::new(bin);
        command
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_tied(command)?;
        wait_for_port(&mut child, self.port, "mosquitto", &log)?;
        self.child = Some(child);
        Ok(())
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// OS process id of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the broker (SIGTERM, so it saves its state), keeping the port
    /// and directory for [`Mosquitto::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port with the saved state.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Where tansu keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TansuStorage {
    /// In memory: fast, lost when the broker stops.
    Memory,
    /// SQLite file in the broker's directory: survives restarts.
    Sqlite,
}

/// A tansu Kafka-API broker on a free loopback port.
#[derive(Debug)]
pub struct Tansu {
    child: Option<Child>,
    port: u16,
    storage: TansuStorage,
    dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker with in-memory storage.
    pub fn start() -> Result<Self> {
        Self::start_with(TansuStorage::Memory)
    }

    /// Starts a broker with the given storage.
    pub fn start_with(storage: TansuStorage) -> Result<Self> {
        let dir = tempfile::tempdir().context("creating tansu dir")?;
        let mut broker = Self {
            child: None,
            port: free_port()?,
            storage,
            dir,
        };
        broker.launch()?;
        Ok(broker)
    }

    fn launch(&mut self) -> Result<()> {
        let bin = local_brokers::tansu()?;
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let engine = match self.storage {
            TansuStorage::Memory => "memory://tansu/".to_owned(),
            TansuStorage::Sqlite => "sqlite://tansu.db".to_owned(),
        };
        let log = self.dir.path().join("tansu.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(bin);
        command
            .current_dir(self.dir.path())
            .arg("broker")
            .arg("--listener-url")
            .arg(&listener)
            .arg("--advertised-listener-url")
            .arg(&listener)
            .arg("--storage-engine")
            .arg(engine)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let mut child = spawn_tied(command)?;
        wait_for_port(&mut child, self.port, "tansu", &log)?;
        self.child = Some(child);
        Ok(())
    }

    /// OS process id of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` / `VIGIL_KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker; with SQLite storage the data survives
    /// [`Tansu::restart`].
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// Resident set size of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// User + system CPU seconds process `pid` has used, from
/// `/proc/<pid>/stat` (0 when the process is gone): benchmarks report it to
/// say which process bounds a figure.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the whole line, in clock ticks (100 per second).
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// An environment variable parsed as a number, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
