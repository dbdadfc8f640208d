//! `vigil ingest` against real Mosquitto and tansu brokers.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{decode_all, fleet, telemetry, VigilProcess};
use vigil_schemas::{DlqRecord, Message};
use vigil_testkit::clients::{eventually, publish_all, read_until};
use vigil_testkit::{Mosquitto, Tansu, TansuStorage};

/// Starts a ready `vigil ingest` with `extra` flags against the brokers.
async fn start_ingest(
    mqtt: &Mosquitto,
    kafka: &Tansu,
    extra: &[&str],
) -> anyhow::Result<VigilProcess> {
    VigilProcess::ingest(&mqtt.url(), &kafka.brokers(), "ingest-under-test", extra).await
}

/// Both brokers plus a ready ingest.
async fn stack(
    storage: TansuStorage,
    extra: &[&str],
) -> anyhow::Result<(Mosquitto, Tansu, VigilProcess, String)> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start_with(storage)?;
    let ingest = start_ingest(&mqtt, &kafka, extra).await?;
    let brokers = kafka.brokers();
    Ok((mqtt, kafka, ingest, brokers))
}

/// Every (device_id, seq) read from vigil.telemetry, and whether each
/// device's seqs are strictly increasing in topic order.
fn check_order(
    records: &[vigil_testkit::clients::Record],
) -> (HashSet<(String, u64)>, Vec<String>) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut out_of_order = Vec::new();
    let mut seen = HashSet::new();
    for t in decode_all(records) {
        if let Some(prev) = last.insert(t.device_id.clone(), t.seq) {
            if t.seq <= prev {
                out_of_order.push(format!("{}: {} after {}", t.device_id, t.seq, prev));
            }
        }
        seen.insert((t.device_id, t.seq));
    }
    (seen, out_of_order)
}

/// The distinct (device_id, seq) read so far, decoding each record once:
/// `read_until` asks after every record, and re-decoding everything each
/// time made a reader with many duplicates to go through quadratic.
#[derive(Default)]
struct Distinct {
    decoded: usize,
    seen: HashSet<(String, u64)>,
}

