//! How a release's score and each metric's novelty make one alarm
//! decision per record, per device.
//!
//! Two detectors look at every record:
//!
//! - the **release's score** (`crate::detector`, PCA over the device's
//!   features, with each device's own level, `crate::alarm`): calibrated
//!   on the fleet's training rows, it sees cross-metric structure, stuck
//!   sensors and missing data, and it assumes the training rows showed
//!   the spread of normal behaviour;
//! - the **novelty** (`crate::novelty`): per metric, how surprising a
//!   value or a step is against everything the same device has shown
//!   (cells and transitions at three resolutions of the metric's range
//!   over the training rows, [`NoveltyPolicy::training_ranges`], so it
//!   speaks from a device's first record; a policy without them uses the
//!   range the device showed in its first
//!   [`NoveltyPolicy::range_records`] records). It learns each device's
//!   own, often heavy-tailed, behaviour, but on a device whose normal
//!   behaviour keeps wandering into new cells it raises routine alerts.
//!
//! Each is right where the other is weak, so neither is trusted blindly.
//! Per device, each keeps an exponentially weighted rate of its own alert
//! **onsets** (an alert after at least `close_after` calm records while
//! the device is not in alarm: what would open a new alarm; window
//! [`TrustPolicy::window`] records; an alert inside an open alarm, as a
//! long fault's wavering score gives, opens nothing and is not counted,
//! since session 25). A
//! device's anomalies are rare by definition: a detector whose onsets on a
//! device run above its bound is describing that device's normal
//! behaviour. So a record is an alert when
//!
//! - the release's judged score reaches the threshold while the release's
//!   onset rate on the device is at most [`TrustPolicy::release_onsets`]
//!   (judged at the alert's onset: an alert within `close_after` records
//!   of the release's last one counts if that one did, so the onset that
//!   opened an alarm does not cut it short), or
//! - the novelty reaches its alert level while its onset rate is at most
//!   [`TrustPolicy::novelty_onsets`], or, above that, while the release's
//!   judged score is at least [`TrustPolicy::gate`] × the threshold (the
//!   default gate, 1, asks for a release alert on the same record), or
//! - (since session 27) the drift watch ([`drift`]) sees a watched metric's
//!   smoothed value move a further [`drift::DriftPolicy::widths`] of the
//!   range the device itself held over its first records beyond it: an
//!   onset of its own, which no trust gates, since it alerts once per
//!   such move, or
//! - (since session 28) the jump watch ([`jump`]) sees the release's raw
//!   score (after the device's level) leap far above what the release has
//!   been saying of the device, while such leaps are rare on it.
//!
//! So an untrusted detector's alert counts only where the other detector
//! alerts on the same record too (the second rule covers an untrusted
//! release as well), with one exception since session 26: an untrusted
//! release's alert stands alone on a record whose excess (its raw score
//! after the device's level, over the raw score at the threshold) is at
//! least [`TrustPolicy::release_break`] times the largest the device
//! showed before the release's current alert run. A release that cries
//! wolf at a device's daily cycle has placed its threshold too low for
//! that device, but a sensor stuck on one value scores thousands of times
//! higher than the cycle ever did, and the novelty, which judges values,
//! not runs, does not see it. Each such record must clear the bar itself,
//! so the voice is not carried into the episode's wake. The release starts trusted (it was calibrated on the
//! fleet), as far as its calibration's evidence goes: the trainer scales
//! the release's bound by the exceedances its threshold's rows could show
//! ([`TrustPolicy::for_calibration`]), but never below the onset rate a
//! release keeping its false-alarm promise can show in one window
//! ([`TrustPolicy::promised_onsets`]): a release calibrated on a few
//! hundred rows loses its voice once it alerts more often than its target
//! allows (at 0.1 %, a fourth onset within about a window), while a
//! fleet's keeps the whole bound. The novelty's rate starts at
//! [`TrustPolicy::novelty_start`], above its bound, at a device's first
//! record and decays from there (the warm-up records, without training
//! ranges, count as calm), so the novelty earns its voice by a calm
//! stretch; the trainer shrinks that start with the same calibration
//! share, down to the bound, so a release on a few hundred rows of one
//! device (whose own bound needs the novelty's agreement soonest) does not
//! also silence the novelty for the first 1,400 records.
//!
//! Chosen on the tuning half of NAB, the demo replay's tuning seed and
//! the synthetic tuning fleets (`training/EVALUATION.md`, "Trust by alert
//! rate"; eval/NAB.md, sessions 16 to 18; the start's scaling on NAB's
//! tuning half and a corpus of anomalies injected into it, session 22). Scoring uses only +, −, ×
//! and ÷ on f64, so the edge and the cloud decide the same (the trainer's
//! [`TrustPolicy::promised_onsets`] takes an `exp`, once, to write the
//! bound into the release).

