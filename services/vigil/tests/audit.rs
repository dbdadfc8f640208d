//! `vigil audit` against a real tansu broker: verdicts produced to Kafka
//! with rdkafka, the built binary as the sink, lookups over its HTTP API.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::VigilProcess;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::TopicPartitionList;
use serde_json::value::RawValue;
use serde_json::Value;
use vigil_schemas::{
    DlqRecord, Message, ModelRelease, ReleaseHeader, ScoredAt, TrainingWindow, ValidationMetrics,
    Verdict,
};
use vigil_testkit::clients::{eventually, read_until};
use vigil_testkit::{Tansu, TansuStorage};

/// 2026-11-23T00:00:00Z.
const T0: u64 = 1_795_392_000_000;

fn verdict(device: &str, seq: u64, version: u64) -> Verdict {
    Verdict {
        alarm: None,
        schema: 1,
        device_id: device.into(),
        seq,
        event_ts: T0 + seq * 1000,
        ingest_ts: Some(T0 + seq * 1000 + 1),
        scored_ts: T0 + seq * 1000 + 2,
        model: "default".into(),
        model_version: Some(version),
        score: 0.25,
        threshold: 0.8,
        anomaly: false,
        contributions: Vec::new(),
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

fn encode(v: &Verdict) -> (String, Vec<u8>) {
    (v.device_id.clone(), v.encode().expect("verdict encodes"))
}

/// A release with a correct checksum (unsigned: the sink runs without a
/// verify key, so it records it with `signature_verified: false`).
fn release(version: u64) -> (String, Vec<u8>) {
    let header = ReleaseHeader {
        model: "default".into(),
        version,
        created_ts: T0,
        training: TrainingWindow {
            from_ts: T0 - 86_400_000,
            to_ts: T0,
            records: 1000,
            devices: 10,
            source: "test".into(),
        },
        validation: ValidationMetrics {
            estimated_false_alarm_rate: None,
            expected_false_alarm_rate: None,
            holdout_records: 100,
            false_alarm_rate: 0.01,
            detection_rate: None,
            mean_detection_delay: None,
        },
        threshold: 0.8,
    };
    let payload = serde_json::to_string(&header).expect("encodes");
    let release = ModelRelease {
        schema: 1,
        model: "default".into(),
        version,
        key_id: "test-key".into(),
        payload_sha256: vigil_model::release::sha256_hex(payload.as_bytes()),
        signature: "AAAA".into(),
        payload: RawValue::from_string(payload).expect("raw"),
    };
    ("default".into(), release.encode().expect("release encodes"))
}

async fn produce(
    brokers: &str,
    topic: &str,
    records: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "500000")
        .create()?;
    let mut deliveries: FuturesUnordered<_> = records
        .iter()
        .map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Timeout::After(Duration::from_secs(60)),
            )
        })
        .collect();
    while let Some(result) = deliveries.next().await {
        result.map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    }
    Ok(())
}

fn audit_args<'a>(brokers: &'a str, store: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "audit",
        "--kafka-brokers",
        brokers,
        "--store",
        store,
        "--group",
        "audit-under-test",
    ];
    args.extend_from_slice(extra);
    args
}

async fn start_audit(brokers: &str, store: &str, extra: &[&str]) -> anyhow::Result<VigilProcess> {
    let audit = VigilProcess::start(&audit_args(brokers, store, extra)).await?;
    audit.wait_ready().await?;
    Ok(audit)
}

async fn get(http: &str, path: &str) -> anyhow::Result<Value> {
    let r = reqwest::get(format!("http://{http}{path}")).await?;
    anyhow::ensure!(r.status() == 200, "GET {path}: {}", r.status());
    Ok(r.json().await?)
}

/// Every verdict of `device` stored, following cursors.
async fn all_verdicts(http: &str, device: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut path = format!("/v1/devices/{device}/verdicts?limit=1000");
    loop {
        let page = get(http, &path).await?;
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/devices/{device}/verdicts?limit=1000&cursor={c}"),
            None => return Ok(out),
        }
    }
}

