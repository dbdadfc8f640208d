//! [`ReleasePayload`]: what a release signs (provenance, feature spec,
//! fitted detector, alarm policy, novelty policy) and its layout version. Both [`crate::model`], which
//! compiles it for scoring, and [`crate::release`], which signs and
//! verifies it, build on this file.

use serde::{Deserialize, Serialize};
use vigil_schemas::ReleaseHeader;

use crate::alarm::AlarmPolicy;
use crate::combine::NoveltyPolicy;
use crate::detector::Detector;
use crate::features::FeatureSpec;

/// Version of the payload layout this build writes and reads. Format 2
/// added the per-metric `level` feature (four features per metric instead
/// of three), so a format-1 detector does not fit this build's feature
/// vector. Format 3 added the novelty policy (`crate::combine`): a scorer
/// that ignored it would decide differently from one that applies it.
/// Format 4 added the novelty's ranges from the training rows
/// (`NoveltyPolicy::training_ranges`): a format-3 scorer would ignore them
/// and keep every device's novelty silent for its first records.
/// Format 5 added the alarm's sustain ratio (`AlarmPolicy::sustain_ratio`):
/// a format-4 scorer would close a small release's alarms earlier (and
/// cap the device's level at the threshold, not at
/// `crate::alarm::LEVEL_CAP` times it).
/// Format 6 added each metric's period for the novelty's seasonal channel
/// (`NoveltyPolicy::seasons`, `NoveltyConfig::season_slots`): a format-5
/// scorer would not flag a value that is usual only at another time of day.
/// Format 7 changed no field but what the trust counts: a detector's alert
/// while the device is in alarm is no longer an onset
/// (`crate::combine::ReleaseSide::in_alarm`), so a format-6 scorer would
/// silence a small release inside a long fault where this one does not,
/// and the release's validation was measured with this one.
/// Format 8 added the release's break (`TrustPolicy::release_break`): an
/// untrusted release's alert far beyond the device's peak stands alone, so
/// a format-7 scorer would not flag a stuck sensor on a device whose
/// release alerts routinely.
/// Format 9 added the drift watch (`NoveltyPolicy::drift`,
/// `crate::combine::drift`): a format-8 scorer would not flag a slow drift
/// the features and the novelty learn.
/// Format 10 added the jump watch (`NoveltyPolicy::jump`,
/// `crate::combine::jump`): a format-9 scorer would not flag a leap of the
/// release's score that stays below its threshold.
/// Format 11 changed no field but what the novelty's level means: it is
/// set per record (`crate::novelty::alarm_product` adds `ceil(log2 M)`
/// bits for a device of M metrics; 11 bits a resolution by default, and
/// the trust's novelty bound 0.0025), so a format-10 scorer would read an
/// 11-bit level as a per-metric one and alert on an eight-sensor device
/// at eight times the rate this release was validated with.
/// Releases of other formats are refused as `unknown_schema` and must be
/// retrained.
pub const PAYLOAD_FORMAT: u32 = 11;

/// The signed payload of a release: provenance, feature spec, detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasePayload {
    /// Name, version, training window, validation metrics, threshold.
    #[serde(flatten)]
    pub header: ReleaseHeader,
    /// Payload layout version ([`PAYLOAD_FORMAT`]).
    pub format: u32,
    /// How features are computed from telemetry.
    pub features: FeatureSpec,
    /// The fitted detector.
    pub detector: Detector,
    /// How scores become alarms (absent in releases written before alarms
    /// existed: the default policy applies).
    #[serde(default)]
    pub alarm: AlarmPolicy,
    /// Each metric's novelty and when each detector's alerts stand alone
    /// ([`crate::combine`]); `null`: the release's score alone decides
    /// (the trainer always writes one).
    pub novelty: Option<NoveltyPolicy>,
}
