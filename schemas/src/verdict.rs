//! Verdict: the scorer's decision about one telemetry record, emitted for
//! every record (to `vigil.verdicts`) and, when anomalous, also to
//! `vigil.anomalies`. Cloud scorers and edge agents write the same type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::rules::{check_device_id, ValidationError};

/// Where a record was scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoredAt {
    /// By a `vigil score` replica.
    Cloud,
    /// By `vigil-edge` on the device.
    Edge,
}

impl ScoredAt {
    /// `cloud` or `edge`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoredAt::Cloud => "cloud",
            ScoredAt::Edge => "edge",
        }
    }
}

/// Why a verdict carries no score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnscoredReason {
    /// No model release existed when the record was scored.
    NoModel,
}

/// A metric's share of an anomaly score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contribution {
    /// Metric name as in the telemetry.
    pub metric: String,
    /// Fraction of the score attributed to this metric, in [0, 1].
    pub share: f64,
}

/// The decision about one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// Message schema version; always 1.
    pub schema: u32,
    /// The device the record came from.
    pub device_id: String,
    /// The record's per-device sequence number.
    pub seq: u64,
    /// The record's event time, ms since the Unix epoch.
    pub event_ts: u64,
    /// When ingest accepted the record (absent for edge-scored records that
    /// never passed through ingest), ms since the Unix epoch.
    #[serde(default)]
    pub ingest_ts: Option<u64>,
    /// When the record was scored, ms since the Unix epoch.
    pub scored_ts: u64,
    /// Model name.
    pub model: String,
    /// Model version that produced the score; null when unscored.
    pub model_version: Option<u64>,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// Threshold of that model version; `anomaly` is `score >= threshold`.
    pub threshold: f64,
    /// Whether the record is anomalous.
    pub anomaly: bool,
    /// Metrics that contributed most, largest share first.
    #[serde(default)]
    pub contributions: Vec<Contribution>,
    /// Cloud or edge.
    pub scored_at: ScoredAt,
    /// Set when the record could not be scored, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unscored: Option<UnscoredReason>,
}

impl Message for Verdict {
    const KIND: &'static str = "verdict";

    fn schema(&self) -> u32 {
        self.schema
    }

    fn check(&self) -> Result<(), ValidationError> {
        check_device_id(&self.device_id)?;
        if !(0.0..=1.0).contains(&self.score) {
            return Err(ValidationError::OutOfRange {
                field: "score",
                value: self.score.to_string(),
                why: "a score lies in [0, 1]",
            });
        }
        if !self.threshold.is_finite() {
            return Err(ValidationError::OutOfRange {
                field: "threshold",
                value: self.threshold.to_string(),
                why: "a threshold is a finite number",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_architecture_example() {
        let v = Verdict::decode(
            br#"{"schema":1,"device_id":"pump-0042","seq":1871,"event_ts":1795446981908,
 "ingest_ts":1795446981911,"scored_ts":1795446981913,"model":"default",
 "model_version":2,"score":0.93,"threshold":0.8,"anomaly":true,
 "contributions":[{"metric":"temperature_c","share":0.71}],"scored_at":"cloud"}"#,
        )
        .expect("valid example");
        assert_eq!(v.model_version, Some(2));
        assert_eq!(v.scored_at, ScoredAt::Cloud);
        assert_eq!(v.unscored, None);
    }

    #[test]
    fn unscored_verdict_says_why() {
        let v = Verdict::decode(
            br#"{"schema":1,"device_id":"d","seq":1,"event_ts":1,"scored_ts":2,"model":"default",
 "model_version":null,"score":0,"threshold":0,"anomaly":false,"scored_at":"edge","unscored":"no_model"}"#,
        )
        .expect("valid unscored verdict");
        assert_eq!(v.unscored, Some(UnscoredReason::NoModel));
        assert_eq!(v.model_version, None);
    }
}
