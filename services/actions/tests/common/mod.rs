//! Helpers of the actions role's broker tests: verdict episodes produced
//! to Kafka, a tap on the devices' MQTT command topics, a local webhook
//! receiver that fails on purpose, and the role's arguments.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use vigil_schemas::{Alarm, AlarmState, Contribution, Incident, Message as _, ScoredAt, Verdict};

/// Event-time step between two records of a device, ms.
pub const STEP_MS: u64 = 10;

/// A verdict of `device` at `seq` (event time `base + seq * STEP_MS`), in
/// the alarm opened at `opened` when given.
pub fn verdict(device: &str, seq: u64, base: u64, alarm: Option<(u64, AlarmState)>) -> Verdict {
    let anomaly = matches!(alarm, Some((_, AlarmState::Opened | AlarmState::Ongoing)));
    let ts = base + seq * STEP_MS;
    Verdict {
        schema: 1,
        device_id: device.into(),
        seq,
        event_ts: ts,
        ingest_ts: Some(ts),
        scored_ts: ts,
        model: "default".into(),
        model_version: Some(3),
        score: if anomaly { 0.95 } else { 0.1 },
        threshold: 0.5,
        anomaly,
        alarm: alarm.map(|(opened, state)| Alarm {
            id: Alarm::id_for(device, opened),
            opened_seq: opened,
            opened_ts: base + opened * STEP_MS,
            state,
        }),
        contributions: vec![Contribution {
            metric: "temperature_c".into(),
            share: 0.8,
        }],
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

/// Records `from..to` of `device`: calm, then an alarm from `alarm.0`
/// through `alarm.1` (closed on the record after it), then calm.
pub fn records(device: &str, base: u64, from: u64, to: u64, alarms: &[(u64, u64)]) -> Vec<Verdict> {
    (from..to)
        .map(|seq| {
            let alarm = alarms.iter().find_map(|&(open, last)| {
                if seq == open {
                    Some((open, AlarmState::Opened))
                } else if seq > open && seq <= last {
                    Some((open, AlarmState::Ongoing))
                } else if seq == last + 1 {
                    Some((open, AlarmState::Closed))
                } else {
                    None
                }
            });
            verdict(device, seq, base, alarm)
        })
        .collect()
}

/// A producer writing one record per batch (tansu skips the rest of a
/// batch when a consumer resumes inside it; docs/ARCHITECTURE.md).
pub fn producer(brokers: &str) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .context("creating the test producer")
}

/// Produces every verdict to vigil.verdicts and the anomalous ones to
/// vigil.anomalies too (as the scorer does), keyed by device, and waits
/// for every delivery.
pub async fn produce(producer: &FutureProducer, verdicts: &[Verdict]) -> Result<()> {
    let mut deliveries = Vec::new();
    for v in verdicts {
        let bytes = v.encode()?;
        let topics: &[&str] = if v.anomaly {
            &["vigil.verdicts", "vigil.anomalies"]
        } else {
            &["vigil.verdicts"]
        };
        for topic in topics {
            let record = FutureRecord::to(topic).key(&v.device_id).payload(&bytes);
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => bail!("queueing a verdict: {e}"),
            }
        }
    }
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => bail!("producing a verdict: {e}"),
            Err(_) => bail!("a verdict's delivery was cancelled"),
        }
    }
    Ok(())
}

/// Reads vigil.incidents until `done` holds for the events so far.
pub async fn incidents(
    brokers: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Incident]) -> bool,
) -> Result<Vec<Incident>> {
    let decode = |records: &[vigil_testkit::clients::Record]| -> Vec<Incident> {
        records
            .iter()
            .filter_map(|r| Incident::decode(&r.payload).ok())
            .collect()
    };
    let mut seen = Vec::new();
    let records =
        vigil_testkit::clients::read_until(brokers, "vigil.incidents", timeout, |records| {
            seen = decode(records);
            done(&seen)
        })
        .await
        .map_err(|e| {
            let events: Vec<String> = seen
                .iter()
                .map(|i| {
                    let actions: Vec<String> = i
                        .actions
                        .iter()
                        .map(|a| format!("{}={}/{}", a.target, a.status.as_str(), a.attempts))
                        .collect();
                    format!(
                        "{} r{} {:?} {} [{}]",
                        i.incident_id,
                        i.revision,
                        i.state,
                        i.reason.as_deref().unwrap_or(""),
                        actions.join(" ")
                    )
                })
                .collect();
            anyhow::anyhow!("{e}\nevents:\n{}", events.join("\n"))
        })?;
    Ok(decode(&records))
}

/// The seed of the command key the tests' `vigil actions` signs with.
const COMMAND_KEY_SEED: [u8; 32] = [0x5a; 32];

/// Writes the tests' command signing key into `dir` (mode 0600) and
/// returns its path.
pub fn command_signing_key(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("command-signing.key");
    if !path.exists() {
        let hex: String = COMMAND_KEY_SEED
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("creating the command key file");
        writeln!(file, "vigil-ed25519-secret:{hex}").expect("writing the command key");
    }
    path
}

