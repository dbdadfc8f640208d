//! Vigil's offline evaluation: how good the detector is on data with known
//! answers, away from any running pipeline.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark: an online runner that fits
//!   and scores Vigil's detector row by row over the corpus, and NAB's
//!   scoring rule, so the detector gets a number comparable with published
//!   detectors (`vigil-eval nab`, report in NAB.md).
//!
//! - [`files`]: a folder of labelled CSV files, one recording each (the
//!   shape of the industrial benchmark of issue 16): a release trained on
//!   each file's first rows, its verdicts counted point-wise against the
//!   file's label column (`vigil-eval files`).
//!
//! The counting rules shared with the trainer and the load generator
//! (labelled episodes, detection rate, false alarms) live in
//! `vigil-eval-core`; the load generator measures a live run without
//! linking this crate or the trainer.

pub mod files;
pub mod nab;
