//! Fitting: Telemetry records in, an unsigned [`ReleasePayload`] out.
//!
//! 1. Group by device, split each device's stream in time: the first
//!    `1 - holdout_fraction` trains, the rest is holdout.
//! 2. Fleet priors per metric: medians over devices of the noise variance
//!    (from one-step deltas) and total variance, for cold starts.
//! 3. Features the "training way": `vigil_model::Extractor::extract_series`
//!    over each device's stream, the very code the scorer runs record by
//!    record. Each device's first `warmup` rows are left out of the fit.
//! 4. The detector: standardisation, then PCA from the exact
//!    eigendecomposition of the feature covariance (linfa-linalg;
//!    [`Method::Pca`], the default) or robust z-scores ([`Method::RobustZ`]).
//! 5. Calibration: `raw_scale` is the raw score at the `1 - target` quantile
//!    of the training rows, which puts the release's threshold at 0.5. By
//!    default ([`Calibration::Trimmed`]) that quantile is extrapolated from
//!    the central scores, the rows above it are dropped and the detector is
//!    refitted, because replayed history holds anomalies; the empirical
//!    quantile ([`Calibration::Quantile`]) is for data known to be clean.
//!    The trimmed threshold is then checked out of sample: the same
//!    extrapolation on the holdout rows, and the larger of the two is kept.
//! 6. Holdout evaluation (false-alarm rate) through the scoring path.

use std::collections::BTreeMap;

use linfa_linalg::eigh::{EigSort as _, EighInto as _};
use ndarray::Array2;
use vigil_model::{
    combine::{calibration_share, NoveltyPolicy},
    AlarmPolicy, Detector, FeatureSpec, Model, ModelError, ReleasePayload, Scratch,
};
use vigil_schemas::{ReleaseHeader, Telemetry, TrainingWindow, ValidationMetrics};

use crate::calibrate::{median, quantile, tail_probability, tail_quantile};
use crate::data::FleetData;
use crate::eval::{evaluate, EvalOptions, Evaluation};
use crate::metrics::{choose_metrics, priors, typical_interval};
use crate::par::map_devices;
use crate::ranges::{check_declared, declare, training_ranges, DeclaredRange};
use crate::season::metric_periods;

/// Threshold of every release: `raw_scale` is calibrated so that the target
/// false-alarm rate falls exactly here.
pub const CALIBRATED_THRESHOLD: f64 = 0.5;
/// Smallest per-feature scale used in standardisation. Features that never
/// moved in training (a stuck counter that stayed 0) get this, so any
/// movement in production is loud but finite.
const MIN_FEATURE_SCALE: f64 = 0.25;
/// Which training device's level of raw scores (their average, capped at
/// the threshold) a device in service is measured against: the 90th
/// percentile over devices, so a device adjusts its bar only once its
/// scores run higher than nine in ten training devices' did (one device:
/// its own). Chosen on the demo replay's tuning seed and the small-file
/// experiment's tuning devices (training/EVALUATION.md, "Small training
/// sets").
const BASELINE_QUANTILE: f64 = 0.9;
/// Smallest residual variance of the PCA detector.
const MIN_RESIDUAL_VARIANCE: f64 = 0.05;
/// The fit needs at least this many feature rows per feature (after
/// warm-up and holdout), so that the covariance is estimated, not guessed.
/// At five, the sample eigenvalues of white data spread over (1 ± √0.2)²
/// (0.3 to 2.1 times the true one), the PPCA's residual variance is their
/// average, and the threshold is calibrated on the raw scores themselves;
/// eight sensors train on 400 rows of one device (33 features, 288 rows),
/// the shape of the industrial benchmark, which ten refused
/// (training/EVALUATION.md, "Eight sensors on 400 rows").
pub const MIN_ROWS_PER_FEATURE: usize = 5;

/// Which detector to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Probabilistic PCA on standardised features (cross-metric).
    Pca,
    /// Largest robust z-score (per feature).
    RobustZ,
}

