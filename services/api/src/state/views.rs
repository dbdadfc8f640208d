//! The JSON views the dashboard serves: what the page receives for the
//! fleet, a device, the anomaly feed, the models and the pipeline. Plain
//! serialisable data, built by `State`'s view methods.

use std::collections::BTreeMap;

use serde::Serialize;
use vigil_schemas::{
    Contribution, DeviceStatus, ScoredAt, TrainingWindow, ValidationMetrics, Verdict,
};

use super::device::AnomalyKey;

/// One point of a device's score chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Record sequence number.
    pub seq: u64,
    /// Event time, ms since the Unix epoch.
    pub ts: u64,
    /// Anomaly score.
    pub score: f64,
    /// Threshold of the model version that scored it.
    pub threshold: f64,
    /// Whether it was anomalous.
    pub anomaly: bool,
    /// Model version; null when unscored.
    pub model_version: Option<u64>,
    /// Cloud or edge.
    pub scored_at: ScoredAt,
    /// Whether it was read from vigil.verdicts (and so counted in the
    /// pipeline statistics), not only from vigil.anomalies.
    #[serde(skip)]
    pub(super) counted: bool,
}

impl Point {
    /// The chart point of verdict `v`; `counted` as [`Point::counted`].
    pub(super) fn of(v: &Verdict, counted: bool) -> Self {
        Point {
            seq: v.seq,
            ts: v.event_ts,
            score: v.score,
            threshold: v.threshold,
            anomaly: v.anomaly,
            model_version: v.model_version,
            scored_at: v.scored_at,
            counted,
        }
    }
}

/// An anomaly as the feed and the device view show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyView {
    /// The device.
    pub device_id: String,
    /// Record sequence number.
    pub seq: u64,
    /// Event time, ms since the Unix epoch.
    pub event_ts: u64,
    /// When it was scored.
    pub scored_ts: u64,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: Option<u64>,
    /// Score.
    pub score: f64,
    /// Threshold.
    pub threshold: f64,
    /// Top contributing metrics, largest share first.
    pub contributions: Vec<Contribution>,
    /// Cloud or edge.
    pub scored_at: ScoredAt,
    /// The alarm this record opened (absent from scorers older than
    /// alarms).
    pub alarm_id: Option<String>,
}

impl AnomalyView {
    pub(super) fn of(v: &Verdict) -> Self {
        Self {
            device_id: v.device_id.clone(),
            seq: v.seq,
            event_ts: v.event_ts,
            scored_ts: v.scored_ts,
            model: v.model.clone(),
            model_version: v.model_version,
            score: v.score,
            threshold: v.threshold,
            contributions: v.contributions.clone(),
            scored_at: v.scored_at,
            alarm_id: v.alarm.as_ref().map(|a| a.id.clone()),
        }
    }

    pub(super) fn key(&self) -> AnomalyKey {
        (self.device_id.clone(), self.seq, self.model_version)
    }
}

/// A model release's provenance and validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelView {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// Id of the signing key.
    pub key_id: String,
    /// sha256 of the signed payload.
    pub payload_sha256: String,
    /// When the trainer built it.
    pub created_ts: Option<u64>,
    /// When it was published to vigil.models (the record's timestamp).
    pub published_ts: Option<u64>,
    /// Anomaly threshold.
    pub threshold: Option<f64>,
    /// What it was trained on.
    pub training: Option<TrainingWindow>,
    /// Holdout results it was gated on.
    pub validation: Option<ValidationMetrics>,
}

/// How far a model version has rolled out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rollout {
    /// Devices whose latest cloud verdict this version made.
    pub cloud_devices: u64,
    /// Edge agents that report running this version.
    pub edge_devices: u64,
    /// Partitions of vigil.verdicts whose latest cloud verdict this version
    /// made. Each partition is scored by one scorer replica at a time, so
    /// this is how many scorers' shares of the fleet run it.
    pub cloud_partitions: u64,
}

/// One release with its rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRow {
    /// The release (absent for a version only seen in verdicts or status
    /// reports, for example one whose release record was compacted away).
    pub release: Option<ModelView>,
    /// Model name.
    pub model: String,
    /// Version; null for verdicts made before any model existed.
    pub version: Option<u64>,
    /// Where it runs.
    pub rollout: Rollout,
}

/// One row of the fleet table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSummary {
    /// The device.
    pub device_id: String,
    /// `ok`, `anomalous`, `stale` or `offline`.
    pub status: &'static str,
    /// Last server-side time a record of it was made.
    pub last_seen_ms: u64,
    /// Model name running for it.
    pub model: Option<String>,
    /// Model version running for it (the edge agent's, else the latest
    /// verdict's).
    pub model_version: Option<u64>,
    /// Where its latest verdict was made.
    pub scored_at: Option<ScoredAt>,
    /// Latest score.
    pub score: Option<f64>,
    /// Threshold of the latest score.
    pub threshold: Option<f64>,
    /// Verdicts seen since the dashboard started (plus the backfill).
    pub verdicts: u64,
    /// Anomalies among them.
    pub anomalies: u64,
    /// Edge agent build, when it reports status.
    pub agent_version: Option<String>,
    /// Records waiting in the edge agent's store-and-forward queue.
    pub buffered_records: Option<u64>,
}

/// A metric's share of a device's recent anomalies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricShare {
    /// Metric name.
    pub metric: String,
    /// Mean share over the device's recent anomalies, in [0, 1].
    pub share: f64,
    /// In how many of them it was named.
    pub anomalies: u64,
}

