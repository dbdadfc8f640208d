//! How much a scorer keeps per device (issue 16's budget: state small
//! enough for 100,000 devices per scorer), with the novelty's seasonal
//! channel on the metrics that have a period, against the same release without periods.
//!
//! A release is trained on 200 devices × 2,000 ticks of the simulated
//! fleet under the demo's timing (500 ms, a 60-s day, anomalies at the
//! demo's rate), where the trainer finds a period (a minute) for
//! five of its six metrics. Then `DEVICES` devices of the same fleet are scored for
//! `TICKS` ticks each through `Model::score_record`, one state per
//! device as the scorer keeps it, and at each checkpoint the example
//! prints the mean and largest `DeviceState::bytes` (inline and heap;
//! the allocator's overhead and the scorer's map entry and device id are
//! not counted) and the same scaled to 100,000 devices. The run is
//! repeated with the release's periods removed (no seasonal channel:
//! the demo's own releases find none).
//!
//! `cargo run --release -p vigil-training --example state_size [DEVICES [TICKS]]`
//! (default 2,000 devices, 10,000 ticks).

use vigil_fleet_sim::{AnomalyConfig, Fleet, FleetConfig};
use vigil_model::{DeviceState, Model, Scratch};
use vigil_training::{fit, TrainConfig};

const TRAIN_DEVICES: usize = 200;
const TRAIN_TICKS: u64 = 2_000;
const SCALE: f64 = 100_000.0;

fn fleet(devices: usize) -> Result<Fleet, Box<dyn std::error::Error>> {
    Ok(Fleet::new(FleetConfig {
        devices,
        seed: 21,
        interval_ms: 500,
        day_ms: 60_000,
        anomalies: AnomalyConfig {
            rate_per_device_day: 0.2,
            ..AnomalyConfig::default()
        },
        ..FleetConfig::default()
    })?)
}

fn run(
    name: &str,
    model: &Model,
    devices: usize,
    ticks: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let metrics = model.payload().features.metrics.len();
    let mut states: Vec<DeviceState> = (0..devices)
        .map(|_| model.extractor().new_state())
        .collect();
    let mut scratch = Scratch::default();
    let mut sim = fleet(devices)?;
    let mut out = Vec::with_capacity(devices);
    let checkpoints = [1_000, 2_500, 5_000, 10_000, 20_000, 50_000];
    for tick in 1..=ticks {
        out.clear();
        sim.next_tick_into(&mut out);
        for r in &out {
            let i: usize = r.telemetry.device_id.trim_start_matches("dev-").parse()?;
            model.score_record(&mut states[i], &r.telemetry, &mut scratch);
        }
        if checkpoints.contains(&tick) || tick == ticks {
            let bytes: Vec<usize> = states.iter().map(DeviceState::bytes).collect();
            let mean = bytes.iter().sum::<usize>() as f64 / devices as f64;
            let max = bytes.iter().copied().max().unwrap_or(0);
            println!(
                "| {name} | {tick} | {metrics} | {:.2} KB | {:.2} KB | {:.2} KB | {:.2} GB |",
                mean / 1e3,
                max as f64 / 1e3,
                mean / metrics as f64 / 1e3,
                mean * SCALE / 1e9,
            );
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let devices: usize = std::env::args().nth(1).map_or(Ok(2_000), |s| s.parse())?;
    let ticks: u64 = std::env::args().nth(2).map_or(Ok(10_000), |s| s.parse())?;
    let train: Vec<_> = fleet(TRAIN_DEVICES)?.generate(TRAIN_TICKS).into_telemetry();
    let payload = fit(&train, &TrainConfig::default(), |_| {})?.payload;
    drop(train);
    let periods = payload
        .novelty
        .as_ref()
        .and_then(|p| p.seasons.clone())
        .unwrap_or_default();
    println!("release: periods (ms) per metric {periods:?}");
    let mut flat = payload.clone();
    if let Some(p) = flat.novelty.as_mut() {
        p.seasons = None;
    }
    let seasonal = Model::from_payload(payload)?;
    let flat = Model::from_payload(flat)?;
    println!("| release | ticks per device | metrics | state per device, mean | largest | per metric, mean | mean × 100,000 |");
    println!("|---|---|---|---|---|---|---|");
    let seasonal_metrics = periods.iter().filter(|&&p| p > 0).count();
    let name = format!(
        "periods ({seasonal_metrics} of {} metrics seasonal)",
        periods.len()
    );
    run(&name, &seasonal, devices, ticks)?;
    run("no periods", &flat, devices, ticks)?;
    Ok(())
}