impl Method {
    /// Name as written in a release payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pca => "pca",
            Method::RobustZ => "robust_z",
        }
    }
}

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Model name.
    pub model: String,
    /// Version to assign (the caller knows the live one).
    pub version: u64,
    /// Build time, ms since the Unix epoch.
    pub created_ts: u64,
    /// Where the data came from (`kafka:vigil.telemetry`, `file:fleet.csv`).
    pub source: String,
    /// Detector to fit.
    pub method: Method,
    /// Metrics to model; `None` takes every metric present in at least half
    /// of the records.
    pub metrics: Option<Vec<String>>,
    /// Fraction of each device's stream (its end) held out for evaluation.
    pub holdout_fraction: f64,
    /// False-alarm rate the threshold is calibrated to.
    pub target_false_alarm_rate: f64,
    /// Fewer usable records than this is "too little data".
    pub min_records: usize,
    /// Devices with fewer records are left out.
    pub min_device_records: usize,
    /// At most this many feature rows go into the fit (an even subsample).
    pub max_fit_rows: usize,
    /// Fraction of variance the kept principal components must explain.
    pub pca_variance: f64,
    /// Feature windows (see `vigil_model::features`).
    pub fast_window: u32,
    /// Slow EWMA span, records.
    pub slow_window: u32,
    /// Cold-start records.
    pub warmup: u32,
    /// Calibrate for training data that holds anomalies ([`Calibration`]).
    pub calibration: Calibration,
    /// Spans some metrics are known to take ([`DeclaredRange`]); each
    /// must name a metric the release models.
    pub declared_ranges: BTreeMap<String, DeclaredRange>,
}

/// How the threshold is placed on the training scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Calibration {
    /// At the empirical `1 - target` quantile: right for clean training
    /// data; a few percent of anomalies in it push the quantile up among
    /// them (`EVALUATION.md`, "Under the demo's conditions").
    #[default]
    Quantile,
    /// For training data that may hold anomalies: the `1 - target`
    /// quantile extrapolated from the central scores (an exponential tail
    /// through the 75th and 90th percentiles, which a few percent of
    /// anomalies barely move); the rows above it are left out and the
    /// detector is fitted again on the rest, then calibrated the same way;
    /// the threshold is the larger of that and the same extrapolation on
    /// the holdout rows (out of sample), when there are enough of them.
    Trimmed,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let spec = FeatureSpec::with_defaults(Vec::new());
        TrainConfig {
            model: "default".into(),
            version: 1,
            created_ts: 0,
            source: "memory".into(),
            method: Method::Pca,
            metrics: None,
            holdout_fraction: 0.2,
            target_false_alarm_rate: 0.001,
            min_records: 5_000,
            min_device_records: 100,
            max_fit_rows: 200_000,
            pca_variance: 0.95,
            fast_window: spec.fast_window,
            slow_window: spec.slow_window,
            warmup: spec.warmup,
            calibration: Calibration::Trimmed,
            declared_ranges: BTreeMap::new(),
        }
    }
}

/// Where training is, for a progress bar or a log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Records grouped into devices.
    Grouped { devices: usize, records: usize },
    /// Feature extraction finished.
    Extracted { rows: usize },
    /// The detector was fitted.
    Fitted { components: usize },
    /// Holdout evaluated.
    Evaluated { false_alarm_rate: f64 },
}

