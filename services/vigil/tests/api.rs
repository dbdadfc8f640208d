//! `vigil api` (the live dashboard) against a real tansu broker: verdicts,
//! anomalies, telemetry, device status, a model release and a DLQ record
//! produced with rdkafka; the built binary serving the JSON views and the
//! live feed; incidents from an audit store (the Incidents page, the
//! Fleet page's open count, the device page's list); and the page itself
//! in headless Chromium (`api_page/`: Debian's `chromium` +
//! `chromium-driver`, driven over WebDriver with fantoccini).

mod api_page;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{now_ms, VigilProcess};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use vigil_schemas::{
    ActionKind, ActionRecord, ActionResult, ActionStatus, CommandOutcome, Contribution,
    DeviceState, DeviceStatus, DlqRecord, Incident, IncidentState, Message, ModelRef, ModelRelease,
    ReleaseHeader, ScoredAt, Severity, Telemetry, TrainingWindow, ValidationMetrics, Verdict,
};
use vigil_testkit::clients::eventually;
use vigil_testkit::Tansu;

const CLOUD_DEVICES: [&str; 3] = ["pump-0001", "pump-0002", "pump-0003"];
const EDGE_DEVICE: &str = "edge-0001";
/// Verdicts (and telemetry records) per device produced up front.
const HISTORY: u64 = 40;
/// Partitions of the topics `vigil api` creates in these tests.
const PARTITIONS: i32 = 3;

fn verdict(device: &str, seq: u64, anomaly: bool, at: ScoredAt) -> Verdict {
    let now = now_ms();
    // A wavy score under the threshold, and well above it for anomalies.
    let score = if anomaly {
        0.93
    } else {
        0.2 + 0.15 * ((seq as f64) / 3.0).sin().abs()
    };
    Verdict {
        alarm: None,
        schema: 1,
        device_id: device.into(),
        seq,
        event_ts: now - (HISTORY + 5 - seq.min(HISTORY)) * 250,
        ingest_ts: (at == ScoredAt::Cloud).then_some(now - 20),
        scored_ts: now - 5,
        model: "default".into(),
        model_version: Some(1),
        score,
        threshold: 0.8,
        anomaly,
        contributions: if anomaly {
            vec![
                Contribution {
                    metric: "temperature_c".into(),
                    share: 0.7,
                },
                Contribution {
                    metric: "vibration_rms".into(),
                    share: 0.3,
                },
            ]
        } else {
            Vec::new()
        },
        scored_at: at,
        unscored: None,
    }
}

fn telemetry(device: &str, seq: u64) -> Telemetry {
    let mut metrics = BTreeMap::new();
    metrics.insert(
        "temperature_c".to_owned(),
        60.0 + 5.0 * (seq as f64 / 4.0).sin(),
    );
    metrics.insert("vibration_rms".to_owned(), 0.4 + 0.01 * (seq % 7) as f64);
    let mut t = Telemetry::new(
        device,
        seq,
        now_ms() - (HISTORY - seq.min(HISTORY)) * 250,
        metrics,
    );
    t.ingest_ts = Some(now_ms());
    t
}

fn release() -> ModelRelease {
    let header = ReleaseHeader {
        model: "default".into(),
        version: 1,
        created_ts: now_ms() - 60_000,
        training: TrainingWindow {
            from_ts: now_ms() - 3_600_000,
            to_ts: now_ms() - 120_000,
            records: 12_000,
            devices: 4,
            source: "kafka:vigil.telemetry".into(),
        },
        validation: ValidationMetrics {
            estimated_false_alarm_rate: None,
            expected_false_alarm_rate: None,
            holdout_records: 2_400,
            false_alarm_rate: 0.004,
            detection_rate: Some(0.92),
            mean_detection_delay: Some(3.5),
        },
        threshold: 0.8,
    };
    let payload = serde_json::to_string(&header).expect("header encodes");
    ModelRelease {
        schema: 1,
        model: "default".into(),
        version: 1,
        key_id: "test-key".into(),
        payload_sha256: "0".repeat(64),
        signature: "AAAA".into(),
        payload: serde_json::value::RawValue::from_string(payload).expect("raw json"),
    }
}

/// The open incident of the edge device: its command ran (exit 0).
const OPEN_INCIDENT: &str = "edge-0001:30";
/// A resolved incident of a cloud-scored pump, with a webhook delivered.
const RESOLVED_INCIDENT: &str = "pump-0001:30";