use serde::{Deserialize, Serialize};

use crate::novelty::{alarm_product, MetricNovelty, NoveltyConfig, NoveltyState, RangeWarmup};

pub mod drift;
pub mod jump;
mod trust;
use drift::{Anchor, DriftPolicy, DriftState};
use jump::{JumpPolicy, JumpState};
use trust::Onsets;
pub use trust::{
    calibration_share, TrustPolicy, FULL_CALIBRATION_EXCEEDANCES, NORMAL_COUNT_MEAN,
    PROMISE_SIGNIFICANCE, RELEASE_BREAK,
};

/// The novelty half of a release (signed into it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoveltyPolicy {
    /// The novelty detector's settings.
    pub config: NoveltyConfig,
    /// A device's first records that fix its ranges (the novelty abstains
    /// until then).
    pub range_records: u32,
    /// When each detector's alerts stand alone.
    pub trust: TrustPolicy,
    /// Each spec metric's ranges over the training rows (every training
    /// device's own ranges, joined), in spec order: every device's novelty
    /// starts from them at its first record. Absent, each device's first
    /// `range_records` records fix its own ranges.
    #[serde(default)]
    pub training_ranges: Option<Vec<MetricNovelty>>,
    /// Each spec metric's period in ms (0: none found), in spec order, for
    /// the seasonal channel (`novelty::season`): the trainer's estimate
    /// from the training rows. Like the ranges, a device keeps the periods
    /// it started with across swaps that keep its state.
    #[serde(default)]
    pub seasons: Option<Vec<u64>>,
    /// When the drift watch alerts ([`drift`]; absent: off).
    #[serde(default = "DriftPolicy::off")]
    pub drift: DriftPolicy,
    /// When the jump watch alerts ([`jump`]; absent: off).
    #[serde(default = "JumpPolicy::off")]
    pub jump: JumpPolicy,
}

impl Default for NoveltyPolicy {
    fn default() -> Self {
        Self {
            config: NoveltyConfig::default(),
            range_records: 300,
            trust: TrustPolicy::default(),
            training_ranges: None,
            seasons: None,
            drift: DriftPolicy::default(),
            jump: JumpPolicy::default(),
        }
    }
}

/// Why a novelty policy cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoveltyPolicyError {
    #[error("novelty policy needs 1 to 64 resolutions of 1 to 64 cells, got {0:?}")]
    Resolutions(Vec<u16>),
    #[error("novelty policy {what} {value} is out of range")]
    Value { what: &'static str, value: f64 },
    #[error(
        "novelty policy training_ranges hold a range that is not finite with a positive width"
    )]
    TrainingRanges,
    #[error(
        "novelty policy has training ranges for {found} metrics, the feature spec names {metrics}"
    )]
    TrainingRangesCount { found: usize, metrics: usize },
    #[error("novelty policy has periods for {found} metrics, the feature spec names {metrics}")]
    SeasonsCount { found: usize, metrics: usize },
    #[error("novelty policy drift widths {0} must be 0 or a finite positive number")]
    DriftWidths(f64),
}

impl NoveltyPolicy {
    /// Whether devices' novelty state learnt under `old` carries over to
    /// `new`: the same settings, drift watch and trust; the training ranges may differ
    /// (a device keeps the ranges it started with, which its counts are
    /// cells of; devices first seen under `new` take its ranges), and so
    /// may the two trust values the trainer sets from each release's
    /// calibration rows ([`TrustPolicy::for_calibration`]): the release's
    /// bound, which only bounds the rate a device keeps, and the novelty's
    /// starting rate, which only a device seen for the first time takes.
    /// (Until session 30 a different starting rate dropped every device's
    /// counts at each retrain on another number of rows: eval/NAB.md,
    /// session 30, rule 27.)
    pub fn state_compatible(old: Option<&Self>, new: Option<&Self>) -> bool {
        match (old, new) {
            (Some(a), Some(b)) => {
                let rates = |t: &TrustPolicy| TrustPolicy {
                    release_onsets: 0.0,
                    novelty_start: 0.0,
                    ..*t
                };
                a.config == b.config
                    && a.drift == b.drift
                    && a.jump == b.jump
                    && a.range_records == b.range_records
                    && rates(&a.trust) == rates(&b.trust)
            }
            (None, None) => true,
            _ => false,
        }
    }

