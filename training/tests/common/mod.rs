//! Shared fixtures of the trainer's integration tests.

#![allow(dead_code)] // not every test binary uses every fixture

use vigil_fleet_sim::{AnomalyConfig, Fleet, FleetConfig};
use vigil_schemas::Telemetry;

/// One simulated device with `anomalies`, a record every 500 ms and a 60-s
/// day (`small_train`'s and `long_faults`' 60-s day), from `seed`.
pub fn one_device(seed: u64, anomalies: AnomalyConfig) -> FleetConfig {
    FleetConfig {
        devices: 1,
        seed,
        interval_ms: 500,
        day_ms: 60_000,
        anomalies,
        ..FleetConfig::default()
    }
}

/// `ticks` records of [`one_device`] with no anomaly.
pub fn clean_device(seed: u64, ticks: u64) -> Vec<Telemetry> {
    let anomalies = AnomalyConfig {
        rate_per_device_day: 0.0,
        ..AnomalyConfig::default()
    };
    Fleet::new(one_device(seed, anomalies))
        .expect("fleet")
        .generate(ticks)
        .into_telemetry()
}
