//! Resident memory of the agent in steady state: the release-built
//! `vigil-edge run` sampling 10 times a second (host sensors by default),
//! scoring with a trained release, publishing telemetry and verdicts to a
//! real Mosquitto, where a plain subscriber takes them. RSS (VmRSS from /proc) is read every second; the report
//! gives the median and maximum over the second half of the run (after
//! start-up) and the first reading.
//!
//! `cargo bench -p vigil-edge --bench edge_rss` (60 s; set
//! `VIGIL_RSS_SECS`, `VIGIL_RSS_SOURCE=sim|host`, or `VIGIL_EDGE_BIN` to
//! measure another build, e.g. the `edge` profile).

use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_model::sign;
use vigil_schemas::Message;
use vigil_testkit::{rss_kib, Mosquitto};
use vigil_training::{fit, TrainConfig};

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let secs: u64 = std::env::var("VIGIL_RSS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let source = std::env::var("VIGIL_RSS_SOURCE").unwrap_or_else(|_| "host".into());
    let bin =
        std::env::var("VIGIL_EDGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vigil-edge").into());

    let broker = Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    let keys = vigil_model::keygen(&dir.path().join("keys"))?;
    let signing = vigil_model::load_signing_key(&keys.signing_key)?;
    let train: Vec<_> = Fleet::new(FleetConfig {
        day_ms: 600_000,
        ..FleetConfig::clean(12, 1)
    })?
    .generate(500)
    .into_telemetry();
    let trained = fit(
        &train,
        &TrainConfig {
            min_records: 1_000,
            ..TrainConfig::default()
        },
        |_| {},
    )?;
    let release = sign(&trained.payload, &signing)?.encode()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, mut eventloop) =
            AsyncClient::new(MqttOptions::new("rss-pub", "127.0.0.1", broker.port()), 4);
        client
            .publish("vigil/models/default", QoS::AtLeastOnce, true, release)
            .await?;
        loop {
            if let Event::Incoming(Incoming::PubAck(_)) = eventloop.poll().await? {
                break;
            }
        }
        anyhow::Ok(())
    })?;

    // The cloud side's subscriber: the agent keeps a record until the
    // broker routed it (a PUBACK with "no matching subscribers" is not a
    // delivery), so without one the queue would only grow.
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
    let port = broker.port();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let (client, mut eventloop) =
                AsyncClient::new(MqttOptions::new("rss-cloud", "127.0.0.1", port), 64);
            client
                .subscribe("vigil/devices/+/+", QoS::AtLeastOnce)
                .await?;
            loop {
                if let Event::Incoming(Incoming::SubAck(_)) = eventloop.poll().await? {
                    let _ = subscribed_tx.send(());
                }
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        })
    });
    subscribed
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow::anyhow!("the cloud-side subscriber did not subscribe"))?;

    let mut child = Command::new(&bin)
        .args([
            "run",
            "--device-id",
            "rss-bench",
            "--interval-ms",
            "100",
            "--source",
            &source,
        ])
        .args(["--sim-day-ms", "600000", "--mqtt-url", &broker.url()])
        .arg("--verify-key")
        .arg(&keys.verify_key)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("VIGIL_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut readings = Vec::new();
    for _ in 0..secs {
        std::thread::sleep(Duration::from_secs(1));
        readings.push(rss_kib(pid)?);
    }
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/status.json"))?)?;
    let _ = child.kill();
    let _ = child.wait();

    let mut steady: Vec<u64> = readings[readings.len() / 2..].to_vec();
    steady.sort_unstable();
    let median = steady[steady.len() / 2];
    let max = steady.last().copied().unwrap_or_default();
    println!(
        "edge_rss: binary {bin}\n  source {source} at 10 samples/s for {secs} s: {} samples, {} acked uplink messages, backlog {}",
        status["samples"], status["uplink_acked"], status["status"]["buffered_records"]
    );
    println!(
        "  RSS first {} KiB; steady state (second half) median {} KiB ({:.1} MiB), max {} KiB",
        readings[0],
        median,
        median as f64 / 1024.0,
        max
    );
    Ok(())
}