/// Why no model was produced.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("too little training data: {records} usable records from {devices} devices (devices with fewer than {min_device_records} records are skipped); at least {min_records} needed")]
    TooLittleData {
        records: usize,
        devices: usize,
        min_records: usize,
        min_device_records: usize,
    },
    #[error("too little training data: {rows} feature rows to fit, from {records} records of {devices} devices less each device's first {warmup} records (warm-up) and its last {holdout_percent}% (holdout); the detector needs at least {needed} rows ({features} features x {factor}), which one device reaches with {one_device_records} records")]
    TooFewRows {
        /// Feature rows left for the fit.
        rows: usize,
        /// Usable records.
        records: usize,
        /// Devices they came from.
        devices: usize,
        /// Records per device left out as warm-up.
        warmup: u32,
        /// Holdout share, percent.
        holdout_percent: f64,
        /// Length of the feature vector.
        features: usize,
        /// [`MIN_ROWS_PER_FEATURE`].
        factor: usize,
        /// `features × factor`.
        needed: usize,
        /// Records one device needs for that many rows.
        one_device_records: usize,
    },
    #[error("no metric is present in at least half of the training records")]
    NoMetrics,
    #[error("{found} metrics to model; at most {max} allowed (pass an explicit metric list)")]
    TooManyMetrics { found: usize, max: usize },
    #[error("invalid training option {option}: {why}")]
    Config { option: &'static str, why: String },
    #[error("fitting the detector: {0}")]
    Fit(String),
    #[error("the fitted model is invalid: {0}")]
    Model(#[from] ModelError),
    #[error("the release payload is {bytes} bytes; at most {max} fit in a release")]
    TooLarge { bytes: usize, max: usize },
}

/// A fitted model and how it did on the holdout.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// The payload to sign (`vigil_model::sign`).
    pub payload: ReleasePayload,
    /// The compiled model, for further evaluation (gate).
    pub model: Model,
    /// Holdout results (also in `payload.header.validation`).
    pub holdout: Evaluation,
    /// Metrics the default choice left out because each held one value
    /// over the training rows (`choose_metrics`); empty when `metrics` was
    /// given.
    pub constant_metrics: Vec<String>,
    /// Metrics the default choice left out because their name is a
    /// label's ([`crate::LABEL_NAMES`]); empty when `metrics` was given.
    pub label_metrics: Vec<String>,
}

fn declared_error(why: String) -> TrainError {
    TrainError::Config {
        option: "declared_ranges",
        why,
    }
}

fn check_config(cfg: &TrainConfig) -> Result<(), TrainError> {
    let bad = |option, why: &str| {
        Err(TrainError::Config {
            option,
            why: why.to_owned(),
        })
    };
    if !(0.0..1.0).contains(&cfg.holdout_fraction) {
        return bad("holdout_fraction", "must lie in [0, 1)");
    }
    if !(cfg.target_false_alarm_rate > 0.0 && cfg.target_false_alarm_rate < 0.5) {
        return bad("target_false_alarm_rate", "must lie in (0, 0.5)");
    }
    if !(cfg.pca_variance > 0.0 && cfg.pca_variance <= 1.0) {
        return bad("pca_variance", "must lie in (0, 1]");
    }
    if cfg.max_fit_rows == 0 {
        return bad("max_fit_rows", "must be positive");
    }
    if cfg.model.is_empty() || cfg.version == 0 {
        return bad("model/version", "a model needs a name and a version >= 1");
    }
    Ok(())
}

/// Feature rows (row-major, `dim` wide), from one extraction of each
/// device's whole stream (a record's features depend only on the records
/// before it, so the training part's rows are the same as extracting it
/// alone). Rows of a state younger than warm-up are left out.
struct FeatureRows {
    /// Each device's training part, every `stride`-th row.
    train: Vec<f64>,
    /// How many of `train`'s rows each device gave, in order.
    train_rows: Vec<usize>,
    /// The earlier half of each device's holdout part.
    held_earlier: Vec<f64>,
    /// The later half of each device's holdout part.
    held_later: Vec<f64>,
}