/// The incidents the browser test puts in the audit store, each as its
/// events (the store keeps the newest as the incident's state).
fn incidents() -> Vec<Incident> {
    let now = now_ms();
    let base = |device: &str, at: ScoredAt| Incident {
        schema: 1,
        incident_id: Incident::id_for(device, 30),
        device_id: device.into(),
        state: IncidentState::Opened,
        ts: now - 9_000,
        opened_ts: now - 10_000,
        first_seq: 30,
        last_seq: 31,
        anomalies: 2,
        max_score: 0.93,
        model: "default".into(),
        model_version: Some(1),
        severity: Severity::High,
        last_ts: now - 9_750,
        alarms: vec![format!("{device}@30")],
        top_metrics: vec![Contribution {
            metric: "temperature_c".into(),
            share: 0.7,
        }],
        models: vec![ModelRef {
            model: "default".into(),
            version: Some(1),
        }],
        scored_at: vec![at],
        ..Incident::default()
    };
    let opened = base(EDGE_DEVICE, ScoredAt::Edge);
    let mut commanded = opened.clone();
    commanded.state = IncidentState::Updated;
    commanded.revision = 1;
    commanded.ts = now - 8_000;
    commanded.reason = Some("action".into());
    commanded.actions = vec![ActionRecord {
        id: format!("{OPEN_INCIDENT}/throttle-edge/0"),
        rule: "throttle-edge".into(),
        kind: ActionKind::Command,
        target: "throttle".into(),
        status: ActionStatus::Succeeded,
        attempts: 1,
        ts: now - 8_500,
        detail: None,
        result_due: Some(now + 20_000),
        result: Some(ActionResult {
            status: CommandOutcome::Ok,
            exit_status: Some(0),
            duration_ms: 12,
            ts: now - 8_000,
            detail: None,
        }),
    }];
    let pump = base(CLOUD_DEVICES[0], ScoredAt::Cloud);
    let mut resolved = pump.clone();
    resolved.state = IncidentState::Resolved;
    resolved.revision = 1;
    resolved.ts = now - 5_000;
    resolved.resolved_ts = Some(now - 5_000);
    resolved.reason = Some("quiet".into());
    resolved.closed_seq = Some(32);
    resolved.closed_ts = Some(now - 9_500);
    resolved.actions = vec![ActionRecord {
        id: format!("{RESOLVED_INCIDENT}/notify/0"),
        rule: "notify".into(),
        kind: ActionKind::Webhook,
        target: "pager".into(),
        status: ActionStatus::Delivered,
        attempts: 1,
        ts: now - 9_000,
        detail: None,
        result_due: None,
        result: None,
    }];
    vec![opened, commanded, pump, resolved]
}

/// An audit store (SQLite, in `dir`) holding `verdicts` and `incidents`;
/// its URI.
fn audit_store(
    dir: &std::path::Path,
    verdicts: Vec<Verdict>,
    incidents: Vec<Incident>,
) -> anyhow::Result<String> {
    let db = dir.join("audit.db");
    let store = vigil_audit::store::sqlite::SqliteStore::open(&db)?;
    store.write_blocking(&vigil_audit::store::WriteBatch {
        verdicts,
        incidents,
        ..Default::default()
    })?;
    Ok(format!("sqlite://{}", db.display()))
}

/// A broker, `vigil api` on it, and a producer.
struct Stack {
    api: VigilProcess,
    producer: FutureProducer,
    brokers: String,
    _tansu: Tansu,
}

