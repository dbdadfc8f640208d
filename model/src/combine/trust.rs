//! How far each detector's alerts are trusted on a device
//! ([`TrustPolicy`], signed into the release) and how much calibration
//! evidence the trainer's bound rests on ([`calibration_share`]); the
//! rule itself is in the parent module's docs.

use serde::{Deserialize, Serialize};

/// Expected exceedances of the threshold among the rows that placed it
/// (rows × target false-alarm rate) from which a release's alerts get the
/// whole [`TrustPolicy::release_onsets`] bound
/// ([`TrustPolicy::for_calibration`]). Ten expected exceedances put the
/// count's Poisson spread at about a third of it; with fewer, the
/// threshold is mostly an extrapolation beyond the largest rows seen.
pub const FULL_CALIBRATION_EXCEEDANCES: f64 = 10.0;

/// Significance of the test "this release alerts more often than its
/// target false-alarm rate": a release keeping its promise shows more
/// onsets in one window than [`TrustPolicy::promised_onsets`] allows in at
/// most this share of windows.
pub const PROMISE_SIGNIFICANCE: f64 = 0.05;

/// Mean onset count per window above which [`TrustPolicy::promised_onsets`]
/// uses the normal approximation (at [`PROMISE_SIGNIFICANCE`] = 5 %).
pub const NORMAL_COUNT_MEAN: f64 = 400.0;

/// Default [`TrustPolicy::release_break`]: an untrusted release's alert
/// stands alone where its raw score (after the device's level) is 32 times
/// the largest the device showed before the alert's run, about 5.7 times
/// its Mahalanobis distance. Chosen by a rule written before its runs, on
/// NAB's tuning half, the injected corpora and the tuning sets; 2 and 8
/// carried too many alarms into an episode's wake (eval/NAB.md, session 26).
pub const RELEASE_BREAK: f64 = 32.0;

/// When each detector's alerts stand alone (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrustPolicy {
    /// Records in the onset rates' exponential window.
    pub window: u32,
    /// Release alert onsets per record above which the release needs the
    /// novelty's agreement (the trainer scales the default down for a
    /// threshold placed on little evidence, [`Self::for_calibration`]).
    pub release_onsets: f64,
    /// Novelty alert onsets per record above which the novelty needs the
    /// release's agreement.
    pub novelty_onsets: f64,
    /// The novelty's onset rate when a device's ranges are fixed.
    pub novelty_start: f64,
    /// Share of the threshold the release's judged score must reach to
    /// agree with an untrusted novelty alert.
    pub gate: f64,
    /// How many times the device's peak excess (before the release's
    /// current alert run) an untrusted release's alert must reach to stand
    /// alone on its record ([`crate::combine::ReleaseSide::excess`]); 0:
    /// never. A release crying wolf on a device is describing its normal
    /// range badly, not losing its sight of what lies far beyond it.
    pub release_break: f64,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            window: 1024,
            release_onsets: 0.006,
            // 0.0025 since session 33 (eval/NAB.md, rules 36 and 37).
            novelty_onsets: 0.0025,
            novelty_start: 0.012,
            gate: 1.0,
            release_break: RELEASE_BREAK,
        }
    }
}

