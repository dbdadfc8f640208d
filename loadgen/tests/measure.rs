//! `vigil-loadgen run` against real Mosquitto and tansu, with a stand-in
//! scorer written here: it subscribes to the telemetry the generator
//! publishes (checking receipt) and writes a verdict for each record to
//! `vigil.verdicts` in Kafka — or to the edge verdict topic over MQTT —
//! dropping and duplicating chosen records, so the report's loss and
//! duplicate accounting can be checked exactly. (The full pipeline with
//! `vigil ingest` and `vigil score` is in the `vigil` crate's tests.)

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, Report, RunArgs};
use vigil_schemas::{Message, ScoredAt, Telemetry, Verdict};
use vigil_service::config::KafkaArgs;
use vigil_service::kafka::{ensure_topics, TopicSpec};
use vigil_testkit::{Mosquitto, Tansu};

/// Records the stand-in scorer never verdicts: device 3, seqs 5..=9 (in
/// the quiet start, so certainly sent).
fn dropped(t: &Telemetry) -> bool {
    t.device_id == "dev-00003" && (5..=9).contains(&t.seq)
}

/// Records it verdicts twice: device 1, seqs 1..=3.
fn doubled(t: &Telemetry) -> bool {
    t.device_id == "dev-00001" && (1..=3).contains(&t.seq)
}

/// A verdict that flags every 40th record.
fn verdict_for(t: &Telemetry, scored_at: ScoredAt) -> Verdict {
    let anomaly = t.seq % 40 == 0;
    Verdict {
        alarm: None,
        schema: 1,
        device_id: t.device_id.clone(),
        seq: t.seq,
        event_ts: t.ts,
        ingest_ts: Some(vigil_service::now_ms()),
        scored_ts: vigil_service::now_ms(),
        model: "default".into(),
        model_version: Some(1),
        score: if anomaly { 0.9 } else { 0.1 },
        threshold: 0.5,
        anomaly,
        contributions: Vec::new(),
        scored_at,
        unscored: None,
    }
}

/// Where the stand-in scorer writes its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Kafka,
    EdgeMqtt,
}

/// The stand-in scorer: subscribed (SUBACK received) when this returns;
/// the task ends when `stop` fires and returns every (device, seq) it saw.
async fn stand_in_scorer(
    mqtt_port: u16,
    brokers: String,
    sink: Sink,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<HashSet<(String, u64)>>>> {
    let mut options = MqttOptions::new("stand-in-scorer", "127.0.0.1", mqtt_port);
    options.set_outgoing_inflight_upper_limit(1000);
    let (client, mut events) = AsyncClient::new(options, 4096);
    client
        .subscribe("vigil/devices/+/telemetry", QoS::AtLeastOnce)
        .await?;
    loop {
        match events.poll().await? {
            Event::Incoming(Packet::SubAck(_)) => break,
            _ => continue,
        }
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .context("creating the verdict producer")?;
    Ok(tokio::spawn(async move {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let mut deliveries = Vec::new();
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                event = events.poll() => event?,
            };
            let Event::Incoming(Packet::Publish(p)) = event else {
                continue;
            };
            let t = Telemetry::decode(&p.payload)?;
            seen.lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .insert((t.device_id.clone(), t.seq));
            if dropped(&t) {
                continue;
            }
            let copies = if doubled(&t) { 2 } else { 1 };
            for _ in 0..copies {
                match sink {
                    Sink::Kafka => {
                        let payload = verdict_for(&t, ScoredAt::Cloud).encode()?;
                        let record = FutureRecord::to("vigil.verdicts")
                            .key(&t.device_id)
                            .payload(&payload);
                        match producer.send_result(record) {
                            Ok(delivery) => deliveries.push(delivery),
                            Err((e, _)) => anyhow::bail!("producing a verdict: {e}"),
                        }
                    }
                    Sink::EdgeMqtt => {
                        let payload = verdict_for(&t, ScoredAt::Edge).encode()?;
                        client
                            .try_publish(
                                format!("vigil/devices/{}/verdicts", t.device_id),
                                QoS::AtLeastOnce,
                                false,
                                payload,
                            )
                            .context("publishing an edge verdict")?;
                    }
                }
            }
        }
        for d in deliveries {
            d.await
                .map_err(|_| anyhow::anyhow!("delivery cancelled"))?
                .map_err(|(e, _)| anyhow::anyhow!("verdict not delivered: {e}"))?;
        }
        let seen = std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        Ok(seen)
    }))
}

