//! The row codec both backends share: how a [`Verdict`], a
//! [`ModelRecord`] and an [`Incident`] become column values and back.
//!
//! SQLite and Scylla/Cassandra keep the same columns with the same types
//! (64-bit signed integers for times, sequence numbers and versions; text
//! for enums and JSON), so the mapping is written once here. A backend
//! only moves these plain values in and out of its driver's row type.

use std::borrow::Cow;

use serde_json::value::RawValue;
use vigil_schemas::{
    Alarm, Contribution, Incident, IncidentState, ScoredAt, TrainingWindow, UnscoredReason,
    ValidationMetrics, Verdict, SCHEMA_VERSION,
};

use crate::{ModelRecord, StoreError};

/// The columns of a verdict row, in this order, in every verdict table of
/// both backends.
pub const VERDICT_COLUMNS: &str = "device_id, event_ts, seq, model, model_version, ingest_ts, \
     scored_ts, score, threshold, anomaly, scored_at, unscored, contributions, alarm";

/// A verdict as column values ([`VERDICT_COLUMNS`] order). Borrows the
/// verdict's strings when written; owns them when read.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRow<'a> {
    pub device_id: Cow<'a, str>,
    pub event_ts: i64,
    pub seq: i64,
    pub model: Cow<'a, str>,
    /// The stored version: 0 when unscored (see [`stored_version`]).
    pub model_version: i64,
    pub ingest_ts: Option<i64>,
    pub scored_ts: i64,
    pub score: f64,
    pub threshold: f64,
    pub anomaly: bool,
    pub scored_at: Cow<'a, str>,
    pub unscored: Option<Cow<'a, str>>,
    /// Contributions as compact JSON, `None` when there are none.
    pub contributions: Option<String>,
    /// The verdict's alarm as compact JSON, `None` outside alarms.
    pub alarm: Option<String>,
}

impl<'a> VerdictRow<'a> {
    /// The column values of `v`; refuses values a signed 64-bit column
    /// cannot hold.
    pub fn encode(v: &'a Verdict) -> Result<Self, StoreError> {
        Ok(Self {
            device_id: Cow::Borrowed(&v.device_id),
            event_ts: to_i64("event_ts", v.event_ts)?,
            seq: to_i64("seq", v.seq)?,
            model: Cow::Borrowed(&v.model),
            model_version: to_i64("model_version", stored_version(v))?,
            ingest_ts: v.ingest_ts.map(|t| to_i64("ingest_ts", t)).transpose()?,
            scored_ts: to_i64("scored_ts", v.scored_ts)?,
            score: v.score,
            threshold: v.threshold,
            anomaly: v.anomaly,
            scored_at: Cow::Borrowed(v.scored_at.as_str()),
            unscored: v.unscored.map(|r| Cow::Borrowed(unscored_name(r))),
            contributions: encode_contributions(&v.contributions)?,
            alarm: v
                .alarm
                .as_ref()
                .map(|a| {
                    serde_json::to_string(a).map_err(|e| StoreError::Corrupt {
                        what: "alarm",
                        detail: e.to_string(),
                    })
                })
                .transpose()?,
        })
    }

    /// The verdict these values hold; a value no verdict can have is
    /// reported as corruption.
    pub fn decode(self) -> Result<Verdict, StoreError> {
        let version = from_i64("model_version", self.model_version)?;
        Ok(Verdict {
            schema: SCHEMA_VERSION,
            device_id: self.device_id.into_owned(),
            seq: from_i64("seq", self.seq)?,
            event_ts: from_i64("event_ts", self.event_ts)?,
            ingest_ts: self
                .ingest_ts
                .map(|t| from_i64("ingest_ts", t))
                .transpose()?,
            scored_ts: from_i64("scored_ts", self.scored_ts)?,
            model: self.model.into_owned(),
            model_version: (version != 0).then_some(version),
            score: self.score,
            threshold: self.threshold,
            anomaly: self.anomaly,
            contributions: decode_contributions(self.contributions.as_deref())?,
            scored_at: parse_scored_at(&self.scored_at)?,
            unscored: parse_unscored(self.unscored.as_deref())?,
            alarm: self
                .alarm
                .as_deref()
                .map(|s| {
                    serde_json::from_str::<Alarm>(s).map_err(|e| StoreError::Corrupt {
                        what: "alarm",
                        detail: format!("{s:?}: {e}"),
                    })
                })
                .transpose()?,
        })
    }
}

