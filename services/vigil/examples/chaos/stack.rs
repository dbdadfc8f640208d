//! The system under test for one chaos case: real Mosquitto and tansu
//! (from `vigil-testkit`), and the five `vigil` roles (ingest, score,
//! audit, push, train) as child processes that can be killed with SIGKILL
//! and started again with the same arguments, HTTP port and state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vigil_testkit::clients::eventually;
use vigil_testkit::{Mosquitto, Tansu, TansuStorage};

/// How long a role may take to answer `/readyz` 200 after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a role may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One `vigil <role>` child process.
#[derive(Debug)]
pub struct Role {
    pub name: &'static str,
    bin: PathBuf,
    args: Vec<String>,
    /// `127.0.0.1:PORT` of its HTTP server (the same across restarts).
    pub http: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Role {
    fn new(name: &'static str, bin: &Path, dir: &Path, args: Vec<String>) -> Result<Self> {
        let port = vigil_testkit::free_port()?;
        Ok(Self {
            name,
            bin: bin.to_owned(),
            args,
            http: format!("127.0.0.1:{port}"),
            log: dir.join(format!("{name}.log")),
            child: None,
        })
    }

    /// Starts the process (its log is appended to, across restarts).
    pub fn spawn(&mut self) -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg(self.name)
            .args(&self.args)
            .args(["--http-addr", &self.http])
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {} {}", self.bin.display(), self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`, reaped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit (a graceful stop: the role
    /// flushes, commits and leaves its group).
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("kill -TERM")?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", child.id());
        let waited = tokio::time::timeout(
            STOP_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let status = child.wait();
                (child, status)
            }),
        )
        .await;
        match waited {
            Ok(Ok((_, Ok(status)))) if status.success() => Ok(()),
            Ok(Ok((_, status))) => bail!(
                "vigil {} stopped with {status:?}\n{}",
                self.name,
                self.tail()
            ),
            Ok(Err(e)) => bail!("waiting for vigil {}: {e}", self.name),
            Err(_) => bail!(
                "vigil {} still running {STOP_TIMEOUT:?} after SIGTERM\n{}",
                self.name,
                self.tail()
            ),
        }
    }

    /// Waits until `/readyz` answers 200 (polled: the process offers no
    /// event to wait on); fails early when the process has exited.
    pub async fn ready(&mut self) -> Result<()> {
        let url = format!("http://{}/readyz", self.http);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("vigil {} exited with {status}\n{}", self.name, self.tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "vigil {} not ready within {READY_TIMEOUT:?}\n{}",
                    self.name,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of its log, for error messages.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- {} (tail of {}) ---\n{}",
            self.name,
            self.log.display(),
            lines[start..].join("\n")
        )
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The brokers and the roles of one case.
#[derive(Debug)]
pub struct Stack {
    pub mqtt: Mosquitto,
    pub kafka: Tansu,
    pub roles: Vec<Role>,
    /// The audit role's SQLite store.
    pub store: PathBuf,
    /// The model signing key and its verify key (the roles trust it).
    pub signing_key: PathBuf,
    pub verify_key: PathBuf,
    /// The `vigil` binary the roles run.
    pub bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Stack {
    /// Starts the brokers, then every role, and waits until all are ready.
    pub async fn start(bin: &Path, storage: TansuStorage) -> Result<Self> {
        let mqtt = Mosquitto::start()?;
        let kafka = Tansu::start_with(storage)?;
        let dir = tempfile::tempdir()?;
        let keys = vigil_model::keygen(dir.path())?;
        let store = dir.path().join("audit.db");
        let (url, brokers) = (mqtt.url(), kafka.brokers());
        let verify = keys.verify_key.display().to_string();
        let signing = keys.signing_key.display().to_string();
        let kafka_flags = |extra: &[&str]| -> Vec<String> {
            let mut args = vec![
                "--kafka-brokers".to_owned(),
                brokers.clone(),
                // New topics and partitions are seen within a second.
                "--kafka-option".to_owned(),
                "topic.metadata.refresh.interval.ms=1000".to_owned(),
            ];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            args
        };
        let specs: [(&'static str, Vec<String>); 5] = [
            (
                "ingest",
                kafka_flags(&["--mqtt-url", &url, "--mqtt-client-id", "chaos-ingest"]),
            ),
            // Static group membership, as the Kubernetes StatefulSets run
            // them (the pod name): a restarted scorer or sink takes its
            // partitions back at once instead of after the dead member's
            // session times out.
            (
                "score",
                kafka_flags(&["--verify-key", &verify, "--instance-id", "chaos-score-0"]),
            ),
            (
                "audit",
                kafka_flags(&[
                    "--verify-key",
                    &verify,
                    "--store",
                    &format!("sqlite://{}", store.display()),
                    "--batch-max-ms",
                    "50",
                    "--instance-id",
                    "chaos-audit-0",
                ]),
            ),
            (
                "push",
                kafka_flags(&[
                    "--mqtt-url",
                    &url,
                    "--mqtt-client-id",
                    "chaos-push",
                    "--verify-key",
                    &verify,
                    // The edge case's agent runs a model of its own.
                    "--model",
                    "default,chaos-edge",
                ]),
            ),
            // A trainer that never finds enough records: it runs, follows
            // the topics and is killed, but publishes no model, so every
            // case scores with the same (no) model.
            (
                "train",
                kafka_flags(&[
                    "--signing-key",
                    &signing,
                    "--interval",
                    "10m",
                    "--min-records",
                    "1000000000",
                ]),
            ),
        ];
        let mut roles = Vec::new();
        for (name, args) in specs {
            roles.push(Role::new(name, bin, dir.path(), args)?);
        }
        let mut stack = Self {
            mqtt,
            kafka,
            roles,
            store,
            signing_key: keys.signing_key.clone(),
            verify_key: keys.verify_key.clone(),
            bin: bin.to_owned(),
            dir,
        };
        for role in &mut stack.roles {
            role.spawn()?;
        }
        stack.all_ready().await?;
        Ok(stack)
    }

    /// Waits until every role answers `/readyz` 200.
    pub async fn all_ready(&mut self) -> Result<()> {
        for role in &mut self.roles {
            role.ready().await?;
        }
        Ok(())
    }

    /// The role called `name`.
    pub fn role(&mut self, name: &str) -> Result<&mut Role> {
        self.roles
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("no role {name}"))
    }

    /// The last lines of these roles' logs.
    pub fn tails(&self, names: &[&str]) -> String {
        self.roles
            .iter()
            .filter(|r| names.contains(&r.name))
            .map(Role::tail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `127.0.0.1:PORT` of the role called `name`.
    pub fn role_http(&self, name: &str) -> Result<String> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.http.clone())
            .with_context(|| format!("no role {name}"))
    }

    /// `vigil train --once` against this stack's brokers (no HTTP
    /// server): trains on `vigil.telemetry`, publishes a release and
    /// exits. `--force` because the chaos fleet's backlog is small and the
    /// case is about delivery, not the gate.
    pub async fn train_once(&self, min_records: u64) -> Result<()> {
        let mut command = Command::new(&self.bin);
        command
            .args(["train", "--once", "--force", "--window", "1d"])
            .args(["--kafka-brokers", &self.kafka.brokers()])
            .args(["--signing-key", &self.signing_key.display().to_string()])
            .args(["--min-records", &min_records.to_string()])
            .args(["--min-device-records", "50"])
            .env("VIGIL_LOG", "warn")
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .context("vigil train task")?
            .context("starting vigil train --once")?;
        anyhow::ensure!(
            out.status.success(),
            "vigil train --once exited {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Where the roles' logs are (kept until the stack is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Distinct (device_id, seq) in the audit store whose device id starts
    /// with `prefix`.
    pub fn audited(&self, prefix: &str) -> Result<u64> {
        count_audited(&self.store, prefix)
    }

    /// Samples [`Stack::audited`] every 250 ms on a thread of its own
    /// until `stop` is set: (when, count) pairs.
    pub fn watch_audited(
        &self,
        prefix: &'static str,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<(Instant, u64)>> {
        let store = self.store.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(count) = count_audited(&store, prefix) {
                    samples.push((Instant::now(), count));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    }

    /// Waits until the audit store holds `expected` distinct records of
    /// `prefix` or `timeout` passes; returns the last count.
    pub async fn wait_audited(&self, prefix: &str, expected: u64, timeout: Duration) -> u64 {
        let mut last = 0;
        let _ = eventually("audit store complete", timeout, || {
            last = self.audited(prefix).unwrap_or(last);
            let done = last >= expected;
            async move { done }
        })
        .await;
        last
    }
}

fn count_audited(store: &Path, prefix: &str) -> Result<u64> {
    let db =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(Duration::from_secs(5))?;
    let count: i64 = db.query_row(
        "SELECT COUNT(*) FROM (SELECT DISTINCT device_id, seq FROM verdicts \
         WHERE substr(device_id, 1, length(?1)) = ?1)",
        [prefix],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(count).unwrap_or(0))
}
