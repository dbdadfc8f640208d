//! The audit store (`vigil-audit-store`): one trait, two backends, one
//! row codec. `vigil audit` writes and queries it; the dashboard reads
//! device history from it.
//!
//! - [`sqlite`]: the embedded default (one file, WAL, batched
//!   transactions), for a laptop, the tests and the one-command demo.
//! - [`scylla`]: ScyllaDB / Apache Cassandra through the `scylla` driver,
//!   for production.
//!
//! Both keep the same rows and answer the same queries, and one contract
//! test suite (`tests/contract.rs`) runs against each. The column values
//! of a row are made and read back in one place, [`codec`].
//!
//! - [`types`]: what the store writes and answers with.
//! - [`any`]: [`AnyStore`], the backend chosen at start-up.
//! - [`cursor`], [`uri`]: page cursors and store URIs.
//!
//! **Identity of a row.** A verdict is keyed by `(device_id, seq, model,
//! model_version, scored_at)`: one record scored by one model version in
//! one place (the cloud or the edge) is one decision. Where it was scored is
//! part of the key so that a device scored on the edge *and* shadow-scored
//! in the cloud (`vigil score --shadow-edge`) keeps both verdicts, even
//! with the same model version.
//! Scoring is deterministic (the edge agent and the cloud produce
//! byte-identical verdicts for the same input and model), so a replay or a
//! duplicate of that decision carries nothing new and is written over
//! itself; the same record scored again by a *different* version (after a
//! model change, or on the edge and in the cloud with different models) is
//! a different decision and is kept beside the first. Unscored verdicts
//! (no model yet) are stored with version 0, which no release can have
//! (versions start at 1).
//!
//! **Conflicts are never silent.** A verdict whose key is stored already
//! with a *different event time* is another record under a reused `seq`
//! (an edge device that lost its state, a misconfigured source), not a
//! replay: the stored row stays, the new one is not written, and
//! [`Store::write`] returns it as a [`Conflict`], which `vigil audit`
//! counts (`vigil_audit_conflicts_total`) and logs. Model releases are keyed by `(model, version)`.
//! Incident events are kept whole (`(device_id, ts, incident_id, state)`),
//! and each incident's latest event also in a table of incidents as they
//! stand: the event with the highest `ts` wins (an incident's events have
//! strictly increasing `ts`), whatever order they are written in.
//!
//! **Pagination.** Range queries return rows newest first, ordered by
//! `(event_ts, seq, model, model_version, scored_at)` descending, and a [`Cursor`]
//! holding the last row's position. The next page is "strictly after that
//! position" (keyset pagination), not an offset, so rows written meanwhile
//! never shift a page: a page never repeats or skips a row that existed
//! when the first page was read.

pub mod any;
pub mod codec;
pub mod cursor;
pub mod scylla;
pub mod sqlite;
pub mod types;
pub mod uri;

use std::future::Future;
use std::sync::Arc;

use vigil_schemas::{Incident, Verdict};

pub use any::AnyStore;
pub use cursor::{Cursor, CursorError};
pub use types::{
    Conflict, IncidentQuery, ModelDetail, ModelRecord, ModelSummary, Page, RangeQuery, ReleaseRow,
    WriteBatch, Written,
};
pub use uri::{ScyllaTls, SqliteTuning, StoreUri, StoreUriError};

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

impl StoreError {
    /// Whether retrying the same write can never succeed: a value the
    /// columns cannot hold, a row that cannot be encoded, a row SQLite
    /// refuses by its constraints or size limits. The audit sink sends such
    /// a row to the DLQ instead of retrying it; everything else (busy or
    /// locked database, I/O, a cluster that does not answer, a dead worker)
    /// is transient and retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::OutOfRange { .. } | StoreError::Corrupt { .. } => true,
            StoreError::Sqlite { source, .. } => sqlite::is_permanent(source),
            StoreError::Scylla { .. } | StoreError::Open { .. } | StoreError::Worker(_) => false,
        }
    }

    /// Short, stable code for metrics labels and DLQ records.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::OutOfRange { .. } => "out_of_range",
            StoreError::Corrupt { .. } => "unencodable",
            StoreError::Sqlite { .. } | StoreError::Scylla { .. } => "store_refused",
            StoreError::Open { .. } | StoreError::Worker(_) => "store_unavailable",
        }
    }
}

/// What the audit store can do. Every method is safe to call concurrently;
/// `write` is idempotent (see the module docs for the row identity).
pub trait Store: Send + Sync + 'static {
    /// Upserts a batch. Returns once the rows are durable (SQLite: the
    /// transaction committed and synced; Scylla: acknowledged at the
    /// configured consistency), so the caller may commit Kafka offsets,
    /// with the verdicts left out as [`Conflict`]s (the caller counts and
    /// logs them).
    fn write(
        &self,
        batch: Arc<WriteBatch>,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

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

    /// Incidents as they stand (the latest event of each, whatever order
    /// the events were written in), filtered by `query`, most recently
    /// active first.
    fn incidents(
        &self,
        query: IncidentQuery,
    ) -> impl Future<Output = Result<Vec<Incident>, StoreError>> + Send;
}
