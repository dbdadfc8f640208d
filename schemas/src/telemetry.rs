//! Telemetry: one sample of a device's metrics, as the device sends it over
//! MQTT and as ingest forwards it to `vigil.telemetry`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::rules::check_name;
pub use crate::rules::{
    check_device_id, ValidationError, MAX_DEVICE_ID_LEN, MAX_METRICS, MAX_NAME_LEN, MAX_TAGS,
    MAX_TAG_VALUE_LEN,
};
use crate::SCHEMA_VERSION;

/// Largest accepted `seq`: `i64::MAX`, the largest value a signed 64-bit
/// store column (SQLite `INTEGER`, CQL `bigint`) holds.
pub const MAX_SEQ: u64 = i64::MAX as u64;
/// Largest accepted `ts` (ms), for the same reason as [`MAX_SEQ`].
pub const MAX_TS: u64 = i64::MAX as u64;
/// Default floor of `ts`: 2000-01-01T00:00:00Z in ms. Earlier event times
/// are a device with no clock (`0`, seconds instead of ms, …), not data.
pub const DEFAULT_MIN_TS_MS: u64 = 946_684_800_000;

/// One sample of a device's metrics.
///
/// `(device_id, seq)` identifies a record everywhere in Vigil: duplicates are
/// harmless because every sink upserts by it, and loss is measurable because
/// `seq` increases per device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Telemetry {
    /// Message schema version; always 1.
    #[schemars(range(min = 1, max = 1))]
    pub schema: u32,
    /// The sending device. Letters, digits and `._:-`; at most 128 bytes.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._:-]+$"))]
    pub device_id: String,
    /// Per-device sequence number, increasing by one per sample. At most
    /// 9223372036854775807 (i64::MAX): the stores keep it in a signed
    /// 64-bit column.
    #[schemars(range(max = 9_223_372_036_854_775_807u64))]
    pub seq: u64,
    /// Event time: when the device took the sample, ms since the Unix epoch.
    /// At most 9223372036854775807 (i64::MAX); ingest also refuses times
    /// before its floor (2000-01-01 by default) and too far in its future.
    #[schemars(range(max = 9_223_372_036_854_775_807u64))]
    pub ts: u64,
    /// Metric name → value. Values must be finite.
    pub metrics: BTreeMap<String, f64>,
    /// Free-form labels (firmware, site, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// When ingest accepted the record, ms since the Unix epoch. Set by
    /// ingest; devices leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_ts: Option<u64>,
    /// Set by an edge agent that decided about this record itself and
    /// sends its verdict up (`vigil/devices/{id}/verdicts`): that verdict
    /// is the decision about the record, so the cloud scorer does not
    /// score it again (unless told to shadow-score the device). Absent:
    /// the cloud scores the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeScored>,
}

/// What an edge agent decided about a record it scored itself (carried on
/// the telemetry, so a shadow-scoring cloud can compare without a join).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EdgeScored {
    /// Model name.
    pub model: String,
    /// Model version the agent scored with; null when it had no model yet
    /// (its verdict says `unscored: no_model`).
    pub model_version: Option<u64>,
    /// Whether the agent's verdict says the device is in alarm.
    pub anomaly: bool,
}

impl Telemetry {
    /// A schema-1 record with no tags and no ingest time.
    pub fn new(
        device_id: impl Into<String>,
        seq: u64,
        ts: u64,
        metrics: BTreeMap<String, f64>,
    ) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            device_id: device_id.into(),
            seq,
            ts,
            metrics,
            tags: None,
            ingest_ts: None,
            edge: None,
        }
    }
}

impl Message for Telemetry {
    const KIND: &'static str = "telemetry";

    fn schema(&self) -> u32 {
        self.schema
    }

    fn check(&self) -> Result<(), ValidationError> {
        check_device_id(&self.device_id)?;
        if self.seq > MAX_SEQ {
            return Err(ValidationError::OutOfRange {
                field: "seq",
                value: self.seq.to_string(),
                why: "at most 9223372036854775807 (i64::MAX, the stores' limit) allowed",
            });
        }
        if self.ts > MAX_TS {
            return Err(ValidationError::OutOfRange {
                field: "ts",
                value: self.ts.to_string(),
                why: "at most 9223372036854775807 (i64::MAX, the stores' limit) allowed",
            });
        }
        if self.metrics.is_empty() {
            return Err(ValidationError::NoMetrics);
        }
        if self.metrics.len() > MAX_METRICS {
            return Err(ValidationError::TooManyMetrics {
                count: self.metrics.len(),
            });
        }
        for (name, value) in &self.metrics {
            check_name("metric", name)?;
            if !value.is_finite() {
                return Err(ValidationError::NonFiniteMetric {
                    metric: name.clone(),
                });
            }
        }
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                return Err(ValidationError::TooManyTags { count: tags.len() });
            }
            for (name, value) in tags {
                check_name("tag", name)?;
                if value.len() > MAX_TAG_VALUE_LEN {
                    return Err(ValidationError::TagValueTooLong { tag: name.clone() });
                }
            }
        }
        Ok(())
    }
}

