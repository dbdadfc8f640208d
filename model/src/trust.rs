//! Experiment (session 15, `training/EVALUATION.md`, "Trust by alert
//! rate"): the release's score and the novelty combined per device, each
//! detector speaking alone only while it has not cried wolf on that
//! device.
//!
//! Per device, each detector keeps an exponentially weighted rate of its
//! own alert onsets (a record at or above its alert level after one
//! below). While that rate is at most [`TrustConfig::rate`], the
//! detector's alerts stand alone; above it, they need the other
//! detector's agreement: a release alert needs the novelty at
//! `corroborate_bits` bits per resolution, a novelty alert needs the
//! release's judged score at `gate` × its threshold. A device's anomalies
//! are rare by definition, so a detector alerting on a device far more
//! often than that is describing the device's normal behaviour, not its
//! anomalies.

/// Settings (one set for every device).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrustConfig {
    /// Weight of a record in the onset rates (1 / window).
    pub weight: f64,
    /// Onsets per record above which the release needs agreement.
    pub release_rate: f64,
    /// Onsets per record above which the novelty needs agreement.
    pub novelty_rate: f64,
    /// Rates a device starts from (release, novelty; 0: trusted; above
    /// the bound: trust is earned by a calm stretch).
    pub start: (f64, f64),
    /// Novelty bits per resolution an untrusted release alert needs.
    pub corroborate_bits: f64,
    /// Share of the threshold the judged score must reach for an untrusted
    /// novelty alert.
    pub gate: f64,
    /// Calm records after which a detector's next alert is a new onset
    /// (alerts closer together are one episode).
    pub calm: u32,
}

/// One device's rates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrustState {
    release_rate: f64,
    novelty_rate: f64,
    /// Records since each detector last alerted (saturating).
    release_calm: u32,
    novelty_calm: u32,
    started: bool,
}

/// What one record is, for the alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrustStep {
    /// The record is a candidate alert.
    pub alert: bool,
    /// Whether each detector was trusted at this record.
    pub release_trusted: bool,
    pub novelty_trusted: bool,
}

impl TrustState {
    /// Judges one record: the release's `judged` score against
    /// `threshold`, the novelty's `bits` per resolution and whether it
    /// reached its own alert level; then updates the rates.
    pub fn step(
        &mut self,
        cfg: &TrustConfig,
        judged: f64,
        threshold: f64,
        bits: f64,
        novelty_alert: bool,
    ) -> TrustStep {
        if !self.started {
            self.started = true;
            (self.release_rate, self.novelty_rate) = cfg.start;
            self.release_calm = cfg.calm;
            self.novelty_calm = cfg.calm;
        }
        let release_alert = judged >= threshold;
        let release_trusted = self.release_rate <= cfg.release_rate;
        let novelty_trusted = self.novelty_rate <= cfg.novelty_rate;
        let by_release = release_alert && (release_trusted || bits >= cfg.corroborate_bits);
        let by_novelty = novelty_alert && (novelty_trusted || judged >= cfg.gate * threshold);
        let onset = |now: bool, calm: u32| if now && calm >= cfg.calm { 1.0 } else { 0.0 };
        self.release_rate +=
            cfg.weight * (onset(release_alert, self.release_calm) - self.release_rate);
        self.novelty_rate +=
            cfg.weight * (onset(novelty_alert, self.novelty_calm) - self.novelty_rate);
        let next = |now: bool, calm: u32| if now { 0 } else { calm.saturating_add(1) };
        self.release_calm = next(release_alert, self.release_calm);
        self.novelty_calm = next(novelty_alert, self.novelty_calm);
        TrustStep {
            alert: by_release || by_novelty,
            release_trusted,
            novelty_trusted,
        }
    }
}
