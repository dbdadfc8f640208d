//! What the sink makes of one Kafka record: a row to write, nothing (a
//! compaction tombstone), or a rejection with a reason code for the DLQ.
//! Pure, so every rule is unit-tested without a broker.

use vigil_model::release::sha256_hex;
use vigil_model::{KeyRing, ReleaseError};
use vigil_schemas::release::MAX_RELEASE_BYTES;
use vigil_schemas::{Incident, Message, ModelRelease, ReleaseHeader, Verdict};
pub use vigil_service::dlq::Rejection;

use crate::store::{ModelRecord, ReleaseRow};

/// Which of the consumed topics a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// `vigil.verdicts`.
    Verdicts,
    /// `vigil.anomalies`.
    Anomalies,
    /// `vigil.models`.
    Models,
    /// `vigil.incidents`.
    Incidents,
}

impl TopicKind {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Verdicts => "verdicts",
            TopicKind::Anomalies => "anomalies",
            TopicKind::Models => "models",
            TopicKind::Incidents => "incidents",
        }
    }
}

/// A record turned into something to store.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// A verdict (from either verdict topic).
    Verdict(Verdict),
    /// A model release.
    Release(ReleaseRow),
    /// An incident event.
    Incident(Incident),
    /// Nothing to store: an empty record (a tombstone on the compacted
    /// models topic).
    Skip,
}

/// What the decoder needs besides the bytes.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// Largest verdict or incident payload accepted.
    pub max_payload_bytes: usize,
    /// Keys to verify releases with, when configured.
    pub verify_key: Option<&'a KeyRing>,
}

/// Decodes one record's payload. `published_ts` is the record's Kafka
/// timestamp (used as a release's publication time).
pub fn decode(
    kind: TopicKind,
    payload: Option<&[u8]>,
    published_ts: u64,
    ctx: &DecodeContext<'_>,
) -> Result<Decoded, Rejection> {
    let Some(bytes) = payload.filter(|b| !b.is_empty()) else {
        return Ok(Decoded::Skip);
    };
    match kind {
        TopicKind::Verdicts | TopicKind::Anomalies => {
            let v = Verdict::decode_limited(bytes, ctx.max_payload_bytes)?;
            if kind == TopicKind::Anomalies && !v.anomaly {
                // The verdict that closes an alarm travels with the alarm;
                // the anomalies table keeps the anomalous ones (the
                // verdicts table has it).
                let closes = v
                    .alarm
                    .as_ref()
                    .is_some_and(|a| a.state == vigil_schemas::AlarmState::Closed);
                if closes {
                    return Ok(Decoded::Skip);
                }
                return Err(Rejection {
                    reason: "not_anomalous",
                    detail: format!(
                        "verdict {}/{} on the anomalies topic has anomaly = false",
                        v.device_id, v.seq
                    ),
                });
            }
            Ok(Decoded::Verdict(v))
        }
        TopicKind::Incidents => Incident::decode_limited(bytes, ctx.max_payload_bytes)
            .map(Decoded::Incident)
            .map_err(Rejection::from),
        TopicKind::Models => release(bytes, published_ts, ctx.verify_key)
            .map(Decoded::Release)
            .map_err(|e| Rejection::new(e.reason(), e.to_string())),
    }
}