impl Distinct {
    fn update(&mut self, records: &[vigil_testkit::clients::Record]) -> usize {
        for t in decode_all(&records[self.decoded..]) {
            self.seen.insert((t.device_id, t.seq));
        }
        self.decoded = records.len();
        self.seen.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_from_100_devices_arrive_in_order() -> anyhow::Result<()> {
    let (mqtt, _kafka, ingest, brokers) = stack(TansuStorage::Memory, &[]).await?;

    let messages = fleet(100, 100);
    publish_all(mqtt.port(), "publisher", messages, Duration::from_secs(60)).await?;

    let records = read_until(&brokers, "vigil.telemetry", Duration::from_secs(90), |r| {
        r.len() >= 10_000
    })
    .await?;
    let (seen, out_of_order) = check_order(&records);
    assert_eq!(
        seen.len(),
        10_000,
        "distinct (device_id, seq) in vigil.telemetry"
    );
    assert!(
        out_of_order.is_empty(),
        "per-device order broken: {out_of_order:?}"
    );
    for r in &records {
        let t = vigil_schemas::Telemetry::decode(&r.payload)?;
        assert_eq!(r.key, t.device_id, "records are keyed by device_id");
        assert!(t.ingest_ts.is_some(), "ingest adds the ingest timestamp");
    }
    assert_eq!(
        ingest.metric("vigil_ingest_messages_produced_total").await,
        10_000.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_20000_in_flight_loses_nothing() -> anyhow::Result<()> {
    let (mqtt, kafka, mut ingest, brokers) = stack(TansuStorage::Memory, &[]).await?;

    // 20,000 messages reach the broker; ingest is killed while it is
    // working through them.
    let publisher = tokio::spawn(publish_all(
        mqtt.port(),
        "publisher",
        fleet(100, 200),
        Duration::from_secs(120),
    ));
    eventually("ingest is mid-stream", Duration::from_secs(60), || async {
        ingest.metric("vigil_ingest_messages_produced_total").await >= 2_000.0
    })
    .await?;
    ingest.kill9();
    publisher.await??;

    let _restarted = start_ingest(&mqtt, &kafka, &[]).await?;
    let expected: HashSet<(String, u64)> = (0..100)
        .flat_map(|d| (1..=200).map(move |s| (format!("dev-{d:04}"), s)))
        .collect();
    let mut distinct = Distinct::default();
    let records = read_until(&brokers, "vigil.telemetry", Duration::from_secs(120), |r| {
        distinct.update(r) >= expected.len()
    })
    .await?;
    let (seen, _) = check_order(&records);
    let missing: Vec<_> = expected.difference(&seen).take(10).collect();
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");
    println!(
        "kill -9: {} records for {} distinct; {} duplicates",
        records.len(),
        seen.len(),
        records.len() - seen.len()
    );
    Ok(())
}

// Mosquitto 2.0.11 does not hold to the receive maximum once PUBACKs
// resume after the outage (it sends thousands at once), so this also covers
// ingest pausing its reads, with PUBACKs still leaving, until it has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_outage_applies_backpressure_and_recovers() -> anyhow::Result<()> {
    let (mqtt, mut kafka, ingest, brokers) =
        stack(TansuStorage::Sqlite, &["--max-in-flight", "500"]).await?;

    // First half with Kafka up.
    publish_all(
        mqtt.port(),
        "publisher",
        fleet(50, 20),
        Duration::from_secs(60),
    )
    .await?;
    eventually("first half produced", Duration::from_secs(60), || async {
        ingest.metric("vigil_ingest_messages_produced_total").await >= 1_000.0
    })
    .await?;

    kafka.stop();
    let outage = std::time::Instant::now();
    let rss_before = vigil_testkit::rss_kib(ingest.pid())?;
    // Second half while Kafka is down: the broker queues what ingest does
    // not take.
    let second: Vec<_> = (21..=120)
        .flat_map(|seq| (0..50).map(move |d| telemetry(&format!("dev-{d:04}"), seq)))
        .collect();
    publish_all(mqtt.port(), "publisher", second, Duration::from_secs(60)).await?;
    eventually("in-flight window full", Duration::from_secs(30), || async {
        ingest.metric("vigil_ingest_in_flight").await >= 500.0
    })
    .await?;
    let mut rss_max = rss_before;
    while outage.elapsed() < Duration::from_secs(10) {
        rss_max = rss_max.max(vigil_testkit::rss_kib(ingest.pid())?);
        assert!(
            ingest.metric("vigil_ingest_in_flight").await <= 500.0,
            "window exceeded"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let readyz = reqwest::get(format!("http://{}/readyz", ingest.http)).await?;
    assert_eq!(readyz.status(), 503, "not ready while kafka is down");
    kafka.restart()?;
    let mut distinct = Distinct::default();
    let records = read_until(&brokers, "vigil.telemetry", Duration::from_secs(120), |r| {
        distinct.update(r) >= 6_000
    })
    .await
    .map_err(|e| ingest.failure(e))?;
    let (seen, _) = check_order(&records);
    assert_eq!(seen.len(), 6_000, "nothing lost across the outage");
    let growth_kib = rss_max.saturating_sub(rss_before);
    let pauses = ingest.metric("vigil_ingest_mqtt_read_pauses_total").await;
    println!(
        "outage: rss before {rss_before} KiB, max {rss_max} KiB, growth {growth_kib} KiB; \
         {pauses} read pauses"
    );
    assert!(
        growth_kib < 32 * 1024,
        "memory grew by {growth_kib} KiB during the outage"
    );
    ingest.wait_ready().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_goes_to_the_dlq_and_valid_traffic_flows() -> anyhow::Result<()> {
    let (mqtt, _kafka, ingest, brokers) = stack(TansuStorage::Memory, &[]).await?;

    let topic = |d: &str| format!("vigil/devices/{d}/telemetry");
    let ts = common::now_ms();
    let bad: Vec<(String, Vec<u8>, &str)> = vec![
        (topic("bad-json"), b"{\"schema\":1,\"device_id\":".to_vec(), "malformed_json"),
        (
            topic("bad-schema"),
            format!(r#"{{"schema":7,"device_id":"bad-schema","seq":1,"ts":{ts},"metrics":{{"x":1}}}}"#).into_bytes(),
            "unknown_schema",
        ),
        (
            topic("victim"),
            format!(r#"{{"schema":1,"device_id":"spoofer","seq":1,"ts":{ts},"metrics":{{"x":1}}}}"#).into_bytes(),
            "device_mismatch",
        ),
        (
            topic("bad-nan"),
            format!(r#"{{"schema":1,"device_id":"bad-nan","seq":1,"ts":{ts},"metrics":{{"x":NaN}}}}"#).into_bytes(),
            "non_finite_metric",
        ),
        (
            topic("bad-inf"),
            format!(r#"{{"schema":1,"device_id":"bad-inf","seq":1,"ts":{ts},"metrics":{{"x":1e400}}}}"#).into_bytes(),
            "non_finite_metric",
        ),
        (
            topic("bad-big"),
            format!(
                r#"{{"schema":1,"device_id":"bad-big","seq":1,"ts":{ts},"metrics":{{"x":1}},"pad":"{}"}}"#,
                "x".repeat(70 * 1024)
            )
            .into_bytes(),
            "payload_too_large",
        ),
        // Poison that once stopped the audit sink (issue 17): numbers the
        // stores cannot hold, and event times from a device with no clock.
        (
            topic("seq-2p63"),
            format!(r#"{{"schema":1,"device_id":"seq-2p63","seq":9223372036854775808,"ts":{ts},"metrics":{{"x":1}}}}"#).into_bytes(),
            "out_of_range",
        ),
        (
            topic("seq-max"),
            format!(r#"{{"schema":1,"device_id":"seq-max","seq":18446744073709551615,"ts":{ts},"metrics":{{"x":1}}}}"#).into_bytes(),
            "out_of_range",
        ),
        (
            topic("seq-neg"),
            format!(r#"{{"schema":1,"device_id":"seq-neg","seq":-1,"ts":{ts},"metrics":{{"x":1}}}}"#).into_bytes(),
            "invalid_shape",
        ),
        (
            topic("ts-zero"),
            br#"{"schema":1,"device_id":"ts-zero","seq":1,"ts":0,"metrics":{"x":1}}"#.to_vec(),
            "timestamp_too_old",
        ),
    ];
    let mut messages = Vec::new();
    for seq in 1..=50 {
        messages.push(telemetry("good-1", seq));
        if let Some((t, p, _)) = bad.get(seq as usize - 1) {
            messages.push((t.clone(), p.clone()));
        }
        messages.push(telemetry("good-2", seq));
    }
    publish_all(mqtt.port(), "publisher", messages, Duration::from_secs(60)).await?;

    let valid = read_until(&brokers, "vigil.telemetry", Duration::from_secs(60), |r| {
        r.len() >= 100
    })
    .await?;
    let (seen, out_of_order) = check_order(&valid);
    assert_eq!(seen.len(), 100, "every valid message arrived");
    assert!(out_of_order.is_empty(), "{out_of_order:?}");

    let dlq = read_until(&brokers, "vigil.dlq", Duration::from_secs(60), |r| {
        r.len() >= bad.len()
    })
    .await?;
    let dlq: Vec<DlqRecord> = dlq
        .iter()
        .map(|r| DlqRecord::decode(&r.payload))
        .collect::<Result<_, _>>()?;
    for (topic, payload, reason) in &bad {
        let source = format!("mqtt:{topic}");
        let record = dlq
            .iter()
            .find(|d| d.source == source)
            .unwrap_or_else(|| panic!("no dlq record for {topic}"));
        assert_eq!(record.reason, *reason, "{}", record.detail);
        assert!(!record.detail.is_empty());
        assert_eq!(record.service, "ingest");
        if payload.len() < 200_000 {
            assert_eq!(&record.original_bytes()?, payload, "original bytes kept");
        }
    }
    let nan = dlq
        .iter()
        .find(|d| d.source.contains("bad-nan"))
        .map(|d| d.detail.clone());
    assert!(
        nan.unwrap_or_default().contains("\"x\""),
        "non-finite detail names the metric"
    );
    assert_eq!(
        ingest
            .metric("vigil_ingest_messages_rejected_total{reason=\"device_mismatch\"}")
            .await,
        1.0
    );
    Ok(())
}
