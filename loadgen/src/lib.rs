//! Vigil's load generator, end-to-end measurement and NAB evaluation.
//!
//! This crate drives Vigil from the outside, as devices and operators would,
//! and measures what comes back. Today it holds:
//!
//! - [`nab`]: the Numenta Anomaly Benchmark's scoring rule, so Vigil's
//!   detector gets a number comparable with published detectors
//!   (`vigil-loadgen nab`).
//!
//! The fleet itself comes from `vigil-fleet-sim`, which this crate will use
//! for `vigil-loadgen run` (publishing simulated devices over MQTT and
//! checking the verdicts against the simulator's ground truth).

pub mod nab;
