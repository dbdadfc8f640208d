//! Drives a simulated fleet through a running `vigil ingest` (used by
//! `scripts/run.sh`): publishes every device's telemetry over MQTT QoS 1,
//! then reads `vigil.telemetry` back and reports what arrived, in order.
//!
//! `cargo run --release -p vigil --example fleet -- --mqtt-port 1883 --kafka 127.0.0.1:9092`

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_schemas::{Message, Telemetry};
use vigil_testkit::clients::{publish_all, read_until};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = arg("--mqtt-port", "1883").parse()?;
    let kafka = arg("--kafka", "127.0.0.1:9092");
    let devices: usize = arg("--devices", "50").parse()?;
    let per_device: usize = arg("--per-device", "200").parse()?;

    let mut config = FleetConfig::clean(devices, 7);
    config.interval_ms = 1000;
    config.start_ms = vigil_service::now_ms() - (per_device as u64) * config.interval_ms;
    let records: Vec<Telemetry> = Fleet::new(config)?
        .take(devices * per_device)
        .map(|r| r.telemetry)
        .collect();
    let messages = records
        .iter()
        .map(|t| {
            Ok((
                format!("vigil/devices/{}/telemetry", t.device_id),
                t.encode()?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total = messages.len();
    println!("publishing {total} telemetry messages from {devices} simulated devices");
    let started = Instant::now();
    publish_all(port, "vigil-run-fleet", messages, Duration::from_secs(300)).await?;
    println!(
        "broker acknowledged all {total} in {:.2}s",
        started.elapsed().as_secs_f64()
    );

    let read = read_until(&kafka, "vigil.telemetry", Duration::from_secs(120), |r| {
        r.len() >= total
    })
    .await?;
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut out_of_order = 0;
    for r in &read {
        let t = Telemetry::decode(&r.payload)?;
        if last
            .insert(t.device_id.clone(), t.seq)
            .is_some_and(|prev| t.seq <= prev)
        {
            out_of_order += 1;
        }
        seen.insert((t.device_id, t.seq));
    }
    println!(
        "vigil.telemetry: {} records, {} distinct (device_id, seq), {} out of order, {:.2}s after the first publish",
        read.len(),
        seen.len(),
        out_of_order,
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = read.first() {
        println!("first record: {}", String::from_utf8_lossy(&first.payload));
    }
    anyhow::ensure!(
        seen.len() == total,
        "{} of {total} records arrived",
        seen.len()
    );
    Ok(())
}
