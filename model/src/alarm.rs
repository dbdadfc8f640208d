//! Alarms: per-device hysteresis that turns record scores into alarms an
//! operator can act on (an alarm opens, continues and closes with one id).
//!
//! The rules, per device, in record order ([`AlarmPolicy`], signed into
//! the release):
//!
//! - **open**: a record whose score reaches the threshold opens an alarm;
//!   while the device's state is younger than `settle_records` records (a
//!   device the scorer has just started to follow: new, evicted, or every
//!   device when a scorer gets its first model), the score must also reach
//!   `settle_score`: young statistics make weak evidence.
//! - **continue**: a record scoring at or above the threshold keeps the
//!   alarm open and resets the calm count; one below it adds to the count.
//! - **close**: the `close_after`-th calm record in a row closes the alarm
//!   (that record's verdict carries `closed` and `anomaly = false`).
//!
//! So a drift that dips under the threshold for a record or two is one
//! alarm, and a spike is an alarm of `close_after + 1` verdicts. Chosen on
//! the demo's conditions with a tuning seed and reported on the demo's own
//! seed (`training/EVALUATION.md`, "Alarms").
//!
//! Replayed records (`seq` not newer than the state's) never move an alarm.
//!
//! # Each device's own level
//!
//! A model fitted on a short window (a first model on minutes of history,
//! or 400 rows of one pump) has not seen all of a device's normal
//! behaviour: a daily cycle longer than the window, a new operating point.
//! Judged against the training rows alone, such a device scores high on
//! normal records for as long as the new regime lasts
//! (`training/EVALUATION.md`, "Small training sets"). So each device
//! keeps an exponentially weighted level of its own raw scores
//! (`adapt_rate` per record, each record's contribution capped at
//! [`LEVEL_CAP`] times the threshold's raw score, so an anomaly moves it
//! little), and its raw
//! score is divided by `level / baseline_raw` (never by less than 1)
//! before the alarm compares it with the threshold. `baseline_raw`, set by
//! the trainer, is the same level measured over each training device's
//! rows, at the 90th percentile over devices: a device adjusts its bar
//! only once its scores run higher than nine in ten training devices' did
//! (a model of one device: higher than its own did). A device that
//! settles into a noisier-than-trained regime raises its bar by at most
//! twice the threshold's raw score over the baseline (a cap of once the
//! threshold, until session 19, left a device whose regime the training
//! never showed above its bar for long stretches: 0.33 % of a clean 1-h
//! day's records hot after 400 training rows, 0.19 % with twice; eval/NAB.md,
//! "session 19"); a spike or a step still
//! stands far above it, and a drift is seen before the level (a window of
//! about 256 records) has absorbed it. While the device is in alarm its
//! level holds ([`AlarmPolicy::hold_records`]: for at most one level
//! window of the alarm): the alarm's records are the anomaly, and a
//! sustained fault is not absorbed into the bar it is judged by while it
//! lasts; an alarm that outlasts the window is taken as the device's new
//! normal and the level learns again, so a device that moved to a new
//! operating point is not in alarm for ever (eval/NAB.md, session 18).
//! The verdict's `score` stays the detector's; only the alarm judges the
//! adjusted one (`judged` in [`crate::RecordScore`]).
//!
//! # Sustain
//!
//! A threshold set on few rows (400 rows of one pump at 0.1 % expect 0.4
//! exceedances) is an extrapolation: where the true 0.1 % point lies is
//! uncertain by a wide margin either way, and a record judged just below
//! it is no evidence that a fault has ended. So, while the level holds for
//! an open alarm, a record whose judged score reaches `sustain_ratio` ×
//! the threshold counts as hot for the alarm (not for the verdict's
//! `hot`): a sustained fault that the features' slow window partly
//! absorbs stays one alarm instead of flickering. The trainer sets the
//! ratio from its calibration evidence
//! ([`AlarmPolicy::sustain_ratio_for`]): 0.8 with none, 1 (off) with a
//! full calibration's ten expected exceedances, so a fleet's release
//! and the demo's keep the plain hysteresis. 0.8 was chosen on NAB's
//! tuning half by the sessions' rule (eval/NAB.md, session 19).

