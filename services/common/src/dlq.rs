//! The one way a service turns refused input into a `vigil.dlq` record:
//! the [`Rejection`] its validation returns, and the record built from it
//! (reason, detail, where the input came from, the original bytes cut to
//! [`ORIGINAL_MAX_BYTES`] with a note in the detail when cut), keyed by its
//! source. Sending it stays with each service, which knows its producer.

use vigil_schemas::{DecodeError, DlqRecord, Message as _};

/// Largest original payload copied into a DLQ record; longer ones are cut
/// (the record's detail says so) to stay under Kafka's message size limit.
pub const ORIGINAL_MAX_BYTES: usize = 256 * 1024;

/// Why an input was refused; becomes a DLQ record and a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable reason code (metrics label, DLQ `reason`).
    pub reason: &'static str,
    /// What is wrong and where.
    pub detail: String,
}

impl From<DecodeError> for Rejection {
    fn from(e: DecodeError) -> Self {
        Self::new(e.reason(), e.to_string())
    }
}

/// A DLQ record ready to send: its key (the source) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqMessage {
    /// The record's source, its Kafka key.
    pub key: String,
    /// The encoded [`DlqRecord`].
    pub payload: Vec<u8>,
}

impl Rejection {
    /// A rejection for `reason`, explained by `detail`.
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// The DLQ record saying `service` refused `original`, received from
    /// `source` (see [`mqtt_source`], [`kafka_source`]) at `ts` ms. An
    /// original above [`ORIGINAL_MAX_BYTES`] is cut, and the detail says so.
    pub fn record(self, service: &str, source: String, ts: u64, original: &[u8]) -> DlqRecord {
        let kept = &original[..original.len().min(ORIGINAL_MAX_BYTES)];
        let detail = if kept.len() < original.len() {
            format!(
                "{} (original of {} bytes cut to its first {ORIGINAL_MAX_BYTES})",
                self.detail,
                original.len()
            )
        } else {
            self.detail
        };
        DlqRecord::new(service, source, self.reason, detail, ts, kept)
    }

    /// [`Rejection::record`], encoded and keyed by `source`; `None` (and an
    /// error logged) when it cannot be encoded.
    pub fn into_dlq(self, service: &str, source: String, original: &[u8]) -> Option<DlqMessage> {
        let record = self.record(service, source, crate::now_ms(), original);
        match record.encode() {
            Ok(payload) => Some(DlqMessage {
                key: record.source,
                payload,
            }),
            Err(e) => {
                tracing::error!(error = %e, source = %record.source, "cannot encode a dlq record");
                None
            }
        }
    }
}

/// The DLQ source of a message received on MQTT `topic`.
pub fn mqtt_source(topic: &str) -> String {
    format!("mqtt:{topic}")
}

/// The DLQ source of a Kafka record.
pub fn kafka_source(topic: &str, partition: i32, offset: i64) -> String {
    format!("kafka:{topic}/{partition}@{offset}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_original_is_kept_whole() {
        let r = Rejection::new("malformed_json", "bad");
        let record = r.record("ingest", mqtt_source("t"), 5, b"{x");
        assert_eq!(record.source, "mqtt:t");
        assert_eq!(record.reason, "malformed_json");
        assert_eq!(record.detail, "bad");
        assert_eq!(record.ts, 5);
        assert_eq!(record.original_bytes().expect("base64"), b"{x");
    }

    #[test]
    fn a_large_original_is_cut_and_says_so() {
        let original = vec![b'x'; ORIGINAL_MAX_BYTES + 10];
        let record = Rejection::new("payload_too_large", "too big").record(
            "score",
            kafka_source("vigil.telemetry", 2, 7),
            1,
            &original,
        );
        assert_eq!(record.source, "kafka:vigil.telemetry/2@7");
        assert_eq!(
            record.original_bytes().expect("base64").len(),
            ORIGINAL_MAX_BYTES
        );
        assert!(record.detail.starts_with("too big (original of"));
        assert!(record.detail.contains("cut"));
    }

    #[test]
    fn encoded_records_are_keyed_by_source() {
        let dlq = Rejection::from(DecodeError::UnknownSchema { found: "9".into() })
            .into_dlq("audit", kafka_source("v", 0, 1), b"{}")
            .expect("encodes");
        assert_eq!(dlq.key, "kafka:v/0@1");
        let record = DlqRecord::decode(&dlq.payload).expect("decodes");
        assert_eq!(record.reason, "unknown_schema");
        assert_eq!(record.service, "audit");
    }
}