fn feature_rows(
    data: &FleetData<'_>,
    extractor: &vigil_model::Extractor,
    stride: usize,
) -> FeatureRows {
    let dim = extractor.dim();
    let warmup = extractor.spec().warmup as usize;
    let parts = map_devices(&data.devices, |series| {
        let mut rows = Vec::new();
        extractor.extract_series(series.records.iter().copied(), &mut rows);
        let split = (series.holdout_start * dim).min(rows.len());
        let (train_part, held) = rows.split_at(split);
        let mut train = Vec::new();
        for (i, row) in train_part.chunks_exact(dim).enumerate().skip(warmup) {
            if i % stride == 0 {
                train.extend_from_slice(row);
            }
        }
        let young = (warmup.saturating_sub(series.holdout_start) * dim).min(held.len());
        let held = &held[young..];
        let mid = held.len() / dim / 2 * dim;
        (train, held[..mid].to_vec(), held[mid..].to_vec())
    });
    let mut out = FeatureRows {
        train: Vec::new(),
        train_rows: Vec::new(),
        held_earlier: Vec::new(),
        held_later: Vec::new(),
    };
    for (train, earlier, later) in parts {
        out.train_rows.push(train.len() / dim.max(1));
        out.train.extend(train);
        out.held_earlier.extend(earlier);
        out.held_later.extend(later);
    }
    out
}

/// Column means and standard deviations (floored).
fn mean_std(x: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    let n = x.nrows().max(1) as f64;
    x.columns()
        .into_iter()
        .map(|c| {
            let mean = c.sum() / n;
            let var = c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt().max(MIN_FEATURE_SCALE))
        })
        .unzip()
}

/// Column medians and MAD-based scales (floored).
fn median_mad(x: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    x.columns()
        .into_iter()
        .map(|c| {
            let mut v = c.to_vec();
            let m = median(&mut v).unwrap_or(0.0);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
            let mad = median(&mut dev).unwrap_or(0.0) * 1.4826;
            (m, mad.max(MIN_FEATURE_SCALE))
        })
        .unzip()
}

fn fit_pca(x: &Array2<f64>, variance: f64) -> Result<Detector, TrainError> {
    let (center, scale) = mean_std(x);
    let n = x.nrows();
    let dim = x.ncols();
    // Covariance of the standardised features (the data are centred by the
    // same means), then its exact symmetric eigendecomposition. A d×d
    // problem (d = 3 × metrics) costs nothing next to the n×d product, and
    // unlike a truncated iterative SVD it returns the whole spectrum, which
    // the residual variance needs.
    let mut z = x.clone();
    for mut row in z.rows_mut() {
        for ((v, c), s) in row.iter_mut().zip(&center).zip(&scale) {
            *v = (*v - c) / s;
        }
    }
    let cov = z.t().dot(&z) / (n as f64 - 1.0).max(1.0);
    let trace: f64 = cov.diag().sum();
    let (values, vectors) = cov
        .eigh_into()
        .map_err(|e| TrainError::Fit(format!("eigendecomposition: {e}")))?
        .sort_eig_desc();
    let eigen: Vec<f64> = values.iter().map(|v| v.max(0.0)).collect();
    let mut k = 0;
    let mut covered = 0.0;
    while k < eigen.len() && covered < variance * trace {
        covered += eigen[k];
        k += 1;
    }
    // Always leave a residual subspace: that is where broken correlations
    // show up.
    let k = k.clamp(1, dim.saturating_sub(1).max(1));
    let explained: f64 = eigen[..k].iter().sum();
    let rest = dim.saturating_sub(k).max(1) as f64;
    let residual = ((trace - explained) / rest).max(MIN_RESIDUAL_VARIANCE);
    let components: Vec<Vec<f64>> = (0..k)
        .map(|j| {
            let col = vectors.column(j);
            let norm = col
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            col.iter().map(|v| v / norm).collect()
        })
        .collect();
    let variances = eigen[..k].iter().map(|v| v.max(residual)).collect();
    Ok(Detector::Pca {
        center,
        scale,
        components,
        variances,
        residual_variance: residual,
        raw_scale: 1.0,
    })
}

fn fit_robust_z(x: &Array2<f64>) -> Detector {
    let (center, scale) = median_mad(x);
    Detector::RobustZ {
        center,
        scale,
        raw_scale: 1.0,
    }
}

fn set_raw_scale(detector: &mut Detector, value: f64) {
    match detector {
        Detector::Pca { raw_scale, .. } | Detector::RobustZ { raw_scale, .. } => *raw_scale = value,
    }
}