/// A release's provenance as column values (the `model_releases` columns
/// from `model` to `signature_verified`, in that order; the envelope is
/// kept beside them as is).
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseColumns<'a> {
    pub model: Cow<'a, str>,
    pub version: i64,
    pub key_id: Cow<'a, str>,
    pub payload_sha256: Cow<'a, str>,
    pub created_ts: i64,
    pub published_ts: i64,
    pub threshold: f64,
    pub training_from_ts: i64,
    pub training_to_ts: i64,
    pub training_records: i64,
    pub training_devices: i64,
    pub training_source: Cow<'a, str>,
    /// Validation metrics as JSON.
    pub validation: String,
    pub signature_verified: bool,
}

impl<'a> ReleaseColumns<'a> {
    /// The column values of `m`.
    pub fn encode(m: &'a ModelRecord) -> Result<Self, StoreError> {
        Ok(Self {
            model: Cow::Borrowed(&m.model),
            version: to_i64("version", m.version)?,
            key_id: Cow::Borrowed(&m.key_id),
            payload_sha256: Cow::Borrowed(&m.payload_sha256),
            created_ts: to_i64("created_ts", m.created_ts)?,
            published_ts: to_i64("published_ts", m.published_ts)?,
            threshold: m.threshold,
            training_from_ts: to_i64("training.from_ts", m.training.from_ts)?,
            training_to_ts: to_i64("training.to_ts", m.training.to_ts)?,
            training_records: to_i64("training.records", m.training.records)?,
            training_devices: to_i64("training.devices", m.training.devices)?,
            training_source: Cow::Borrowed(&m.training.source),
            validation: json("validation metrics", &m.validation)?,
            signature_verified: m.signature_verified,
        })
    }

    /// The release record these values hold.
    pub fn decode(self) -> Result<ModelRecord, StoreError> {
        let validation: ValidationMetrics = parse_json("validation metrics", &self.validation)?;
        Ok(ModelRecord {
            model: self.model.into_owned(),
            version: from_i64("version", self.version)?,
            key_id: self.key_id.into_owned(),
            payload_sha256: self.payload_sha256.into_owned(),
            created_ts: from_i64("created_ts", self.created_ts)?,
            published_ts: from_i64("published_ts", self.published_ts)?,
            threshold: self.threshold,
            training: TrainingWindow {
                from_ts: from_i64("training.from_ts", self.training_from_ts)?,
                to_ts: from_i64("training.to_ts", self.training_to_ts)?,
                records: from_i64("training.records", self.training_records)?,
                devices: from_i64("training.devices", self.training_devices)?,
                source: self.training_source.into_owned(),
            },
            validation,
            signature_verified: self.signature_verified,
        })
    }
}

/// Whether the store can hold `v`: the check [`VerdictRow::encode`] makes,
/// without keeping the row. The audit sink runs it on every record before
/// batching it, so one record the store would refuse goes to the DLQ alone
/// instead of failing the whole batch.
pub fn admit_verdict(v: &Verdict) -> Result<(), StoreError> {
    VerdictRow::encode(v).map(drop)
}

/// Whether the store can hold the release `m` (see [`admit_verdict`]).
pub fn admit_release(m: &ModelRecord) -> Result<(), StoreError> {
    ReleaseColumns::encode(m).map(drop)
}

/// Whether the store can hold the incident event `i` (see
/// [`admit_verdict`]).
pub fn admit_incident(i: &Incident) -> Result<(), StoreError> {
    to_i64("ts", i.ts)?;
    incident_body(i).map(drop)
}

/// An incident event's body column: the whole event as JSON.
pub fn incident_body(i: &Incident) -> Result<String, StoreError> {
    json("incident", i)
}

/// An incident event back from its body column.
pub fn incident_from_body(body: &str) -> Result<Incident, StoreError> {
    parse_json("incident", body)
}

/// A release's stored envelope back as the JSON it was published as.
pub fn envelope_json(envelope: String) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(envelope).map_err(|e| StoreError::Corrupt {
        what: "release envelope",
        detail: e.to_string(),
    })
}

/// The `state` column of an incident event.
pub fn state_name(s: IncidentState) -> &'static str {
    match s {
        IncidentState::Opened => "opened",
        IncidentState::Updated => "updated",
        IncidentState::Resolved => "resolved",
    }
}

/// The version a verdict is stored under: its model version, or 0 when
/// unscored (no release has version 0; versions start at 1).
pub fn stored_version(v: &Verdict) -> u64 {
    v.model_version.unwrap_or(0)
}

/// `value` as a signed 64-bit column value.
pub fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        field,
        value,
        max: i64::MAX,
    })
}