/// Limits a receiver applies on top of the message's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryLimits {
    /// Largest accepted payload, bytes.
    pub max_payload_bytes: usize,
    /// How far into the future (receiver's clock) `ts` may lie, ms.
    pub max_future_skew_ms: u64,
    /// Earliest accepted `ts`, ms since the Unix epoch (default
    /// [`DEFAULT_MIN_TS_MS`], 2000-01-01).
    pub min_ts_ms: u64,
}

impl Default for TelemetryLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            max_future_skew_ms: 5 * 60 * 1000,
            min_ts_ms: DEFAULT_MIN_TS_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecodeError;

    fn decode(s: &str) -> Result<Telemetry, DecodeError> {
        Telemetry::decode(s.as_bytes())
    }

    #[test]
    fn decodes_the_architecture_example() {
        let t = decode(
            r#"{"schema":1,"device_id":"pump-0042","seq":1871,"ts":1795446981908,
               "metrics":{"temperature_c":71.3,"vibration_rms":0.42,"current_a":3.1}}"#,
        )
        .expect("valid example");
        assert_eq!(t.device_id, "pump-0042");
        assert_eq!(t.metrics["current_a"], 3.1);
    }

    #[test]
    fn unknown_fields_are_accepted() {
        decode(r#"{"schema":1,"device_id":"a","seq":1,"ts":1,"metrics":{"x":1},"fw":"2.1"}"#)
            .expect("extra fields are forward compatible");
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"schema":1,"device_id":"a""#, "malformed_json", "line 1"),
            (
                r#"{"schema":2,"device_id":"a","seq":1,"ts":1,"metrics":{"x":1}}"#,
                "unknown_schema",
                "version 2",
            ),
            (
                r#"{"schema":"one","device_id":"a","seq":1,"ts":1,"metrics":{"x":1}}"#,
                "unknown_schema",
                "\"one\"",
            ),
            (
                r#"{"schema":1,"device_id":"a","ts":1,"metrics":{"x":1}}"#,
                "invalid_shape",
                "missing field `seq`",
            ),
            (
                r#"{"schema":1,"device_id":"a","seq":1,"ts":1,"metrics":{"temp":NaN}}"#,
                "non_finite_metric",
                "\"temp\"",
            ),
            (
                r#"{"schema":1,"device_id":"a","seq":1,"ts":1,"metrics":{"x":1,"load": -Infinity}}"#,
                "non_finite_metric",
                "\"load\"",
            ),
            (
                r#"{"schema":1,"device_id":"a","seq":1,"ts":1,"metrics":{"big":1e999}}"#,
                "non_finite_metric",
                "\"big\"",
            ),
            (
                r#"{"schema":1,"device_id":"a/b","seq":1,"ts":1,"metrics":{"x":1}}"#,
                "invalid_device_id",
                "'/'",
            ),
            (
                r#"{"schema":1,"device_id":"a","seq":1,"ts":1,"metrics":{}}"#,
                "invalid_metrics",
                "at least one",
            ),
        ];
        for (input, reason, fragment) in cases {
            let err = decode(input).expect_err(input);
            assert_eq!(err.reason(), *reason, "{input}: {err}");
            assert!(
                err.to_string().contains(fragment),
                "{input}: {err} lacks {fragment}"
            );
        }
    }

    #[test]
    fn seq_and_ts_must_fit_the_stores() {
        let at = |seq: &str, ts: &str| {
            decode(&format!(
                r#"{{"schema":1,"device_id":"a","seq":{seq},"ts":{ts},"metrics":{{"x":1}}}}"#
            ))
        };
        let max = i64::MAX.to_string();
        assert_eq!(at(&max, &max).expect("i64::MAX fits").seq, MAX_SEQ);
        for (seq, ts, field) in [
            ("9223372036854775808", "1", "seq"),
            ("18446744073709551615", "1", "seq"),
            ("1", "9223372036854775808", "ts"),
        ] {
            let err = at(seq, ts).expect_err(seq);
            assert_eq!(err.reason(), "out_of_range", "{err}");
            assert!(err.to_string().contains(field), "{err}");
            assert!(err.to_string().contains("i64::MAX"), "{err}");
        }
        // A negative seq is not a u64: refused by its shape.
        assert_eq!(at("-1", "1").expect_err("-1").reason(), "invalid_shape");
    }

    #[test]
    fn oversized_payload_is_refused_before_parsing() {
        let err = Telemetry::decode_limited(&[b'x'; 100], 10).expect_err("too large");
        assert_eq!(err.reason(), "payload_too_large");
        assert!(err.to_string().contains("100 bytes"));
    }
}
