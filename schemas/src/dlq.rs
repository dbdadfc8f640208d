//! DlqRecord: input a service rejected, with the reason and the original
//! bytes, so nothing is lost silently and an operator can see what a device
//! got wrong (`vigil.dlq`, keyed by source).

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::SCHEMA_VERSION;

/// One rejected input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DlqRecord {
    /// Message schema version; always 1.
    pub schema: u32,
    /// The service that rejected it (`ingest`, `score`, …).
    pub service: String,
    /// Where it came from: `mqtt:<topic>` or `kafka:<topic>/<partition>@<offset>`.
    pub source: String,
    /// Stable reason code (`malformed_json`, `device_mismatch`, …).
    pub reason: String,
    /// Human-readable explanation: what is wrong and where.
    pub detail: String,
    /// When it was rejected, ms since the Unix epoch.
    pub ts: u64,
    /// The original bytes, base64 (standard, padded).
    pub original: String,
}

impl DlqRecord {
    /// A record for `original` rejected by `service`.
    pub fn new(
        service: &str,
        source: String,
        reason: &str,
        detail: String,
        ts: u64,
        original: &[u8],
    ) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            service: service.to_owned(),
            source,
            reason: reason.to_owned(),
            detail,
            ts,
            original: base64::engine::general_purpose::STANDARD.encode(original),
        }
    }

    /// The original bytes, decoded from base64.
    pub fn original_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.original)
    }
}

impl Message for DlqRecord {
    const KIND: &'static str = "dlq record";

    fn schema(&self) -> u32 {
        self.schema
    }
}
