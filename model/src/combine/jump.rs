//! The jump watch: a record whose release score leaps far above what the
//! release has been saying of the device raises an alert of its own, as
//! long as such leaps are rare on the device.
//!
//! A release trained on a few hundred rows of a heavy-tailed series places
//! its threshold near the largest of them, so a *contextual* spike (a
//! value that is ordinary for the series somewhere, but not after what
//! came just before) can lift the release's raw score a hundredfold and
//! still stay below the threshold; the novelty has seen the value before
//! and the device's own level (`crate::alarm`) follows the score, not its
//! leaps. On NAB's tuning half, five plain injected spikes had no alarm at
//! all for that reason, their raw scores jumping 17 to 110 times over the
//! records before them (eval/NAB.md, end of session 27).
//!
//! So, per device, the watch keeps an exponentially weighted mean and
//! variance of `ln excess` ([`crate::combine::ReleaseSide::excess`]: the
//! raw score after the device's level, over the raw score at the
//! threshold, which a release's calibration makes comparable from one
//! release to the next), as HTM's anomaly likelihood keeps the
//! distribution of its own scores. A record is a **jump** when its `ln
//! excess` lies at least [`JumpPolicy::sds`] standard deviations above the
//! mean (after [`JumpPolicy::warm_records`] records), at least
//! [`MIN_LEAP`] above it, and the release's judged score reaches
//! [`JumpPolicy::floor`] of the threshold; a record beyond the bar moves
//! the statistics as if it lay on it, so a spike does not widen the bar
//! for the next one. A jump is an alert while the device's
//! rate of jump **onsets** (a jump after `close_after` records without one,
//! the device not in alarm; the trust's window) is at most
//! [`JumpPolicy::onsets`]: on a device where leaps are routine (a series
//! of spikes of growing density, a traffic sensor's jams) they are its
//! normal behaviour, as the trust treats each detector's routine alerts
//! (`crate::combine`).
//!
//! A swap that keeps a device's novelty state keeps the watch's
//! statistics too: the excess is measured against each release's own
//! threshold, which its calibration places at the same quantile, so one
//! release's history is a fair bar for the next (the live demo swaps
//! through five releases with its precision unchanged: BENCHMARKS.md,
//! session 28).
//!
//! `ln` is computed here from the float's bits and a series in `+ − × ÷`,
//! and the bar's `sqrt` is IEEE-exact, so the edge and the cloud decide
//! the same.

use serde::{Deserialize, Serialize};

use super::trust::Onsets;
use super::ReleaseSide;

/// Default [`JumpPolicy::sds`]. Chosen with the other defaults by a rule
/// written before its runs, on NAB's tuning half, the injected corpora
/// and the tuning sets (eval/NAB.md, session 28): 4 opened too many alarms
/// outside NAB's windows, 6 found few more injected anomalies.
pub const JUMP_SDS: f64 = 5.0;

/// Default [`JumpPolicy::window`].
pub const JUMP_WINDOW: u32 = 4096;

/// Default [`JumpPolicy::floor`].
pub const JUMP_FLOOR: f64 = 0.5;

/// Default [`JumpPolicy::warm_records`].
pub const JUMP_WARM_RECORDS: u32 = 100;

/// Default [`JumpPolicy::onsets`]: two jump onsets in a thousand records
/// (about two in the trust's window); 0.001 and 0.003 were tried.
pub const JUMP_ONSETS: f64 = 0.002;

/// The least leap that is a jump, in `ln excess`: the excess at least
/// doubles. A device whose excess has held still (a flat series) has no
/// variance to measure a leap against, and any uptick would lie beyond
/// the bar. It changed no figure of the session's rows (eval/NAB.md,
/// session 28).
pub const MIN_LEAP: f64 = std::f64::consts::LN_2;

/// When the jump watch alerts (signed into the release).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JumpPolicy {
    /// Standard deviations of `ln excess` above its mean at which a
    /// record is a jump; 0 turns the watch off.
    pub sds: f64,
    /// Records in the mean's and variance's exponential window (a running
    /// mean over the device's first records until then).
    pub window: u32,
    /// Share of the threshold the release's judged score must reach on a
    /// jump, in [0, 1].
    pub floor: f64,
    /// Records a device's statistics learn before the watch judges.
    pub warm_records: u32,
    /// Jump onsets per record above which a jump is not an alert, in
    /// [0, 1].
    pub onsets: f64,
}

