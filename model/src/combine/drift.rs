//! The drift watch: a metric whose smoothed value has moved beyond the
//! range the device itself held when it was new raises an alert on its
//! own, however slowly it got there, once per margin of further movement.
//!
//! The release's features judge a record against its device's recent
//! past (exponentially weighted means, `crate::features`), the device's
//! own level of scores follows a rising score (`crate::alarm`), and the
//! novelty judges whether a cell is new, not how far it lies (a drift
//! reaches each new cell by a small step from the last, and Witten–Bell
//! smoothing finds a new cell unremarkable on a device that keeps showing
//! new cells). So all three learn a slow drift as it happens: on the
//! simulated pump of `long_faults`, four of nine drifts of four to eight
//! spreads over hundreds of records had no record in alarm (eval/NAB.md,
//! session 27). The watch measures distance instead: the smoothed
//! channel's value (the novelty's mean of its last `smooth_rows` values)
//! beyond an anchor range, in widths of that range.
//!
//! **The anchor is the device's own**: each metric's smoothed range over
//! the device's first [`NoveltyPolicy::range_records`] records (300),
//! learnt online in two halves (40 bytes a metric). A release trained on
//! another device, or on a fleet, would otherwise start a device at
//! another operating point beyond its ranges. The watch judges a metric
//! only when that range looks like its whole normal variation: the
//! release found a period in the training rows (so they held at least two
//! of its cycles), and each half of the device's first records spans at
//! least [`SETTLED_SHARE`] of the whole. Records of a day-long cycle seen
//! for a fraction of it are a ramp, not settled, and the rest of the day
//! would look like a drift.
//!
//! That gate can still be fooled (a period found in the noise of a short
//! window, on a device whose day moves it slowly), so the watch's alert is
//! an **onset**, not a state: the record whose excursion first reaches the
//! accepted one plus [`DriftPolicy::widths`] is an alert, and its
//! excursion is accepted at once. A device that moves raises one alert per
//! `widths` of further movement (and, while a cycle carries it back and
//! forth across the first margin, one per return); the alarm it opens
//! lasts as long as the alarm's own rules keep it (the device's level
//! holds while it is open, so the release judges the drift against the
//! level before it); an excursion back under `widths` forgets what was
//! accepted. So a device whose level moved for good by between half a
//! width and a width and a half, with a cycle about a width wide, alerts
//! once a cycle for as long as it stays there (its troughs fall back under
//! the margin): a known limit; forgetting only after a calm stretch cost
//! the drifts' recall (eval/NAB.md, session 27, rule 16). The two forms
//! tried before this one (eval/NAB.md, session
//! 27), anchored on the training rows' ranges, each failed a report
//! look: holding the alert for 256 records put a clean 1-h day's normal
//! records in alarm four times as often, and even brief alerts cost a
//! release trained on another device's recording. Only comparisons,
//! `+ - * /` and `min`/`max` are used: the edge and the cloud decide the
//! same.
//!
//! [`NoveltyPolicy::range_records`]: super::NoveltyPolicy::range_records

use serde::{Deserialize, Serialize};

/// Default [`DriftPolicy::widths`]: half a range width of further
/// movement. Chosen by a rule written before its runs, on NAB's tuning
/// half, the injected corpora, the tuning sets and fresh simulated seeds;
/// a whole width caught less of the long faults (eval/NAB.md, session 27).
pub const DRIFT_WIDTHS: f64 = 0.5;

/// Share of a metric's smoothed range over a device's first records that
/// each half of them must span for the range to count as settled.
pub const SETTLED_SHARE: f64 = 0.75;

/// When the drift watch alerts (signed into the release).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftPolicy {
    /// Range widths of movement beyond the accepted excursion at which a
    /// record is a drift alert; 0 turns the watch off.
    pub widths: f64,
}

impl Default for DriftPolicy {
    fn default() -> Self {
        Self {
            widths: DRIFT_WIDTHS,
        }
    }
}

impl DriftPolicy {
    /// The watch switched off (what a release without one decides).
    pub fn off() -> Self {
        Self { widths: 0.0 }
    }

    /// Whether the value can be used: 0 or a positive finite number.
    pub fn is_valid(&self) -> bool {
        self.widths.is_finite() && self.widths >= 0.0
    }
}

/// One metric's anchor on one device: the range its smoothed value held
/// over the device's first records, learnt online in two halves, and
/// whether it was settled (each half spanning at least [`SETTLED_SHARE`]
/// of the whole).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Anchor {
    /// The first half's smallest and largest smoothed value; after
    /// [`Anchor::fix`], the whole range's.
    low: f64,
    high: f64,
    /// The second half's.
    low2: f64,
    high2: f64,
    /// Fixed, settled and with a seasonal channel: the watch judges it.
    watched: bool,
}