/// Everything the device page shows.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDetail {
    /// The fleet-table row.
    #[serde(flatten)]
    pub summary: DeviceSummary,
    /// Recent verdicts, oldest first.
    pub points: Vec<Point>,
    /// Recent telemetry per metric: `[ts, value]` pairs, oldest first.
    pub telemetry: BTreeMap<String, Vec<(u64, f64)>>,
    /// Recent anomalies, newest first.
    pub anomalies_recent: Vec<AnomalyView>,
    /// Metrics that contributed to the recent anomalies, largest first.
    pub contributions: Vec<MetricShare>,
    /// Latest status report, for edge agents.
    pub device_status: Option<DeviceStatus>,
}

/// Counts of the fleet table by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FleetCounts {
    /// Devices known.
    pub total: u64,
    /// Healthy and recent.
    pub ok: u64,
    /// Latest verdict anomalous.
    pub anomalous: u64,
    /// Silent for longer than the stale window.
    pub stale: u64,
    /// Edge agents that reported going offline.
    pub offline: u64,
    /// Latest verdict made on the device.
    pub edge: u64,
    /// Latest verdict made by a cloud scorer.
    pub cloud: u64,
}

/// The fleet page.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Server time of the view.
    pub now_ms: u64,
    /// Counts by status.
    pub counts: FleetCounts,
    /// Devices, anomalous first, then most recently seen.
    pub devices: Vec<DeviceSummary>,
    /// Devices left out of `devices` by the `limit`.
    pub omitted: u64,
    /// Devices forgotten to stay within `max_devices`.
    pub evicted: u64,
}

/// One second of the pipeline charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondView {
    /// Second since the Unix epoch.
    pub second: u64,
    /// Verdicts scored in that second.
    pub verdicts: u64,
    /// Anomalies among them.
    pub anomalies: u64,
    /// Telemetry records ingested.
    pub telemetry: u64,
    /// Records rejected to the DLQ.
    pub dlq: u64,
    /// Median event-to-verdict latency, ms.
    pub e2e_p50_ms: Option<u32>,
    /// 99th percentile event-to-verdict latency, ms.
    pub e2e_p99_ms: Option<u32>,
}

/// Percentiles of a latency, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples they are computed from.
    pub samples: u64,
    /// Median.
    pub p50: Option<u32>,
    /// 90th percentile.
    pub p90: Option<u32>,
    /// 99th percentile.
    pub p99: Option<u32>,
    /// Largest.
    pub max: Option<u32>,
}

/// A consumer group's lag on one topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicLag {
    /// Topic name.
    pub topic: String,
    /// Records between the committed offsets and the end of the log,
    /// summed over partitions.
    pub lag: u64,
    /// Partitions the group has committed offsets for.
    pub partitions: u64,
}

/// A consumer group's lag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupLag {
    /// Group id.
    pub group: String,
    /// Per topic it has committed offsets for.
    pub topics: Vec<TopicLag>,
    /// Sum over its topics.
    pub total: u64,
    /// Members currently in the group, when the broker says.
    pub members: Option<u64>,
    /// Why it could not be measured, if it could not.
    pub error: Option<String>,
}

/// Log-level facts the lag poller measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogFacts {
    /// When they were measured.
    pub measured_ms: u64,
    /// Lag of each configured group.
    pub groups: Vec<GroupLag>,
    /// Records retained in vigil.dlq (end minus start of each partition).
    pub dlq_retained: Option<u64>,
}

/// A DLQ (service, reason) count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DlqCount {
    /// Rejecting service.
    pub service: String,
    /// Reason code.
    pub reason: String,
    /// Records read with it.
    pub count: u64,
    /// The latest one's explanation.
    pub last_detail: String,
    /// When the latest one was rejected.
    pub last_ts: u64,
}

/// The pipeline-health page.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineView {
    /// Server time of the view.
    pub now_ms: u64,
    /// Per-second activity, oldest first, for the last [`WINDOW_SECS`](super::WINDOW_SECS).
    pub series: Vec<SecondView>,
    /// Verdicts per second over the last [`RECENT_SECS`](super::RECENT_SECS).
    pub verdicts_per_sec: f64,
    /// Telemetry records per second over the last [`RECENT_SECS`](super::RECENT_SECS).
    pub telemetry_per_sec: f64,
    /// Anomalies per second over the last [`RECENT_SECS`](super::RECENT_SECS).
    pub anomalies_per_sec: f64,
    /// Event time → verdict, over the window.
    pub e2e_latency_ms: Percentiles,
    /// Ingest → verdict (Kafka hop plus scoring), over the window.
    pub scoring_latency_ms: Percentiles,
    /// Event time → ingest (device, MQTT broker, ingest), over the window.
    pub ingest_latency_ms: Percentiles,
    /// Records the dashboard read, by topic kind.
    pub records_read: BTreeMap<&'static str, u64>,
    /// Records the dashboard could not decode, by topic.
    pub decode_errors: BTreeMap<String, u64>,
    /// The latest decode error.
    pub last_decode_error: Option<String>,
    /// DLQ records read, by (service, reason), most first.
    pub dlq: Vec<DlqCount>,
    /// DLQ records read since start (plus the backfill).
    pub dlq_read: u64,
    /// Consumer lag and DLQ retention, measured periodically.
    pub log: LogFacts,
}
