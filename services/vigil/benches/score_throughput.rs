//! Sustained scorer throughput: a backlog in `vigil.telemetry` → release
//! `vigil score` → `vigil.verdicts`, with a real tansu broker on loopback.
//!
//! `cargo bench -p vigil --bench score_throughput` (env:
//! VIGIL_BENCH_RECORDS, default 300000; VIGIL_BENCH_DEVICES, default 1000).
//! The backlog (simulated fleet, 6 metrics, a model fitted on it) is
//! written first; then the scorer starts and the clock runs from its first
//! scored record to the last confirmed verdict. Prints the rate, the CPU
//! time of the scorer and the broker, and the scorer's run-queue wait (time
//! its threads were runnable but not running: CPU taken by other processes
//! on a shared machine), which together say what bounds the figure.
//!
//! Before the scorer, a plain rdkafka passthrough (one consumer, one
//! producer with the scorer's producer settings, no decoding or scoring)
//! copies the same backlog to another topic: the ceiling this broker and
//! client library allow on this machine (VIGIL_BENCH_PASSTHROUGH=0 skips
//! it). Extra scorer flags: VIGIL_BENCH_SCORER_ARGS (space-separated).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// CPU time and run-queue wait of every live thread of `pid`, seconds
/// (`/proc/PID/task/*/schedstat`: on-CPU ns, waiting-to-run ns, slices).
fn sched_seconds(pid: u32) -> (f64, f64) {
    let mut cpu = 0u64;
    let mut wait = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            cpu += fields.next().unwrap_or(0);
            wait += fields.next().unwrap_or(0);
        }
    }
    (cpu as f64 / 1e9, wait as f64 / 1e9)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts confirmed deliveries of the passthrough producer.
struct Counting(Arc<AtomicUsize>);

impl rdkafka::ClientContext for Counting {}

impl rdkafka::producer::ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Copies `total` records of `from` to `to` with a plain consumer and an
/// idempotent `acks=all` lz4 producer (the scorer's producer settings);
/// returns the seconds from the first record read to the last delivery
/// confirmed, and the CPU and run-queue seconds of this process meanwhile
/// (read before the clients' threads end). Blocking.
fn passthrough(
    brokers: &str,
    from: &str,
    to: &str,
    total: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let (cpu0, wait0) = sched_seconds(std::process::id());
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Message as _;
    use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-passthrough")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[from])?;
    let delivered = Arc::new(AtomicUsize::new(0));
    let producer: ThreadedProducer<Counting> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000")
        .create_with_context(Counting(delivered.clone()))?;
    let mut read = 0usize;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while read < total {
        anyhow::ensure!(Instant::now() < deadline, "passthrough read only {read}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                let mut record = BaseRecord::to(to)
                    .payload(m.payload().unwrap_or_default())
                    .key(m.key().unwrap_or_default());
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((e, back)) => {
                            anyhow::ensure!(Instant::now() < deadline, "passthrough produce: {e}");
                            record = back;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                read += 1;
            }
            Some(Err(e)) => anyhow::bail!("passthrough consumer: {e}"),
            None => {}
        }
    }
    producer.flush(Duration::from_secs(60))?;
    anyhow::ensure!(
        delivered.load(Ordering::Relaxed) >= total,
        "passthrough confirmed only {} of {total}",
        delivered.load(Ordering::Relaxed)
    );
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let (cpu1, wait1) = sched_seconds(std::process::id());
    Ok((secs, cpu1 - cpu0, wait1 - wait0))
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
    let records: Vec<Telemetry> = fleet.generate(ticks).into_telemetry();
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
    println!("load average before: {}", load_average());
    if env_or("VIGIL_BENCH_PASSTHROUGH", 1) != 0 {
        // Same shape as the scorer's verdict topic (tansu does not create
        // topics on produce).
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()?;
        for r in admin
            .create_topics(
                &[NewTopic::new(
                    "bench.passthrough",
                    6,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new(),
            )
            .await?
        {
            r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
        }
        let tansu0 = tansu_pid.map_or(0.0, cpu_seconds);
        let b = brokers.clone();
        let (secs, cpu, wait) = tokio::task::spawn_blocking(move || {
            passthrough(&b, "vigil.telemetry", "bench.passthrough", sent)
        })
        .await??;
        let tansu_cpu = tansu_pid.map_or(0.0, cpu_seconds) - tansu0;
        println!("passthrough ceiling (plain rdkafka consume → produce, no scoring):");
        println!(
            "  {secs:.2}s = {:.0} records/s; cpu seconds: client {:.1} ({:.1} µs/record), tansu {tansu_cpu:.1} ({:.1} µs/record); client run-queue wait {:.1}s",
            sent as f64 / secs,
            cpu,
            cpu * 1e6 / sent as f64,
            tansu_cpu * 1e6 / sent as f64,
            wait
        );
    }
    let extra = std::env::var("VIGIL_BENCH_SCORER_ARGS").unwrap_or_default();
    let tansu0 = tansu_pid.map_or(0.0, cpu_seconds);
    let mut scorer = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .args(extra.split_whitespace())
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
    let (_, scorer_wait) = sched_seconds(scorer.id());
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
    println!(
        "  per record: scorer {:.1} µs cpu, tansu {:.1} µs cpu; scorer run-queue wait {scorer_wait:.1}s; load average after: {}",
        scorer_cpu * 1e6 / sent as f64,
        tansu_cpu * 1e6 / sent as f64,
        load_average()
    );
    let _ = scorer.kill();
    let _ = scorer.wait();
    Ok(())
}