    /// Each of `metrics` metrics' period (0 where none is carried, or when
    /// the release carries periods for another number of metrics).
    pub fn periods(&self, metrics: usize) -> Vec<u64> {
        match &self.seasons {
            Some(p) if p.len() == metrics => p.clone(),
            _ => vec![0; metrics],
        }
    }

    /// Checks the policy's values.
    pub fn check(&self) -> Result<(), NoveltyPolicyError> {
        let c = &self.config;
        if c.resolutions.is_empty()
            || c.resolutions.len() > 64
            || c.resolutions.iter().any(|&r| r == 0 || r > 64)
        {
            return Err(NoveltyPolicyError::Resolutions(c.resolutions.clone()));
        }
        let bad = |what, value: f64| Err(NoveltyPolicyError::Value { what, value });
        let t = &self.trust;
        if !(1..=1_000).contains(&c.smooth_rows) {
            return bad("smooth_rows", c.smooth_rows as f64);
        }
        if !(1..=64).contains(&c.alarm_bits) {
            return bad("alarm_bits", f64::from(c.alarm_bits));
        }
        if !(c.prior_cells.is_finite() && c.prior_cells >= 1.0) {
            return bad("prior_cells", c.prior_cells);
        }
        if c.season_slots > crate::novelty::MAX_SEASON_SLOTS {
            return bad("season_slots", f64::from(c.season_slots));
        }
        if c.margin_ranges > 64 {
            return bad("margin_ranges", f64::from(c.margin_ranges));
        }
        if self.range_records == 0 {
            return bad("range_records", 0.0);
        }
        if t.window == 0 {
            return bad("trust.window", 0.0);
        }
        for (what, v) in [
            ("trust.release_onsets", t.release_onsets),
            ("trust.novelty_onsets", t.novelty_onsets),
            ("trust.novelty_start", t.novelty_start),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(what, v);
            }
        }
        if !(t.gate.is_finite() && t.gate >= 0.0) {
            return bad("trust.gate", t.gate);
        }
        // Below 1 the bar would let an untrusted release's routine alerts
        // through; 0 turns the break off.
        if !(t.release_break.is_finite() && (t.release_break == 0.0 || t.release_break >= 1.0)) {
            return bad("trust.release_break", t.release_break);
        }
        if !self.drift.is_valid() {
            return Err(NoveltyPolicyError::DriftWidths(self.drift.widths));
        }
        if let Some((what, value)) = self.jump.invalid() {
            return bad(what, value);
        }
        if let Some(r) = &self.training_ranges {
            if !r.iter().all(MetricNovelty::is_valid) {
                return Err(NoveltyPolicyError::TrainingRanges);
            }
        }
        Ok(())
    }
}

/// One device's novelty and trust (part of its scoring state, created at
/// its first fresh record under a release with a novelty policy).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNovelty {
    /// Fresh records seen.
    records: u32,
    /// Until the ranges are fixed: each metric's warm-up.
    warmup: Vec<RangeWarmup>,
    /// After: each metric's ranges and counts.
    ranges: Vec<MetricNovelty>,
    states: Vec<NoveltyState>,
    /// Until the ranges are fixed: each metric's period (0: none), as the
    /// release had it when the device was first seen. After, each metric's
    /// state holds its own.
    periods: Vec<u64>,
    trust: TrustState,
    /// Each metric's anchor for the drift watch, learnt over the device's
    /// first `range_records` records.
    anchors: Vec<Anchor>,
    drift: DriftState,
    jump: JumpState,
}

/// Each detector's onset rate and calm run on one device.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TrustState {
    release_rate: f64,
    novelty_rate: f64,
    /// Records since each detector last alerted (saturating).
    release_calm: u32,
    novelty_calm: u32,
    /// The release's last alert counted on its own (so its alerts keep
    /// the alarm it opened while they run, even once the onset that
    /// opened it has lifted its rate above the bound).
    release_voice: bool,
    /// The largest excess the release has shown on the device
    /// ([`ReleaseSide::excess`]), and what it was when the release's current
    /// alert run began: the bar an untrusted release's alert is measured
    /// against ([`TrustPolicy::release_break`]).
    release_peak: f64,
    release_bar: f64,
}

