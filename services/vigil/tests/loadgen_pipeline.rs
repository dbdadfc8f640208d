//! The cloud path under `vigil-loadgen run`: real Mosquitto and tansu,
//! `vigil ingest` (and `vigil score`) as child processes, the load
//! generator publishing a fleet with every anomaly kind and reading the
//! verdicts back. The short version of the acceptance run (10,000
//! msg/s from 1,000 devices for 60 s).

mod common;

use std::time::Duration;

use clap::Parser;
use common::VigilProcess;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, Report, RunArgs};
use vigil_schemas::{Message, ScoredAt, Telemetry, Verdict};
use vigil_testkit::clients::eventually;
use vigil_testkit::{Mosquitto, Tansu};

const KINDS: [&str; 7] = [
    "spike",
    "level_shift",
    "drift",
    "stuck_at",
    "noise_burst",
    "broken_correlation",
    "missing",
];

/// Loss 0 and every injected kind in the detection breakdown (detection
/// counts from each device's first scored record, so only where a model
/// scored; with none, no episode counts).
fn assert_complete(report: &Report, scored: bool) {
    assert_eq!(report.acked, report.sent);
    assert_eq!(
        report.lost,
        Some(0),
        "lost: {:?}\n{}",
        report.lost_examples,
        report.summary()
    );
    let latency = report.latency_ms.as_ref().map(|l| l.count);
    assert_eq!(latency, report.verdicted);
    // Every verdict went through ingest, so every one has its hops; the
    // hops add up to the whole (one clock here, ms rounding aside).
    let hops = report.hops_ms.as_ref().expect("hops in the report");
    assert_eq!(Some(hops.event_to_ingest.count), report.verdicted);
    let whole = report.latency_ms.as_ref().map_or(0.0, |l| l.max);
    assert!(
        hops.event_to_ingest.p50 + hops.ingest_to_scored.p50 + hops.scored_to_read.p50
            <= whole + 3.0,
        "{}",
        report.summary()
    );
    let by_kind = report.detection.as_ref().map(|d| &d.by_kind);
    if !scored {
        assert_eq!(
            report.detection.as_ref().map(|d| d.episodes),
            Some(0),
            "nothing scored, nothing judged:\n{}",
            report.summary()
        );
        return;
    }
    for kind in KINDS {
        assert!(
            by_kind.is_some_and(|k| k.contains_key(kind)),
            "{kind} not reported:\n{}",
            report.summary()
        );
    }
}

/// A short fleet run with every anomaly kind: 100 devices at 1,000 msg/s
/// for 10 s (one record per device every 100 ms).
fn short_run(url: &str, brokers: &str, report: &str) -> RunArgs {
    Cli::parse_from([
        "run",
        "--mqtt-url",
        url,
        "--kafka-brokers",
        brokers,
        "--devices",
        "100",
        "--rate",
        "1000",
        "--duration",
        "10",
        "--day-secs",
        "20",
        "--anomaly-rate",
        "20",
        "--quiet-start",
        "10",
        "--drain-timeout",
        "60",
        "--progress",
        "none",
        "--report",
        report,
    ])
    .run
}

