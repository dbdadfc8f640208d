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

use serde::{Deserialize, Serialize};
use vigil_schemas::{Alarm, AlarmState};

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
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        Self {
            close_after: 4,
            settle_records: 96,
            settle_score: 0.6,
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
}

impl AlarmPolicy {
    /// Checks the policy's values.
    pub fn check(&self) -> Result<(), AlarmPolicyError> {
        if self.close_after == 0 {
            return Err(AlarmPolicyError::CloseAfter);
        }
        if !(self.settle_score.is_finite() && (0.0..=1.0).contains(&self.settle_score)) {
            return Err(AlarmPolicyError::SettleScore(self.settle_score));
        }
        Ok(())
    }
}

/// One device's alarm bookkeeping (part of its scoring state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmTrack {
    /// Records that advanced the device's state (saturating).
    records: u32,
    /// `(seq, event_ts)` of the record that opened the open alarm.
    open: Option<(u64, u64)>,
    /// Calm records in a row since the last hot one.
    calm: u32,
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
        };
        // Records 0..3 are young: 0.7 does not open, 0.9 does.
        let out = run(&p, &[0.7, 0.9, 0.1, 0.7]);
        assert_eq!(out[0], (false, None));
        assert_eq!(out[1], (true, Some(AlarmState::Opened)));
        assert_eq!(out[2], (false, Some(AlarmState::Closed)));
        // The fourth record is past the settle period: 0.7 opens.
        assert_eq!(out[3], (true, Some(AlarmState::Opened)));
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
        assert_eq!(AlarmPolicy::default().check(), Ok(()));
    }
}