/// A signed 64-bit column value back as u64 (negative means corruption).
pub fn from_i64(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("negative value {value}"),
    })
}

/// A value as compact JSON for a text column.
fn json<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// A JSON text column back as a value.
fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// Contributions as compact JSON, or `None` when there are none.
fn encode_contributions(c: &[Contribution]) -> Result<Option<String>, StoreError> {
    if c.is_empty() {
        return Ok(None);
    }
    json("contributions", c).map(Some)
}

fn decode_contributions(text: Option<&str>) -> Result<Vec<Contribution>, StoreError> {
    match text {
        None | Some("") => Ok(Vec::new()),
        Some(t) => parse_json("contributions", t),
    }
}

fn unscored_name(r: UnscoredReason) -> &'static str {
    match r {
        UnscoredReason::NoModel => "no_model",
    }
}

fn parse_unscored(s: Option<&str>) -> Result<Option<UnscoredReason>, StoreError> {
    match s {
        None => Ok(None),
        Some("no_model") => Ok(Some(UnscoredReason::NoModel)),
        Some(other) => Err(StoreError::Corrupt {
            what: "unscored reason",
            detail: format!("unknown value {other:?}"),
        }),
    }
}

fn parse_scored_at(s: &str) -> Result<ScoredAt, StoreError> {
    match s {
        "cloud" => Ok(ScoredAt::Cloud),
        "edge" => Ok(ScoredAt::Edge),
        other => Err(StoreError::Corrupt {
            what: "scored_at",
            detail: format!("unknown value {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schemas::Contribution;

    fn verdict() -> Verdict {
        Verdict {
            alarm: None,
            schema: SCHEMA_VERSION,
            device_id: "pump-0042".into(),
            seq: 1871,
            event_ts: 1_795_446_981_908,
            ingest_ts: Some(1_795_446_981_911),
            scored_ts: 1_795_446_981_913,
            model: "default".into(),
            model_version: Some(2),
            score: 0.93,
            threshold: 0.8,
            anomaly: true,
            contributions: vec![Contribution {
                metric: "temperature_c".into(),
                share: 0.71,
            }],
            scored_at: ScoredAt::Cloud,
            unscored: None,
        }
    }

    #[test]
    fn verdicts_round_trip_scored_and_unscored() {
        let unscored = Verdict {
            model_version: None,
            ingest_ts: None,
            contributions: Vec::new(),
            unscored: Some(UnscoredReason::NoModel),
            scored_at: ScoredAt::Edge,
            ..verdict()
        };
        for v in [verdict(), unscored] {
            let row = VerdictRow::encode(&v).expect("encodes");
            assert_eq!(
                row.model_version,
                i64::try_from(stored_version(&v)).expect("fits")
            );
            assert_eq!(row.decode().expect("decodes"), v);
        }
    }

    #[test]
    fn rows_the_store_cannot_hold_are_refused_permanently() {
        assert!(admit_verdict(&verdict()).is_ok());
        for v in [
            Verdict {
                seq: 1 << 63,
                ..verdict()
            },
            Verdict {
                event_ts: u64::MAX,
                ..verdict()
            },
            Verdict {
                model_version: Some(u64::MAX),
                ..verdict()
            },
        ] {
            let err = admit_verdict(&v).expect_err("out of range");
            assert!(err.is_permanent(), "{err}");
            assert_eq!(err.reason(), "out_of_range");
        }
        let transient = StoreError::Sqlite {
            what: "committing",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            ),
        };
        assert!(!transient.is_permanent());
        let refused = StoreError::Sqlite {
            what: "inserting a verdict",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                None,
            ),
        };
        assert!(refused.is_permanent());
        assert!(!StoreError::Worker("gone".into()).is_permanent());
    }

    #[test]
    fn bad_values_are_refused_or_reported_corrupt() {
        let v = Verdict {
            seq: u64::MAX,
            ..verdict()
        };
        let err = VerdictRow::encode(&v).expect_err("seq too large");
        assert!(err.to_string().contains("seq"), "{err}");
        let good = verdict();
        let mut row = VerdictRow::encode(&good).expect("encodes");
        row.scored_at = Cow::Borrowed("moon");
        assert!(matches!(
            row.decode(),
            Err(StoreError::Corrupt {
                what: "scored_at",
                ..
            })
        ));
        let mut row = VerdictRow::encode(&good).expect("encodes");
        row.seq = -1;
        assert!(matches!(
            row.decode(),
            Err(StoreError::Corrupt { what: "seq", .. })
        ));
    }
}
