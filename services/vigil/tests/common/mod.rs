//! Shared helpers of the `vigil` binary's integration tests: the real
//! binary as a child process, and telemetry builders.

#![allow(dead_code)]

pub mod edge;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil_schemas::{Message, Telemetry};
use vigil_testkit::clients::eventually;

/// A `vigil <role>` child process, killed when dropped.
pub struct VigilProcess {
    child: Option<Child>,
    /// `127.0.0.1:PORT` of its HTTP server.
    pub http: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl VigilProcess {
    /// Starts `vigil <args…> --http-addr 127.0.0.1:<free>` and waits for
    /// `/healthz`.
    pub async fn start(args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = vigil_testkit::free_port()?;
        let http = format!("127.0.0.1:{port}");
        let log = dir.path().join("vigil.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .args(["--http-addr", &http])
            .env("VIGIL_LOG", test_log_level())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        let process = Self {
            child: Some(child),
            http,
            log,
            _dir: dir,
        };
        let url = format!("http://{}/healthz", process.http);
        eventually(
            "vigil answers /healthz",
            Duration::from_secs(30),
            || async { reqwest::get(&url).await.is_ok() },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", process.log_text()))?;
        Ok(process)
    }

    /// A ready `vigil ingest` with MQTT client id `client_id` and `extra`
    /// flags, between the MQTT broker at `mqtt_url` and Kafka at `brokers`.
    #[allow(dead_code)] // not every test binary starts ingest
    pub async fn ingest(
        mqtt_url: &str,
        brokers: &str,
        client_id: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec![
            "ingest",
            "--mqtt-url",
            mqtt_url,
            "--kafka-brokers",
            brokers,
            "--mqtt-client-id",
            client_id,
        ];
        args.extend_from_slice(extra);
        Self::start_ready(&args).await
    }

    /// A ready `vigil push` with MQTT client id `client_id`, verifying
    /// releases with `verify_key` (a key file or a key ring), and `extra`
    /// flags; retained models settle after 300 ms and Kafka metadata is
    /// refreshed every second, so a test's new topic is seen at once.
    #[allow(dead_code)] // not every test binary starts push
    pub async fn push(
        mqtt_url: &str,
        brokers: &str,
        verify_key: &str,
        client_id: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec![
            "push",
            "--mqtt-url",
            mqtt_url,
            "--kafka-brokers",
            brokers,
            "--verify-key",
            verify_key,
            "--mqtt-client-id",
            client_id,
            "--retained-settle-ms",
            "300",
            "--kafka-option",
            "topic.metadata.refresh.interval.ms=1000",
        ];
        args.extend_from_slice(extra);
        Self::start_ready(&args).await
    }

    /// [`Self::start`], then [`Self::wait_ready`].
    pub async fn start_ready(args: &[&str]) -> anyhow::Result<Self> {
        let process = Self::start(args).await?;
        process.wait_ready().await?;
        Ok(process)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.http);
        eventually("vigil ready", Duration::from_secs(60), || async {
            matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log_text()))
    }

    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit and returns its status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()?.code()
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `error` with the tail of the process's log appended, for test
    /// failures.
    pub fn failure(&self, error: anyhow::Error) -> anyhow::Error {
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        // The whole log outlives the test's temp dir, for post-mortems.
        let kept = std::env::temp_dir().join("vigil-test-logs");
        let kept = std::fs::create_dir_all(&kept)
            .and_then(|()| {
                let file = kept.join(format!("vigil-{}.log", self.http.replace([':', '.'], "-")));
                std::fs::copy(&self.log, &file).map(|_| file)
            })
            .map_or_else(|e| format!("(not kept: {e})"), |f| f.display().to_string());
        anyhow::anyhow!(
            "{error}\n--- vigil log (tail; whole log in {kept}) ---\n{}",
            tail.join("\n")
        )
    }

    /// A metric's value from its `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        vigil_testkit::clients::scrape(&self.http, name)
            .await
            .ok()
            .flatten()
            .unwrap_or(f64::NAN)
    }
}

impl Drop for VigilProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    vigil_service::now_ms()
}

/// A valid telemetry message for `device` number `seq`: (topic, payload).
pub fn telemetry(device: &str, seq: u64) -> (String, Vec<u8>) {
    let mut metrics = BTreeMap::new();
    metrics.insert("temperature_c".to_owned(), 20.0 + (seq % 17) as f64);
    metrics.insert("current_a".to_owned(), 3.0 + (seq % 5) as f64 * 0.1);
    metrics.insert("vibration_rms".to_owned(), 0.4);
    let t = Telemetry::new(device, seq, now_ms(), metrics);
    (
        format!("vigil/devices/{device}/telemetry"),
        t.encode().expect("telemetry encodes"),
    )
}

