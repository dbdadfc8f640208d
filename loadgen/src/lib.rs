//! Vigil's load generator, end-to-end measurement and NAB evaluation.
//!
//! This crate drives Vigil from the outside, as devices and operators would,
//! and measures what comes back:
//!
//! - [`run`]: `vigil-loadgen run` publishes a simulated fleet
//!   (`vigil-fleet-sim`, with injected anomalies and their ground truth) or
//!   a replayed CSV over MQTT on an open-loop schedule, reads the verdicts
//!   back from Kafka (and/or the edge agents' MQTT topic) and reports
//!   latency, throughput, loss, duplicates and detection quality.
//! - [`nab`]: the Numenta Anomaly Benchmark's scoring rule, so Vigil's
//!   detector gets a number comparable with published detectors
//!   (`vigil-loadgen nab`).

pub mod nab;
pub mod run;