/// Fits a detector to `records` (see the module docs). `progress` is called
/// at each stage.
pub fn fit(
    records: &[Telemetry],
    cfg: &TrainConfig,
    mut progress: impl FnMut(Progress),
) -> Result<TrainedModel, TrainError> {
    check_config(cfg)?;
    let mut data = FleetData::new(records, cfg.holdout_fraction);
    data.devices
        .retain(|d| d.records.len() >= cfg.min_device_records.max(1));
    let usable = data.records();
    progress(Progress::Grouped {
        devices: data.devices.len(),
        records: usable,
    });
    if usable < cfg.min_records.max(1) || data.devices.is_empty() {
        return Err(TrainError::TooLittleData {
            records: usable,
            devices: data.devices.len(),
            min_records: cfg.min_records,
            min_device_records: cfg.min_device_records,
        });
    }

    let mut left_out = (Vec::new(), Vec::new());
    let metrics = match &cfg.metrics {
        Some(m) => {
            let mut m = m.clone();
            m.sort();
            m.dedup();
            m
        }
        None => {
            let chosen = choose_metrics(&data);
            left_out = (chosen.constant, chosen.labels);
            chosen.metrics
        }
    };
    if metrics.is_empty() {
        return Err(TrainError::NoMetrics);
    }
    check_declared(&metrics, &cfg.declared_ranges).map_err(declared_error)?;
    if metrics.len() > vigil_model::features::MAX_SPEC_METRICS {
        return Err(TrainError::TooManyMetrics {
            found: metrics.len(),
            max: vigil_model::features::MAX_SPEC_METRICS,
        });
    }
    let spec = FeatureSpec {
        metrics: priors(&data, &metrics),
        interval_ms: typical_interval(&data),
        fast_window: cfg.fast_window,
        slow_window: cfg.slow_window,
        warmup: cfg.warmup,
        ..FeatureSpec::with_defaults(Vec::new())
    };
    let extractor = vigil_model::Extractor::new(spec.clone())
        .map_err(|e| TrainError::Model(ModelError::Spec(e)))?;
    let dim = extractor.dim();

    let warm_rows: usize = data
        .devices
        .iter()
        .map(|d| d.holdout_start.saturating_sub(cfg.warmup as usize))
        .sum();
    let stride = warm_rows.div_ceil(cfg.max_fit_rows).max(1);
    let FeatureRows {
        train: rows,
        train_rows,
        held_earlier,
        held_later,
    } = feature_rows(&data, &extractor, stride);
    let n = rows.len() / dim;
    progress(Progress::Extracted { rows: n });
    let needed = dim * MIN_ROWS_PER_FEATURE;
    if n < needed {
        // The smallest series whose training part (FleetData's split)
        // holds `needed` rows after warm-up.
        let warmup = cfg.warmup as usize;
        let mut one_device_records = needed + warmup;
        let train_part = |len: usize| len - (len as f64 * cfg.holdout_fraction).round() as usize;
        while train_part(one_device_records) < needed + warmup {
            one_device_records += 1;
        }
        return Err(TrainError::TooFewRows {
            rows: n,
            records: usable,
            devices: data.devices.len(),
            warmup: cfg.warmup,
            holdout_percent: (cfg.holdout_fraction * 1000.0).round() / 10.0,
            features: dim,
            factor: MIN_ROWS_PER_FEATURE,
            needed,
            one_device_records,
        });
    }
    let x = Array2::from_shape_vec((n, dim), rows)
        .map_err(|e| TrainError::Fit(format!("feature matrix: {e}")))?;

    let mut detector = match cfg.method {
        Method::Pca => fit_pca(&x, cfg.pca_variance)?,
        Method::RobustZ => fit_robust_z(&x),
    };
    let components = match &detector {
        Detector::Pca { components, .. } => components.len(),
        Detector::RobustZ { .. } => 0,
    };
    progress(Progress::Fitted { components });

    // Calibrate with the scoring arithmetic itself.
    let (from_ts, to_ts) = data.time_range();
    let header = |validation| ReleaseHeader {
        model: cfg.model.clone(),
        version: cfg.version,
        created_ts: cfg.created_ts,
        training: TrainingWindow {
            from_ts,
            to_ts,
            records: usable as u64,
            devices: data.devices.len() as u64,
            source: cfg.source.clone(),
        },
        validation,
        threshold: CALIBRATED_THRESHOLD,
    };
    let unvalidated = ValidationMetrics {
        estimated_false_alarm_rate: None,
        expected_false_alarm_rate: None,
        holdout_records: 0,
        false_alarm_rate: 0.0,
        detection_rate: None,
        mean_detection_delay: None,
    };
    let raw_scores = |detector: &Detector, x: &Array2<f64>| -> Result<Vec<f64>, TrainError> {
        let provisional = Model::from_payload(ReleasePayload {
            alarm: Default::default(),
            header: header(unvalidated.clone()),
            format: vigil_model::PAYLOAD_FORMAT,
            features: spec.clone(),
            detector: detector.clone(),
            novelty: None,
        })?;
        let mut scratch = Scratch::default();
        Ok(x.rows()
            .into_iter()
            .map(|row| {
                let row: Vec<f64> = row.to_vec();
                provisional.score_features(&row, &mut scratch).raw
            })
            .collect())
    };
    let target = cfg.target_false_alarm_rate;
    let mut raws = raw_scores(&detector, &x)?;
    let raw_scale = match cfg.calibration {
        Calibration::Quantile => quantile(&mut raws, 1.0 - target),
        Calibration::Trimmed => {
            let cut = tail_quantile(&mut raws.clone(), target).unwrap_or(f64::INFINITY);
            let kept: Vec<usize> = (0..raws.len()).filter(|&i| raws[i] <= cut).collect();
            if kept.len() >= needed && kept.len() < raws.len() {
                let trimmed = x.select(ndarray::Axis(0), &kept);
                detector = match cfg.method {
                    Method::Pca => fit_pca(&trimmed, cfg.pca_variance)?,
                    Method::RobustZ => fit_robust_z(&trimmed),
                };
                tail_quantile(&mut raw_scores(&detector, &trimmed)?, target)
            } else {
                Some(cut)
            }
        }
    }
    .unwrap_or(1.0)
    .max(1.0e-3);
    // Out of sample: the same extrapolation on the holdout rows, which the
    // fit never saw. A young fleet (a first model on minutes of history)
    // scores its holdout higher than its training rows; the larger of the
    // two keeps the realised rate near the target (training/EVALUATION.md,
    // "Calibration out of sample").
    let calibration_rows = n + (held_earlier.len() + held_later.len()) / dim;
    let calibrate = [held_earlier.as_slice(), held_later.as_slice()].concat();
    let as_matrix = |rows: Vec<f64>| -> Result<Option<Array2<f64>>, TrainError> {
        let n = rows.len() / dim;
        if n < dim * 10 {
            return Ok(None);
        }
        Array2::from_shape_vec((n, dim), rows)
            .map(Some)
            .map_err(|e| TrainError::Fit(format!("holdout matrix: {e}")))
    };
    let raw_scale = match (cfg.calibration, as_matrix(calibrate)?) {
        (Calibration::Trimmed, Some(held)) => {
            let mut raws = raw_scores(&detector, &held)?;
            let cut = tail_quantile(&mut raws.clone(), target).unwrap_or(f64::INFINITY);
            raws.retain(|&r| r <= cut);
            let out_of_sample = tail_quantile(&mut raws, target);
            raw_scale.max(out_of_sample.unwrap_or(0.0))
        }
        _ => raw_scale,
    };
    // The rate the threshold gives on the most recent rows alone (the
    // later half of every device's holdout, unseen by the fit), estimated
    // robustly to the anomalies an unlabelled window holds. Those rows also
    // took part in the calibration, so this is a check that the threshold
    // holds at the end of the window (a drift there raises it), not an
    // independent validation (one was tried and cost precision: halving
    // the calibration rows made it noisier, training/EVALUATION.md).
    let estimated_far = match as_matrix(held_later)? {
        Some(held) => tail_probability(raw_scores(&detector, &held)?, raw_scale, target),
        None => None,
    };
    // Each device's level of raw scores is measured against the same
    // average over the training rows (vigil_model::alarm, "Each device's
    // own level"), each row capped at the threshold's raw score: the rows
    // may hold unlabelled anomalies (the demo's first window does), and a
    // higher cap lets them raise the baseline (twice the threshold, as the
    // scorer's level allows, cost the demo's replays 0.01-0.015 precision;
    // eval/NAB.md, session 19).
    let cap = raw_scale * CALIBRATED_THRESHOLD / (1.0 - CALIBRATED_THRESHOLD);
    let train_raws = raw_scores(&detector, &x)?;
    let mut levels = Vec::with_capacity(train_rows.len());
    let mut from = 0;
    for &count in &train_rows {
        let mine = &train_raws[from.min(train_raws.len())..(from + count).min(train_raws.len())];
        from += count;
        if !mine.is_empty() {
            levels.push(mine.iter().map(|r| r.min(cap)).sum::<f64>() / mine.len() as f64);
        }
    }
    let baseline_raw = quantile(&mut levels, BASELINE_QUANTILE).unwrap_or(0.0);
    set_raw_scale(&mut detector, raw_scale);
    let alarm = AlarmPolicy {
        baseline_raw: if baseline_raw.is_finite() {
            baseline_raw.max(0.0)
        } else {
            0.0
        },
        // A threshold set on little evidence is uncertain: an open alarm
        // continues a little below it (vigil_model::alarm, "Sustain").
        sustain_ratio: AlarmPolicy::sustain_ratio_for(calibration_share(calibration_rows, target)),
        ..AlarmPolicy::default()
    };

    let mut novelty = NoveltyPolicy::default();
    let metric_names: Vec<String> = spec.metrics.iter().map(|m| m.name.clone()).collect();
    let mut ranges = training_ranges(&data, &metric_names, &novelty.config);
    declare(&mut ranges, &metric_names, &cfg.declared_ranges);
    novelty.training_ranges = Some(ranges);
    // Each metric's cycle, for the novelty's seasonal channel
    // (vigil_model::novelty, "season").
    novelty.seasons = Some(metric_periods(&data, &metric_names));
    // How far the release's own alerts are trusted rests on how much
    // evidence placed its threshold (vigil_model::combine, "Trust by alert
    // rate").
    novelty.trust = novelty.trust.for_calibration(calibration_rows, target);
    let payload = ReleasePayload {
        alarm,
        header: header(unvalidated),
        format: vigil_model::PAYLOAD_FORMAT,
        features: spec,
        detector,
        // One set of defaults for every release (training/EVALUATION.md,
        // "Trust by alert rate").
        novelty: Some(novelty),
    };
    let model = Model::from_payload(payload.clone())?;
    let holdout = evaluate(
        &model,
        &data,
        &[],
        &EvalOptions {
            holdout_only: true,
            ..EvalOptions::default()
        },
    );
    progress(Progress::Evaluated {
        false_alarm_rate: holdout.false_alarm_rate,
    });
    let mut payload = payload;
    payload.header.validation = ValidationMetrics {
        expected_false_alarm_rate: Some(target),
        estimated_false_alarm_rate: estimated_far,
        ..holdout.validation_metrics()
    };
    let bytes = serde_json::to_vec(&payload)
        .map_err(|e| TrainError::Fit(format!("encoding payload: {e}")))?
        .len();
    // Room for the envelope (key id, checksum, signature, names).
    let max = vigil_schemas::release::MAX_RELEASE_BYTES - 512;
    if bytes > max {
        return Err(TrainError::TooLarge { bytes, max });
    }
    let model = Model::from_payload(payload.clone())?;
    Ok(TrainedModel {
        payload,
        model,
        holdout,
        constant_metrics: left_out.0,
        label_metrics: left_out.1,
    })
}
