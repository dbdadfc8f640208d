//! The audit store: one trait, two backends.
//!
//! - [`sqlite`]: the embedded default (one file, WAL, batched
//!   transactions), for a laptop, the tests and the one-command demo.
//! - [`scylla`]: ScyllaDB / Apache Cassandra through the `scylla` driver,
//!   for production.
//!
//! Both keep the same rows and answer the same queries, and one contract
//! test suite (`tests/contract.rs`) runs against each.
//!
//! **Identity of a row.** A verdict is keyed by `(device_id, seq, model,
//! model_version)`: one record scored by one model version is one decision.
//! Scoring is deterministic (the edge agent and the cloud produce
//! byte-identical verdicts for the same input and model), so a replay or a
//! duplicate of that decision carries nothing new and is written over
//! itself; the same record scored again by a *different* version (after a
//! model change, or on the edge and in the cloud with different models) is
//! a different decision and is kept beside the first. Unscored verdicts
//! (no model yet) are stored with version 0, which no release can have
//! (versions start at 1). Model releases are keyed by `(model, version)`.
//!
//! **Pagination.** Range queries return rows newest first, ordered by
//! `(event_ts, seq, model, model_version)` descending, and a [`Cursor`]
//! holding the last row's position. The next page is "strictly after that
//! position" (keyset pagination), not an offset, so rows written meanwhile
//! never shift a page: a page never repeats or skips a row that existed
//! when the first page was read.

pub mod cursor;
pub mod scylla;
pub mod sqlite;
pub mod uri;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use vigil_schemas::{Incident, TrainingWindow, ValidationMetrics, Verdict};

pub use cursor::{Cursor, CursorError};
pub use uri::{SqliteTuning, StoreUri, StoreUriError};

/// Most rows one range query returns (the API's `limit` bound).
pub const MAX_PAGE: usize = 1000;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused or failed.
    #[error("sqlite {what}: {source}")]
    Sqlite {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The Scylla/Cassandra cluster refused or failed.
    #[error("scylla {what}: {detail}")]
    Scylla { what: &'static str, detail: String },
    /// A stored row could not be turned back into a message.
    #[error("stored row is corrupt ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A value does not fit the store's column type.
    #[error("{field} = {value} is out of range for the store (at most {max})")]
    OutOfRange {
        field: &'static str,
        value: u64,
        max: i64,
    },
    /// Opening the store failed.
    #[error("opening the audit store {uri}: {detail}")]
    Open { uri: String, detail: String },
    /// The blocking worker thread died (a bug, reported rather than a panic).
    #[error("store worker failed: {0}")]
    Worker(String),
}

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

/// A device's rows in `[from_ms, to_ms)`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// The device.
    pub device_id: String,
    /// Inclusive lower bound on event time, ms since the Unix epoch.
    pub from_ms: u64,
    /// Exclusive upper bound on event time.
    pub to_ms: u64,
    /// Most rows to return (1..=[`MAX_PAGE`]).
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

/// What the audit store can do. Every method is safe to call concurrently;
/// `write` is idempotent (see the module docs for the row identity).
pub trait Store: Send + Sync + 'static {
    /// Upserts a batch. Returns once the rows are durable (SQLite: the
    /// transaction committed and synced; Scylla: acknowledged at the
    /// configured consistency), so the caller may commit Kafka offsets.
    fn write(&self, batch: Arc<WriteBatch>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A device's verdicts in a time range, newest first.
    fn device_verdicts(
        &self,
        query: RangeQuery,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// A device's anomalous verdicts (with contributions) in a time range.
    fn device_anomalies(
        &self,
        query: RangeQuery,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Every verdict of record `(device_id, seq)`: one per model version
    /// that scored it, by model then version.
    fn record(
        &self,
        device_id: String,
        seq: u64,
    ) -> impl Future<Output = Result<Vec<Verdict>, StoreError>> + Send;

    /// Every release, by model name then version (newest first).
    fn models(&self) -> impl Future<Output = Result<Vec<ModelSummary>, StoreError>> + Send;

    /// The releases of one model, newest first (empty when unknown).
    fn model(
        &self,
        name: String,
    ) -> impl Future<Output = Result<Vec<ModelSummary>, StoreError>> + Send;

    /// One release in full, if stored.
    fn model_version(
        &self,
        name: String,
        version: u64,
    ) -> impl Future<Output = Result<Option<ModelDetail>, StoreError>> + Send;

    /// A device's incident events, newest first (at most `limit`).
    fn device_incidents(
        &self,
        device_id: String,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Incident>, StoreError>> + Send;
}

/// The store chosen at start-up by `VIGIL_AUDIT_STORE`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// Embedded SQLite.
    Sqlite(Arc<sqlite::SqliteStore>),
    /// ScyllaDB / Cassandra.
    Scylla(Arc<scylla::ScyllaStore>),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Scylla($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn write(&self, batch: Arc<WriteBatch>) -> Result<(), StoreError> {
        dispatch!(self, s => s.write(batch))
    }
    async fn device_verdicts(&self, query: RangeQuery) -> Result<Page, StoreError> {
        dispatch!(self, s => s.device_verdicts(query))
    }
    async fn device_anomalies(&self, query: RangeQuery) -> Result<Page, StoreError> {
        dispatch!(self, s => s.device_anomalies(query))
    }
    async fn record(&self, device_id: String, seq: u64) -> Result<Vec<Verdict>, StoreError> {
        dispatch!(self, s => s.record(device_id, seq))
    }
    async fn models(&self) -> Result<Vec<ModelSummary>, StoreError> {
        dispatch!(self, s => s.models())
    }
    async fn model(&self, name: String) -> Result<Vec<ModelSummary>, StoreError> {
        dispatch!(self, s => s.model(name))
    }
    async fn model_version(
        &self,
        name: String,
        version: u64,
    ) -> Result<Option<ModelDetail>, StoreError> {
        dispatch!(self, s => s.model_version(name, version))
    }
    async fn device_incidents(
        &self,
        device_id: String,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        dispatch!(self, s => s.device_incidents(device_id, limit))
    }
}

impl AnyStore {
    /// Opens (and migrates) the store `uri` names.
    pub async fn open(uri: &StoreUri, scylla: &scylla::ScyllaOptions) -> Result<Self, StoreError> {
        match uri {
            StoreUri::Sqlite { path, tuning } => {
                let (path, tuning) = (path.clone(), *tuning);
                let store = tokio::task::spawn_blocking(move || {
                    sqlite::SqliteStore::open_with(&path, tuning)
                })
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))??;
                Ok(AnyStore::Sqlite(Arc::new(store)))
            }
            StoreUri::Scylla { nodes, keyspace } => {
                let store = scylla::ScyllaStore::connect(nodes, keyspace, scylla).await?;
                Ok(AnyStore::Scylla(Arc::new(store)))
            }
        }
    }

    /// `sqlite` or `scylla`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Scylla(_) => "scylla",
        }
    }
}

/// The version a verdict is stored under: its model version, or 0 when
/// unscored.
pub(crate) fn stored_version(v: &Verdict) -> u64 {
    v.model_version.unwrap_or(0)
}

/// `value` as a signed 64-bit column value.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        field,
        value,
        max: i64::MAX,
    })
}

/// A signed 64-bit column value back as u64 (negative means corruption).
pub(crate) fn from_i64(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("negative value {value}"),
    })
}
