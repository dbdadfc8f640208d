//! One simulated pump from `vigil-fleet-sim` (the simulator the trainer
//! and the load generator use), with injected anomalies, for demos and
//! tests on machines without interesting sensors.
//!
//! Only with the cargo feature `sim` (off by default, on in the demo), so
//! the shipped agent carries no simulator. Without it [`SimSource`] cannot
//! be built: [`SimSource::new`] says how to get one.

use crate::config::RunArgs;

use super::{Sample, SourceError};

/// One simulated pump.
#[cfg(feature = "sim")]
#[derive(Debug)]
pub struct SimSource {
    fleet: vigil_fleet_sim::Fleet,
}

#[cfg(feature = "sim")]
impl SimSource {
    /// A single-device fleet with the configured seed, interval and anomaly
    /// rate; its event times are replaced by the agent's clock.
    pub fn new(args: &RunArgs) -> Result<SimSource, SourceError> {
        use vigil_fleet_sim::{AnomalyConfig, FleetConfig};
        let config = FleetConfig {
            devices: 1,
            seed: args.sim_seed,
            interval_ms: args.interval_ms.max(1),
            jitter_ms: 0,
            day_ms: args.sim_day_ms,
            anomalies: AnomalyConfig {
                rate_per_device_day: args.sim_anomaly_rate,
                ..AnomalyConfig::default()
            },
            ..FleetConfig::default()
        };
        let fleet = vigil_fleet_sim::Fleet::new(config)
            .map_err(|e| SourceError::Config(format!("simulated device: {e}")))?;
        Ok(SimSource { fleet })
    }

    pub(super) fn next(&mut self) -> Sample {
        // The fleet iterator never ends; a silent tick is skipped by it.
        let metrics = self
            .fleet
            .next()
            .map(|r| r.telemetry.metrics)
            .unwrap_or_default();
        Sample {
            ts: None,
            metrics,
            tags: None,
        }
    }
}

/// The simulated pump of a build without the `sim` feature: no value of it
/// exists.
#[cfg(not(feature = "sim"))]
#[derive(Debug)]
pub struct SimSource(std::convert::Infallible);

#[cfg(not(feature = "sim"))]
impl SimSource {
    /// Always fails: this build has no simulator.
    pub fn new(_args: &RunArgs) -> Result<SimSource, SourceError> {
        Err(SourceError::Config(
            "this vigil-edge was built without the simulator (cargo feature `sim`); \
             use --source host, stdin or csv"
                .into(),
        ))
    }

    pub(super) fn next(&mut self) -> Sample {
        match self.0 {}
    }
}
