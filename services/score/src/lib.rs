//! `vigil score`: scores every telemetry record with the live model.
//!
//! ```text
//! vigil.models ──(no group, from the beginning, verified off the hot path)──► model feed
//!                                                                              │ watch (Arc<VerifiedModel>)
//! vigil.telemetry ──(consumer group)──► scoring loop ── Scorer (per-device state) ──┤
//!                                           │                                       ▼
//!                   offsets stored only     ◄── deliveries confirmed ◄── vigil.verdicts (every record)
//!                   after confirmation                                 vigil.anomalies (anomalous ones)
//!                                                                      vigil.dlq (not telemetry)
//! POST /v1/score ──(bounded queue)──► the same loop, the same Scorer, state untouched
//! ```
//!
//! - [`config`]: flags and environment variables.
//! - [`metrics`]: the Prometheus metrics.
//! - [`api`]: `POST /v1/score`.
//! - [`edge`]: records an edge agent scored itself are left alone (one
//!   decision per record), or shadow-scored and compared.
//! - `delivery.rs`: the ledger of produces awaiting confirmation.
//! - `retry.rs`: failed produces, held per device key so order holds.
//!
//! # Guarantees
//!
//! - **Hot swap.** The model feed verifies each release and publishes the
//!   accepted one on a `watch` channel; the scoring loop looks at it
//!   between two records and installs it there, so every verdict is made
//!   by exactly one model and names it, the stream never pauses and the
//!   process never restarts.
//! - **No model older than the live one.** The scorer reads all of
//!   `vigil.models` before it reads any telemetry (`/readyz` says
//!   `models: false` until then).
//! - **At-least-once.** An offset is stored for commit only after Kafka
//!   confirmed the record's verdict (and its anomaly and DLQ records),
//!   and those of every record before it in its partition (the delivery
//!   ledger in `delivery.rs`: per-partition watermarks fed by the
//!   producer's delivery callback).
//!   A crash or a rebalance replays what was not committed: duplicates,
//!   never gaps. Verdicts carry (device_id, seq), so consumers drop
//!   duplicates.
//! - **Per-device order.** A device's verdicts reach `vigil.verdicts` (and
//!   its anomalies `vigil.anomalies`) in the order of its records, failed
//!   deliveries included: a failed produce is held with every later record
//!   of the same key behind it and sent again by the loop, one at a time,
//!   after a backoff (`retry.rs`); nothing sleeps in the send path.
//! - **Per-device state across restarts and rebalances** is rebuilt by a
//!   bounded replay: before the first record of a newly assigned
//!   partition, the loop re-reads up to `--replay-secs` of event time (at
//!   most `--replay-max-records`) of that partition's log and feeds it to
//!   the detector without emitting verdicts. Replay was chosen over state
//!   snapshots because the log already is the source of truth: no second
//!   store to keep consistent with offsets, and the state needed is a few
//!   windows of recent records, cheap to re-read.
//! - **Bounded.** At most `--max-in-flight` records await confirmation;
//!   at the bound the loop stops reading.

pub mod api;
pub mod config;
mod context;
mod delivery;
pub mod edge;
pub mod metrics;
mod pipeline;
mod replay;
mod retry;

pub use config::ScoreArgs;
pub use pipeline::run;
