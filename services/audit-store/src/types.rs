//! The values the store writes and answers with: releases as kept,
//! summaries and details, the write batch, range queries and their pages.

use serde::Serialize;
use serde_json::value::RawValue;
use vigil_schemas::{Incident, TrainingWindow, ValidationMetrics, Verdict};

use crate::Cursor;

/// A model release as the store keeps it: provenance from the signed
/// payload plus how the audit sink saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    /// Model name.
    pub model: String,
    /// Version, strictly increasing per name.
    pub version: u64,
    /// Id of the key that signed the release.
    pub key_id: String,
    /// Lower-case hex sha256 of the signed payload.
    pub payload_sha256: String,
    /// When the trainer built it, ms since the Unix epoch.
    pub created_ts: u64,
    /// When it was published to `vigil.models` (the Kafka record's
    /// timestamp), ms since the Unix epoch.
    pub published_ts: u64,
    /// Anomaly threshold of this version.
    pub threshold: f64,
    /// What it was trained on.
    pub training: TrainingWindow,
    /// How it did on held-out data.
    pub validation: ValidationMetrics,
    /// Whether the audit sink verified the signature (only when it was
    /// given `VIGIL_VERIFY_KEY`; the checksum is always checked).
    pub signature_verified: bool,
}

/// A stored release with what it did.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// The release.
    #[serde(flatten)]
    pub release: ModelRecord,
    /// Distinct records this version scored (replays not counted twice).
    pub records_scored: u64,
}

/// One release in full: its summary plus the envelope exactly as
/// published (so anyone can verify the signature again).
#[derive(Debug, Clone, Serialize)]
pub struct ModelDetail {
    /// Provenance and records scored.
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// The `ModelRelease` JSON as read from `vigil.models`.
    pub release: Box<RawValue>,
}

/// A release to write: its record plus the original envelope bytes.
#[derive(Debug, Clone)]
pub struct ReleaseRow {
    /// Provenance.
    pub record: ModelRecord,
    /// The `ModelRelease` JSON as read (valid UTF-8 JSON, ≤ 64 KiB).
    pub envelope: String,
}

/// Everything one sink batch writes, in one call.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// Verdicts from `vigil.verdicts` and `vigil.anomalies`; anomalous ones
    /// are also kept in the anomalies table, whichever topic they came from.
    pub verdicts: Vec<Verdict>,
    /// Model releases from `vigil.models`.
    pub releases: Vec<ReleaseRow>,
    /// Incident lifecycle events from `vigil.incidents`.
    pub incidents: Vec<Incident>,
}

impl WriteBatch {
    /// Number of rows (of any kind) in the batch.
    pub fn len(&self) -> usize {
        self.verdicts.len() + self.releases.len() + self.incidents.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A verdict whose key matched a stored row that is a *different* record:
/// same `(device_id, seq, model, model_version, scored_at)`, another event
/// time. The stored row is kept and the new one is not written; the sink
/// counts and logs it (a device that reused a sequence number, e.g. after
/// losing its state). A replayed duplicate (same event time) is not a
/// conflict, whatever its scoring or ingest times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The device.
    pub device_id: String,
    /// The reused sequence number.
    pub seq: u64,
    /// Model name.
    pub model: String,
    /// Stored model version (0: unscored).
    pub model_version: u64,
    /// `cloud` or `edge`.
    pub scored_at: String,
    /// Event time of the row kept.
    pub stored_event_ts: u64,
    /// Event time of the row refused.
    pub refused_event_ts: u64,
}

impl Conflict {
    /// The conflict of `refused` with a stored row of event time `stored`,
    /// if the two are different records.
    pub fn between(refused: &Verdict, stored_event_ts: u64) -> Option<Self> {
        (stored_event_ts != refused.event_ts).then(|| Conflict {
            device_id: refused.device_id.clone(),
            seq: refused.seq,
            model: refused.model.clone(),
            model_version: crate::codec::stored_version(refused),
            scored_at: refused.scored_at.as_str().to_owned(),
            stored_event_ts,
            refused_event_ts: refused.event_ts,
        })
    }
}

/// What a write did beyond storing the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Verdicts not written because their key holds a different record.
    pub conflicts: Vec<Conflict>,
}

/// Which incidents [`Store::incidents`](crate::Store::incidents) lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentQuery {
    /// Only open (`Some(false)`: opened or updated) or only resolved
    /// (`Some(true)`) incidents; any when `None`.
    pub resolved: Option<bool>,
    /// Only this device's.
    pub device_id: Option<String>,
    /// Only incidents whose latest event is at or after this time, ms since
    /// the Unix epoch (the API bounds how far back it goes).
    pub since_ms: u64,
    /// Most incidents to return (1..=[`MAX_PAGE`](crate::MAX_PAGE)).
    pub limit: usize,
}

impl IncidentQuery {
    /// Whether `i` (an incident's latest event) passes the filters.
    pub fn admits(&self, i: &vigil_schemas::Incident) -> bool {
        i.ts >= self.since_ms
            && self.device_id.as_ref().is_none_or(|d| *d == i.device_id)
            && self
                .resolved
                .is_none_or(|r| r == (i.state == vigil_schemas::IncidentState::Resolved))
    }
}

/// A device's rows in `[from_ms, to_ms)`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// The device.
    pub device_id: String,
    /// Inclusive lower bound on event time, ms since the Unix epoch.
    pub from_ms: u64,
    /// Exclusive upper bound on event time.
    pub to_ms: u64,
    /// Most rows to return (1..=[`MAX_PAGE`](crate::MAX_PAGE)).
    pub limit: usize,
    /// Continue strictly after this position (from a previous page).
    pub after: Option<Cursor>,
}

/// One page of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Rows, newest first.
    pub items: Vec<Verdict>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<Cursor>,
}

impl Page {
    /// Builds a page from up to `limit + 1` rows: the extra row (if any)
    /// only says that another page exists.
    pub(crate) fn from_rows(mut rows: Vec<Verdict>, limit: usize) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(Cursor::after)
        } else {
            None
        };
        Self { items: rows, next }
    }
}