fn kafka_args(brokers: &str) -> KafkaArgs {
    KafkaArgs {
        kafka_brokers: brokers.to_owned(),
        kafka_topic_prefix: "vigil.".into(),
        kafka_options: Vec::new(),
        kafka_create_topics: true,
        kafka_partitions: 3,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: None,
    }
}

/// 50 devices, 200 records each at 2,500 msg/s, seven anomaly kinds
/// injected often enough that every kind occurs.
fn loadgen_args(mqtt_url: &str, brokers: &str, dir: &Path, extra: &[&str]) -> RunArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    let report = dir.join("report.json");
    let truth = dir.join("truth.jsonl");
    let plots = dir.join("plots");
    let mut argv: Vec<&str> = vec![
        "run",
        "--mqtt-url",
        mqtt_url,
        "--kafka-brokers",
        brokers,
        "--devices",
        "50",
        "--rate",
        "2500",
        "--count",
        "10000",
        "--connections",
        "3",
        "--day-secs",
        "4",
        "--anomaly-rate",
        "20",
        "--quiet-start",
        "10",
        // The deliberately lost records keep the run waiting for the whole
        // drain; long enough for a slow machine to deliver everything else.
        "--drain-timeout",
        "15",
        "--progress",
        "none",
    ];
    let paths = [
        report.to_str().unwrap_or_default().to_owned(),
        truth.to_str().unwrap_or_default().to_owned(),
        plots.to_str().unwrap_or_default().to_owned(),
    ];
    argv.extend([
        "--report", &paths[0], "--truth", &paths[1], "--plots", &paths[2],
    ]);
    argv.extend_from_slice(extra);
    Cli::parse_from(argv).run
}

const KINDS: [&str; 7] = [
    "spike",
    "level_shift",
    "drift",
    "stuck_at",
    "noise_burst",
    "broken_correlation",
    "missing",
];