/// `devices` devices × `per_device` records, interleaved device by device
/// (seq 1 of every device, then seq 2, …).
pub fn fleet(devices: usize, per_device: u64) -> Vec<(String, Vec<u8>)> {
    (1..=per_device)
        .flat_map(|seq| (0..devices).map(move |d| telemetry(&format!("dev-{d:04}"), seq)))
        .collect()
}

/// Decodes telemetry records read from Kafka.
pub fn decode_all(records: &[vigil_testkit::clients::Record]) -> Vec<Telemetry> {
    records
        .iter()
        .map(|r| Telemetry::decode(&r.payload).expect("vigil.telemetry holds valid telemetry"))
        .collect()
}

/// Runs `vigil <args…>` to completion; returns (exit code, stdout, stderr).
pub fn run_vigil(args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<(i32, String, String)> {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("VIGIL_LOG", test_log_level())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A test producer (idempotent, one record per batch; see below).
pub fn producer(brokers: &str) -> anyhow::Result<rdkafka::producer::FutureProducer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // One record per batch: tansu 0.6 answers a fetch that starts in
        // the middle of a record batch with the *next* batch, so a
        // consumer resuming from a committed offset inside a batch would
        // silently skip the rest of it (docs/ARCHITECTURE.md, "tansu").
        .set("batch.num.messages", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// Produces every (key, payload) to `topic` with `producer` and waits
/// until Kafka confirmed all of them.
pub async fn produce_with(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use rdkafka::producer::FutureRecord;
    let mut pending = futures::stream::FuturesOrdered::new();
    for (key, payload) in records {
        let delivery = producer
            .send_result(FutureRecord::to(topic).key(key).payload(payload))
            .map_err(|(e, _)| e)?;
        pending.push_back(delivery);
    }
    while let Some(result) = pending.next().await {
        result?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// [`produce_with`] a new producer.
pub async fn produce_all(
    brokers: &str,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    produce_with(&producer(brokers)?, topic, records).await
}

/// Creates the topics Vigil uses (6 partitions each; vigil.models
/// compacted), as a service would at start-up.
pub async fn create_topics(brokers: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let names = [
        "vigil.telemetry",
        "vigil.verdicts",
        "vigil.anomalies",
        "vigil.dlq",
        "vigil.models",
    ];
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            let t = NewTopic::new(name, 6, TopicReplication::Fixed(1));
            if *name == "vigil.models" {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        match result {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating {name}: {code}"),
        }
    }
    Ok(())
}

/// A key pair in a temp dir.
pub struct Keys {
    _dir: tempfile::TempDir,
    pub signing: PathBuf,
    pub verify: PathBuf,
    /// The command key pair (`vigil commands keygen`), beside them.
    pub command_signing: PathBuf,
    pub command_verify: PathBuf,
}

/// A fresh ed25519 key pair (signing.key, verify.pub) and a command key
/// pair (command-signing.key, command-verify.pub) in a temp dir.
pub fn new_keys() -> anyhow::Result<Keys> {
    let dir = tempfile::tempdir()?;
    let generated = vigil_model::keygen(dir.path())?;
    let commands = vigil_model::command_keygen(dir.path())?;
    Ok(Keys {
        signing: generated.signing_key,
        verify: generated.verify_key,
        command_signing: commands.signing_key,
        command_verify: commands.verify_key,
        _dir: dir,
    })
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Release `version` of the default model, fitted on `records` and signed.
pub fn release(
    signing: &Path,
    records: &[Telemetry],
    version: u64,
) -> anyhow::Result<vigil_schemas::ModelRelease> {
    let key = vigil_model::load_signing_key(signing)?;
    let cfg = vigil_training::TrainConfig {
        version,
        created_ts: now_ms(),
        min_records: 1_000,
        min_device_records: 50,
        ..vigil_training::TrainConfig::default()
    };
    let trained = vigil_training::fit(records, &cfg, |_| {})?;
    Ok(vigil_model::sign(&trained.payload, &key)?)
}

/// The next `ticks` ticks of the simulated fleet.
pub fn sim_records(sim: &mut vigil_fleet_sim::Fleet, ticks: u64) -> Vec<Telemetry> {
    sim.generate(ticks).into_telemetry()
}

/// The log level of the `vigil` processes tests start: `VIGIL_TEST_LOG`
/// (say `vigil_ingest=debug,info`), else `info`.
pub fn test_log_level() -> String {
    std::env::var("VIGIL_TEST_LOG").unwrap_or_else(|_| "info".to_owned())
}
