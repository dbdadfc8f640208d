//! Per-device feature extraction: the one definition of "what a record looks
//! like relative to its device's recent past" that the trainer, the cloud
//! scorer and the edge agent all run.
//!
//! For every metric named in the [`FeatureSpec`] a device keeps a small,
//! fixed-size [`MetricState`] (robust exponentially weighted statistics) and
//! each record yields [`FEATURES_PER_METRIC`] features per metric:
//!
//! | feature | definition | catches |
//! |---|---|---|
//! | `innovation` | `(x - fast_mean) / noise_sd` | spikes, steps, noise bursts |
//! | `trend` | `(fast_mean' - slow_mean) / total_sd` | level shifts, slow drift |
//! | `stuck` | length of the current run of repeated values | stuck sensors |
//! | `level` | `(x - slow_mean) / total_sd` | values outside the device's long-run range |
//!
//! plus one feature per record, last in the vector:
//!
//! | feature | definition | catches |
//! |---|---|---|
//! | `gap` | `max(0, Δts / typical_interval - 1)` | silences (missing data) |
//!
//! The typical interval is the device's EWMA of event-time steps (shrunk
//! towards the fleet prior `interval_ms` at first; steps are capped at 4×
//! the current estimate so one long silence does not redefine normal).
//! `noise_sd` comes from the EWMA of squared one-step deltas (white noise of
//! variance s² has E\[Δ²\] = 2s²), which a slow daily cycle barely moves, so a
//! device's own sample-to-sample noise is the yardstick rather than its
//! daily range. `total_sd` is the EW standard deviation around the slow mean
//! and does include the daily cycle: a drift is reported once it leaves the
//! device's usual range. `level` is the value itself against that long-run
//! distribution (a windowed-Gaussian z-score over an exponential window): it
//! sees a spike that is large for the device even when its sample-to-sample
//! noise is large too, and it stays up for as long as a shifted level has
//! not been absorbed by the slow mean, where `innovation` decays within a
//! few records. (Added in payload format 2; format-1 releases had three
//! features per metric.)
//!
//! Updates are winsorised at `clip_sigma` standard deviations once a device
//! is warm, so a single spike neither drags the means nor inflates the noise
//! estimate and mask the next one.
//!
//! # Cold start
//!
//! A device never seen before (or evicted, or reset by a model swap) starts
//! with empty state. Its first record scores all-zero features (there is
//! nothing to compare it with). After that its means are running averages
//! until a window's worth of records has been seen, and its noise and total
//! variances are shrunk towards the fleet priors in the spec (medians over
//! the training fleet): with `n` records seen, the device's own estimate
//! weighs `n / (n + warmup)` and the prior the rest, until `n` reaches
//! `slow_window`, after which only the device's own statistics count.
//! Updates are winsorised only after `warmup` records. A new device is
//! therefore judged against a typical fleet member's variability around its
//! own values at first, and against its own variability soon after.
//!
//! # Determinism
//!
//! Only `+ - * /`, `sqrt`, comparisons and `abs` are used: IEEE 754 rounds
//! them exactly, so x86-64, aarch64 and armv7 produce the same bits. No
//! `exp`/`ln`/`powf` (their results come from the platform's libm).

use serde::{Deserialize, Serialize};
use vigil_schemas::Telemetry;

/// Features computed for each metric in the spec.
pub const FEATURES_PER_METRIC: usize = 4;
/// Names of the per-metric features, in vector order.
pub const FEATURE_NAMES: [&str; FEATURES_PER_METRIC] = ["innovation", "trend", "stuck", "level"];
/// Features computed once per record (after all per-metric ones): `gap`.
pub const DEVICE_FEATURES: usize = 1;
/// Cap of one interval step relative to the current estimate.
const INTERVAL_STEP_CAP: f64 = 4.0;
/// Most metrics a spec may name (bounds per-device state and release size).
pub const MAX_SPEC_METRICS: usize = 32;
/// Features are clamped to ±this, so one absurd value cannot dominate a
/// fitted detector's arithmetic (it still scores as maximally anomalous).
pub const FEATURE_LIMIT: f64 = 1.0e3;