impl Stack {
    /// `extra` goes to `vigil api`'s command line.
    async fn start(extra: &[&str]) -> anyhow::Result<Self> {
        let tansu = Tansu::start()?;
        let brokers = tansu.brokers();
        let partitions = PARTITIONS.to_string();
        let api = VigilProcess::start(
            &[
                "api",
                "--kafka-brokers",
                &brokers,
                "--kafka-partitions",
                &partitions,
                "--lag-interval-ms",
                "300",
            ]
            .iter()
            .chain(extra)
            .copied()
            .collect::<Vec<_>>(),
        )
        .await?;
        api.wait_ready().await?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "0")
            .create()?;
        Ok(Self {
            api,
            producer,
            brokers,
            _tansu: tansu,
        })
    }

    async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(15),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
        Ok(())
    }

    /// A fleet with history: three cloud-scored pumps, one edge agent, a
    /// release, a DLQ record. Every device has anomalies at seq 30 and 31.
    async fn seed(&self) -> anyhow::Result<()> {
        self.send("vigil.models", "default", &release().encode()?)
            .await?;
        for seq in 1..=HISTORY {
            for (i, device) in CLOUD_DEVICES.iter().chain([&EDGE_DEVICE]).enumerate() {
                let at = if i == CLOUD_DEVICES.len() {
                    ScoredAt::Edge
                } else {
                    ScoredAt::Cloud
                };
                let anomaly = seq == 30 || seq == 31;
                let v = verdict(device, seq, anomaly, at);
                self.send("vigil.verdicts", device, &v.encode()?).await?;
                if anomaly {
                    self.send("vigil.anomalies", device, &v.encode()?).await?;
                }
                self.send("vigil.telemetry", device, &telemetry(device, seq).encode()?)
                    .await?;
            }
        }
        let status = DeviceStatus {
            schema: 1,
            device_id: EDGE_DEVICE.into(),
            ts: now_ms(),
            state: DeviceState::Online,
            agent_version: "0.1.0".into(),
            model: "default".into(),
            model_version: Some(1),
            buffered_records: 0,
            buffered_bytes: 0,
            dropped_records: 0,
            last_uplink_ts: Some(now_ms()),
        };
        self.send("vigil.device-status", EDGE_DEVICE, &status.encode()?)
            .await?;
        let dlq = DlqRecord::new(
            "ingest",
            "mqtt:vigil/devices/bad/telemetry".into(),
            "malformed_json",
            "malformed json at line 1 column 2: expected value".into(),
            now_ms(),
            b"{nope",
        );
        self.send("vigil.dlq", "ingest", &dlq.encode()?).await?;
        Ok(())
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = reqwest::get(format!("http://{}{path}", self.api.http)).await?;
        anyhow::ensure!(r.status() == 200, "GET {path}: {}", r.status());
        Ok(r.json().await?)
    }

    /// Waits until the dashboard lists every seeded device with its whole
    /// history.
    async fn wait_seeded(&self) -> anyhow::Result<()> {
        eventually(
            "the dashboard shows the seeded fleet",
            Duration::from_secs(30),
            || async {
                let Ok(o) = self.get("/api/overview").await else {
                    return false;
                };
                let Ok(models) = self.get("/api/models").await else {
                    return false;
                };
                // The edge agent's status travels on its own topic and
                // may be read after the verdicts.
                let devices = o["devices"].as_array();
                o["counts"]["total"] == 4
                    && devices.is_some_and(|d| d.iter().all(|d| d["verdicts"] == HISTORY))
                    && devices.is_some_and(|d| {
                        d.iter()
                            .any(|d| d["device_id"] == EDGE_DEVICE && !d["agent_version"].is_null())
                    })
                    && models[0]["release"]["version"] == 1
            },
        )
        .await
        .map_err(|e| self.api.failure(e))
    }
}

