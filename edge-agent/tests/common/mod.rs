//! Shared helpers of vigil-edge's integration tests: signed releases
//! trained on simulated data, sample files, the real `vigil-edge` binary as
//! a child process (its log lines as events), and an MQTT test client.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_model::{sign, SigningKey};
use vigil_schemas::{Message, ModelRelease, Telemetry};
use vigil_training::{fit, TrainConfig};

/// The vigil-edge binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigil-edge");

/// A key pair on disk (`signing.key`, `verify.pub`) and the signing key.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub signing: SigningKey,
    pub verify_path: PathBuf,
}

/// Generates keys with `vigil_model::keygen`.
pub fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = vigil_model::keygen(dir.path()).expect("keygen");
    let signing = vigil_model::load_signing_key(&generated.signing_key).expect("load key");
    Keys {
        dir,
        signing,
        verify_path: generated.verify_key,
    }
}

/// A clean simulated fleet (training data).
pub fn clean_fleet(devices: usize, ticks: u64, seed: u64) -> Vec<Telemetry> {
    let cfg = FleetConfig {
        day_ms: 600_000,
        ..FleetConfig::clean(devices, seed)
    };
    Fleet::new(cfg)
        .expect("valid fleet")
        .generate(ticks)
        .into_telemetry()
}

/// A fleet with injected anomalies (what the agent scores).
pub fn faulty_fleet(devices: usize, ticks: u64, seed: u64) -> Vec<Telemetry> {
    let cfg = FleetConfig {
        devices,
        seed,
        day_ms: 600_000,
        anomalies: vigil_fleet_sim::AnomalyConfig {
            rate_per_device_day: 40.0,
            quiet_start_ticks: 50,
            ..Default::default()
        },
        ..FleetConfig::default()
    };
    Fleet::new(cfg)
        .expect("valid fleet")
        .generate(ticks)
        .into_telemetry()
}

/// A release of model `default`, version `version`, trained on a small
/// clean fleet (`seed` varies the data), signed with `key`.
pub fn release(key: &SigningKey, version: u64, seed: u64) -> ModelRelease {
    let train = clean_fleet(12, 500, seed);
    let cfg = TrainConfig {
        version,
        created_ts: 1_795_000_000_000 + version,
        source: format!("test:seed={seed}"),
        min_records: 1_000,
        ..TrainConfig::default()
    };
    let trained = fit(&train, &cfg, |_| {}).expect("training succeeds");
    sign(&trained.payload, key).expect("sign")
}

/// Encoded release bytes.
pub fn bytes(release: &ModelRelease) -> Vec<u8> {
    release.encode().expect("encode release")
}

/// Telemetry as JSON lines.
pub fn json_lines(records: &[Telemetry]) -> String {
    let mut out = String::new();
    for r in records {
        out.push_str(&String::from_utf8(r.encode().expect("encode")).expect("utf8"));
        out.push('\n');
    }
    out
}

/// A running `vigil-edge` with its stderr log collected line by line.
pub struct Agent {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    events: mpsc::Receiver<()>,
    pub state_dir: PathBuf,
}

impl Agent {
    /// Starts `vigil-edge run <args>` with `--state-dir state_dir`; stdin is
    /// piped when `with_stdin`.
    pub fn start(state_dir: &Path, args: &[String], with_stdin: bool) -> Result<Agent> {
        let mut command = Command::new(BIN);
        command
            .arg("run")
            .arg("--state-dir")
            .arg(state_dir)
            .args(args)
            .env("VIGIL_LOG", "info,vigil_edge=debug")
            .env("VIGIL_LOG_FORMAT", "human")
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("starting vigil-edge")?;
        let stderr = child.stderr.take().context("stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, events) = mpsc::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lock").push(line);
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
        Ok(Agent {
            stdin: child.stdin.take(),
            child: Some(child),
            lines,
            events,
            state_dir: state_dir.to_owned(),
        })
    }