/// What both variants assert about one run.
fn check(report: &Report, seen: &HashSet<(String, u64)>, dir: &Path) -> anyhow::Result<()> {
    println!("{}", report.summary());
    // Every message reached the broker and the subscriber.
    assert!(report.sent > 9_000, "sent {}", report.sent);
    assert_eq!(
        report.sent + report.silent_slots,
        10_000,
        "every slot sent or left empty by a silent device"
    );
    assert_eq!(report.acked, report.sent, "every publish acknowledged");
    assert_eq!(
        seen.len() as u64,
        report.sent,
        "subscriber received every record"
    );
    // Loss and duplicates exactly as the stand-in scorer made them.
    assert_eq!(report.lost, Some(5), "lost: {:?}", report.lost_examples);
    let lost: Vec<(String, u64)> = report
        .lost_examples
        .iter()
        .map(|l| (l.device_id.clone(), l.seq))
        .collect();
    let expected: Vec<(String, u64)> = (5..=9).map(|s| ("dev-00003".to_owned(), s)).collect();
    assert_eq!(lost, expected);
    assert_eq!(report.duplicates, Some(3));
    assert_eq!(report.unexpected, Some(0));
    assert_eq!(report.verdicted, Some(report.sent - 5));
    let latency = report.latency_ms.context("latency measured")?;
    assert_eq!(latency.count, report.sent - 5);
    assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    // Detection: every injected kind is reported, and the flags the
    // stand-in made are counted.
    let detection = report.detection.as_ref().context("detection")?;
    for kind in KINDS {
        let k = detection
            .by_kind
            .get(kind)
            .with_context(|| format!("{kind} missing from {:?}", detection.by_kind.keys()))?;
        assert!(k.episodes > 0, "{kind}");
    }
    assert!(detection.precision.is_some() && detection.recall.is_some());
    assert!(detection.alarm_events + detection.false_alarm_events > 0);
    // The files: the report reads back, the truth has one line per episode.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json"))?)?;
    assert_eq!(json["schema"], 1);
    assert_eq!(json["lost"], 5);
    let truth = std::fs::read_to_string(dir.join("truth.jsonl"))?;
    assert!(truth.lines().count() as u64 >= detection.episodes);
    assert!(dir.join("plots/latency.svg").is_file());
    assert!(dir.join("plots/scores.svg").is_file());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_verdicts_are_accounted_by_device_and_seq() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    ensure_topics(
        &kafka_args(&brokers),
        &[TopicSpec::delete("vigil.verdicts")],
    )
    .await?;
    // A verdict from "an earlier run" already in the topic is not read.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()?;
    let old = Telemetry::new("dev-00000", 1, 1_000, Default::default());
    let payload = verdict_for(&old, ScoredAt::Cloud).encode()?;
    producer
        .send(
            FutureRecord::to("vigil.verdicts")
                .key("dev-00000")
                .payload(&payload),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing the old verdict: {e}"))?;

    let stop = CancellationToken::new();
    let scorer = stand_in_scorer(mqtt.port(), brokers.clone(), Sink::Kafka, stop.clone()).await?;
    let dir = tempfile::tempdir()?;
    let args = loadgen_args(&mqtt.url(), &brokers, dir.path(), &[]);
    let report = run(args.validate()?, CancellationToken::new()).await?;
    stop.cancel();
    let seen = scorer.await??;
    check(&report, &seen, dir.path())?;
    let counts = report.verdicts.as_ref().context("verdict counts")?;
    assert_eq!(counts.stale, 0, "read from the run's start only");
    assert_eq!(counts.received, report.sent - 5 + 3);
    assert_eq!(counts.edge, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_verdicts_over_mqtt_are_accounted_too() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let stop = CancellationToken::new();
    let scorer =
        stand_in_scorer(mqtt.port(), brokers.clone(), Sink::EdgeMqtt, stop.clone()).await?;
    let dir = tempfile::tempdir()?;
    let args = loadgen_args(&mqtt.url(), &brokers, dir.path(), &["--verdicts", "mqtt"]);
    let report = run(args.validate()?, CancellationToken::new()).await?;
    stop.cancel();
    let seen = scorer.await??;
    check(&report, &seen, dir.path())?;
    let counts = report.verdicts.as_ref().context("verdict counts")?;
    assert_eq!(counts.edge, report.sent - 5, "scored on the device");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_only_needs_no_kafka_and_reports_no_measurement() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    // Kafka at a port nobody listens on: publish-only never connects.
    let args = loadgen_args(
        &mqtt.url(),
        "127.0.0.1:1",
        dir.path(),
        &["--publish-only", "--qos", "0"],
    );
    let report = run(args.validate()?, CancellationToken::new()).await?;
    assert_eq!(report.acked, report.sent);
    assert!(report.sent > 9_000);
    assert_eq!(report.verdicted, None);
    assert!(report.detection.is_none() && report.latency_ms.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_a_clear_error() -> anyhow::Result<()> {
    let port = vigil_testkit::free_port()?;
    let dir = tempfile::tempdir()?;
    let url = format!("mqtt://127.0.0.1:{port}");
    let args = loadgen_args(&url, "127.0.0.1:1", dir.path(), &["--publish-only"]);
    let err = run(args.validate()?, CancellationToken::new())
        .await
        .expect_err("nothing listens there");
    let text = format!("{err:#}");
    assert!(text.contains(&url), "{text}");
    Ok(())
}