/// The command JSON of a signed command on `topic`, verified as the
/// device would; an unverifiable one is `{"refused": reason}`.
fn command_body(topic: &str, payload: &[u8]) -> serde_json::Value {
    let key = vigil_model::SigningKey::from_bytes(&COMMAND_KEY_SEED).verifying_key();
    let device = topic
        .strip_prefix("vigil/devices/")
        .and_then(|t| t.strip_suffix("/commands"))
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match vigil_model::verify_command(payload, &key, device, now, None) {
        Ok(v) => serde_json::from_slice(&v.body).unwrap_or_default(),
        Err(e) => serde_json::json!({ "refused": e.reason() }),
    }
}

/// Commands received on `vigil/devices/+/commands` (verified, unwrapped
/// to the command JSON the device's handler gets).
pub struct CommandTap {
    /// (topic, JSON) of each command, in arrival order.
    pub received: mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    _task: tokio::task::JoinHandle<()>,
}

impl CommandTap {
    /// Subscribes (returns once the broker acknowledged the subscription).
    pub async fn start(mqtt_port: u16) -> Result<Self> {
        let options = MqttOptions::new(
            format!("command-tap-{}", std::process::id()),
            "127.0.0.1",
            mqtt_port,
        );
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        client
            .subscribe("vigil/devices/+/commands", QoS::AtLeastOnce)
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("command tap: {e}"),
                Err(_) => bail!("command tap: no SUBACK within 10 s"),
            }
        }
        let (tx, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = event {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let json = command_body(&topic, &p.payload);
                    if tx.send((topic, json)).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(CommandTap {
            received,
            _task: task,
        })
    }

    /// The next `n` commands, or an error after `timeout`.
    pub async fn take(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(c)) => out.push(c),
                Ok(None) => bail!("command tap closed after {} commands", out.len()),
                Err(_) => bail!("{} of {n} commands within {timeout:?}: {out:?}", out.len()),
            }
        }
        Ok(out)
    }
}

/// One request the webhook receiver answered.
#[derive(Debug, Clone)]
pub struct Hit {
    /// `flaky`, `ok` or `broken`.
    pub path: String,
    /// The `Idempotency-Key` header.
    pub key: String,
    /// What the receiver answered.
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

#[derive(Clone)]
struct Receiver {
    failures: Arc<Mutex<HashMap<String, u32>>>,
    hits: mpsc::UnboundedSender<Hit>,
}

/// A webhook endpoint on 127.0.0.1: `/flaky` answers 500 to its first
/// three requests and 200 after, `/ok` always 200, `/broken` always 503.
pub struct Webhooks {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every request answered, in order.
    pub hits: mpsc::UnboundedReceiver<Hit>,
    _server: tokio::task::JoinHandle<()>,
}

impl Webhooks {
    /// Starts the receiver.
    pub async fn start() -> Result<Self> {
        let (tx, hits) = mpsc::unbounded_channel();
        let state = Receiver {
            failures: Arc::default(),
            hits: tx,
        };
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(hook))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Webhooks {
            base,
            hits,
            _server: server,
        })
    }

    /// Every request answered so far (without waiting).
    pub fn drain(&mut self) -> Vec<Hit> {
        let mut out = Vec::new();
        while let Ok(h) = self.hits.try_recv() {
            out.push(h);
        }
        out
    }

    /// Waits for requests until `done` holds for all received so far.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Hit]) -> bool,
    ) -> Result<Vec<Hit>> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&out) {
            match tokio::time::timeout_at(deadline, self.hits.recv()).await {
                Ok(Some(h)) => out.push(h),
                Ok(None) => bail!("webhook receiver stopped"),
                Err(_) => bail!("webhook condition not met within {timeout:?}: {out:?}"),
            }
        }
        Ok(out)
    }
}

async fn hook(
    State(state): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let status = match path.as_str() {
        "flaky" => {
            let mut failures = state.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(path.clone()).or_insert(0);
            *n += 1;
            if *n <= 3 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        "broken" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = state.hits.send(Hit {
        path,
        key,
        status: status.as_u16(),
        body: serde_json::from_slice(&body).unwrap_or_default(),
    });
    status
}

/// `vigil actions` flags for the brokers, the rules file and the HTTP
/// address.
pub fn args(brokers: &str, mqtt_port: u16, rules: &std::path::Path, http: &str) -> Vec<String> {
    [
        "--kafka-brokers",
        brokers,
        "--mqtt-url",
        &format!("mqtt://127.0.0.1:{mqtt_port}"),
        "--rules",
        &rules.display().to_string(),
        "--http-addr",
        http,
        "--quiet-period",
        "200ms",
        "--kafka-partitions",
        "2",
        "--commit-interval-ms",
        "100",
        "--instance-id",
        "actions-test",
        "--command-signing-key",
        &command_signing_key(rules.parent().unwrap_or(std::path::Path::new(".")))
            .display()
            .to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Parses `vigil actions` flags.
pub fn parse(args: &[String]) -> vigil_actions::ActionsArgs {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: vigil_actions::ActionsArgs,
    }
    let argv = std::iter::once("vigil-actions".to_owned()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.args,
        Err(e) => panic!("bad test flags: {e}"),
    }
}

/// Waits until the role's `/readyz` answers 200.
pub async fn wait_ready(http: &str) -> Result<()> {
    let url = format!("http://{http}/readyz");
    vigil_testkit::clients::eventually("vigil actions ready", Duration::from_secs(60), || async {
        matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
    })
    .await
}
