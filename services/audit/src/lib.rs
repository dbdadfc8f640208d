//! `vigil audit`: keeps every decision and every model release for audit,
//! and answers "which model version scored this record, with what score and
//! threshold?" and "what was anomalous on device D between t1 and t2?".
//!
//! ```text
//! vigil.verdicts, vigil.anomalies, vigil.models, vigil.incidents
//!        │ consumer group, manual commit
//!        ▼
//!   sink: decode ─► batch (size/bytes/time bound) ─► store.write ─► commit offsets
//!        │ bad input                                   │
//!        ▼                                             ▼
//!    vigil.dlq                         SQLite (embedded) │ ScyllaDB/Cassandra
//!                                                      ▲
//!   query API (/v1/…) on the same HTTP server as /healthz /readyz /metrics
//! ```
//!
//! - [`config`]: flags and environment variables (`VIGIL_AUDIT_STORE`, …).
//! - [`store`]: the [`store::Store`] trait and its two backends, from the
//!   `vigil-audit-store` crate (shared with the dashboard).
//! - [`decode`]: what a Kafka record becomes (row, tombstone, rejection).
//! - [`sink`]: the run loop; [`run`] is the entry point.
//! - [`stall`]: `/readyz` turns red while the sink fails to make progress.
//! - [`mod@write`]: one batch into the store: transient errors retried, rows
//!   the store refuses for good split out for the DLQ.
//! - [`api`]: the query API and its OpenAPI description.
//! - [`metrics`]: the service's Prometheus metrics.
//!
//! Delivery guarantee: at-least-once from Kafka with idempotent writes. A
//! batch's offsets are committed only after the store confirmed it; a
//! replay after a crash rewrites the same rows, which the store's upsert
//! keys turn into no-ops.

pub mod api;
pub mod config;
pub mod decode;
pub mod metrics;
pub mod sink;
pub mod stall;
pub mod write;

pub use config::AuditArgs;
pub use sink::run;
/// The audit store (its own crate, `vigil-audit-store`, which the
/// dashboard reads too), under its old path.
pub use vigil_audit_store as store;
