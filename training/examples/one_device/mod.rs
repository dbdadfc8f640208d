//! What the single-device examples (`small_train`, `long_faults`) share:
//! a release trained on one device's first records, as `vigil train
//! --csv FILE --rows N` trains one, and point-wise F1.

use vigil_model::Model;
use vigil_schemas::Telemetry;
use vigil_training::{fit, TrainConfig, TrainError};

/// A release trained on `records` (one device's), with the file path's
/// settings: no minimum count of records or devices beyond the fit's own.
pub fn train(records: &[Telemetry]) -> Result<Model, TrainError> {
    let tc = TrainConfig {
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    fit(records, &tc, |_| {}).map(|t| t.model)
}

/// Point-wise F1, precision and recall of `hits` positive records
/// flagged and `false_hits` negative ones, of `positives`.
pub fn pointwise(hits: u64, false_hits: u64, positives: u64) -> (f64, f64, f64) {
    let precision = hits as f64 / (hits + false_hits).max(1) as f64;
    let recall = hits as f64 / positives.max(1) as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (f1, precision, recall)
}
