//! Which metrics a release models, and the fleet priors of each: the
//! default choice (present in at least half of the records, less those
//! named as labels or constant over the training rows) and each metric's
//! noise and total variance, the medians over the training devices.

use vigil_model::MetricSpec;

use crate::calibrate::median;
use crate::data::{DeviceSeries, FleetData};

/// Smallest prior variance.
const MIN_PRIOR_VAR: f64 = 1.0e-12;
/// Median of a χ²(1) variable, to turn a median of squares into a variance.
const CHI2_1_MEDIAN: f64 = 0.454_936_423_119_572_8;

/// Metric names that benchmark files give their own labels: a column so
/// named is a label, not a measurement, and modelling it would score the
/// answer (`--label-column` names any other).
pub const LABEL_NAMES: [&str; 6] = [
    "anomaly",
    "is_anomaly",
    "label",
    "changepoint",
    "is_changepoint",
    "attack",
];

/// What the default choice of metrics took and left out.
#[derive(Debug, Default)]
pub(crate) struct Chosen {
    pub(crate) metrics: Vec<String>,
    /// Held one value over every device's training rows.
    pub(crate) constant: Vec<String>,
    /// Named as a label ([`LABEL_NAMES`]).
    pub(crate) labels: Vec<String>,
}

/// Metrics present in at least half of the records, sorted, less those
/// left out while another metric remains:
///
/// - one named as a label ([`LABEL_NAMES`], any case): a file's own
///   answer, which would leak into the score;
/// - one holding a single value over every device's training rows: it
///   says nothing about its normal variation (a setpoint, an idle
///   channel, an unnamed label column that is 0 over the training rows),
///   and its first change would be judged against a variance of nothing.
///
/// `--metrics` names any of them to keep it.
pub(crate) fn choose_metrics(data: &FleetData<'_>) -> Chosen {
    // Per metric: records holding it, and its range over the training rows.
    let mut seen: std::collections::BTreeMap<&str, (usize, f64, f64)> = Default::default();
    for d in &data.devices {
        for (i, r) in d.records.iter().enumerate() {
            for (name, &v) in &r.metrics {
                let e = seen
                    .entry(name.as_str())
                    .or_insert((0, f64::INFINITY, f64::NEG_INFINITY));
                e.0 += 1;
                if i < d.holdout_start && v.is_finite() {
                    e.1 = e.1.min(v);
                    e.2 = e.2.max(v);
                }
            }
        }
    }
    let total = data.records();
    let present: Vec<_> = seen
        .into_iter()
        .filter(|(_, (c, ..))| c * 2 >= total)
        .collect();
    let is_label = |name: &str| LABEL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(name));
    let mut chosen = Chosen::default();
    for (name, (_, lo, hi)) in &present {
        let list = if is_label(name) {
            &mut chosen.labels
        } else if lo < hi {
            &mut chosen.metrics
        } else {
            &mut chosen.constant
        };
        list.push((*name).to_owned());
    }
    if chosen.metrics.is_empty() {
        // Nothing else to model: keep what there is.
        chosen.metrics = present.iter().map(|(n, _)| (*n).to_owned()).collect();
        chosen.constant.clear();
        chosen.labels.clear();
    }
    chosen
}

/// Per-device (noise_var, total_var) of one metric over the training part.
fn device_variances(series: &DeviceSeries<'_>, metric: &str) -> Option<(f64, f64)> {
    let values: Vec<f64> = series.records[..series.holdout_start]
        .iter()
        .filter_map(|r| r.metrics.get(metric).copied())
        .filter(|v| v.is_finite())
        .collect();
    if values.len() < 3 {
        return None;
    }
    let mut sq_steps: Vec<f64> = values.windows(2).map(|w| (w[1] - w[0]).powi(2)).collect();
    let mean_sq = sq_steps.iter().sum::<f64>() / sq_steps.len() as f64;
    let med = median(&mut sq_steps).unwrap_or(0.0) / CHI2_1_MEDIAN;
    // Quantised series repeat often, which zeroes the median; the mean
    // still sees their steps.
    let noise = if med > 0.0 { med } else { mean_sq } * 0.5;
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let total = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Some((noise, total.max(noise)))
}

pub(crate) fn priors(data: &FleetData<'_>, metrics: &[String]) -> Vec<MetricSpec> {
    metrics
        .iter()
        .map(|name| {
            let (mut noise, mut total): (Vec<f64>, Vec<f64>) = data
                .devices
                .iter()
                .filter_map(|d| device_variances(d, name))
                .unzip();
            let noise_var = median(&mut noise).unwrap_or(1.0).max(MIN_PRIOR_VAR);
            let total_var = median(&mut total)
                .unwrap_or(1.0)
                .max(noise_var)
                .max(MIN_PRIOR_VAR);
            MetricSpec {
                name: name.clone(),
                noise_var,
                total_var,
            }
        })
        .collect()
}

/// Fleet median of the devices' median event-time step, ms (1 s when the
/// data carry no usable timestamps).
pub(crate) fn typical_interval(data: &FleetData<'_>) -> f64 {
    let mut per_device: Vec<f64> = data
        .devices
        .iter()
        .filter_map(|d| {
            let mut steps: Vec<f64> = d.records[..d.holdout_start]
                .windows(2)
                .map(|w| w[1].ts.saturating_sub(w[0].ts) as f64)
                .filter(|s| *s > 0.0)
                .collect();
            median(&mut steps)
        })
        .collect();
    median(&mut per_device).unwrap_or(1000.0).max(1.0)
}
