//! ModelRelease: a trained model as a message ("models as data").
//!
//! The release is an envelope around a signed payload. The payload is kept as
//! the exact bytes the trainer signed (`serde_json::value::RawValue`), so a
//! verifier checks the signature and the sha256 over those bytes without
//! re-serialising anything, and newer payload fields never break old
//! verifiers. The envelope repeats `model` and `version` for routing and
//! listing; verifiers check that they match the signed payload.
//!
//! What the payload holds beyond [`ReleaseHeader`] (feature spec, detector
//! parameters) belongs to the model crate, which also signs and verifies.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codec::Message;
use crate::rules::ValidationError;

/// Largest serialised release: small enough to push to devices over MQTT.
pub const MAX_RELEASE_BYTES: usize = 64 * 1024;

/// A signed model release, as published to `vigil.models` (key: model name)
/// and to the retained MQTT topic `vigil/models/{model}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ModelRelease {
    /// Message schema version; always 1.
    pub schema: u32,
    /// Model name (copy of the signed payload's).
    pub model: String,
    /// Version, strictly increasing per model name (copy of the payload's).
    pub version: u64,
    /// Identifies the public key that verifies `signature`.
    pub key_id: String,
    /// Lower-case hex sha256 of the payload bytes exactly as they appear.
    pub payload_sha256: String,
    /// Base64 (standard, padded) ed25519 signature of the payload bytes.
    pub signature: String,
    /// The signed payload: a [`ReleaseHeader`] plus the detector's feature
    /// spec and parameters.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub payload: Box<RawValue>,
}

impl PartialEq for ModelRelease {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
            && self.model == other.model
            && self.version == other.version
            && self.key_id == other.key_id
            && self.payload_sha256 == other.payload_sha256
            && self.signature == other.signature
            && self.payload.get() == other.payload.get()
    }
}

impl Message for ModelRelease {
    const KIND: &'static str = "model release";

    fn schema(&self) -> u32 {
        self.schema
    }

    fn check(&self) -> Result<(), ValidationError> {
        if self.model.is_empty() {
            return Err(ValidationError::BadName {
                what: "model",
                name: String::new(),
            });
        }
        if self.version == 0 {
            return Err(ValidationError::OutOfRange {
                field: "version",
                value: "0".into(),
                why: "versions start at 1",
            });
        }
        Ok(())
    }
}

/// Provenance every release payload starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseHeader {
    /// Model name.
    pub model: String,
    /// Version, strictly increasing per model name.
    pub version: u64,
    /// When the trainer built the release, ms since the Unix epoch.
    pub created_ts: u64,
    /// What the model was trained on.
    pub training: TrainingWindow,
    /// How the model did on held-out data.
    pub validation: ValidationMetrics,
    /// Score at or above which a record is anomalous.
    pub threshold: f64,
}

/// The data a release was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainingWindow {
    /// Earliest record time, ms since the Unix epoch.
    pub from_ts: u64,
    /// Latest record time, ms since the Unix epoch.
    pub to_ts: u64,
    /// Records used (training plus holdout).
    pub records: u64,
    /// Distinct devices seen.
    pub devices: u64,
    /// Where the data came from (`kafka:vigil.telemetry`, `file:fleet.csv`).
    pub source: String,
}

/// Holdout results a release was gated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationMetrics {
    /// Records in the holdout split.
    pub holdout_records: u64,
    /// Fraction of normal holdout records flagged anomalous (without
    /// labels every holdout record counts as normal, so anomalies in the
    /// holdout raise it).
    pub false_alarm_rate: f64,
    /// The false-alarm rate the threshold was calibrated for (the
    /// trainer's target); absent in releases written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_false_alarm_rate: Option<f64>,
    /// The false-alarm rate at the threshold estimated on the most recent
    /// held-out rows (the later half of each device's holdout, never
    /// fitted), robust to the few percent of anomalies an unlabelled
    /// window holds: rows above the calibration cut are left out and the
    /// tail is extrapolated from the 75th and 90th percentiles. Those rows
    /// also took part in placing the threshold, so it checks that the
    /// threshold holds at the end of the window. Absent when the holdout
    /// is too small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_false_alarm_rate: Option<f64>,
    /// Fraction of labelled anomaly events detected, when labels exist.
    #[serde(default)]
    pub detection_rate: Option<f64>,
    /// Mean records from an anomaly's start to its detection, when labels
    /// exist.
    #[serde(default)]
    pub mean_detection_delay: Option<f64>,
}
