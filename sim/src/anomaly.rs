//! Anomaly kinds, per-record labels and per-episode ground truth.
//!
//! An *episode* is one injected anomaly on one device. Its ground truth
//! ([`Episode`]) is fully known when it starts, and every record inside it is
//! labelled with its kind ([`Label`]), so a consumer can score a detector
//! either per record (precision/recall) or per episode (was it caught, how
//! late).

use std::fmt;
use std::str::FromStr;

/// What kind of fault an episode simulates. Magnitudes are in units of the
/// metric's typical spread on that device (see [`crate::Device::metric_scale`]),
/// times [`crate::AnomalyConfig::severity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// One metric jumps by 6–10 spreads for 1–3 samples.
    Spike,
    /// One metric moves by 3–5 spreads and stays there (30–120 samples).
    LevelShift,
    /// One metric ramps linearly away by up to 4–8 spreads (60–240 samples).
    Drift,
    /// One sensor repeats the value it read at the start (20–100 samples).
    StuckAt,
    /// One metric gets extra noise of 3 spreads s.d. (10–60 samples).
    NoiseBurst,
    /// One load-coupled metric follows the mirror image of the load, so it
    /// moves against the metrics it normally tracks (30–120 samples).
    BrokenCorrelation,
    /// The device sends nothing for 5–60 sample intervals; the next record
    /// arrives with the next seq (no seq gap) but a gap in `ts`.
    Missing,
}

impl AnomalyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AnomalyKind; 7] = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::StuckAt,
        AnomalyKind::NoiseBurst,
        AnomalyKind::BrokenCorrelation,
        AnomalyKind::Missing,
    ];

    /// Stable snake_case name for reports and CLI flags.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::Drift => "drift",
            AnomalyKind::StuckAt => "stuck_at",
            AnomalyKind::NoiseBurst => "noise_burst",
            AnomalyKind::BrokenCorrelation => "broken_correlation",
            AnomalyKind::Missing => "missing",
        }
    }

    /// Episode length in ticks, inclusive range. For [`AnomalyKind::Missing`]
    /// it is the number of silent ticks.
    pub fn duration_ticks(self) -> (u64, u64) {
        match self {
            AnomalyKind::Spike => (1, 3),
            AnomalyKind::LevelShift => (30, 120),
            AnomalyKind::Drift => (60, 240),
            AnomalyKind::StuckAt => (20, 100),
            AnomalyKind::NoiseBurst => (10, 60),
            AnomalyKind::BrokenCorrelation => (30, 120),
            AnomalyKind::Missing => (5, 60),
        }
    }

    /// Magnitude range in spreads (before severity); 0 where it does not apply.
    pub(crate) fn magnitude(self) -> (f64, f64) {
        match self {
            AnomalyKind::Spike => (6.0, 10.0),
            AnomalyKind::LevelShift => (3.0, 5.0),
            AnomalyKind::Drift => (4.0, 8.0),
            AnomalyKind::NoiseBurst => (3.0, 3.0),
            AnomalyKind::StuckAt | AnomalyKind::BrokenCorrelation | AnomalyKind::Missing => {
                (0.0, 0.0)
            }
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`AnomalyKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown anomaly kind {0:?}; expected one of spike, level_shift, drift, stuck_at, noise_burst, broken_correlation, missing")]
pub struct UnknownKind(pub String);

impl FromStr for AnomalyKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnomalyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Ground truth of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// Healthy device, healthy signal.
    Normal,
    /// Inside an episode of this kind. For [`AnomalyKind::Missing`] only the
    /// first record after the silence carries the label.
    Anomaly(AnomalyKind),
}

impl Label {
    pub fn is_anomaly(self) -> bool {
        matches!(self, Label::Anomaly(_))
    }

    pub fn kind(self) -> Option<AnomalyKind> {
        match self {
            Label::Normal => None,
            Label::Anomaly(k) => Some(k),
        }
    }
}

/// Ground truth of one injected anomaly.
///
/// Records of `device_id` with `first_seq <= seq <= last_seq` are labelled
/// `kind`, and their timestamps lie in `[start_ts, end_ts]`. For
/// [`AnomalyKind::Missing`], `first_seq == last_seq` is the first record after
/// the silence, `start_ts` is when the first missing sample was due and
/// `end_ts` is that record's timestamp. If generation stops mid-episode, the
/// later seqs are simply never produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub device_id: String,
    pub kind: AnomalyKind,
    /// The affected metric; `None` for [`AnomalyKind::Missing`].
    pub metric: Option<String>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Event time of the first affected (or first missing) sample, ms.
    pub start_ts: u64,
    /// Event time of the last labelled record, ms.
    pub end_ts: u64,
}

impl Episode {
    /// Whether a record of `device_id` with `seq` belongs to this episode.
    pub fn contains(&self, device_id: &str, seq: u64) -> bool {
        self.device_id == device_id && (self.first_seq..=self.last_seq).contains(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in AnomalyKind::ALL {
            assert_eq!(k.as_str().parse::<AnomalyKind>(), Ok(k));
        }
        let err = "spikey".parse::<AnomalyKind>().expect_err("not a kind");
        assert!(err.to_string().contains("\"spikey\""));
    }
}