impl TrustPolicy {
    /// This policy for a release whose threshold was placed on `rows` rows
    /// at false-alarm rate `target`: the release's bound shrinks in
    /// proportion to the exceedances those rows could show (`rows ×
    /// target`) below [`FULL_CALIBRATION_EXCEEDANCES`], down to
    /// [`Self::promised_onsets`]. A threshold set on a few hundred rows of
    /// one device at 0.1 % rests on less than one exceedance: its alerts
    /// stand alone while its onsets stay within what its target allows and
    /// need the novelty's agreement once they run above it. A fleet's
    /// release (thousands of rows) keeps the whole bound.
    ///
    /// The novelty's start shrinks with the same share, down to the
    /// novelty's own bound: while a release on little evidence needs the
    /// novelty's agreement after a few alerts, the novelty, whose ranges
    /// the same rows fixed and whose surprise needs no calibration, is not
    /// also kept silent for the calm stretch a fleet's device must show
    /// (1,024 × ln(start / bound) records, 1,420 at the defaults). A
    /// single file's device starts at the bound, so one alert costs it its
    /// voice until a calm stretch. A fleet's release keeps the whole start
    /// (eval/NAB.md, session 22).
    pub fn for_calibration(self, rows: usize, target: f64) -> Self {
        let share = calibration_share(rows, target);
        Self {
            release_onsets: (self.release_onsets * share).max(self.promised_onsets(target)),
            novelty_start: (self.novelty_start * share)
                .max(self.novelty_onsets.min(self.novelty_start)),
            ..self
        }
    }

    /// The onset rate a release that keeps its false-alarm promise
    /// (`target`, alerts per record) can show: `k / window` for the
    /// smallest `k` that a Poisson count with mean `target × window`
    /// exceeds with probability at most [`PROMISE_SIGNIFICANCE`]. Onsets
    /// are at most the alerts, so a release whose onset rate runs above it
    /// alerts more often than it promised, whatever evidence placed its
    /// threshold. At 0.1 % over 1,024 records: 3 onsets, 0.0029. 0 for a
    /// target that is not a positive number. Above a mean of
    /// [`NORMAL_COUNT_MEAN`] (where e^−mean would underflow long before the
    /// sum converged) the count is taken as normal: mean + 1.645 √mean.
    pub fn promised_onsets(&self, target: f64) -> f64 {
        let window = f64::from(self.window.max(1));
        let mean = target * window;
        if !(mean.is_finite() && mean > 0.0) {
            return 0.0;
        }
        if mean > NORMAL_COUNT_MEAN {
            // The one-sided 95 % point of the normal distribution; the
            // Poisson sum below is exact up to NORMAL_COUNT_MEAN.
            const Z95: f64 = 1.644_853_626_951_472_2;
            return ((mean + Z95 * mean.sqrt()).ceil() / window).min(1.0);
        }
        let (mut k, mut term) = (0u32, (-mean).exp());
        let mut below = term;
        while 1.0 - below > PROMISE_SIGNIFICANCE && f64::from(k) < window {
            k += 1;
            term *= mean / f64::from(k);
            below += term;
        }
        (f64::from(k) / window).min(1.0)
    }
}

/// How much of a full calibration's evidence placed a threshold set on
/// `rows` rows at false-alarm rate `target`: the expected exceedances
/// (`rows × target`) over [`FULL_CALIBRATION_EXCEEDANCES`], in [0, 1]
/// (0 when either is not a positive number).
pub fn calibration_share(rows: usize, target: f64) -> f64 {
    let exceedances = rows as f64 * target;
    if exceedances.is_finite() && exceedances > 0.0 {
        (exceedances / FULL_CALIBRATION_EXCEEDANCES).min(1.0)
    } else {
        0.0
    }
}

/// How a record counts toward a detector's onset rate on a device (the
/// trust's, and the jump watch's own): an alert after at least
/// `close_after` calm records while the device is not in alarm is an
/// onset, averaged over an exponential window of `window` records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Onsets {
    pub in_alarm: bool,
    pub close_after: u32,
    pub window: u32,
}

impl Onsets {
    /// Advances one detector's onset `rate` and `calm` run (records since
    /// its last alert, saturating) by a record on which it is `alerting`.
    pub(super) fn count(&self, rate: &mut f64, calm: &mut u32, alerting: bool) {
        let onset = if !self.in_alarm && alerting && *calm >= self.close_after {
            1.0
        } else {
            0.0
        };
        *rate += (1.0 / f64::from(self.window)) * (onset - *rate);
        *calm = if alerting { 0 } else { calm.saturating_add(1) };
    }
}