/// Stands in for `vigil score` until it exists: reads vigil.telemetry and
/// writes an (unscored) verdict per record to vigil.verdicts, keyed by
/// device, carrying ingest's timestamp.
async fn stand_in_scorer(brokers: String, stop: CancellationToken) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "stand-in-scorer")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()?;
    consumer.subscribe(&["vigil.telemetry"])?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "2")
        .create()?;
    let mut deliveries = Vec::new();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            m = consumer.recv() => m,
        };
        let Ok(m) = message else { continue };
        let t = Telemetry::decode(m.payload().unwrap_or_default())?;
        let v = Verdict {
            alarm: None,
            schema: 1,
            device_id: t.device_id.clone(),
            seq: t.seq,
            event_ts: t.ts,
            ingest_ts: t.ingest_ts,
            scored_ts: vigil_service::now_ms(),
            model: "default".into(),
            model_version: None,
            score: 0.0,
            threshold: 0.0,
            anomaly: false,
            contributions: Vec::new(),
            scored_at: ScoredAt::Cloud,
            unscored: Some(vigil_schemas::UnscoredReason::NoModel),
        };
        let payload = v.encode()?;
        let record = FutureRecord::to("vigil.verdicts")
            .key(&t.device_id)
            .payload(&payload);
        match producer.send_result(record) {
            Ok(d) => deliveries.push(d),
            Err((e, _)) => anyhow::bail!("producing a verdict: {e}"),
        }
    }
    for d in deliveries {
        d.await
            .map_err(|_| anyhow::anyhow!("delivery cancelled"))?
            .map_err(|(e, _)| anyhow::anyhow!("verdict not delivered: {e}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_through_ingest_loses_nothing() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let (url, brokers) = (mqtt.url(), kafka.brokers());
    let ingest = VigilProcess::ingest(&url, &brokers, "ingest-under-test", &[]).await?;
    // What `vigil score` does at start-up: create its output topic.
    let kafka_args = vigil_service::config::KafkaArgs {
        kafka_brokers: brokers.clone(),
        kafka_topic_prefix: "vigil.".into(),
        kafka_options: Vec::new(),
        kafka_create_topics: true,
        kafka_partitions: 6,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: None,
    };
    vigil_service::kafka::ensure_topics(
        &kafka_args,
        &[vigil_service::kafka::TopicSpec::delete("vigil.verdicts")],
    )
    .await?;
    let stop = CancellationToken::new();
    let scorer = tokio::spawn(stand_in_scorer(brokers.clone(), stop.clone()));

    let dir = tempfile::tempdir()?;
    let report_path = dir.path().join("report.json");
    let args = short_run(&url, &brokers, report_path.to_str().unwrap_or_default());
    let report = run(args.validate()?, CancellationToken::new())
        .await
        .map_err(|e| ingest.failure(e))?;
    stop.cancel();
    scorer.await??;
    println!("{}", report.summary());
    assert_complete(&report, false);
    let counts = report.verdicts.as_ref().map(|v| v.unscored);
    assert_eq!(counts, report.verdicted, "the stand-in scores nothing");
    assert!(report.sent > 9_000);
    Ok(())
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

/// The acceptance path for real: ingest and score running, a model trained
/// by `vigil train` on a clean warm-up fleet, then the measured run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_through_ingest_and_score_loses_nothing_and_reports_every_kind(
) -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let (url, brokers) = (mqtt.url(), kafka.brokers());
    let keys = tempfile::tempdir()?;
    let generated = vigil_model::keygen(keys.path())?;
    let signing = generated.signing_key.display().to_string();
    let verify = generated.verify_key.display().to_string();

    let _ingest = VigilProcess::ingest(&url, &brokers, "ingest-under-test", &[]).await?;
    let score = VigilProcess::start(&[
        "score",
        "--kafka-brokers",
        &brokers,
        "--verify-key",
        &verify,
        "--kafka-option",
        "topic.metadata.refresh.interval.ms=1000",
    ])
    .await?;
    score.wait_ready().await?;

    // Warm-up: a clean fleet of other devices to train on.
    let warm = Cli::parse_from([
        "run",
        "--mqtt-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--device-prefix",
        "warm",
        "--devices",
        "50",
        "--rate",
        "1000",
        "--count",
        "8000",
        "--anomaly-rate",
        "0",
        "--drain-timeout",
        "60",
        "--progress",
        "none",
    ])
    .run;
    let warmed = run(warm.validate()?, CancellationToken::new())
        .await
        .map_err(|e| score.failure(e))?;
    assert_eq!(warmed.lost, Some(0), "{}", warmed.summary());
    let (code, _out, err) = common::run_vigil(
        &[
            "train",
            "--once",
            "--force",
            "--kafka-brokers",
            &brokers,
            "--signing-key",
            &signing,
            "--window",
            "1d",
            "--min-records",
            "2000",
            "--min-device-records",
            "50",
        ],
        None,
    )?;
    anyhow::ensure!(code == 0, "vigil train exited {code}:\n{err}");
    eventually(
        "the scorer runs the trained model",
        Duration::from_secs(60),
        || async { score.metric("vigil_score_model_version").await >= 1.0 },
    )
    .await
    .map_err(|e| score.failure(e))?;

    let dir = tempfile::tempdir()?;
    let report_path = dir.path().join("report.json");
    let args = short_run(&url, &brokers, report_path.to_str().unwrap_or_default());
    let report = run(args.validate()?, CancellationToken::new())
        .await
        .map_err(|e| score.failure(e))?;
    println!("{}", report.summary());
    assert_complete(&report, true);
    let unscored = report.verdicts.as_ref().map(|v| v.unscored);
    assert_eq!(unscored, Some(0), "every record scored by the model");
    let detection = report.detection.as_ref().map(|d| d.detected);
    assert!(detection > Some(0), "the model detects something");
    // The scorer measures what its devices' state holds (a device's state
    // is a few kilobytes; a hundred bytes is a floor no device goes under).
    eventually(
        "the scorer reports its devices' state bytes",
        Duration::from_secs(10),
        || async {
            let devices = score.metric("vigil_score_devices").await;
            devices > 0.0 && score.metric("vigil_score_device_state_bytes").await >= 100.0 * devices
        },
    )
    .await
    .map_err(|e| score.failure(e))?;
    Ok(())
}