/// Which metrics to extract features from and how (signed into a release).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Metrics in byte order of their names, without duplicates. Metrics a
    /// record carries beyond these are ignored.
    pub metrics: Vec<MetricSpec>,
    /// Span (records) of the fast EWMA mean.
    pub fast_window: u32,
    /// Span (records) of the slow EWMA mean, variance and noise estimate.
    pub slow_window: u32,
    /// Records after which a device's own statistics replace fleet priors.
    pub warmup: u32,
    /// Updates of a warm device are winsorised at this many sd.
    pub clip_sigma: f64,
    /// The stuck feature saturates at this run length.
    pub stuck_cap: u32,
    /// Fleet median of the time between a device's records, ms (prior of
    /// the `gap` feature).
    pub interval_ms: f64,
}

/// One metric of the spec, with fleet priors used during a device's warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// Metric name as in the telemetry.
    pub name: String,
    /// Fleet median of the per-device noise variance.
    pub noise_var: f64,
    /// Fleet median of the per-device total variance (includes cycles).
    pub total_var: f64,
}

/// Why a feature spec cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("feature spec names no metrics")]
    NoMetrics,
    #[error("feature spec names {0} metrics; at most {MAX_SPEC_METRICS} allowed")]
    TooManyMetrics(usize),
    #[error("feature spec metrics are not strictly sorted by name at {0:?}")]
    Unsorted(String),
    #[error("feature spec metric {name:?} has a non-positive or non-finite prior {what}")]
    BadPrior { name: String, what: &'static str },
    #[error("feature spec {what} is {value}; {why}")]
    BadParameter {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

impl FeatureSpec {
    /// A spec with the default windows for `metrics` (sorted and deduplicated
    /// here) and unit priors; the trainer replaces the priors.
    pub fn with_defaults(metrics: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<String> = metrics.into_iter().collect();
        names.sort();
        names.dedup();
        FeatureSpec {
            metrics: names
                .into_iter()
                .map(|name| MetricSpec {
                    name,
                    noise_var: 1.0,
                    total_var: 1.0,
                })
                .collect(),
            fast_window: 8,
            slow_window: 1024,
            warmup: 32,
            clip_sigma: 6.0,
            stuck_cap: 64,
            interval_ms: 1000.0,
        }
    }

    /// Length of the feature vector.
    pub fn dim(&self) -> usize {
        self.metrics.len() * FEATURES_PER_METRIC + DEVICE_FEATURES
    }

    /// Checks everything the extractor relies on.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.metrics.is_empty() {
            return Err(SpecError::NoMetrics);
        }
        if self.metrics.len() > MAX_SPEC_METRICS {
            return Err(SpecError::TooManyMetrics(self.metrics.len()));
        }
        for pair in self.metrics.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(SpecError::Unsorted(pair[1].name.clone()));
            }
        }
        for m in &self.metrics {
            for (what, v) in [("noise_var", m.noise_var), ("total_var", m.total_var)] {
                if !(v.is_finite() && v > 0.0) {
                    return Err(SpecError::BadPrior {
                        name: m.name.clone(),
                        what,
                    });
                }
            }
        }
        let window_ok = |w: u32| (1..=1_000_000).contains(&w);
        for (what, w) in [
            ("fast_window", self.fast_window),
            ("slow_window", self.slow_window),
            ("warmup", self.warmup),
            ("stuck_cap", self.stuck_cap),
        ] {
            if !window_ok(w) {
                return Err(SpecError::BadParameter {
                    what,
                    value: w.to_string(),
                    why: "must lie in 1..=1000000",
                });
            }
        }
        if !(self.interval_ms.is_finite() && self.interval_ms > 0.0) {
            return Err(SpecError::BadParameter {
                what: "interval_ms",
                value: self.interval_ms.to_string(),
                why: "must be a positive finite number",
            });
        }
        if !(self.clip_sigma.is_finite() && self.clip_sigma >= 1.0) {
            return Err(SpecError::BadParameter {
                what: "clip_sigma",
                value: self.clip_sigma.to_string(),
                why: "must be a finite number >= 1",
            });
        }
        Ok(())
    }

    /// Whether the update rules (windows, clipping, stuck cap) are equal, so
    /// one metric's state means the same under both specs.
    pub fn same_windows(&self, other: &FeatureSpec) -> bool {
        self.fast_window == other.fast_window
            && self.slow_window == other.slow_window
            && self.warmup == other.warmup
            && self.clip_sigma == other.clip_sigma
            && self.stuck_cap == other.stuck_cap
    }

    /// Whether per-device state built under `self` means the same under
    /// `other` (same metrics in the same order, same windows). Priors do not
    /// matter: they are read at scoring time, never stored in state.
    pub fn state_compatible(&self, other: &FeatureSpec) -> bool {
        self.same_windows(other)
            && self.metrics.len() == other.metrics.len()
            && self
                .metrics
                .iter()
                .zip(&other.metrics)
                .all(|(a, b)| a.name == b.name)
    }
}

