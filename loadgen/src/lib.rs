//! Vigil's load generator and end-to-end measurement.
//!
//! This crate drives Vigil from the outside, as devices and operators would,
//! and measures what comes back:
//!
//! - [`run`]: `vigil-loadgen run` publishes a simulated fleet
//!   (`vigil-fleet-sim`, with injected anomalies and their ground truth) or
//!   a replayed CSV over MQTT on an open-loop schedule, reads the verdicts
//!   back from Kafka (and/or the edge agents' MQTT topic) and reports
//!   latency, throughput, loss, duplicates and detection quality
//!   (counted by `vigil-eval-core`, the same rules the trainer uses).
//!
//! It reaches only schemas, the model, the simulator and the shared
//! service plumbing; offline evaluation (the NAB runner and scorer) is
//! `vigil-eval`.

pub mod run;
