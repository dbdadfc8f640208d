//! Sustained scorer throughput: a backlog in `vigil.telemetry` → release
//! `vigil score` → `vigil.verdicts`, with a real tansu broker on loopback.
//!
//! `cargo bench -p vigil --bench score_throughput` (env:
//! VIGIL_BENCH_RECORDS, default 300000; VIGIL_BENCH_DEVICES, default 1000).
//! The backlog (simulated fleet, 6 metrics, a model fitted on it) is
//! written first; then the scorer starts and the clock runs from its first
//! scored record to the last confirmed verdict. Prints the rate and the CPU
//! time of the scorer and the broker, which says what bounds the figure.

use std::time::{Duration, Instant};

use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_schemas::{Message, Telemetry};
use vigil_testkit::clients::scrape;
use vigil_testkit::{cpu_seconds, env_or, Tansu};

async fn produce(brokers: &str, topic: &str, records: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "2000000")
        .create()?;
    let mut pending = futures::stream::FuturesUnordered::new();
    for (key, payload) in records {
        let d = producer
            .send_result(FutureRecord::to(topic).key(key).payload(payload))
            .map_err(|(e, _)| e)?;
        pending.push(d);
    }
    while let Some(r) = pending.next().await {
        r?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let total = env_or("VIGIL_BENCH_RECORDS", 300_000);
    let devices = env_or("VIGIL_BENCH_DEVICES", 1_000).max(1);
    let ticks = (total / devices).max(1) as u64;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let dir = tempfile::tempdir()?;
    let keys = vigil_model::keygen(dir.path())?;

    let mut fleet = Fleet::new(FleetConfig {
        start_ms: vigil_service::now_ms() - (ticks + 10) * 1_000,
        ..FleetConfig::clean(devices, 11)
    })?;
    let records: Vec<Telemetry> = fleet
        .generate(ticks)
        .records
        .into_iter()
        .map(|r| r.telemetry)
        .collect();
    let sent = records.len();
    let trained = vigil_training::fit(
        &records,
        &vigil_training::TrainConfig {
            created_ts: vigil_service::now_ms(),
            ..Default::default()
        },
        |_| {},
    )?;
    let release = vigil_model::sign(
        &trained.payload,
        &vigil_model::load_signing_key(&keys.signing_key)?,
    )?;
    let keyed: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|t| Ok::<_, anyhow::Error>((t.device_id.clone(), t.encode()?)))
        .collect::<Result<_, _>>()?;
    let payload_bytes = keyed.first().map_or(0, |k| k.1.len());

    // The scorer creates the topics; start it once to do so, then load.
    let http = format!("127.0.0.1:{}", vigil_testkit::free_port()?);
    let verify = keys.verify_key.display().to_string();
    let args = [
        "score",
        "--kafka-brokers",
        &brokers,
        "--verify-key",
        &verify,
        "--http-addr",
        &http,
        "--log",
        "warn",
    ];
    // A group of its own, so the measured scorer does not wait for this
    // one's session to expire.
    let mut scorer = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .args(["--group", "bench-setup"])
        .spawn()?;
    let ready = format!("http://{http}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200) {
        anyhow::ensure!(Instant::now() < deadline, "scorer not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = scorer.kill();
    let _ = scorer.wait();
    produce(
        &brokers,
        "vigil.models",
        &[("default".into(), release.encode()?)],
    )
    .await?;
    let loaded = Instant::now();
    produce(&brokers, "vigil.telemetry", &keyed).await?;
    println!(
        "backlog: {sent} records of {payload_bytes} bytes from {devices} devices written in {:.1}s",
        loaded.elapsed().as_secs_f64()
    );

    let tansu_pid = kafka.pid();
    let tansu0 = tansu_pid.map_or(0.0, cpu_seconds);
    let mut scorer = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .spawn()?;
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    loop {
        let scored = scrape(&http, "vigil_score_records_scored_total")
            .await
            .ok()
            .flatten()
            .unwrap_or(0.0);
        let produced = scrape(&http, "vigil_score_verdicts_produced_total")
            .await
            .ok()
            .flatten()
            .unwrap_or(0.0);
        if scored > 0.0 && first.is_none() {
            first = Some(Instant::now());
        }
        if produced as usize >= sent {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "only {produced} of {sent} verdicts confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = first.unwrap_or(started);
    let elapsed = first.elapsed();
    let scorer_cpu = cpu_seconds(scorer.id());
    let tansu_cpu = tansu_pid.map_or(0.0, cpu_seconds) - tansu0;
    println!("scorer throughput: {sent} records, first scored → last verdict confirmed");
    println!(
        "  {:.2}s = {:.0} records/s sustained (start-up incl. model log read: {:.2}s)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        (first - started).as_secs_f64()
    );
    println!(
        "  cpu seconds: scorer {scorer_cpu:.1} (incl. start-up), tansu {tansu_cpu:.1} (wall {:.1})",
        started.elapsed().as_secs_f64()
    );
    let _ = scorer.kill();
    let _ = scorer.wait();
    Ok(())
}
