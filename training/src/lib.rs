//! Vigil's batch trainer, as a library: `vigil train` (Kafka replay, the
//! CLI, signing and publishing) calls it; so do the offline evaluation
//! tools.
//!
//! - [`data`]: grouping records per device and the train/holdout split;
//!   the CSV readers (wide fleet files, NAB series) come from
//!   `vigil-eval-core` and are re-exported.
//! - [`fit`](mod@fit): [`fit()`] turns Telemetry into an unsigned
//!   `vigil_model::ReleasePayload` with a calibrated threshold (linfa PCA on
//!   the features `vigil-model` computes, so training and scoring share one
//!   feature implementation).
//! - [`eval`]: [`evaluate`] (false-alarm rate, detection rate and delay,
//!   precision/recall per anomaly kind) and the champion/challenger
//!   [`gate`]; the counting rules and the [`Evaluation`] type are
//!   `vigil-eval-core`'s, re-exported here.
//!
//! Sign the payload with `vigil_model::sign`.

mod calibrate;
pub mod data;
pub mod eval;
pub mod fit;
mod metrics;
mod par;
mod ranges;
pub mod season;

pub use data::{
    label_episodes, read_nab_csv, read_wide_csv, read_wide_csv_labelled, read_wide_csv_with,
    DataError, DeviceSeries, FleetData, WideCsvOptions,
};
pub use eval::{
    evaluate, evaluate_flags, evaluate_with, gate, Decision, DeviceFlags, Episode, EvalOptions,
    Evaluation, GateConfig, GateDecision, KindStats, PointCounts,
};
pub use fit::{
    fit, Calibration, Method, Progress, TrainConfig, TrainError, TrainedModel,
    CALIBRATED_THRESHOLD, MIN_ROWS_PER_FEATURE,
};
pub use metrics::LABEL_NAMES;
pub use ranges::DeclaredRange;
