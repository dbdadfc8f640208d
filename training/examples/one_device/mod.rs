//! What the single-device examples (`small_train`, `long_faults`) share:
//! a release trained on one device's first records, as `vigil train
//! --csv FILE --rows N` trains one, and point-wise F1.

use vigil_fleet_sim::MetricSpec;
use vigil_model::Model;
use vigil_schemas::Telemetry;
use vigil_training::{fit, TrainConfig, TrainError};

/// The simulated device's metrics: the fleet's six (`SIM_METRICS` unset or
/// `6`), or eight (`SIM_METRICS=8`: a flow rate that follows the load and a
/// second, lagged temperature, as the eight sensors of the issue's
/// industrial benchmark; 33 features instead of 25).
pub fn metrics() -> Result<Vec<MetricSpec>, String> {
    let mut metrics = MetricSpec::defaults();
    match std::env::var("SIM_METRICS").as_deref() {
        Err(_) | Ok("6") => {}
        Ok("8") => {
            metrics.push(MetricSpec {
                load_gain: (20.0, 40.0),
                noise_sd: (0.5, 1.5),
                nonnegative: true,
                ..MetricSpec::constant("flow_lpm", (30.0, 50.0))
            });
            metrics.push(MetricSpec {
                lagged: true,
                load_gain: (8.0, 16.0),
                ambient_gain: (1.0, 3.0),
                noise_sd: (0.1, 0.3),
                ..MetricSpec::constant("casing_temperature_c", (25.0, 35.0))
            });
        }
        Ok(other) => return Err(format!("SIM_METRICS must be 6 or 8, got {other}")),
    }
    Ok(metrics)
}

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
    vigil_training::PointCounts {
        hits,
        false_hits,
        positives,
        records: 0,
    }
    .f1()
}