use serde::{Deserialize, Serialize};
use vigil_schemas::{Alarm, AlarmState};

/// A record's contribution to its device's level of raw scores is capped
/// at this many times the threshold's raw score. (The trainer measures
/// `baseline_raw` with each training row capped at the threshold itself:
/// those rows may hold unlabelled anomalies.)
pub const LEVEL_CAP: f64 = 2.0;

/// The default weight of a record in its device's level of raw scores
/// (an exponential window of about 256 records).
pub const ADAPT_RATE: f64 = 1.0 / 256.0;

/// The sustain ratio of a release whose threshold rests on no
/// calibration evidence at all ([`AlarmPolicy::sustain_ratio_for`]).
pub const UNCALIBRATED_SUSTAIN_RATIO: f64 = 0.8;

/// How scores become alarms (signed into a release; releases written
/// before alarms existed get [`AlarmPolicy::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlarmPolicy {
    /// Calm records in a row (score below the threshold) that close an
    /// alarm; at least 1.
    pub close_after: u32,
    /// A device state younger than this many records needs
    /// `settle_score` as well as the threshold to open an alarm.
    pub settle_records: u32,
    /// Score a young device needs to open an alarm, in [0, 1].
    pub settle_score: f64,
    /// Weight of each fresh record in the device's level of raw scores
    /// (see the module docs); 0 turns the adjustment off (releases written
    /// before it existed).
    #[serde(default)]
    pub adapt_rate: f64,
    /// The level a device's own level is measured against (set by the
    /// trainer); 0 turns the adjustment off.
    #[serde(default)]
    pub baseline_raw: f64,
    /// While the level holds, an open alarm's record counts as hot when
    /// the release's judged score reaches this share of the threshold,
    /// in (0, 1] (see the module docs); 1 turns it off (releases written
    /// before it existed).
    #[serde(default = "sustain_off")]
    pub sustain_ratio: f64,
}

fn sustain_off() -> f64 {
    1.0
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        Self {
            close_after: 4,
            settle_records: 96,
            settle_score: 0.6,
            adapt_rate: ADAPT_RATE,
            baseline_raw: 0.0,
            sustain_ratio: 1.0,
        }
    }
}

/// Why an alarm policy cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlarmPolicyError {
    #[error("alarm policy close_after must be at least 1")]
    CloseAfter,
    #[error("alarm policy settle_score {0} is not a number in [0, 1]")]
    SettleScore(f64),
    #[error("alarm policy adapt_rate {0} is not a number in [0, 1]")]
    AdaptRate(f64),
    #[error("alarm policy baseline_raw {0} is not a finite number >= 0")]
    BaselineRaw(f64),
    #[error("alarm policy sustain_ratio {0} is not a number in (0, 1]")]
    SustainRatio(f64),
}

impl AlarmPolicy {
    /// Records of one alarm during which the device's level holds: one
    /// level window (1 / `adapt_rate`, 256 by default). An alarm that
    /// outlasts it is taken as the device's new normal, and the level
    /// learns again.
    pub fn hold_records(&self) -> u32 {
        if self.adapt_rate > 0.0 {
            (1.0 / self.adapt_rate).round().min(f64::from(u32::MAX)) as u32
        } else {
            0
        }
    }

    /// The sustain ratio of a release whose threshold rests on `share` of
    /// a full calibration's evidence ([`crate::combine::calibration_share`]): from
    /// [`UNCALIBRATED_SUSTAIN_RATIO`] at none to 1 (no sustain) at a full
    /// calibration, linearly. A share that is not a number counts as none.
    pub fn sustain_ratio_for(share: f64) -> f64 {
        let share = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 1.0)
        };
        1.0 - (1.0 - UNCALIBRATED_SUSTAIN_RATIO) * (1.0 - share)
    }

    /// Checks the policy's values.
    pub fn check(&self) -> Result<(), AlarmPolicyError> {
        if self.close_after == 0 {
            return Err(AlarmPolicyError::CloseAfter);
        }
        if !(self.settle_score.is_finite() && (0.0..=1.0).contains(&self.settle_score)) {
            return Err(AlarmPolicyError::SettleScore(self.settle_score));
        }
        if !(self.adapt_rate.is_finite() && (0.0..=1.0).contains(&self.adapt_rate)) {
            return Err(AlarmPolicyError::AdaptRate(self.adapt_rate));
        }
        if !(self.baseline_raw.is_finite() && self.baseline_raw >= 0.0) {
            return Err(AlarmPolicyError::BaselineRaw(self.baseline_raw));
        }
        if !(self.sustain_ratio > 0.0 && self.sustain_ratio <= 1.0) {
            return Err(AlarmPolicyError::SustainRatio(self.sustain_ratio));
        }
        Ok(())
    }
}

