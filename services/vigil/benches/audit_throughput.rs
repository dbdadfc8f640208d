//! Sustained audit sink throughput: verdicts on Kafka (tansu, loopback) →
//! release `vigil audit` → embedded SQLite store, offsets committed.
//!
//! `cargo bench -p vigil --bench audit_throughput` (env:
//! VIGIL_BENCH_VERDICTS, default 1000000; VIGIL_BENCH_BATCH, default 20000, the sink's default).
//! The verdicts are produced first; the figure is the sink's rate from its
//! first consumed record to the last row written, plus the CPU time each
//! process used, which says what bounds it.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use vigil_schemas::{Message, ScoredAt, Verdict};
use vigil_testkit::clients::scrape;
use vigil_testkit::Tansu;

const T0: u64 = 1_795_392_000_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of `pid` from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn verdict(i: u64) -> Verdict {
    let device = i % 1000;
    let seq = i / 1000;
    Verdict {
        alarm: None,
        schema: 1,
        device_id: format!("pump-{device:05}"),
        seq,
        event_ts: T0 + seq * 1000 + device,
        ingest_ts: Some(T0 + seq * 1000 + device + 3),
        scored_ts: T0 + seq * 1000 + device + 5,
        model: "default".into(),
        model_version: Some(1),
        score: (i % 1000) as f64 / 1000.0,
        threshold: 0.8,
        anomaly: false,
        contributions: Vec::new(),
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let total = env_or("VIGIL_BENCH_VERDICTS", 1_000_000) as u64;
    let batch = env_or("VIGIL_BENCH_BATCH", 20_000);
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    let admin: rdkafka::admin::AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()?;
    admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                "vigil.verdicts",
                6,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let mut deliveries = FuturesUnordered::new();
    for i in 0..total {
        let v = verdict(i);
        let payload = v.encode()?;
        let producer = producer.clone();
        deliveries.push(async move {
            producer
                .send(
                    FutureRecord::to("vigil.verdicts")
                        .key(&v.device_id)
                        .payload(&payload),
                    Timeout::After(Duration::from_secs(60)),
                )
                .await
        });
        if deliveries.len() >= 50_000 {
            if let Some(r) = deliveries.next().await {
                r.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
            }
        }
    }
    while let Some(r) = deliveries.next().await {
        r.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    }
    println!(
        "produced {total} verdicts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("audit.db").display());
    let http = format!("127.0.0.1:{}", vigil_testkit::free_port()?);
    let tansu_cpu_before = kafka.pid().map_or(0.0, cpu_seconds);
    let mut audit = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["audit", "--kafka-brokers", &brokers, "--store", &store])
        .args([
            "--http-addr",
            &http,
            "--batch-max-records",
            &batch.to_string(),
        ])
        .env("VIGIL_LOG", "warn")
        .spawn()?;
    let written = "vigil_audit_rows_written_total{kind=\"verdict\"}";
    let consumed = "vigil_audit_records_consumed_total{topic=\"verdicts\"}";
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first = None;
    loop {
        anyhow::ensure!(Instant::now() < deadline, "audit did not finish in time");
        if first.is_none() && scrape(&http, consumed).await.ok().flatten().unwrap_or(0.0) > 0.0 {
            first = Some(Instant::now());
        }
        if scrape(&http, written).await.ok().flatten().unwrap_or(0.0) >= total as f64 {
            break;
        }
        // The metric is the only completion signal; poll it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = first.map_or(Duration::ZERO, |t| t.elapsed());
    let audit_cpu = cpu_seconds(audit.id());
    let tansu_cpu = kafka.pid().map_or(0.0, cpu_seconds) - tansu_cpu_before;
    let batches = scrape(&http, "vigil_audit_batches_written_total")
        .await?
        .unwrap_or(0.0);
    let _ = audit.kill();
    let _ = audit.wait();
    println!(
        "audit sink: {total} verdicts Kafka → SQLite in {:.2} s: {:.0} verdicts/s ({batches} batches of up to {batch}); CPU s: audit {audit_cpu:.1}, tansu {tansu_cpu:.1}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