impl Default for JumpPolicy {
    fn default() -> Self {
        Self {
            sds: JUMP_SDS,
            window: JUMP_WINDOW,
            floor: JUMP_FLOOR,
            warm_records: JUMP_WARM_RECORDS,
            onsets: JUMP_ONSETS,
        }
    }
}

impl JumpPolicy {
    /// The watch switched off (what a release without one decides).
    pub fn off() -> Self {
        Self {
            sds: 0.0,
            ..Self::default()
        }
    }

    /// Why the policy cannot be used, if it cannot: the field and its
    /// value.
    pub fn invalid(&self) -> Option<(&'static str, f64)> {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !(self.sds.is_finite() && self.sds >= 0.0) {
            Some(("jump.sds", self.sds))
        } else if self.window == 0 {
            Some(("jump.window", 0.0))
        } else if !unit(self.floor) {
            Some(("jump.floor", self.floor))
        } else if !unit(self.onsets) {
            Some(("jump.onsets", self.onsets))
        } else {
            None
        }
    }
}

/// One device's jump watch (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct JumpState {
    records: u32,
    /// Records since the last jump (saturating).
    calm: u32,
    mean: f64,
    var: f64,
    /// Jump onsets per record, exponentially weighted.
    rate: f64,
}

impl Default for JumpState {
    fn default() -> Self {
        Self {
            records: 0,
            calm: u32::MAX,
            mean: 0.0,
            var: 0.0,
            rate: 0.0,
        }
    }
}

impl JumpState {
    /// Judges one fresh record, then learns it: whether it is a jump
    /// alert. A record without a finite positive excess is skipped.
    /// `window` is the trust's, for the jump's onset rate.
    pub(super) fn step(&mut self, policy: &JumpPolicy, r: &ReleaseSide, window: u32) -> bool {
        if policy.sds <= 0.0 || !(r.excess.is_finite() && r.excess > 0.0) {
            return false;
        }
        let d = ln(r.excess) - self.mean;
        let beyond = self.records >= policy.warm_records
            && d > 0.0
            && d * d >= policy.sds * policy.sds * self.var;
        let jump = beyond && d >= MIN_LEAP && r.judged >= policy.floor * r.threshold;
        let alert = jump && self.rate <= policy.onsets;
        let onsets = Onsets {
            in_alarm: r.in_alarm,
            close_after: r.close_after,
            window,
        };
        onsets.count(&mut self.rate, &mut self.calm, jump);
        // A leap moves the statistics as if it lay on the bar.
        let d = if beyond && d * d > policy.sds * policy.sds * self.var {
            policy.sds * self.var.sqrt()
        } else {
            d
        };
        self.records = self.records.saturating_add(1);
        let a = (1.0 / f64::from(self.records)).max(1.0 / f64::from(policy.window));
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        alert
    }
}