/// Commits offset 0 for every partition of vigil.telemetry as group
/// `vigil-score`, as a scorer that has read nothing would: its lag is then
/// every telemetry record.
fn commit_zero_as_scorer(brokers: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "vigil-score")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset("vigil.telemetry", p, Offset::Offset(0))?;
    }
    consumer.commit(&list, CommitMode::Sync)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_views_show_the_fleet_and_anomalies_arrive_live() -> anyhow::Result<()> {
    // An audit store with the history of a device that sends no more.
    let audit = tempfile::tempdir()?;
    let archived: Vec<Verdict> = (1..=10)
        .map(|seq| verdict("archived-0001", seq, seq == 7, ScoredAt::Cloud))
        .collect();
    let store_uri = audit_store(audit.path(), archived, incidents())?;

    let stack = Stack::start(&["--audit-store", &store_uri]).await?;
    stack.seed().await?;
    stack.wait_seeded().await?;

    // Fleet: four devices, the edge one scored at the edge and reporting
    // its agent; every device's latest verdict (seq 40) is normal.
    let o = stack.get("/api/overview").await?;
    assert_eq!(o["counts"]["edge"], 1, "{o}");
    assert_eq!(o["counts"]["cloud"], 3, "{o}");
    let edge = o["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["device_id"] == EDGE_DEVICE))
        .cloned()
        .unwrap_or_default();
    assert_eq!(edge["scored_at"], "edge", "{edge}");
    assert_eq!(edge["agent_version"], "0.1.0", "{edge}");
    assert_eq!(edge["model_version"], 1, "{edge}");
    assert_eq!(edge["anomalies"], 2, "{edge}");

    // A device: its scores and thresholds, anomaly markers, telemetry per
    // metric, and the metrics that contributed.
    let d = stack.get("/api/devices/pump-0002").await?;
    let points = d["points"].as_array().cloned().unwrap_or_default();
    assert_eq!(points.len() as u64, HISTORY, "{d}");
    assert_eq!(points.iter().filter(|p| p["anomaly"] == true).count(), 2);
    assert!(points.iter().all(|p| p["threshold"] == 0.8));
    assert_eq!(
        d["telemetry"]["temperature_c"].as_array().map(Vec::len),
        Some(HISTORY as usize)
    );
    assert_eq!(d["contributions"][0]["metric"], "temperature_c", "{d}");
    let missing = reqwest::get(format!("http://{}/api/devices/nope", stack.api.http)).await?;
    assert_eq!(missing.status(), 404);
    // A device only the audit store knows: its page comes from there.
    let old = stack.get("/api/devices/archived-0001").await?;
    assert_eq!(old["status"], "stale", "{old}");
    assert_eq!(old["points"].as_array().map(Vec::len), Some(10), "{old}");
    assert_eq!(old["anomalies_recent"][0]["seq"], 7, "{old}");

    // Incidents from the audit store: each as its newest event, the open
    // count, by device and by state.
    let all = stack.get("/api/incidents").await?;
    assert_eq!(all["available"], true, "{all}");
    assert_eq!(all["open"], 1, "{all}");
    let ids: Vec<&str> = all["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["incident_id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        ids,
        [RESOLVED_INCIDENT, OPEN_INCIDENT],
        "most recently active first"
    );
    assert_eq!(
        all["items"][1]["actions"][0]["status"], "succeeded",
        "{all}"
    );
    let edge = stack.get("/api/incidents?device=edge-0001").await?;
    assert_eq!(edge["items"].as_array().map(Vec::len), Some(1), "{edge}");
    let resolved = stack.get("/api/incidents?state=resolved&limit=0").await?;
    assert_eq!(
        resolved["items"].as_array().map(Vec::len),
        Some(0),
        "{resolved}"
    );
    assert_eq!(resolved["open"], 1, "{resolved}");
    let bad = reqwest::get(format!(
        "http://{}/api/incidents?state=closed",
        stack.api.http
    ))
    .await?;
    assert_eq!(bad.status(), 400);

    // The feed: 8 anomalies (2 per device), each once although every one
    // was read from both vigil.verdicts and vigil.anomalies.
    let feed = stack.get("/api/anomalies").await?;
    assert_eq!(feed.as_array().map(Vec::len), Some(8), "{feed}");

    // Models: provenance and rollout (3 devices scored in the cloud, one
    // edge agent, on version 1).
    let models = stack.get("/api/models").await?;
    let v1 = &models[0];
    assert_eq!(v1["version"], 1, "{models}");
    assert_eq!(
        v1["release"]["validation"]["detection_rate"], 0.92,
        "{models}"
    );
    assert_eq!(v1["rollout"]["cloud_devices"], 3, "{models}");
    assert_eq!(v1["rollout"]["edge_devices"], 1, "{models}");

    // Pipeline: throughput and latency from the verdicts' timestamps, the
    // DLQ by reason, and consumer lag from committed offsets.
    commit_zero_as_scorer(&stack.brokers)?;
    let total_telemetry = HISTORY * 4;
    eventually(
        "vigil-score's lag is measured",
        Duration::from_secs(20),
        || async {
            let Ok(p) = stack.get("/api/pipeline").await else {
                return false;
            };
            p["log"]["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["group"] == "vigil-score"))
                .is_some_and(|g| g["total"] == total_telemetry)
        },
    )
    .await
    .map_err(|e| stack.api.failure(e))?;
    let p = stack.get("/api/pipeline").await?;
    assert_eq!(p["dlq"][0]["reason"], "malformed_json", "{p}");
    assert_eq!(p["dlq_read"], 1, "{p}");
    assert_eq!(p["log"]["dlq_retained"], 1, "{p}");
    // The three cloud-scored pumps' verdicts; the edge agent's are not a
    // measure of the pipeline's latency (an uplink outage would count).
    assert!(
        p["e2e_latency_ms"]["samples"].as_u64() >= Some(HISTORY * 3),
        "{p}"
    );
    assert!(p["scoring_latency_ms"]["p50"].as_u64().is_some(), "{p}");

    // Live: an anomaly produced after the client connected arrives on the
    // event stream.
    let mut events = reqwest::get(format!("http://{}/api/events", stack.api.http)).await?;
    assert_eq!(events.status(), 200);
    let mut seen = String::new();
    let hello = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("event: hello") {
            match events.chunk().await? {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => anyhow::bail!("event stream ended"),
            }
        }
        Ok(())
    })
    .await;
    anyhow::ensure!(
        matches!(hello, Ok(Ok(()))),
        "no hello on the event stream: {seen:?}"
    );
    assert_eq!(stack.api.metric("vigil_api_sse_clients").await, 1.0);

    let live = verdict("pump-0003", 77, true, ScoredAt::Cloud);
    stack
        .send("vigil.anomalies", "pump-0003", &live.encode()?)
        .await?;
    let arrived = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if seen.contains("event: anomaly") && seen.contains(r#""seq":77"#) {
                return Ok(());
            }
            match events.chunk().await? {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => anyhow::bail!("event stream ended"),
            }
        }
    })
    .await;
    anyhow::ensure!(
        matches!(arrived, Ok(Ok(()))),
        "the anomaly did not arrive live: {seen:?}"
    );
    let line = seen
        .lines()
        .find(|l| l.starts_with("data:") && l.contains(r#""seq":77"#))
        .unwrap_or_default();
    let event: Value = serde_json::from_str(line.trim_start_matches("data:").trim())?;
    assert_eq!(event["type"], "anomaly");
    assert_eq!(event["device_id"], "pump-0003");
    assert_eq!(event["contributions"][0]["metric"], "temperature_c");
    drop(events);

    // The page and its assets are served from the binary.
    let page = reqwest::get(format!("http://{}/", stack.api.http)).await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("/assets/app.js"));
    let js = reqwest::get(format!("http://{}/assets/app.js", stack.api.http)).await?;
    assert!(js.text().await?.contains("EventSource"));

    // A dashboard started later shows the same fleet at once: the newest
    // records of each partition are read back, the compacted topics whole.
    let partitions = PARTITIONS.to_string();
    let second = VigilProcess::start(&[
        "api",
        "--kafka-brokers",
        &stack.brokers,
        "--kafka-partitions",
        &partitions,
    ])
    .await?;
    second.wait_ready().await?;
    // Without an audit store there are no incidents to show, and it says so.
    let none: Value = reqwest::get(format!("http://{}/api/incidents", second.http))
        .await?
        .json()
        .await?;
    assert_eq!(none["available"], false, "{none}");
    let url = format!("http://{}/api/overview", second.http);
    eventually(
        "a restarted dashboard backfills the fleet",
        Duration::from_secs(30),
        || async {
            let Ok(r) = reqwest::get(&url).await else {
                return false;
            };
            let Ok(o) = r.json::<Value>().await else {
                return false;
            };
            o["counts"]["total"] == 4
                && o["devices"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| d["verdicts"].as_u64() >= Some(HISTORY)))
        },
    )
    .await
    .map_err(|e| second.failure(e))?;
    // vigil.models is read from its beginning: the release is known too.
    let url = format!("http://{}/api/models", second.http);
    eventually(
        "a restarted dashboard knows the release",
        Duration::from_secs(30),
        || async {
            let Ok(r) = reqwest::get(&url).await else {
                return false;
            };
            r.json::<Value>()
                .await
                .is_ok_and(|m| m[0]["release"]["version"] == 1)
        },
    )
    .await
    .map_err(|e| second.failure(e))?;

    // Shutdown is clean with a live-feed client still connected.
    let mut stack = stack;
    let _open = reqwest::get(format!("http://{}/api/events", stack.api.http)).await?;
    assert_eq!(
        stack.api.terminate(),
        Some(0),
        "vigil api exits 0 on SIGTERM"
    );
    Ok(())
}