    /// Waits for a log line containing every one of `parts` (seen before or
    /// after the call); returns it.
    pub fn wait_for(&self, parts: &[&str], timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("log lock")
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return Ok(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no log line with {parts:?} within {timeout:?}\n{}",
                    self.log_tail()
                );
            }
            // A new line (or the end of the log) wakes us.
            if let Err(mpsc::RecvTimeoutError::Disconnected) = self.events.recv_timeout(left) {
                if let Some(line) = self
                    .lines
                    .lock()
                    .expect("log lock")
                    .iter()
                    .find(|l| parts.iter().all(|p| l.contains(p)))
                {
                    return Ok(line.clone());
                }
                bail!(
                    "vigil-edge exited without a log line with {parts:?}\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// Log lines containing `part`.
    pub fn count(&self, part: &str) -> usize {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(part))
            .count()
    }

    /// The last 60 log lines.
    pub fn log_tail(&self) -> String {
        let lines = self.lines.lock().expect("log lock");
        let start = lines.len().saturating_sub(60);
        lines[start..].join("\n")
    }

    /// Writes to the agent's stdin.
    pub fn feed(&mut self, text: &str) -> Result<()> {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().context("agent started without stdin")?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// `status.json`.
    pub fn status(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.state_dir.join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()?.code()
    }

    /// OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An MQTT client that collects what it receives.
pub struct Subscriber {
    received: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
    pub messages: Vec<(String, Vec<u8>)>,
}

impl Subscriber {
    /// Connects as `client_id` (a persistent session unless `clean`) and
    /// subscribes to `filter` at QoS 1; returns once the broker confirmed
    /// the subscription. It reconnects by itself after a broker restart.
    pub async fn start(
        port: u16,
        client_id: &str,
        filter: &str,
        clean: bool,
    ) -> Result<Subscriber> {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_clean_session(clean);
        options.set_max_packet_size(1 << 20, 1 << 20);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    // The broker is down (a test stops it): retry shortly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .context("subscription not confirmed")??;
        Ok(Subscriber {
            received,
            task,
            messages: Vec::new(),
        })
    }

    /// Collects messages until `done` holds for everything received so far.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[(String, Vec<u8>)]) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.messages) {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(m)) => self.messages.push(m),
                Ok(None) => bail!("subscriber stopped"),
                Err(_) => bail!(
                    "condition not met within {timeout:?} ({} messages received)",
                    self.messages.len()
                ),
            }
        }
        Ok(())
    }

    /// Payloads received on topics ending with `suffix`.
    pub fn on(&self, suffix: &str) -> Vec<&[u8]> {
        self.messages
            .iter()
            .filter(|(t, _)| t.ends_with(suffix))
            .map(|(_, p)| p.as_slice())
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes one message at QoS 1 and waits for the broker's PUBACK.
pub async fn publish(port: u16, topic: &str, payload: Vec<u8>, retain: bool) -> Result<()> {
    let id = format!("test-pub-{}", std::process::id());
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .context("queueing the publish")?;
    let acked = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publishing to {topic}: {e}")),
            }
        }
    })
    .await
    .context("no PUBACK")?;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    acked
}

/// Arguments every agent in the tests gets.
pub fn base_args(device: &str, mqtt_url: &str, verify_key: &Path) -> Vec<String> {
    [
        "--device-id",
        device,
        "--mqtt-url",
        mqtt_url,
        "--verify-key",
        verify_key.to_str().expect("utf8 path"),
        "--reconnect-max-ms",
        "1000",
        "--status-interval-ms",
        "200",
        "--queue-fsync-ms",
        "100",
        "--drain-rate",
        "5000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Strings from string slices.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A command key pair on disk (`command-signing.key`,
/// `command-verify.pub`, by `vigil_model::command_keygen`).
pub struct CommandKeys {
    pub dir: tempfile::TempDir,
    pub signing: SigningKey,
    pub verify_path: PathBuf,
}

/// Generates a command key pair.
pub fn command_keys() -> CommandKeys {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = vigil_model::command_keygen(dir.path()).expect("command keygen");
    let signing = vigil_model::load_signing_key(&generated.signing_key).expect("load key");
    CommandKeys {
        dir,
        signing,
        verify_path: generated.verify_key,
    }
}

/// Now, ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `body` signed for `device` with `seq`, valid for a minute.
pub fn signed_command(key: &SigningKey, device: &str, seq: u64, body: &str) -> Vec<u8> {
    let now = now_ms();
    vigil_model::sign_command(key, device, seq, now, now + 60_000, body.as_bytes())
        .expect("sign command")
}
