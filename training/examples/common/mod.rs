//! What the demo-condition examples (`demo_conditions`, `alarms`) share:
//! a fleet under the demo's timing with its ground truth, and a slice of
//! it by tick.

use std::collections::HashMap;

use vigil_fleet_sim::{AnomalyConfig, Fleet, FleetConfig};
use vigil_model::Model;
use vigil_schemas::Telemetry;
use vigil_training::{fit, Episode, TrainConfig};

/// `devices` simulated for `ticks` records each, one every 500 ms, with
/// `rate` anomaly episodes per device per simulated day of `day_ms`: the
/// records and the episodes' ground truth.
pub fn demo_fleet(
    devices: usize,
    seed: u64,
    rate: f64,
    day_ms: u64,
    ticks: u64,
) -> Result<(Vec<Telemetry>, Vec<Episode>), Box<dyn std::error::Error>> {
    let cfg = FleetConfig {
        devices,
        seed,
        interval_ms: 500,
        day_ms,
        anomalies: AnomalyConfig {
            rate_per_device_day: rate,
            ..AnomalyConfig::default()
        },
        ..FleetConfig::default()
    };
    let generated = Fleet::new(cfg)?.generate(ticks);
    let episodes = generated.episodes.iter().map(Episode::from).collect();
    let records = generated.into_telemetry();
    Ok((records, episodes))
}

/// Records of ticks `from..to` (a record's tick is its position in its
/// device's stream; seqs start at a per-device base).
pub fn ticks(records: &[Telemetry], from: u64, to: u64) -> Vec<Telemetry> {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    records
        .iter()
        .filter(|r| {
            let tick = seen.entry(r.device_id.as_str()).or_insert(0);
            *tick += 1;
            (from..to).contains(&(*tick - 1))
        })
        .cloned()
        .collect()
}

/// The demo's release chain: a first model on ticks `0..warmup`, then one
/// every `every` ticks on the last `window` ticks, each with the tick it
/// goes live at.
#[allow(dead_code)] // not every example that shares this module uses it
pub fn release_chain(
    all: &[Telemetry],
    ticks_run: u64,
    (warmup, every, window): (u64, u64, u64),
) -> Result<Vec<(u64, Model)>, Box<dyn std::error::Error>> {
    let mut chain = Vec::new();
    let mut at = warmup;
    while at < ticks_run {
        let train = ticks(all, at.saturating_sub(window), at);
        let cfg = TrainConfig {
            min_device_records: 20,
            min_records: 1_000,
            ..TrainConfig::default()
        };
        chain.push((at, fit(&train, &cfg, |_| {})?.model));
        at += every;
    }
    Ok(chain)
}

/// Each device's records, in order.
#[allow(dead_code)]
pub fn by_device(all: &[Telemetry]) -> HashMap<&str, Vec<&Telemetry>> {
    let mut devices: HashMap<&str, Vec<&Telemetry>> = HashMap::new();
    for r in all {
        devices.entry(r.device_id.as_str()).or_default().push(r);
    }
    devices
}
