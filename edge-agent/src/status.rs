//! What the agent reports about itself, and where.
//!
//! The agent has no HTTP server: a device behind NAT is not scraped, and a
//! listener is one more thing to secure and keep small. It reports instead
//! through
//! - the retained DeviceStatus on `vigil/devices/{id}/status` (model
//!   version, queue depth and bytes, drop counter, last acknowledged
//!   uplink), refreshed on connect, on a model change and every
//!   `--status-interval-ms`, with an `offline` copy as the MQTT last will;
//!   `vigil push` bridges it to `vigil.device-status` for the rollout view;
//! - `{state_dir}/status.json`, the same report plus local counters, rewritten
//!   on the same schedule whether or not the broker is reachable (for a
//!   technician on the device, and for tests);
//! - structured logs (journald under systemd).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use vigil_schemas::{DeviceState, DeviceStatus, SCHEMA_VERSION};

use crate::commands::RefusalCounts;
use crate::queue::Queue;
use crate::uplink::refusal::PubAckRefusals;

/// Counters shared by the agent's tasks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Samples taken and scored.
    pub samples: AtomicU64,
    /// seq of the last sample.
    pub seq: AtomicU64,
    /// Samples refused (invalid metrics) and not scored.
    pub invalid_samples: AtomicU64,
    /// Samples scored anomalous.
    pub anomalies: AtomicU64,
    /// Samples whose uplink record could not be written to the queue.
    pub enqueue_failures: AtomicU64,
    /// Releases accepted while running.
    pub models_accepted: AtomicU64,
    /// Releases refused while running.
    pub models_rejected: AtomicU64,
    /// Version of the model scored with (0: none).
    pub model_version: AtomicU64,
    /// Local actions started.
    pub actions_run: AtomicU64,
    /// Local actions that failed or timed out.
    pub actions_failed: AtomicU64,
    /// Anomalies not acted on because of the debounce window or a full
    /// action queue.
    pub actions_skipped: AtomicU64,
    /// Cloud commands received.
    pub commands: AtomicU64,
    /// Cloud commands refused by the gate, per reason
    /// ([`crate::commands`]).
    pub commands_refused: RefusalCounts,
    /// Uplink messages acknowledged by the broker.
    pub uplink_acked: AtomicU64,
    /// Uplink record messages the broker did not take (MQTT 5 PUBACK
    /// reason other than success), per reason; each record stayed queued
    /// and was sent again.
    pub uplink_refused: PubAckRefusals,
    /// Last broker acknowledgement, ms since the epoch (0: never).
    pub last_uplink_ts: AtomicU64,
    /// Connected to the broker now.
    pub connected: AtomicBool,
    /// Still sampling (false once the source ended or the seq limit was
    /// reached).
    pub sampling: AtomicBool,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The retained status message.
pub fn device_status(
    device_id: &str,
    model: &str,
    stats: &Stats,
    queue: &Queue,
    state: DeviceState,
) -> DeviceStatus {
    let version = Stats::get(&stats.model_version);
    let last = Stats::get(&stats.last_uplink_ts);
    DeviceStatus {
        schema: SCHEMA_VERSION,
        device_id: device_id.to_owned(),
        ts: crate::now_ms(),
        state,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        model: model.to_owned(),
        model_version: (version > 0).then_some(version),
        buffered_records: queue.len(),
        buffered_bytes: queue.bytes(),
        dropped_records: queue.dropped(),
        last_uplink_ts: (last > 0).then_some(last),
    }
}

/// `status.json`: the DeviceStatus plus local counters.
#[derive(Debug, Serialize)]
pub struct StatusReport<'a> {
    /// What is (or would be) published.
    pub status: &'a DeviceStatus,
    /// Connected to the broker now.
    pub connected: bool,
    /// Still sampling.
    pub sampling: bool,
    /// Samples taken.
    pub samples: u64,
    /// seq of the last sample.
    pub seq: u64,
    /// Samples refused as invalid.
    pub invalid_samples: u64,
    /// Anomalous samples.
    pub anomalies: u64,
    /// Samples lost because the queue could not be written.
    pub enqueue_failures: u64,
    /// Damaged queue regions skipped (torn writes).
    pub queue_corrupt_regions: u64,
    /// Bytes the queue files use.
    pub queue_file_bytes: u64,
    /// Uplink messages acknowledged.
    pub uplink_acked: u64,
    /// Uplink messages not taken by the broker, kept and resent, per
    /// PUBACK reason: `no_matching_subscribers`, `unspecified_error`,
    /// `implementation_specific_error`, `not_authorized`,
    /// `topic_name_invalid`, `packet_identifier_in_use`,
    /// `quota_exceeded`, `payload_format_invalid`.
    pub uplink_refused: &'a PubAckRefusals,
    /// Releases accepted / refused while running.
    pub models_accepted: u64,
    /// Releases refused while running.
    pub models_rejected: u64,
    /// Local actions run / failed / skipped, commands received.
    pub actions_run: u64,
    /// Local actions that failed or timed out.
    pub actions_failed: u64,
    /// Anomalies not acted on (debounce, full action queue).
    pub actions_skipped: u64,
    /// Cloud commands received.
    pub commands: u64,
    /// Cloud commands refused (not run), per reason: `no_key`,
    /// `malformed`, `unsigned`, `foreign_key`, `bad_signature`,
    /// `wrong_device`, `expired`, `replayed`, `persist_failed`.
    pub commands_refused: &'a RefusalCounts,
}

/// Writes `status.json` (atomic rename, no fsync: it is rewritten often and
/// only informational).
pub fn write_report(path: &Path, status: &DeviceStatus, stats: &Stats, queue: &Queue) {
    let report = StatusReport {
        status,
        connected: stats.connected.load(Ordering::Relaxed),
        sampling: stats.sampling.load(Ordering::Relaxed),
        samples: Stats::get(&stats.samples),
        seq: Stats::get(&stats.seq),
        invalid_samples: Stats::get(&stats.invalid_samples),
        anomalies: Stats::get(&stats.anomalies),
        enqueue_failures: Stats::get(&stats.enqueue_failures),
        queue_corrupt_regions: queue.corrupt(),
        queue_file_bytes: queue.total_bytes(),
        uplink_acked: Stats::get(&stats.uplink_acked),
        uplink_refused: &stats.uplink_refused,
        models_accepted: Stats::get(&stats.models_accepted),
        models_rejected: Stats::get(&stats.models_rejected),
        actions_run: Stats::get(&stats.actions_run),
        actions_failed: Stats::get(&stats.actions_failed),
        actions_skipped: Stats::get(&stats.actions_skipped),
        commands: Stats::get(&stats.commands),
        commands_refused: &stats.commands_refused,
    };
    let result = serde_json::to_vec_pretty(&report)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::fsutil::write_replace_fast(path, &bytes));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "writing the status file failed");
    }
}
