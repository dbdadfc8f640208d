//! What the demo-condition examples (`demo_conditions`, `alarms`) share:
//! a fleet under the demo's timing with its ground truth, and a slice of
//! it by tick.

use std::collections::HashMap;

use vigil_fleet_sim::{AnomalyConfig, Fleet, FleetConfig};
use vigil_schemas::Telemetry;
use vigil_training::Episode;

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
    let episodes = generated
        .episodes
        .iter()
        .map(|e| Episode {
            device_id: e.device_id.clone(),
            kind: e.kind.as_str().to_owned(),
            first_seq: e.first_seq,
            last_seq: e.last_seq,
        })
        .collect();
    let records = generated.records.into_iter().map(|r| r.telemetry).collect();
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