/// One device's alarm bookkeeping (part of its scoring state).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlarmTrack {
    /// Records that advanced the device's state (saturating).
    records: u32,
    /// `(seq, event_ts)` of the record that opened the open alarm.
    open: Option<(u64, u64)>,
    /// Calm records in a row since the last hot one.
    calm: u32,
    /// The device's level of raw scores (0 until its first fresh record
    /// under a policy that adapts).
    level: f64,
    /// Records of the open alarm during which the level has held.
    held: u32,
}

/// What one record did to its device's alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmStep {
    /// The device is in alarm at this record.
    pub anomaly: bool,
    /// `(opened_seq, opened_ts, state)` when the record belongs to an alarm.
    pub alarm: Option<(u64, u64, AlarmState)>,
}

impl AlarmStep {
    /// The schema form of the alarm, named for `device_id`.
    pub fn to_alarm(self, device_id: &str) -> Option<Alarm> {
        self.alarm.map(|(seq, ts, state)| Alarm {
            id: Alarm::id_for(device_id, seq),
            opened_seq: seq,
            opened_ts: ts,
            state,
        })
    }
}

impl AlarmTrack {
    /// Whether an alarm is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Whether a fresh record whose release score was judged `judged`
    /// keeps the open alarm going under `policy`'s sustain ratio: the
    /// alarm is open, its level still holds, and `judged` reaches
    /// `sustain_ratio × threshold`. Call after [`Self::adapt`].
    pub fn sustains(&self, policy: &AlarmPolicy, judged: f64, threshold: f64) -> bool {
        policy.sustain_ratio < 1.0
            && self.open.is_some()
            && self.held < policy.hold_records()
            && judged >= policy.sustain_ratio * threshold
    }

    /// The divisor of a fresh record's raw score (at least 1), from the
    /// device's level before this record; then takes `raw`, capped at
    /// [`LEVEL_CAP`] × `raw_at_threshold`, into the level. 1 when `policy`
    /// does not adapt.
    pub fn adapt(&mut self, policy: &AlarmPolicy, raw: f64, raw_at_threshold: f64) -> f64 {
        // The hold's count runs whether or not the level adapts: it also
        // bounds the sustain ([`Self::sustains`]).
        let holding = if self.open.is_none() {
            self.held = 0;
            false
        } else if self.held < policy.hold_records() {
            self.held += 1;
            true
        } else {
            false
        };
        if policy.adapt_rate <= 0.0 || policy.baseline_raw <= 0.0 {
            return 1.0;
        }
        if self.level <= 0.0 {
            self.level = policy.baseline_raw;
        }
        let divisor = (self.level / policy.baseline_raw).max(1.0);
        if holding {
            // In alarm: the record is the anomaly, not the device's normal.
            return divisor;
        }
        let cap = LEVEL_CAP * raw_at_threshold;
        let x = if raw.is_finite() { raw.min(cap) } else { cap };
        self.level += policy.adapt_rate * (x - self.level);
        divisor
    }