/// A validated spec with derived constants, ready for the hot path.
#[derive(Debug, Clone)]
pub struct Extractor {
    spec: FeatureSpec,
    fast_alpha: f64,
    slow_alpha: f64,
}

/// Robust EW statistics of one metric of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricState {
    /// Values observed (saturating).
    pub n: u32,
    /// Current run of repeated values.
    pub run: u32,
    /// Last observed value.
    pub last: f64,
    /// Fast EWMA mean.
    pub fast: f64,
    /// Slow EWMA mean.
    pub slow: f64,
    /// EW variance around the slow mean.
    pub slow_var: f64,
    /// EWMA of squared one-step deltas.
    pub step_sq: f64,
}

/// A device's state: one [`MetricState`] per spec metric plus the last
/// sequence number applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    /// Highest `seq` whose record updated this state.
    pub last_seq: Option<u64>,
    /// Event time of that record.
    pub last_ts: Option<u64>,
    /// Intervals observed (saturating).
    pub intervals: u32,
    /// EWMA of the interval between records, ms.
    pub interval: f64,
    /// In spec metric order.
    pub metrics: Vec<MetricState>,
    /// The device's alarm (see [`crate::alarm`]).
    pub alarm: crate::alarm::AlarmTrack,
    /// The device's novelty and trust ([`crate::combine`]), from its first
    /// fresh record under a release with a novelty policy.
    pub novelty: Option<Box<crate::combine::DeviceNovelty>>,
}

impl DeviceState {
    /// Empty state for a spec with `metrics` metrics.
    pub fn new(metrics: usize) -> Self {
        DeviceState {
            last_seq: None,
            last_ts: None,
            intervals: 0,
            interval: 0.0,
            metrics: vec![MetricState::default(); metrics],
            alarm: crate::alarm::AlarmTrack::default(),
            novelty: None,
        }
    }

    /// Bytes this device's state holds (inline and on the heap; the
    /// allocator's overhead not counted): what a scorer keeps per device.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.metrics.capacity() * std::mem::size_of::<MetricState>()
            + self
                .novelty
                .as_deref()
                .map_or(0, crate::combine::DeviceNovelty::bytes)
    }

    /// Whether a record with `seq` is new for this device (duplicates and
    /// replays are scored against the state but do not update it).
    pub fn is_new(&self, seq: u64) -> bool {
        self.last_seq.is_none_or(|last| seq > last)
    }
}

/// EWMA weight for a span of `window` records (the usual 2 / (N + 1)).
fn alpha(window: u32) -> f64 {
    2.0 / (f64::from(window) + 1.0)
}

/// Relative tolerance under which two consecutive values count as repeated.
const STUCK_TOLERANCE: f64 = 1.0e-9;
/// Floor of any variance, relative to the metric's prior.
const VAR_FLOOR_FRACTION: f64 = 1.0e-4;

impl Extractor {
    /// Validates `spec` and derives the constants.
    pub fn new(spec: FeatureSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(Extractor {
            fast_alpha: alpha(spec.fast_window),
            slow_alpha: alpha(spec.slow_window),
            spec,
        })
    }