/// What the release and the device's alarm say of a record, for
/// [`DeviceNovelty::step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReleaseSide {
    /// The release's judged score (after the device's own level).
    pub judged: f64,
    /// The release's threshold.
    pub threshold: f64,
    /// The alarm policy's calm run that closes an alarm.
    pub close_after: u32,
    /// The device is in alarm before this record.
    pub in_alarm: bool,
    /// The release's raw score after the device's level over the raw score
    /// at the threshold (1 at the threshold).
    pub excess: f64,
}

/// What the combination made of one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    /// The record is an alert (it opens or keeps an alarm).
    pub alert: bool,
    /// The novelty score in [0, 1] (0.5 at its alert level); `None` while
    /// the device's ranges are not fixed yet.
    pub novelty: Option<f64>,
    /// Whether each detector's alerts stood alone at this record.
    pub release_trusted: bool,
    pub novelty_trusted: bool,
    /// When the alert stands on the novelty (the release alone would not
    /// have made one): the most surprising metric, by spec index.
    pub novel_metric: Option<usize>,
}

impl DeviceNovelty {
    /// Bytes this device's novelty and trust hold (inline and on the heap;
    /// the allocator's overhead not counted), for sizing a scorer.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.warmup.iter().map(RangeWarmup::bytes).sum::<usize>()
            + (self.warmup.capacity() - self.warmup.len()) * std::mem::size_of::<RangeWarmup>()
            + self.ranges.capacity() * std::mem::size_of::<MetricNovelty>()
            + self.states.iter().map(NoveltyState::bytes).sum::<usize>()
            + (self.states.capacity() - self.states.len()) * std::mem::size_of::<NoveltyState>()
            + self.periods.capacity() * std::mem::size_of::<u64>()
            + self.anchors.capacity() * std::mem::size_of::<Anchor>()
    }

    /// A device seen for the first time, with `metrics` metrics.
    pub fn new(policy: &NoveltyPolicy, metrics: usize) -> Self {
        let trained = policy
            .training_ranges
            .as_ref()
            .filter(|r| r.len() == metrics);
        let periods = policy.periods(metrics);
        let (warmup, ranges, states, periods) = match trained {
            Some(r) => (
                Vec::new(),
                r.clone(),
                periods
                    .iter()
                    .map(|&period| NoveltyState::with_period(&policy.config, period))
                    .collect(),
                Vec::new(),
            ),
            None => (
                (0..metrics)
                    .map(|_| RangeWarmup::new(&policy.config))
                    .collect(),
                Vec::new(),
                Vec::new(),
                periods,
            ),
        };
        Self {
            records: 0,
            warmup,
            ranges,
            states,
            periods,
            anchors: vec![Anchor::default(); metrics],
            drift: DriftState::default(),
            jump: JumpState::default(),
            trust: TrustState {
                release_rate: 0.0,
                novelty_rate: policy.trust.novelty_start,
                release_calm: u32::MAX,
                novelty_calm: u32::MAX,
                release_voice: false,
                release_peak: 0.0,
                release_bar: 0.0,
            },
        }
    }

    /// Decides one fresh record: `values` holds the record's value of each
    /// of the spec's metrics in order (`None` where it lacks one, as
    /// [`crate::Extractor::extract_with_values`] writes them), `release`
    /// what the release and the device's alarm say of it. Then learns the
    /// record.
    pub fn step(
        &mut self,
        policy: &NoveltyPolicy,
        values: &[Option<f64>],
        ts_ms: u64,
        release: ReleaseSide,
    ) -> Combined {
        let ReleaseSide {
            judged,
            threshold,
            close_after,
            in_alarm,
            excess,
        } = release;
        let config = &policy.config;
        let value = |j: usize| values.get(j).copied().flatten();
        self.records = self.records.saturating_add(1);
        let mut most_novel = 0;
        // The drift watch's anchors learn over the first `range_records`.
        let learning = self.records <= policy.range_records;
        let second_half = self.records > policy.range_records / 2;
        let product = if self.ranges.is_empty() {
            for (j, warm) in self.warmup.iter_mut().enumerate() {
                if let Some(v) = value(j) {
                    let smoothed = warm.push(v);
                    if let Some(a) = self.anchors.get_mut(j) {
                        a.learn(smoothed, second_half);
                    }
                }
            }
            if self.records >= policy.range_records {
                self.ranges = self.warmup.iter().map(RangeWarmup::ranges).collect();
                self.states = std::mem::take(&mut self.periods)
                    .into_iter()
                    .map(|period| NoveltyState::with_period(config, period))
                    .collect();
                self.warmup = Vec::new();
            }
            None
        } else {
            let mut p = 1.0f64;
            for (j, (state, range)) in self.states.iter_mut().zip(&self.ranges).enumerate() {
                if let Some(v) = value(j) {
                    let q = state.observe_at(config, range, v, ts_ms);
                    if let Some(a) = self.anchors.get_mut(j).filter(|_| learning) {
                        a.learn(state.smoothed(), second_half);
                    }
                    if q < p {
                        p = q;
                        most_novel = j;
                    }
                }
            }
            Some(p)
        };
        let (drift_alert, drift_metric) = self.watch(policy, &value);
        let jump_alert = self.jump.step(&policy.jump, &release, policy.trust.window);
        // The level for a record of this many metrics (the spec's).
        let at = alarm_product(config, values.len());
        let novelty_alert = product.is_some_and(|p| p <= at);
        let release_alert = judged >= threshold;
        let t = &policy.trust;
        let trust = &mut self.trust;
        let release_trusted = trust.release_rate <= t.release_onsets;
        let novelty_trusted = trust.novelty_rate <= t.novelty_onsets;
        // Trust is judged at a release alert's onset: an alert within
        // `close_after` records of the release's last one continues it,
        // and counts if that one did.
        let continuing = trust.release_voice && trust.release_calm < close_after;
        // An untrusted release still speaks on a record far beyond anything
        // it has shown on the device before its current alert run (a stuck
        // sensor's run of one value, after a release crying wolf at the
        // daily cycle); each such record must clear the bar itself.
        if release_alert && trust.release_calm >= close_after {
            trust.release_bar = trust.release_peak;
        }
        let breaks = t.release_break > 0.0
            && release_alert
            && excess.is_finite()
            && excess >= t.release_break * trust.release_bar;
        let by_release = release_alert && (release_trusted || continuing || breaks);
        if excess.is_finite() {
            trust.release_peak = trust.release_peak.max(excess);
        }
        let by_novelty = novelty_alert && (novelty_trusted || judged >= t.gate * threshold);
        let alert = by_release || by_novelty || drift_alert || jump_alert;
        if release_alert {
            // A voice won by breaking the bar is not carried to the next
            // alert (its wake would be; eval/NAB.md, session 26).
            trust.release_voice = release_trusted || continuing;
        }
        // An onset is an alert that would open an alarm: one while the
        // device is already in alarm opens nothing (a long fault's score
        // wavering about the threshold is one fault, not a device crying
        // wolf; eval/NAB.md, session 25).
        let onsets = Onsets {
            in_alarm,
            close_after,
            window: t.window,
        };
        onsets.count(
            &mut trust.release_rate,
            &mut trust.release_calm,
            release_alert,
        );
        onsets.count(
            &mut trust.novelty_rate,
            &mut trust.novelty_calm,
            novelty_alert,
        );
        Combined {
            alert,
            novelty: product.map(|p| at / (at + p.max(0.0))),
            release_trusted,
            novelty_trusted,
            novel_metric: if by_release {
                None
            } else if by_novelty {
                Some(most_novel)
            } else if drift_alert {
                Some(drift_metric)
            } else {
                // A jump is the release's: its contributions name it.
                None
            },
        }
    }

    /// The drift watch's decision on the record just observed, and the
    /// watched metric furthest out ([`drift`]): silent while the anchors
    /// learn (the device's first `range_records` records; `step` feeds
    /// them), which are fixed at the last of those.
    fn watch(
        &mut self,
        policy: &NoveltyPolicy,
        value: &impl Fn(usize) -> Option<f64>,
    ) -> (bool, usize) {
        if self.records < policy.range_records {
            return (false, 0);
        }
        if self.records == policy.range_records {
            for (j, anchor) in self.anchors.iter_mut().enumerate() {
                anchor.fix(self.states.get(j).is_some_and(NoveltyState::has_season));
            }
            return (false, 0);
        }
        let (mut furthest, mut metric) = (0.0f64, 0);
        for (j, (anchor, state)) in self.anchors.iter().zip(&self.states).enumerate() {
            if value(j).is_none() {
                continue;
            }
            if let Some(e) = anchor.excursion(state.smoothed()).filter(|e| *e > furthest) {
                furthest = e;
                metric = j;
            }
        }
        (self.drift.step(&policy.drift, furthest), metric)
    }
}

#[cfg(test)]
mod tests;