    /// Advances the alarm with a fresh record (`seq`, `ts`) scored `score`
    /// against `threshold`.
    pub fn step(
        &mut self,
        policy: &AlarmPolicy,
        seq: u64,
        ts: u64,
        score: f64,
        threshold: f64,
    ) -> AlarmStep {
        let young = self.records < policy.settle_records;
        self.records = self.records.saturating_add(1);
        let hot = score >= threshold;
        match self.open {
            None => {
                if hot && (!young || score >= policy.settle_score) {
                    self.open = Some((seq, ts));
                    self.calm = 0;
                    AlarmStep {
                        anomaly: true,
                        alarm: Some((seq, ts, AlarmState::Opened)),
                    }
                } else {
                    AlarmStep {
                        anomaly: false,
                        alarm: None,
                    }
                }
            }
            Some((opened_seq, opened_ts)) => {
                self.calm = if hot { 0 } else { self.calm + 1 };
                if self.calm >= policy.close_after {
                    self.open = None;
                    self.calm = 0;
                    AlarmStep {
                        anomaly: false,
                        alarm: Some((opened_seq, opened_ts, AlarmState::Closed)),
                    }
                } else {
                    AlarmStep {
                        anomaly: true,
                        alarm: Some((opened_seq, opened_ts, AlarmState::Ongoing)),
                    }
                }
            }
        }
    }

