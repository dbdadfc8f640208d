//! Sustained ingest throughput: MQTT QoS 1 → `vigil ingest` → Kafka, with
//! real Mosquitto and tansu on loopback and the release `vigil` binary.
//!
//! `cargo bench -p vigil --bench ingest_throughput` (env: VIGIL_BENCH_MESSAGES,
//! default 200000; VIGIL_BENCH_PUBLISHERS, default 4). Prints the publish
//! rate, the end-to-end ingest rate (first produce → last produce), and the
//! CPU time each process used, which says what bounds the figure.

use std::time::{Duration, Instant};

use vigil_testkit::clients::{publish_all, scrape};
use vigil_testkit::{cpu_seconds, env_or, Mosquitto, Tansu};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let total = env_or("VIGIL_BENCH_MESSAGES", 200_000);
    let publishers = env_or("VIGIL_BENCH_PUBLISHERS", 4).max(1);
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let http_port = vigil_testkit::free_port()?;
    let http = format!("127.0.0.1:{http_port}");
    let mut ingest = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "ingest",
            "--mqtt-url",
            &mqtt.url(),
            "--kafka-brokers",
            &kafka.brokers(),
        ])
        .args([
            "--http-addr",
            &http,
            "--mqtt-client-id",
            "bench-ingest",
            "--log",
            "warn",
        ])
        .spawn()?;
    let ready = format!("http://{http}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200) {
        anyhow::ensure!(Instant::now() < deadline, "ingest not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 200-byte payloads: 6 metrics, like a real pump.
    let now = vigil_service::now_ms();
    let per = total / publishers;
    let batches: Vec<Vec<(String, Vec<u8>)>> = (0..publishers)
        .map(|p| {
            (0..per)
                .map(|i| {
                    let device = format!("dev-{:05}", p * 1000 + i % 1000);
                    let seq = (i / 1000) as u64 + 1;
                    let payload = format!(
                        r#"{{"schema":1,"device_id":"{device}","seq":{seq},"ts":{now},"metrics":{{"temperature_c":71.3,"vibration_rms":0.42,"current_a":3.1,"pressure_kpa":101.7,"rpm":1480.0,"humidity_pct":41.2}}}}"#
                    );
                    (format!("vigil/devices/{device}/telemetry"), payload.into_bytes())
                })
                .collect()
        })
        .collect();
    let payload_bytes = batches[0][0].1.len();
    let sent = per * publishers;

    let mosq_pid = mqtt.pid();
    let tansu_pid = kafka.pid();
    let cpu0 = (
        cpu_seconds(ingest.id()),
        mosq_pid.map_or(0.0, cpu_seconds),
        tansu_pid.map_or(0.0, cpu_seconds),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (p, batch) in batches.into_iter().enumerate() {
        let port = mqtt.port();
        tasks.push(tokio::spawn(async move {
            publish_all(
                port,
                &format!("bench-pub-{p}"),
                batch,
                Duration::from_secs(600),
            )
            .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let published_in = started.elapsed();
    loop {
        let produced = scrape(&http, "vigil_ingest_messages_produced_total")
            .await?
            .unwrap_or(0.0);
        if produced as usize >= sent {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {produced} of {sent} produced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu1 = (
        cpu_seconds(ingest.id()),
        mosq_pid.map_or(0.0, cpu_seconds),
        tansu_pid.map_or(0.0, cpu_seconds),
    );
    let deferred = scrape(&http, "vigil_ingest_mqtt_read_pauses_total")
        .await?
        .unwrap_or(0.0);
    println!(
        "ingest throughput: {sent} messages of {payload_bytes} bytes from {publishers} publishers"
    );
    println!(
        "  published (broker PUBACKed) in {:.2}s = {:.0} msg/s",
        published_in.as_secs_f64(),
        sent as f64 / published_in.as_secs_f64()
    );
    println!(
        "  all in vigil.telemetry after {:.2}s = {:.0} msg/s sustained",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  cpu seconds: ingest {:.1}, mosquitto {:.1}, tansu {:.1} (wall {:.1}); read pauses {deferred}",
        cpu1.0 - cpu0.0, cpu1.1 - cpu0.1, cpu1.2 - cpu0.2, elapsed.as_secs_f64()
    );
    let _ = ingest.kill();
    let _ = ingest.wait();
    Ok(())
}