impl Default for Anchor {
    fn default() -> Self {
        Self {
            low: f64::INFINITY,
            high: f64::NEG_INFINITY,
            low2: f64::INFINITY,
            high2: f64::NEG_INFINITY,
            watched: false,
        }
    }
}

impl Anchor {
    /// Learns the smoothed value `x` as one of the first half or the
    /// second.
    pub(super) fn learn(&mut self, x: f64, second_half: bool) {
        if !x.is_finite() {
            return;
        }
        let (low, high) = if second_half {
            (&mut self.low2, &mut self.high2)
        } else {
            (&mut self.low, &mut self.high)
        };
        *low = low.min(x);
        *high = high.max(x);
    }

    /// Ends the learning: the range is both halves', and the watch judges
    /// the metric when it was settled and `seasonal` (its release carried
    /// a period, so the device's state has a seasonal channel).
    pub(super) fn fix(&mut self, seasonal: bool) {
        let first = self.high - self.low;
        let second = self.high2 - self.low2;
        self.low = self.low.min(self.low2);
        self.high = self.high.max(self.high2);
        let whole = self.high - self.low;
        self.watched = seasonal
            && whole.is_finite()
            && whole > 0.0
            && first >= SETTLED_SHARE * whole
            && second >= SETTLED_SHARE * whole;
    }

    /// How far the smoothed value `x` lies outside the range, in widths of
    /// it; `None` for a metric the watch does not judge.
    pub(super) fn excursion(&self, x: f64) -> Option<f64> {
        if !self.watched {
            return None;
        }
        let beyond = (x - self.high).max(self.low - x).max(0.0);
        Some(beyond / (self.high - self.low))
    }
}

/// One device's drift watch: the excursion taken as its normal (0:
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct DriftState {
    accepted: f64,
}

impl DriftState {
    /// Takes a record's largest excursion over the watched metrics;
    /// whether it is a drift alert.
    pub(super) fn step(&mut self, policy: &DriftPolicy, excursion: f64) -> bool {
        if policy.widths <= 0.0 || !excursion.is_finite() {
            return false;
        }
        if excursion < policy.widths {
            self.accepted = 0.0;
            return false;
        }
        if excursion < self.accepted + policy.widths {
            return false;
        }
        self.accepted = excursion;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anchor fixed on `first` then `second` half values.
    fn anchor(first: &[f64], second: &[f64], seasonal: bool) -> Anchor {
        let mut a = Anchor::default();
        for (&x, half) in first
            .iter()
            .map(|x| (x, false))
            .chain(second.iter().map(|x| (x, true)))
        {
            a.learn(x, half);
        }
        a.fix(seasonal);
        a
    }

    #[test]
    fn an_anchor_judges_a_settled_seasonal_range_in_widths_of_it() {
        // Both halves see the whole cycle 10..14.
        let a = anchor(&[10.0, 14.0, 12.0], &[11.0, 14.0, 10.5], true);
        for (x, e) in [(12.0, 0.0), (14.0, 0.0), (18.0, 1.0), (4.0, 1.5)] {
            assert_eq!(a.excursion(x), Some(e), "{x}");
        }
        // A ramp (a ninth of a day): each half spans half of it.
        assert_eq!(anchor(&[0.0, 1.0], &[2.0, 3.0], true).excursion(12.0), None);
        // Settled, but the release found no period: not judged.
        assert_eq!(
            anchor(&[10.0, 14.0], &[10.0, 14.0], false).excursion(12.0),
            None
        );
        // Flat, or nothing learnt.
        assert_eq!(anchor(&[1.0, 1.0], &[1.0, 1.0], true).excursion(12.0), None);
        assert_eq!(anchor(&[], &[], true).excursion(12.0), None);
    }

    #[test]
    fn each_further_move_of_widths_is_one_alert() {
        let p = DriftPolicy { widths: 0.5 };
        let mut s = DriftState::default();
        let steps: Vec<bool> = [0.2, 0.5, 0.6, 0.9, 1.0, 1.7, 1.9, 0.3, 0.6, 0.6]
            .iter()
            .map(|&e| s.step(&p, e))
            .collect();
        // 0.5 alerts and is accepted; 0.6 and 0.9 stay under 1.0; 1.0
        // alerts, then 1.7; 1.9 is under 2.2; back inside forgets, so 0.6
        // alerts anew, once.
        assert_eq!(
            steps,
            [false, true, false, false, true, true, false, false, true, false]
        );
    }

    #[test]
    fn the_watch_off_never_alerts_and_bad_values_are_refused() {
        let mut s = DriftState::default();
        assert!(!s.step(&DriftPolicy::off(), 100.0));
        assert!(!s.step(&DriftPolicy::default(), f64::NAN));
        assert!(DriftPolicy::default().is_valid());
        assert!(DriftPolicy::off().is_valid());
        for widths in [-1.0, f64::INFINITY, f64::NAN] {
            assert!(!DriftPolicy { widths }.is_valid(), "{widths}");
        }
    }
}
