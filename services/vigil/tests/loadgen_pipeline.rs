//! The whole cloud path under `vigil-loadgen run`: real Mosquitto and
//! tansu, `vigil ingest` and `vigil score` as child processes, the load
//! generator publishing a fleet with every anomaly kind and reading the
//! verdicts back. This is the short version of the acceptance run
//! (10,000 msg/s from 1,000 devices for 60 s).

mod common;

use clap::Parser;
use common::VigilProcess;
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, RunArgs};
use vigil_testkit::{Mosquitto, Tansu};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vigil score"]
async fn loadgen_through_ingest_and_score_loses_nothing() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let (url, brokers) = (mqtt.url(), kafka.brokers());
    let keys = tempfile::tempdir()?;
    let keys_dir = keys.path().to_str().unwrap_or_default().to_owned();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["models", "keygen", "--out", &keys_dir])
        .status()?;
    anyhow::ensure!(status.success(), "vigil models keygen failed");
    let verify_key = keys.path().join("verify.pub");
    let verify_key = verify_key.to_str().unwrap_or_default();

    let ingest = VigilProcess::start(&[
        "ingest",
        "--mqtt-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--mqtt-client-id",
        "ingest-under-test",
    ])
    .await?;
    ingest.wait_ready().await?;
    let score = VigilProcess::start(&[
        "score",
        "--kafka-brokers",
        &brokers,
        "--verify-key",
        verify_key,
    ])
    .await?;
    score.wait_ready().await?;

    let dir = tempfile::tempdir()?;
    let report_path = dir.path().join("report.json");
    let report_path = report_path.to_str().unwrap_or_default();
    let args = Cli::parse_from([
        "run",
        "--mqtt-url",
        &url,
        "--kafka-brokers",
        &brokers,
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
        report_path,
    ])
    .run;
    let report = run(args.validate()?, CancellationToken::new())
        .await
        .map_err(|e| score.failure(e))?;
    assert_eq!(report.acked, report.sent);
    assert_eq!(
        report.lost,
        Some(0),
        "lost: {:?}\n{}",
        report.lost_examples,
        report.summary()
    );
    let detection = report.detection.as_ref().map(|d| &d.by_kind);
    for kind in [
        "spike",
        "level_shift",
        "drift",
        "stuck_at",
        "noise_burst",
        "broken_correlation",
        "missing",
    ] {
        assert!(
            detection.is_some_and(|k| k.contains_key(kind)),
            "{kind} not reported:\n{}",
            report.summary()
        );
    }
    let latency = report.latency_ms.as_ref().map(|l| l.count);
    assert_eq!(latency, report.verdicted);
    Ok(())
}
