//! A deterministic IoT fleet simulator with recorded ground truth.
//!
//! Vigil needs telemetry whose truth is known: the trainer and the detector's
//! tests need clean and faulty data, `vigil-loadgen run` publishes simulated
//! devices over MQTT and then checks which anomalies the scorers caught, and
//! the one-command demo needs a believable fleet. This crate produces that
//! data as [`vigil_schemas::Telemetry`], the records real devices send. It is
//! pure computation: no I/O, no async, no clock; the caller decides pacing.
//!
//! - Every device has its own baseline per metric, a daily cycle (length
//!   configurable, so tests can compress a day), measurement noise, and a
//!   shared latent load that correlates its metrics (temperature follows
//!   current with a lag, voltage sags under load). See [`MetricSpec`].
//! - Anomaly episodes of seven kinds ([`AnomalyKind`]) are injected at a
//!   configurable rate. Every record is labelled ([`Label`]) and the first
//!   record of an episode carries its ground truth ([`Episode`]).
//! - The same [`FleetConfig`] always yields the same records. Records carry
//!   `seq` 1, 2, 3… per device with no gaps, also across missing-data
//!   episodes (which show as a gap in `ts`).
//! - State is O(1) per device, so 10,000+ devices run for as long as needed.
//!
//! ```
//! use vigil_fleet_sim::{Fleet, FleetConfig};
//!
//! let config = FleetConfig { devices: 3, ..FleetConfig::default() };
//! let run = Fleet::new(config)?.generate(10);
//! assert_eq!(run.records.len(), 30);
//! assert_eq!(run.records[0].telemetry.device_id, "dev-00000");
//! # Ok::<(), vigil_fleet_sim::ConfigError>(())
//! ```

mod anomaly;
mod config;
mod device;
mod fleet;
mod rng;
#[cfg(test)]
mod tests;

pub use anomaly::{AnomalyKind, Episode, Label, UnknownKind};
pub use config::{AnomalyConfig, ConfigError, FleetConfig, MetricSpec, Span};
pub use device::{Device, SimRecord};
pub use fleet::{Fleet, Generated};
pub use rng::Rng;