async fn records_scored(http: &str) -> f64 {
    match get(http, "/v1/models/default/1").await {
        Ok(body) => body["records_scored"].as_f64().unwrap_or(f64::NAN),
        Err(_) => f64::NAN,
    }
}

/// Committed offsets of `group` on `topic`, summed over its partitions.
fn committed(brokers: &str, group: &str, topic: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let offsets = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(offsets
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw())
        .filter(|o| *o >= 0)
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_delivered_three_times_is_stored_once() -> anyhow::Result<()> {
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("audit.db").display());
    let audit = start_audit(&brokers, &store, &["--batch-max-ms", "50"]).await?;

    let mut records: Vec<(String, Vec<u8>)> = (1..=100)
        .flat_map(|seq| (0..3).map(move |d| encode(&verdict(&format!("dev-{d}"), seq, 1))))
        .collect();
    let replayed = encode(&verdict("dev-replay", 42, 1));
    for _ in 0..3 {
        records.push(replayed.clone());
    }
    records.push(("dev-bad".into(), b"{\"schema\":1,\"device_id\":".to_vec()));
    produce(&brokers, "vigil.models", vec![release(1)]).await?;
    produce(&brokers, "vigil.verdicts", records).await?;
    // And once more, later, as a replay after a consumer restart would.
    produce(&brokers, "vigil.verdicts", vec![replayed]).await?;

    eventually(
        "all 301 records stored",
        Duration::from_secs(60),
        || async { records_scored(&audit.http).await == 301.0 },
    )
    .await
    .map_err(|e| audit.failure(e))?;

    let record = get(&audit.http, "/v1/records/dev-replay/42").await?;
    let verdicts = record["verdicts"].as_array().expect("verdicts");
    assert_eq!(
        verdicts.len(),
        1,
        "delivered four times, stored once: {record}"
    );
    assert_eq!(verdicts[0]["model_version"], 1);
    assert_eq!(all_verdicts(&audit.http, "dev-replay").await?.len(), 1);
    assert_eq!(all_verdicts(&audit.http, "dev-1").await?.len(), 100);
    let models = get(&audit.http, "/v1/models").await?;
    assert_eq!(models["models"][0]["version"], 1);
    assert_eq!(models["models"][0]["signature_verified"], false);

    // The malformed record went to the DLQ with a reason, and the sink
    // kept going.
    let dlq = read_until(&brokers, "vigil.dlq", Duration::from_secs(30), |r| {
        !r.is_empty()
    })
    .await?;
    let rejected = DlqRecord::decode(&dlq[0].payload)?;
    assert_eq!(rejected.service, "audit");
    assert_eq!(rejected.reason, "malformed_json");
    assert!(
        rejected.source.starts_with("kafka:vigil.verdicts/"),
        "{}",
        rejected.source
    );
    assert_eq!(audit.metric("vigil_audit_dlq_total").await, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_loses_nothing_committed_and_duplicates_nothing() -> anyhow::Result<()> {
    // tansu's SQLite engine: its memory engine, asked by a consumer to
    // resume from committed offsets, delivered some records twice and
    // others never (seen with plain rdkafka consumers too).
    let kafka = Tansu::start_with(TansuStorage::Sqlite)?;
    let brokers = kafka.brokers();
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("audit.db").display());
    // Static membership: the restarted sink takes its partitions back at
    // once. (Without it, tansu assigned the restarted member nothing after
    // expiring the killed one.)
    let extra = [
        "--batch-max-records",
        "500",
        "--batch-max-ms",
        "100",
        "--instance-id",
        "audit-1",
    ];
    let mut audit = start_audit(&brokers, &store, &extra).await?;
    produce(&brokers, "vigil.models", vec![release(1)]).await?;

    const DEVICES: u64 = 40;
    const PER_DEVICE: u64 = 500;
    let total = DEVICES * PER_DEVICE;
    let records: Vec<(String, Vec<u8>)> = (1..=PER_DEVICE)
        .flat_map(|seq| (0..DEVICES).map(move |d| encode(&verdict(&format!("k-{d:02}"), seq, 1))))
        .collect();
    let producer = tokio::spawn({
        let brokers = brokers.clone();
        async move { produce(&brokers, "vigil.verdicts", records).await }
    });
    eventually(
        "the sink is mid-stream",
        Duration::from_secs(90),
        || async {
            audit
                .metric("vigil_audit_rows_written_total{kind=\"verdict\"}")
                .await
                >= 3000.0
        },
    )
    .await
    .map_err(|e| audit.failure(e))?;
    audit.kill9();
    producer.await??;
    let committed_at_kill = committed(&brokers, "audit-under-test", "vigil.verdicts")?;
    assert!(
        committed_at_kill > 0,
        "offsets were committed before the kill"
    );

    let audit = start_audit(&brokers, &store, &extra).await?;
    let stored = eventually("every record stored", Duration::from_secs(120), || async {
        records_scored(&audit.http).await == total as f64
    })
    .await;
    if let Err(e) = stored {
        let detail = format!(
            "{e}: records_scored {}, consumed {}, committed at kill {committed_at_kill}, committed now {:?}",
            records_scored(&audit.http).await,
            audit
                .metric("vigil_audit_records_consumed_total{topic=\"verdicts\"}")
                .await,
            committed(&brokers, "audit-under-test", "vigil.verdicts")
        );
        return Err(audit.failure(anyhow::anyhow!(detail)));
    }

    let mut seen = HashSet::new();
    let mut per_device = BTreeMap::new();
    for d in 0..DEVICES {
        let device = format!("k-{d:02}");
        let rows = all_verdicts(&audit.http, &device).await?;
        per_device.insert(device.clone(), rows.len());
        for r in rows {
            assert!(
                seen.insert((device.clone(), r["seq"].as_u64().expect("seq"))),
                "duplicate row {device}/{}",
                r["seq"]
            );
        }
    }
    assert_eq!(seen.len() as u64, total, "rows per device: {per_device:?}");
    // The restarted sink resumed from the committed offsets instead of
    // re-reading everything.
    let consumed = audit
        .metric("vigil_audit_records_consumed_total{topic=\"verdicts\"}")
        .await;
    // (At most: a commit sent just before the kill may reach the broker
    // after `committed_at_kill` was read.)
    assert!(
        consumed <= (total as i64 - committed_at_kill) as f64,
        "the restart consumed {consumed}, more than the {} not committed",
        total as i64 - committed_at_kill
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_open_batch_and_commits_it() -> anyhow::Result<()> {
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("audit.db").display());
    // A batch that would stay open for ten minutes.
    let mut audit = start_audit(
        &brokers,
        &store,
        &["--batch-max-ms", "600000", "--batch-max-records", "100000"],
    )
    .await?;
    let records: Vec<(String, Vec<u8>)> = (1..=50)
        .map(|seq| encode(&verdict("term-1", seq, 1)))
        .collect();
    produce(&brokers, "vigil.verdicts", records).await?;
    eventually(
        "50 records in the open batch",
        Duration::from_secs(60),
        || async {
            audit
                .metric("vigil_audit_records_consumed_total{topic=\"verdicts\"}")
                .await
                == 50.0
        },
    )
    .await
    .map_err(|e| audit.failure(e))?;
    assert_eq!(
        audit.metric("vigil_audit_batches_written_total").await,
        0.0,
        "nothing written before shutdown"
    );
    assert_eq!(audit.terminate(), Some(0), "clean exit");
    assert_eq!(
        committed(&brokers, "audit-under-test", "vigil.verdicts")?,
        50
    );

    // What it wrote is there, read by an API-only instance of the store.
    let reader = VigilProcess::start(&["audit", "--api-only", "--store", &store]).await?;
    assert_eq!(all_verdicts(&reader.http, "term-1").await?.len(), 50);
    Ok(())
}

/// `/readyz`'s body.
async fn readyz(http: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(format!("http://{http}/readyz"))
        .await?
        .json()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_store_cannot_hold_goes_to_the_dlq_and_the_rest_is_stored(
) -> anyhow::Result<()> {
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("audit.db").display());
    let audit = start_audit(&brokers, &store, &["--batch-max-ms", "50"]).await?;

    // The verdict that once stopped the sink for good (issue 17): a seq no
    // signed 64-bit column holds, in the middle of valid traffic, in the
    // same batch.
    let mut records: Vec<(String, Vec<u8>)> = (1..=50)
        .map(|seq| encode(&verdict("poison-ok", seq, 1)))
        .collect();
    let poison = Verdict {
        seq: 1 << 63,
        ..verdict("poison-bad", 1, 1)
    };
    records.insert(25, encode(&poison));
    produce(&brokers, "vigil.models", vec![release(1)]).await?;
    produce(&brokers, "vigil.verdicts", records).await?;
    // And valid records after it, in a later batch.
    let later: Vec<(String, Vec<u8>)> = (51..=60)
        .map(|seq| encode(&verdict("poison-ok", seq, 1)))
        .collect();
    produce(&brokers, "vigil.verdicts", later).await?;

    eventually(
        "the 60 valid records stored",
        Duration::from_secs(60),
        || async { records_scored(&audit.http).await == 60.0 },
    )
    .await
    .map_err(|e| audit.failure(e))?;
    assert_eq!(all_verdicts(&audit.http, "poison-ok").await?.len(), 60);
    assert!(all_verdicts(&audit.http, "poison-bad").await?.is_empty());

    let dlq = read_until(&brokers, "vigil.dlq", Duration::from_secs(30), |r| {
        !r.is_empty()
    })
    .await?;
    let rejected = DlqRecord::decode(&dlq[0].payload)?;
    assert_eq!(rejected.service, "audit");
    assert_eq!(rejected.reason, "out_of_range");
    assert!(rejected.detail.contains("seq"), "{}", rejected.detail);
    let original = Verdict::decode(&rejected.original_bytes()?)?;
    assert_eq!(original.seq, 1 << 63, "the original record is kept");
    assert_eq!(
        audit
            .metric("vigil_audit_store_refused_total{reason=\"out_of_range\"}")
            .await,
        1.0
    );
    let ready = readyz(&audit.http).await?;
    assert_eq!(ready["ready"], true, "{ready}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_cannot_write_turns_readyz_red_and_recovers() -> anyhow::Result<()> {
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("audit.db");
    let store = format!("sqlite://{}", db.display());
    let audit = start_audit(
        &brokers,
        &store,
        &["--batch-max-ms", "50", "--stall-timeout-secs", "1"],
    )
    .await?;
    assert_eq!(readyz(&audit.http).await?["dependencies"]["sink"], true);

    // Another connection holds the database's write lock: the sink's write
    // waits in SQLite's busy handler, then fails as busy (a transient error,
    // retried), until the lock goes.
    let locker = rusqlite::Connection::open(&db)?;
    locker.execute_batch("BEGIN EXCLUSIVE")?;
    let records: Vec<(String, Vec<u8>)> = (1..=20)
        .map(|seq| encode(&verdict("stalled", seq, 1)))
        .collect();
    produce(&brokers, "vigil.verdicts", records).await?;
    eventually(
        "/readyz reports the stall",
        Duration::from_secs(60),
        || async {
            matches!(readyz(&audit.http).await, Ok(r)
            if r["ready"] == false && r["dependencies"]["sink"] == false)
        },
    )
    .await
    .map_err(|e| audit.failure(e))?;
    let status = reqwest::get(format!("http://{}/readyz", audit.http))
        .await?
        .status();
    assert_eq!(status, 503);

    // The lock goes: the batch is written and /readyz is green again.
    locker.execute_batch("ROLLBACK")?;
    drop(locker);
    eventually("the sink recovers", Duration::from_secs(60), || async {
        matches!(readyz(&audit.http).await, Ok(r) if r["ready"] == true)
    })
    .await
    .map_err(|e| audit.failure(e))?;
    assert_eq!(all_verdicts(&audit.http, "stalled").await?.len(), 20);
    // (Whether the write failed as busy and was retried, or waited in
    // SQLite's busy handler until the lock went, depends on timing: the
    // watchdog reports both.)
    Ok(())
}