    /// The verdict fields of a replayed (stale) record: no alarm moves; the
    /// record counts as anomalous when its own score reaches the threshold.
    pub fn stale(score: f64, threshold: f64) -> AlarmStep {
        AlarmStep {
            anomaly: score >= threshold,
            alarm: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: &AlarmPolicy, scores: &[f64]) -> Vec<(bool, Option<AlarmState>)> {
        let mut track = AlarmTrack::default();
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let step = track.step(policy, 100 + i as u64, 1_000 + i as u64, s, 0.5);
                (step.anomaly, step.alarm.map(|a| a.2))
            })
            .collect()
    }

    fn settled() -> AlarmPolicy {
        AlarmPolicy {
            settle_records: 0,
            ..AlarmPolicy::default()
        }
    }

    #[test]
    fn an_alarm_opens_continues_through_dips_and_closes_after_calm() {
        use AlarmState::*;
        let out = run(&settled(), &[0.1, 0.9, 0.2, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(
            out,
            vec![
                (false, None),
                (true, Some(Opened)),
                (true, Some(Ongoing)),
                (true, Some(Ongoing)),
                (true, Some(Ongoing)),
                (true, Some(Ongoing)),
                (true, Some(Ongoing)),
                (false, Some(Closed)),
                (false, None),
            ]
        );
    }

    #[test]
    fn one_alarm_keeps_its_opening_record_as_id() {
        let mut track = AlarmTrack::default();
        let p = settled();
        let ids: Vec<_> = [0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9]
            .iter()
            .enumerate()
            .filter_map(|(i, &s)| track.step(&p, 10 + i as u64, 0, s, 0.5).to_alarm("pump-1"))
            .map(|a| a.id)
            .collect();
        assert_eq!(ids[..7], vec!["pump-1@10".to_owned(); 7][..]);
        assert_eq!(ids[7], "pump-1@17");
    }

    #[test]
    fn a_young_device_needs_the_settle_score() {
        let p = AlarmPolicy {
            settle_records: 3,
            settle_score: 0.8,
            close_after: 1,
            ..AlarmPolicy::default()
        };
        // Records 0..3 are young: 0.7 does not open, 0.9 does.
        let out = run(&p, &[0.7, 0.9, 0.1, 0.7]);
        assert_eq!(out[0], (false, None));
        assert_eq!(out[1], (true, Some(AlarmState::Opened)));
        assert_eq!(out[2], (false, Some(AlarmState::Closed)));
        // The fourth record is past the settle period: 0.7 opens.
        assert_eq!(out[3], (true, Some(AlarmState::Opened)));
    }

    fn adapting(baseline_raw: f64) -> AlarmPolicy {
        AlarmPolicy {
            baseline_raw,
            ..AlarmPolicy::default()
        }
    }

    #[test]
    fn without_a_baseline_or_a_rate_nothing_adapts() {
        let mut track = AlarmTrack::default();
        let off = AlarmPolicy::default(); // baseline 0: an untrained policy
        let zero_rate = AlarmPolicy {
            adapt_rate: 0.0,
            ..adapting(10.0)
        };
        for _ in 0..1_000 {
            assert_eq!(track.adapt(&off, 40.0, 50.0), 1.0);
            assert_eq!(track.adapt(&zero_rate, 40.0, 50.0), 1.0);
        }
    }

    #[test]
    fn a_device_that_runs_hot_raises_its_own_bar_up_to_twice_the_threshold() {
        let p = adapting(10.0);
        let mut track = AlarmTrack::default();
        // At its baseline nothing changes.
        for _ in 0..2_000 {
            assert_eq!(track.adapt(&p, 10.0, 50.0), 1.0);
        }
        // A new regime three times as noisy: the divisor climbs to ~3.
        let mut last = 1.0;
        for _ in 0..2_000 {
            last = track.adapt(&p, 30.0, 50.0);
        }
        assert!((last - 3.0).abs() < 0.01, "divisor {last}");
        // Scores above LEVEL_CAP × the threshold count as that: the
        // divisor never passes 2 × threshold / baseline.
        for _ in 0..5_000 {
            last = track.adapt(&p, 1.0e9, 50.0);
        }
        assert!(last <= 10.0 && last > 9.9, "divisor {last}");
        assert!(track.adapt(&p, f64::INFINITY, 50.0) <= 10.0);
    }

    #[test]
    fn an_open_alarm_holds_the_level_for_one_level_window() {
        let p = adapting(10.0);
        assert_eq!(p.hold_records(), 256);
        let mut track = AlarmTrack::default();
        for _ in 0..2_000 {
            track.adapt(&p, 10.0, 50.0);
        }
        // A fault opens an alarm: its records do not move the level.
        track.adapt(&p, 40.0, 50.0);
        let first = track.step(&p, 1, 0, 0.9, 0.5);
        assert_eq!(first.alarm.map(|a| a.2), Some(AlarmState::Opened));
        let mut seq = 2;
        // (The record that opened it moved the level, as it was not in
        // alarm yet: (40 - 10) / 256 / 10 above 1.)
        let opened_at = 1.0 + 30.0 / 256.0 / 10.0;
        for _ in 0..255 {
            let d = track.adapt(&p, 40.0, 50.0);
            assert!((d - opened_at).abs() < 1e-12, "record {seq}: {d}");
            track.step(&p, seq, 0, 0.9, 0.5);
            seq += 1;
        }
        // Past one window of the alarm the level learns again: the fault
        // becomes the device's normal and its bar rises.
        let mut last = 1.0;
        for _ in 0..2_000 {
            last = track.adapt(&p, 40.0, 50.0);
            track.step(&p, seq, 0, 0.9, 0.5);
            seq += 1;
        }
        assert!((last - 4.0).abs() < 0.01, "divisor {last}");
        // Closed, then a new alarm: the hold starts over.
        for _ in 0..p.close_after {
            track.adapt(&p, 40.0, 50.0);
            track.step(&p, seq, 0, 0.1, 0.5);
            seq += 1;
        }
        assert!(!track.is_open());
        track.adapt(&p, 40.0, 50.0);
        track.step(&p, seq, 0, 0.9, 0.5);
        let held = track.adapt(&p, 10.0, 50.0);
        assert_eq!(track.adapt(&p, 10.0, 50.0), held, "the level holds again");
    }

    #[test]
    fn the_sustain_ratio_follows_the_calibration_evidence() {
        assert_eq!(
            AlarmPolicy::sustain_ratio_for(0.0),
            UNCALIBRATED_SUSTAIN_RATIO
        );
        assert_eq!(AlarmPolicy::sustain_ratio_for(1.0), 1.0);
        assert_eq!(AlarmPolicy::sustain_ratio_for(7.0), 1.0);
        assert_eq!(
            AlarmPolicy::sustain_ratio_for(f64::NAN),
            UNCALIBRATED_SUSTAIN_RATIO
        );
        // 400 rows at 0.1 %: 0.4 of ten expected exceedances.
        let r = AlarmPolicy::sustain_ratio_for(0.04);
        assert!((r - 0.808).abs() < 1e-12, "{r}");
        assert_eq!(AlarmPolicy::default().sustain_ratio, 1.0, "off by default");
    }

    #[test]
    fn an_open_alarm_is_sustained_near_the_threshold_while_its_level_holds() {
        let p = AlarmPolicy {
            sustain_ratio: 0.8,
            ..adapting(10.0)
        };
        let mut track = AlarmTrack::default();
        track.adapt(&p, 10.0, 50.0);
        // Not open: nothing to sustain.
        assert!(!track.sustains(&p, 0.45, 0.5));
        track.step(&p, 1, 0, 0.9, 0.5);
        track.adapt(&p, 10.0, 50.0);
        assert!(track.sustains(&p, 0.45, 0.5), "0.9 of the threshold");
        assert!(track.sustains(&p, 0.40, 0.5), "0.8 of the threshold");
        assert!(!track.sustains(&p, 0.39, 0.5), "below 0.8");
        // Off: the plain hysteresis.
        let off = AlarmPolicy {
            sustain_ratio: 1.0,
            ..p
        };
        assert!(!track.sustains(&off, 0.49, 0.5));
        track.step(&p, 2, 0, 0.5, 0.5);
        // A record the model sustains keeps the alarm open past
        // close_after; once the level's hold is over it no longer does.
        let mut seq = 3;
        let mut open_for = 1;
        while track.is_open() && seq < 1_000 {
            track.adapt(&p, 10.0, 50.0);
            let score = if track.sustains(&p, 0.45, 0.5) {
                0.5
            } else {
                0.45
            };
            track.step(&p, seq, 0, score, 0.5);
            seq += 1;
            open_for += 1;
        }
        assert!(!track.is_open(), "closed once the hold ended");
        assert_eq!(
            open_for,
            p.hold_records() - 1 + p.close_after,
            "records after the opening"
        );
        // A policy whose level does not adapt bounds it the same way.
        let flat = AlarmPolicy {
            baseline_raw: 0.0,
            ..p
        };
        let mut track = AlarmTrack::default();
        track.adapt(&flat, 10.0, 50.0);
        track.step(&flat, 1, 0, 0.9, 0.5);
        let mut sustained = 0;
        for seq in 2..1_000 {
            track.adapt(&flat, 10.0, 50.0);
            if !track.sustains(&flat, 0.45, 0.5) {
                break;
            }
            track.step(&flat, seq, 0, 0.5, 0.5);
            sustained += 1;
        }
        assert_eq!(sustained, flat.hold_records() - 1);
    }

    #[test]
    fn one_spike_barely_moves_the_level() {
        let p = adapting(10.0);
        let mut track = AlarmTrack::default();
        for _ in 0..500 {
            track.adapt(&p, 10.0, 50.0);
        }
        track.adapt(&p, 1.0e6, 50.0);
        let after = track.adapt(&p, 10.0, 50.0);
        // (2 × 50 - 10) / 256 / 10 above 1.
        assert!(after < 1.04, "divisor after one spike {after}");
    }

    #[test]
    fn bad_policies_are_refused() {
        let zero = AlarmPolicy {
            close_after: 0,
            ..AlarmPolicy::default()
        };
        assert_eq!(zero.check(), Err(AlarmPolicyError::CloseAfter));
        let nan = AlarmPolicy {
            settle_score: f64::NAN,
            ..AlarmPolicy::default()
        };
        assert!(nan.check().is_err());
        for (rate, baseline) in [
            (-0.1, 1.0),
            (1.5, 1.0),
            (f64::NAN, 1.0),
            (0.1, -1.0),
            (0.1, f64::INFINITY),
        ] {
            let p = AlarmPolicy {
                adapt_rate: rate,
                baseline_raw: baseline,
                ..AlarmPolicy::default()
            };
            assert!(p.check().is_err(), "rate {rate} baseline {baseline}");
        }
        for ratio in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
            let p = AlarmPolicy {
                sustain_ratio: ratio,
                ..AlarmPolicy::default()
            };
            assert_eq!(
                p.check().map_err(|e| e.to_string()),
                Err(format!(
                    "alarm policy sustain_ratio {ratio} is not a number in (0, 1]"
                ))
            );
        }
        assert_eq!(AlarmPolicy::default().check(), Ok(()));
        // A policy written before the ratio existed reads as off.
        let old: AlarmPolicy =
            serde_json::from_str(r#"{"close_after":4,"settle_records":96,"settle_score":0.6}"#)
                .expect("a policy written before the ratio");
        assert_eq!(old.sustain_ratio, 1.0);
    }
}