/// The natural logarithm of a finite positive `x`, from its exponent and
/// the series `ln m = 2 (u + u³/3 + u⁵/5 + …)`, `u = (m − 1) / (m + 1)`,
/// for its mantissa `m` in [√½, √2] (|u| ≤ 0.172; eleven terms leave an
/// error below 10⁻¹⁷). Only `+ − × ÷`, so every platform computes the same
/// bits.
pub(super) fn ln(x: f64) -> f64 {
    const LN_2: f64 = std::f64::consts::LN_2;
    const TWO_54: f64 = 18_014_398_509_481_984.0;
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first.
        return ln(x * TWO_54) - 54.0 * LN_2;
    }
    let mut exponent = biased - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    let u = (m - 1.0) / (m + 1.0);
    let u2 = u * u;
    let mut sum = 0.0;
    for k in (0..11).rev() {
        sum = sum * u2 + 1.0 / f64::from(2 * k + 1);
    }
    2.0 * u * sum + f64::from(exponent) * LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(excess: f64) -> ReleaseSide {
        ReleaseSide {
            excess,
            judged: 0.9,
            threshold: 0.99,
            in_alarm: false,
            close_after: 10,
        }
    }

    /// [`JumpState::step`] in the trust's default window.
    fn step(s: &mut JumpState, p: &JumpPolicy, r: ReleaseSide) -> bool {
        s.step(p, &r, 1024)
    }

    #[test]
    fn ln_agrees_with_the_library_to_the_last_bits() {
        for x in [
            1e-310, 1e-300, 1e-9, 0.01, 0.5, 0.7, 1.0, 1.41, 2.0, 3.0, 10.0, 1e6, 1e300,
        ] {
            let (ours, lib) = (ln(x), x.ln());
            assert!(
                (ours - lib).abs() <= 4.0 * f64::EPSILON * lib.abs().max(1.0),
                "{x}: {ours} vs {lib}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
    }

    /// A device whose excess wanders by a factor of two about 0.02.
    fn calm_device(policy: &JumpPolicy, records: usize) -> JumpState {
        let mut s = JumpState::default();
        for i in 0..records {
            let wobble = [1.0, 1.5, 0.7, 2.0, 0.5, 1.2][i % 6];
            assert!(!step(&mut s, policy, input(0.02 * wobble)), "record {i}");
        }
        s
    }

    #[test]
    fn a_leap_far_above_the_device_s_own_scores_alerts_and_routine_leaps_do_not() {
        let p = JumpPolicy::default();
        let mut s = calm_device(&p, 500);
        // A hundredfold leap, still below the threshold (excess 2 at 0.9 is
        // judged below 0.99 in this input): an alert.
        assert!(step(&mut s, &p, input(2.0)));
        // It moved the statistics as if it lay on the bar.
        let mut t = s;
        assert!(!step(&mut t, &p, input(0.02)));
        // A judged score under the floor is not a jump.
        let mut u = calm_device(&p, 500);
        assert!(!step(
            &mut u,
            &p,
            ReleaseSide {
                judged: 0.3,
                ..input(2.0)
            }
        ));
        // Leaps every 200 records: after the first three the device's onset
        // rate (about 0.0024) is above the bound, and its leaps stop
        // alerting.
        let mut v = calm_device(&p, 500);
        let alerts: Vec<bool> = (0..6)
            .map(|_| {
                let a = step(&mut v, &p, input(2.0));
                for _ in 0..199 {
                    step(&mut v, &p, input(0.02));
                }
                a
            })
            .collect();
        assert_eq!(alerts, [true, true, true, false, false, false]);
    }

    #[test]
    fn a_device_whose_excess_held_still_needs_a_doubling() {
        let p = JumpPolicy::default();
        let mut s = JumpState::default();
        for _ in 0..500 {
            assert!(!step(&mut s, &p, input(0.3)));
        }
        // No variance: a 50 % rise lies beyond the bar, but is no leap.
        assert!(!step(&mut s, &p, input(0.45)));
        assert!(step(&mut s, &p, input(0.9)));
    }

    #[test]
    fn nothing_before_warm_up_or_when_off_and_bad_values_are_refused() {
        let p = JumpPolicy::default();
        let mut s = calm_device(&p, 50);
        assert!(!step(&mut s, &p, input(2.0)));
        let mut t = calm_device(&p, 500);
        assert!(!step(&mut t, &JumpPolicy::off(), input(2.0)));
        assert!(!step(&mut t, &p, input(f64::NAN)));
        assert!(!step(&mut t, &p, input(0.0)));
        assert_eq!(p.invalid(), None);
        for (bad, field) in [
            (JumpPolicy { sds: -1.0, ..p }, "jump.sds"),
            (JumpPolicy { window: 0, ..p }, "jump.window"),
            (JumpPolicy { floor: 1.5, ..p }, "jump.floor"),
            (
                JumpPolicy {
                    onsets: f64::NAN,
                    ..p
                },
                "jump.onsets",
            ),
        ] {
            assert_eq!(bad.invalid().map(|(f, _)| f), Some(field));
        }
    }
}