/// Checks a release as far as audit can, and extracts its provenance.
///
/// Without a key: size, schema, checksum over the exact payload bytes,
/// header shape, and envelope/payload agreement — so what is recorded is
/// what was published, byte for byte, and says so (`signature_verified:
/// false`). With a key: the full verification a scorer does
/// ([`vigil_model::verify`]); a release it refuses is not recorded as a
/// release (it goes to the DLQ with the verifier's reason).
fn release(
    bytes: &[u8],
    published_ts: u64,
    key: Option<&KeyRing>,
) -> Result<ReleaseRow, ReleaseError> {
    let release =
        ModelRelease::decode_limited(bytes, MAX_RELEASE_BYTES).map_err(ReleaseError::Decode)?;
    let signature_verified = match key {
        Some(key) => {
            vigil_model::verify(&release, key)?;
            true
        }
        None => false,
    };
    let payload = release.payload.get();
    let actual = sha256_hex(payload.as_bytes());
    if actual != release.payload_sha256 {
        return Err(ReleaseError::BadChecksum {
            claimed: release.payload_sha256.clone(),
            actual,
        });
    }
    let header: ReleaseHeader =
        serde_json::from_str(payload).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
    if header.model != release.model || header.version != release.version {
        return Err(ReleaseError::MismatchedEnvelope {
            envelope_model: release.model.clone(),
            envelope_version: release.version,
            payload_model: header.model,
            payload_version: header.version,
        });
    }
    // decode_limited parsed the bytes as JSON, so they are UTF-8.
    let envelope = String::from_utf8_lossy(bytes).into_owned();
    Ok(ReleaseRow {
        record: ModelRecord {
            model: release.model,
            version: release.version,
            key_id: release.key_id,
            payload_sha256: release.payload_sha256,
            created_ts: header.created_ts,
            published_ts,
            threshold: header.threshold,
            training: header.training,
            validation: header.validation,
            signature_verified,
        },
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use vigil_schemas::{TrainingWindow, ValidationMetrics};

    const CTX: DecodeContext<'static> = DecodeContext {
        max_payload_bytes: 64 * 1024,
        verify_key: None,
    };

    fn header(model: &str, version: u64) -> ReleaseHeader {
        ReleaseHeader {
            model: model.into(),
            version,
            created_ts: 1000,
            training: TrainingWindow {
                from_ts: 1,
                to_ts: 2,
                records: 3,
                devices: 4,
                source: "test".into(),
            },
            validation: ValidationMetrics {
                estimated_false_alarm_rate: None,
                expected_false_alarm_rate: None,
                holdout_records: 5,
                false_alarm_rate: 0.01,
                detection_rate: None,
                mean_detection_delay: None,
            },
            threshold: 0.8,
        }
    }

    /// An unsigned-looking release whose checksum is right.
    fn envelope(h: &ReleaseHeader, envelope_version: u64, sha: Option<&str>) -> Vec<u8> {
        let payload = serde_json::to_string(h).expect("encodes");
        let release = ModelRelease {
            schema: 1,
            model: h.model.clone(),
            version: envelope_version,
            key_id: "k1".into(),
            payload_sha256: sha.map_or_else(|| sha256_hex(payload.as_bytes()), str::to_owned),
            signature: "c2ln".into(),
            payload: RawValue::from_string(payload).expect("raw"),
        };
        release.encode().expect("encodes")
    }

    #[test]
    fn releases_are_recorded_without_a_key() {
        let bytes = envelope(&header("default", 3), 3, None);
        let Ok(Decoded::Release(row)) = decode(TopicKind::Models, Some(&bytes), 77, &CTX) else {
            panic!("release decodes");
        };
        assert_eq!(row.record.version, 3);
        assert_eq!(row.record.published_ts, 77);
        assert_eq!(row.record.created_ts, 1000);
        assert!(!row.record.signature_verified);
        assert_eq!(row.envelope.as_bytes(), bytes.as_slice());
    }

    #[test]
    fn bad_releases_are_rejected_with_the_verifier_reasons() {
        let bad_sum = envelope(&header("default", 3), 3, Some("00"));
        let r = decode(TopicKind::Models, Some(&bad_sum), 0, &CTX).expect_err("bad checksum");
        assert_eq!(r.reason, "bad_checksum");
        let mismatch = envelope(&header("default", 3), 4, None);
        let r = decode(TopicKind::Models, Some(&mismatch), 0, &CTX).expect_err("mismatch");
        assert_eq!(r.reason, "mismatched_envelope");
        let r = decode(TopicKind::Models, Some(b"{"), 0, &CTX).expect_err("garbage");
        assert_eq!(r.reason, "malformed");
    }

    #[test]
    fn a_key_rejects_what_it_did_not_sign() {
        let dir = tempfile::tempdir().expect("dir");
        let keys = vigil_model::keygen(dir.path()).expect("keys");
        let key = vigil_model::load_key_ring(&keys.verify_key).expect("key");
        let ctx = DecodeContext {
            verify_key: Some(&key),
            ..CTX
        };
        let bytes = envelope(&header("default", 3), 3, None);
        let r = decode(TopicKind::Models, Some(&bytes), 0, &ctx).expect_err("unsigned");
        assert_eq!(r.reason, "unknown_key");
    }

    #[test]
    fn verdict_topics_decode_and_reject() {
        let good = br#"{"schema":1,"device_id":"d","seq":1,"event_ts":1,"scored_ts":2,"model":"m",
            "model_version":1,"score":0.9,"threshold":0.8,"anomaly":true,"scored_at":"cloud"}"#;
        assert!(matches!(
            decode(TopicKind::Anomalies, Some(good), 0, &CTX),
            Ok(Decoded::Verdict(_))
        ));
        let normal = String::from_utf8_lossy(good).replace("true", "false");
        let r = decode(TopicKind::Anomalies, Some(normal.as_bytes()), 0, &CTX)
            .expect_err("not anomalous");
        assert_eq!(r.reason, "not_anomalous");
        let closing = normal.replace(
            r#""scored_at""#,
            r#""alarm":{"id":"d@1","opened_seq":1,"opened_ts":1,"state":"closed"},"scored_at""#,
        );
        assert!(matches!(
            decode(TopicKind::Anomalies, Some(closing.as_bytes()), 0, &CTX),
            Ok(Decoded::Skip)
        ));
        let r = decode(TopicKind::Verdicts, Some(b"not json"), 0, &CTX).expect_err("bad");
        assert_eq!(r.reason, "malformed_json");
        let r = decode(TopicKind::Verdicts, Some(br#"{"schema":2}"#), 0, &CTX).expect_err("bad");
        assert_eq!(r.reason, "unknown_schema");
        let small = DecodeContext {
            max_payload_bytes: 10,
            ..CTX
        };
        let r = decode(TopicKind::Verdicts, Some(good), 0, &small).expect_err("too big");
        assert_eq!(r.reason, "payload_too_large");
        assert!(matches!(
            decode(TopicKind::Models, None, 0, &CTX),
            Ok(Decoded::Skip)
        ));
    }
}
