//! Verdict: the scorer's decision about one telemetry record, emitted for
//! every record (to `vigil.verdicts`) and, while its device is in alarm
//! (`anomaly = true`), also to `vigil.anomalies`. Cloud
//! scorers and edge agents write the same type.
//!
//! # Alarms
//!
//! A device is *in alarm* from the record whose score first reaches the
//! threshold until a run of calm records (below the threshold; how many is
//! the model's alarm policy) closes it. `anomaly` is true for every record
//! while the alarm is open, so a drift that dips under the threshold now
//! and then is one alarm, not five; `alarm` names it and says where in its
//! life the record is. The record that closes an alarm has `anomaly =
//! false` and `alarm.state = closed`.

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

/// Where in an alarm's life a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// This record opened the alarm.
    Opened,
    /// The alarm was open before this record and still is.
    Ongoing,
    /// This record closed the alarm (it is calm itself).
    Closed,
}

impl AlarmState {
    /// `opened`, `ongoing` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Opened => "opened",
            AlarmState::Ongoing => "ongoing",
            AlarmState::Closed => "closed",
        }
    }
}

/// The alarm a verdict belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Alarm {
    /// Stable id: `{device_id}@{opened_seq}`; the same on every verdict of
    /// the alarm, from any scorer that replays the same records.
    pub id: String,
    /// `seq` of the record that opened it.
    pub opened_seq: u64,
    /// Event time of that record, ms since the Unix epoch.
    pub opened_ts: u64,
    /// Where this verdict is in the alarm's life.
    pub state: AlarmState,
}

impl Alarm {
    /// The id of `device_id`'s alarm opened at `opened_seq`.
    pub fn id_for(device_id: &str, opened_seq: u64) -> String {
        format!("{device_id}@{opened_seq}")
    }
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
    /// Threshold of that model version: a score at or above it opens an
    /// alarm or keeps one open while the model trusts its score on the
    /// device; the model's per-metric novelty can open one too, and then
    /// names the novel metric as the only contribution.
    pub threshold: f64,
    /// Whether the device is in alarm at this record (see the module
    /// docs): true from the record that opens an alarm up to the one
    /// before the record that closes it.
    pub anomaly: bool,
    /// The alarm this record opens, continues or closes; absent outside
    /// alarms and on unscored or replayed (stale) records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Alarm>,
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
        if let Some(alarm) = &self.alarm {
            if alarm.opened_seq > self.seq
                || alarm.id != Alarm::id_for(&self.device_id, alarm.opened_seq)
            {
                return Err(ValidationError::OutOfRange {
                    field: "alarm",
                    value: alarm.id.clone(),
                    why: "an alarm's id is `{device_id}@{opened_seq}` and it opens at or before the record",
                });
            }
            if self.anomaly == (alarm.state == AlarmState::Closed) {
                return Err(ValidationError::OutOfRange {
                    field: "anomaly",
                    value: self.anomaly.to_string(),
                    why: "a record is anomalous exactly while its alarm is opened or ongoing",
                });
            }
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
    fn alarms_name_their_device_and_agree_with_anomaly() {
        let base = br#"{"schema":1,"device_id":"d","seq":9,"event_ts":1,"scored_ts":2,"model":"m",
 "model_version":1,"score":0.7,"threshold":0.5,"anomaly":true,"scored_at":"cloud","#;
        let with = |rest: &str| [&base[..], rest.as_bytes()].concat();
        let v = Verdict::decode(&with(
            r#""alarm":{"id":"d@7","opened_seq":7,"opened_ts":1,"state":"ongoing"}}"#,
        ))
        .expect("valid alarm");
        assert_eq!(v.alarm.map(|a| a.state), Some(AlarmState::Ongoing));
        for bad in [
            r#""alarm":{"id":"e@7","opened_seq":7,"opened_ts":1,"state":"ongoing"}}"#,
            r#""alarm":{"id":"d@10","opened_seq":10,"opened_ts":1,"state":"opened"}}"#,
            r#""alarm":{"id":"d@7","opened_seq":7,"opened_ts":1,"state":"closed"}}"#,
        ] {
            assert!(Verdict::decode(&with(bad)).is_err(), "{bad}");
        }
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