    /// The spec this extractor implements.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Length of the feature vector.
    pub fn dim(&self) -> usize {
        self.spec.dim()
    }

    /// Fresh state for a device.
    pub fn new_state(&self) -> DeviceState {
        DeviceState::new(self.spec.metrics.len())
    }

    /// Computes the features of `record` into `out` (length [`Self::dim`]; the
    /// last value is the per-record `gap`)
    /// against `state`, and advances `state` when the record is new for the
    /// device. Returns whether the state was advanced.
    ///
    /// Metrics the spec names but the record lacks (or carries as NaN/∞)
    /// yield zero features and leave that metric's state untouched.
    pub fn extract(&self, state: &mut DeviceState, record: &Telemetry, out: &mut [f64]) -> bool {
        self.extract_with_values(state, record, out, &mut [])
    }

    /// [`Self::extract`], also writing each spec metric's value in the
    /// record (`None` when it lacks it) into `found` (as far as it is
    /// long), so that later stages read them without looking them up again.
    pub fn extract_with_values(
        &self,
        state: &mut DeviceState,
        record: &Telemetry,
        out: &mut [f64],
        found: &mut [Option<f64>],
    ) -> bool {
        let commit = state.is_new(record.seq);
        found.iter_mut().for_each(|v| *v = None);
        out.iter_mut().for_each(|f| *f = 0.0);
        // Both sides are sorted by name: one merge walk, no lookups.
        let mut values = record.metrics.iter().peekable();
        for (i, (spec, st)) in self
            .spec
            .metrics
            .iter()
            .zip(state.metrics.iter_mut())
            .enumerate()
        {
            let mut value = None;
            while let Some((name, v)) = values.peek() {
                match name.as_str().cmp(spec.name.as_str()) {
                    std::cmp::Ordering::Less => {
                        values.next();
                    }
                    std::cmp::Ordering::Equal => {
                        value = Some(**v);
                        values.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            if let Some(slot) = found.get_mut(i) {
                *slot = value;
            }
            let Some(x) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            // A buffer shorter than `dim()` is a caller's bug: the features
            // that do not fit are left out rather than panicking.
            let Some(slot) = out.get_mut(i * FEATURES_PER_METRIC..(i + 1) * FEATURES_PER_METRIC)
            else {
                break;
            };
            let next = self.observe(spec, st, x, slot);
            if commit {
                *st = next;
            }
        }
        let gap = self.gap(state, record.ts, commit);
        if let Some(slot) = out.last_mut() {
            *slot = gap;
        }
        if commit {
            state.last_seq = Some(record.seq);
            state.last_ts = Some(record.ts);
        }
        commit
    }

    /// The `gap` feature of a record at `ts`; advances the interval estimate
    /// when `commit`.
    fn gap(&self, state: &mut DeviceState, ts: u64, commit: bool) -> f64 {
        let Some(last) = state.last_ts else {
            return 0.0;
        };
        // Out-of-order event times count as no gap.
        let step = ts.saturating_sub(last) as f64;
        let n = f64::from(state.intervals);
        let own = n / (n + f64::from(self.spec.warmup));
        let typical = (own * state.interval + (1.0 - own) * self.spec.interval_ms).max(1.0);
        let feature = (step / typical - 1.0).clamp(0.0, FEATURE_LIMIT);
        if commit {
            let capped = step.min(INTERVAL_STEP_CAP * typical);
            let a = self.slow_alpha.max(1.0 / (n + 1.0));
            state.interval += a * (capped - state.interval);
            state.intervals = state.intervals.saturating_add(1);
        }
        feature
    }

    /// Features of value `x` for one metric, and the state after it.
    fn observe(&self, spec: &MetricSpec, st: &MetricState, x: f64, out: &mut [f64]) -> MetricState {
        if st.n == 0 {
            return MetricState {
                n: 1,
                run: 0,
                last: x,
                fast: x,
                slow: x,
                slow_var: 0.0,
                step_sq: 0.0,
            };
        }
        let warmup = self.spec.warmup;
        let warm = st.n >= warmup;
        // Weight of the device's own variance estimates: shrinkage towards
        // the fleet priors with the strength of `warmup` records, until the
        // slow statistics span a whole window.
        let n = f64::from(st.n);
        let own = if st.n >= self.spec.slow_window {
            1.0
        } else {
            n / (n + f64::from(warmup))
        };
        let prior = 1.0 - own;
        // Running means until a window's worth of records has been seen,
        // so a new device's averages do not cling to its first value.
        let fast_alpha = self.fast_alpha.max(1.0 / (n + 1.0));
        let slow_alpha = self.slow_alpha.max(1.0 / (n + 1.0));
        let noise_var = (own * (st.step_sq * 0.5) + prior * spec.noise_var)
            .max(spec.noise_var * VAR_FLOOR_FRACTION);
        let total_var = (own * st.slow_var + prior * spec.total_var).max(noise_var);
        let noise_sd = noise_var.sqrt();
        let total_sd = total_var.sqrt();

        let clip = |d: f64, sd: f64| {
            if warm {
                let lim = self.spec.clip_sigma * sd;
                d.clamp(-lim, lim)
            } else {
                d
            }
        };

        let innovation = (x - st.fast) / noise_sd;
        let fast = st.fast + fast_alpha * clip(x - st.fast, noise_sd);
        let trend = (fast - st.slow) / total_sd;

        let delta = x - st.last;
        let repeated = delta.abs() <= STUCK_TOLERANCE * x.abs().max(1.0);
        let run = if repeated {
            st.run.saturating_add(1).min(self.spec.stuck_cap)
        } else {
            0
        };

        let a = slow_alpha;
        let dev = clip(x - st.slow, total_sd);
        let slow = st.slow + a * dev;
        let slow_var = (1.0 - a) * (st.slow_var + a * dev * dev);
        let step = clip(delta, noise_sd * std::f64::consts::SQRT_2);
        let step_sq = st.step_sq + a * (step * step - st.step_sq);

        out[0] = innovation.clamp(-FEATURE_LIMIT, FEATURE_LIMIT);
        out[1] = trend.clamp(-FEATURE_LIMIT, FEATURE_LIMIT);
        out[2] = f64::from(run);
        // Against the long-run statistics before this value updates them.
        out[3] = ((x - st.slow) / total_sd).clamp(-FEATURE_LIMIT, FEATURE_LIMIT);

        MetricState {
            n: st.n.saturating_add(1),
            run,
            last: x,
            fast,
            slow,
            slow_var,
            step_sq,
        }
    }

    /// The "training way": features of one device's stored stream, in
    /// order, from a cold state. `records` must be one device's records in
    /// `seq` order; rows are appended to `rows` (`dim()` values per record).
    pub fn extract_series<'a>(
        &self,
        records: impl IntoIterator<Item = &'a Telemetry>,
        rows: &mut Vec<f64>,
    ) {
        let mut state = self.new_state();
        let dim = self.dim();
        for record in records {
            let start = rows.len();
            rows.resize(start + dim, 0.0);
            self.extract(&mut state, record, &mut rows[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rec(seq: u64, metrics: &[(&str, f64)]) -> Telemetry {
        let m: BTreeMap<String, f64> = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Telemetry::new("d", seq, seq * 1000, m)
    }

    fn extractor(names: &[&str]) -> Extractor {
        Extractor::new(FeatureSpec::with_defaults(
            names.iter().map(|s| s.to_string()),
        ))
        .expect("valid spec")
    }

    #[test]
    fn spike_scores_high_innovation_and_does_not_poison_the_noise_estimate() {
        let mut spec = FeatureSpec::with_defaults(["a".to_string()]);
        // Priors like the device (noise sd 0.1), as training would set them.
        spec.metrics[0].noise_var = 0.01;
        spec.metrics[0].total_var = 0.01;
        let ex = Extractor::new(spec).expect("valid spec");
        let mut st = ex.new_state();
        let mut out = vec![0.0; ex.dim()];
        for i in 0..200u64 {
            let noise = if i % 2 == 0 { 0.1 } else { -0.1 };
            ex.extract(&mut st, &rec(i, &[("a", 10.0 + noise)]), &mut out);
        }
        let before = st.metrics[0].step_sq;
        ex.extract(&mut st, &rec(200, &[("a", 20.0)]), &mut out);
        assert!(out[0] > 20.0, "innovation {}", out[0]);
        assert!(
            st.metrics[0].step_sq < before * 2.0,
            "winsorised noise update"
        );
    }

    #[test]
    fn level_measures_the_value_against_the_long_run_distribution() {
        let mut spec = FeatureSpec::with_defaults(["a".to_string()]);
        spec.metrics[0].noise_var = 1.0;
        spec.metrics[0].total_var = 1.0;
        let ex = Extractor::new(spec).expect("valid spec");
        let mut st = ex.new_state();
        let mut out = vec![0.0; ex.dim()];
        // A noisy series around 100 with sd 1 (a deterministic ±1 pattern).
        for i in 0..2000u64 {
            let noise = if (i * 7) % 3 == 0 { 1.0 } else { -0.5 };
            ex.extract(&mut st, &rec(i, &[("a", 100.0 + noise)]), &mut out);
        }
        assert!(out[3].abs() < 2.0, "typical value: level {}", out[3]);
        // A shift to 110 (10 sd): level sees it at once and keeps seeing it
        // after the fast mean (and so the innovation) has caught up.
        ex.extract(&mut st, &rec(2000, &[("a", 110.0)]), &mut out);
        assert!(out[3] > 8.0, "level {}", out[3]);
        for i in 2001..2040u64 {
            ex.extract(&mut st, &rec(i, &[("a", 110.0)]), &mut out);
        }
        assert!(out[0].abs() < 1.0, "innovation decayed: {}", out[0]);
        assert!(out[3] > 3.0, "level still up: {}", out[3]);
    }

    #[test]
    fn stuck_run_counts_repeats_and_saturates() {
        let ex = extractor(&["a"]);
        let mut st = ex.new_state();
        let mut out = vec![0.0; ex.dim()];
        for i in 0..100u64 {
            ex.extract(&mut st, &rec(i, &[("a", 5.0)]), &mut out);
        }
        assert_eq!(out[2], f64::from(ex.spec().stuck_cap));
    }

    #[test]
    fn missing_metric_gives_zero_features_and_keeps_state() {
        let ex = extractor(&["a", "b"]);
        let mut st = ex.new_state();
        let mut out = vec![0.0; ex.dim()];
        ex.extract(&mut st, &rec(1, &[("a", 1.0), ("b", 2.0)]), &mut out);
        let b_before = st.metrics[1];
        ex.extract(&mut st, &rec(2, &[("a", 3.0), ("zz", 9.0)]), &mut out);
        assert_eq!(&out[4..8], &[0.0; FEATURES_PER_METRIC]);
        assert_eq!(st.metrics[1], b_before);
        assert_eq!(st.metrics[0].n, 2);
    }

    #[test]
    fn duplicates_do_not_advance_state() {
        let ex = extractor(&["a"]);
        let mut st = ex.new_state();
        let mut out = vec![0.0; ex.dim()];
        assert!(ex.extract(&mut st, &rec(5, &[("a", 1.0)]), &mut out));
        let snapshot = st.clone();
        assert!(!ex.extract(&mut st, &rec(5, &[("a", 7.0)]), &mut out));
        assert!(!ex.extract(&mut st, &rec(3, &[("a", 7.0)]), &mut out));
        assert_eq!(st, snapshot);
    }

    #[test]
    fn spec_validation_names_the_problem() {
        let mut spec = FeatureSpec::with_defaults(["b".to_string(), "a".to_string()]);
        spec.validate().expect("sorted by constructor");
        spec.metrics.swap(0, 1);
        assert!(matches!(spec.validate(), Err(SpecError::Unsorted(n)) if n == "a"));
        let mut spec = FeatureSpec::with_defaults(["a".to_string()]);
        spec.metrics[0].noise_var = 0.0;
        assert!(spec
            .validate()
            .expect_err("must fail")
            .to_string()
            .contains("noise_var"));
    }
}
