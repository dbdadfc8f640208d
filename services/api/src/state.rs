//! What the dashboard knows: a bounded, in-memory picture of the fleet
//! built from the topics, and the JSON views the page asks for.
//!
//! Everything here is plain data with no I/O, so the aggregation rules are
//! unit-tested directly: the Kafka reader calls `apply_*` for each record,
//! the HTTP handlers call the `*_view` methods. Every collection has a
//! bound from [`Limits`]:
//!
//! - devices: at most `max_devices`; when a new one arrives at the bound,
//!   the least recently heard from (1/[`EVICT_FRACTION`] of them) are
//!   forgotten;
//! - per device: `device_history` verdicts, `telemetry_history` samples of
//!   at most `max_metrics_per_device` metrics, a few recent anomalies;
//! - the live anomaly feed: `anomaly_history` entries;
//! - pipeline statistics: one bucket per second for [`WINDOW_SECS`]
//!   seconds, each with at most [`LATENCY_SAMPLES_PER_SEC`] latency samples;
//! - DLQ reasons: [`MAX_DLQ_REASONS`] distinct (service, reason) pairs,
//!   the rest counted under `other`.
//!
//! Delivery is at-least-once, so the same verdict can arrive twice (a
//! scorer's replay, or a record read from both vigil.verdicts and
//! vigil.anomalies): per-device series are keyed by `seq`, and the anomaly
//! feed remembers what it holds, so duplicates change nothing.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use vigil_schemas::{
    Contribution, DeviceState, DeviceStatus, DlqRecord, ReleaseHeader, ScoredAt, Telemetry,
    TrainingWindow, ValidationMetrics, Verdict,
};

/// Seconds of per-second pipeline statistics kept (the charts' x-axis).
pub const WINDOW_SECS: u64 = 120;
/// Seconds the headline throughput and latency figures average over.
pub const RECENT_SECS: u64 = 10;
/// Latency samples kept per second; beyond it a second's percentiles come
/// from its first samples.
pub const LATENCY_SAMPLES_PER_SEC: usize = 512;
/// Distinct (service, reason) DLQ pairs counted separately.
pub const MAX_DLQ_REASONS: usize = 64;
/// Anomalies kept per device (its view lists them with contributions).
pub const DEVICE_ANOMALIES: usize = 20;
/// At the device bound, this fraction of the devices (the least recently
/// seen) is forgotten at once.
pub const EVICT_FRACTION: usize = 64;
/// Distinct topics whose decode errors are counted (the dashboard reads
/// seven).
const MAX_ERROR_TOPICS: usize = 16;

/// The in-memory bounds (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most devices kept.
    pub max_devices: usize,
    /// Verdicts kept per device.
    pub device_history: usize,
    /// Telemetry samples kept per device.
    pub telemetry_history: usize,
    /// Metrics charted per device.
    pub max_metrics_per_device: usize,
    /// Entries of the live anomaly feed.
    pub anomaly_history: usize,
    /// A device silent for this long is stale, ms.
    pub stale_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_devices: 5_000,
            device_history: 240,
            telemetry_history: 120,
            max_metrics_per_device: 12,
            anomaly_history: 500,
            stale_ms: 60_000,
        }
    }
}

/// Something the live feed pushes to every connected page.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An anomaly seen for the first time.
    Anomaly(AnomalyView),
    /// A device's status report changed.
    Status(DeviceSummary),
    /// A model release was published.
    Model(ModelView),
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Anomaly(_) => "anomaly",
            Event::Status(_) => "status",
            Event::Model(_) => "model",
        }
    }
}

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
    counted: bool,
}

/// One telemetry sample, its values indexed by the device's metric slots.
#[derive(Debug, Clone)]
struct Sample {
    seq: u64,
    ts: u64,
    values: Vec<(u8, f64)>,
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
}

impl AnomalyView {
    fn of(v: &Verdict) -> Self {
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
        }
    }

    fn key(&self) -> AnomalyKey {
        (self.device_id.clone(), self.seq, self.model_version)
    }
}

type AnomalyKey = (String, u64, Option<u64>);

/// What is known about one device.
#[derive(Debug)]
struct Device {
    /// Last time a record of it was made on the server side (scored,
    /// ingested, reported), ms since the Unix epoch.
    last_seen_ms: u64,
    /// Its latest verdict.
    last: Option<Point>,
    /// Model name of the latest verdict.
    last_model: Option<String>,
    /// Recent verdicts, ordered by seq.
    points: VecDeque<Point>,
    /// Metric names in slot order (bounded).
    metrics: Vec<String>,
    /// Recent telemetry, ordered by seq.
    samples: VecDeque<Sample>,
    /// Recent anomalies, newest first.
    anomalies: VecDeque<AnomalyView>,
    /// Latest status report (edge agents only).
    status: Option<DeviceStatus>,
    /// Verdicts seen (duplicates not counted).
    verdicts: u64,
    /// Anomalies seen (duplicates not counted).
    anomaly_count: u64,
}

impl Device {
    fn new(now: u64) -> Self {
        Self {
            last_seen_ms: now,
            last: None,
            last_model: None,
            points: VecDeque::new(),
            metrics: Vec::new(),
            samples: VecDeque::new(),
            anomalies: VecDeque::new(),
            status: None,
            verdicts: 0,
            anomaly_count: 0,
        }
    }

    /// Inserts `point` in seq order; returns false for a duplicate, or a
    /// point too old for a full history.
    fn insert_point(&mut self, point: Point, cap: usize) -> bool {
        let inserted = insert_by_seq(
            &mut self.points,
            point,
            cap,
            |p| p.seq,
            |old, new| {
                // The same record scored again by a newer version replaces the
                // older decision in the chart.
                if new.model_version > old.model_version {
                    *old = new;
                }
            },
        );
        if inserted {
            if let Some(newest) = self.points.back() {
                if self.last.as_ref().is_none_or(|l| newest.seq >= l.seq) {
                    self.last = Some(newest.clone());
                }
            }
        }
        inserted
    }

    /// Marks the record `seq` as read from vigil.verdicts; true the first
    /// time (so each verdict counts once in throughput and latency, even
    /// when vigil.anomalies delivered it first or Kafka delivers it twice).
    fn count_once(&mut self, seq: u64) -> bool {
        match self.points.binary_search_by_key(&seq, |p| p.seq) {
            Ok(i) => match self.points.get_mut(i) {
                Some(p) if !p.counted => {
                    p.counted = true;
                    true
                }
                _ => false,
            },
            Err(_) => false,
        }
    }

    fn slot(&mut self, metric: &str, max: usize) -> Option<u8> {
        if let Some(i) = self.metrics.iter().position(|m| m == metric) {
            return u8::try_from(i).ok();
        }
        if self.metrics.len() >= max.min(usize::from(u8::MAX)) {
            return None;
        }
        self.metrics.push(metric.to_owned());
        u8::try_from(self.metrics.len() - 1).ok()
    }

    fn status_label(&self, now: u64, stale_ms: u64) -> &'static str {
        if self
            .status
            .as_ref()
            .is_some_and(|s| s.state == DeviceState::Offline)
        {
            "offline"
        } else if now.saturating_sub(self.last_seen_ms) > stale_ms {
            "stale"
        } else if self.last.as_ref().is_some_and(|p| p.anomaly) {
            "anomalous"
        } else {
            "ok"
        }
    }
}

/// Inserts into a deque ordered by `seq_of`, bounded by `cap` (oldest
/// dropped). An equal seq calls `merge` instead and counts as no insert.
fn insert_by_seq<T>(
    items: &mut VecDeque<T>,
    item: T,
    cap: usize,
    seq_of: impl Fn(&T) -> u64,
    merge: impl FnOnce(&mut T, T),
) -> bool {
    if cap == 0 {
        return false;
    }
    let seq = seq_of(&item);
    let at = match items.back() {
        None => 0,
        Some(last) if seq > seq_of(last) => items.len(),
        _ => match items.binary_search_by_key(&seq, &seq_of) {
            Ok(i) => {
                if let Some(old) = items.get_mut(i) {
                    merge(old, item);
                }
                return false;
            }
            Err(i) => i,
        },
    };
    if at == 0 && items.len() >= cap {
        // Older than everything kept, and no room: not worth keeping.
        return false;
    }
    items.insert(at, item);
    while items.len() > cap {
        items.pop_front();
    }
    true
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

/// One second of pipeline activity.
#[derive(Debug, Clone, Default)]
struct Second {
    second: u64,
    verdicts: u64,
    anomalies: u64,
    telemetry: u64,
    dlq: u64,
    /// Event time → scored, ms.
    e2e: Vec<u32>,
    /// Ingest → scored, ms.
    scoring: Vec<u32>,
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
    /// Per-second activity, oldest first, for the last [`WINDOW_SECS`].
    pub series: Vec<SecondView>,
    /// Verdicts per second over the last [`RECENT_SECS`].
    pub verdicts_per_sec: f64,
    /// Telemetry records per second over the last [`RECENT_SECS`].
    pub telemetry_per_sec: f64,
    /// Anomalies per second over the last [`RECENT_SECS`].
    pub anomalies_per_sec: f64,
    /// Event time → verdict, over the window.
    pub e2e_latency_ms: Percentiles,
    /// Ingest → verdict (Kafka hop plus scoring), over the window.
    pub scoring_latency_ms: Percentiles,
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

/// The dashboard's state. Not thread-safe by itself: the caller wraps it
/// in a lock (every method is short).
#[derive(Debug)]
pub struct State {
    limits: Limits,
    devices: HashMap<String, Device>,
    evicted: u64,
    feed: VecDeque<AnomalyView>,
    feed_keys: HashSet<AnomalyKey>,
    releases: BTreeMap<(String, u64), ModelView>,
    /// Latest (model, version) of a cloud verdict per vigil.verdicts
    /// partition.
    partition_versions: HashMap<i32, (String, Option<u64>)>,
    seconds: Vec<Second>,
    records_read: BTreeMap<&'static str, u64>,
    decode_errors: BTreeMap<String, u64>,
    last_decode_error: Option<String>,
    dlq: BTreeMap<(String, String), DlqCount>,
    dlq_read: u64,
    log: LogFacts,
}

impl State {
    /// Empty state with these bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            devices: HashMap::new(),
            evicted: 0,
            feed: VecDeque::new(),
            feed_keys: HashSet::new(),
            releases: BTreeMap::new(),
            partition_versions: HashMap::new(),
            seconds: vec![Second::default(); WINDOW_SECS as usize],
            records_read: BTreeMap::new(),
            decode_errors: BTreeMap::new(),
            last_decode_error: None,
            dlq: BTreeMap::new(),
            dlq_read: 0,
            log: LogFacts::default(),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Devices currently known.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Devices forgotten to stay within the bound.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The device's entry, created (evicting the least recently seen one
    /// at the bound) when new.
    fn device(&mut self, id: &str, seen_ms: u64) -> &mut Device {
        if !self.devices.contains_key(id) && self.devices.len() >= self.limits.max_devices {
            self.evict_least_recent();
        }
        let device = self
            .devices
            .entry(id.to_owned())
            .or_insert_with(|| Device::new(seen_ms));
        device.last_seen_ms = device.last_seen_ms.max(seen_ms);
        device
    }

    /// Forgets the least recently seen 1/[`EVICT_FRACTION`] of the devices
    /// (at least one). Finding them is O(devices); doing it for a batch
    /// keeps a fleet larger than the bound from paying that on every
    /// record of a returning device.
    fn evict_least_recent(&mut self) {
        let count = (self.devices.len() / EVICT_FRACTION).max(1);
        let mut ages: Vec<(u64, &String)> = self
            .devices
            .iter()
            .map(|(id, d)| (d.last_seen_ms, id))
            .collect();
        if ages.len() > count {
            ages.select_nth_unstable(count - 1);
        }
        let victims: Vec<String> = ages
            .into_iter()
            .take(count)
            .map(|(_, id)| id.clone())
            .collect();
        for id in victims {
            self.devices.remove(&id);
            self.evicted += 1;
        }
    }

    fn bucket(&mut self, ts_ms: u64, now_ms: u64) -> Option<&mut Second> {
        let second = ts_ms / 1_000;
        let now = now_ms / 1_000;
        // Outside the window (too old, or from a clock running ahead).
        if second + WINDOW_SECS <= now || second > now + 1 {
            return None;
        }
        let slot = self.seconds.get_mut((second % WINDOW_SECS) as usize)?;
        if slot.second != second {
            *slot = Second {
                second,
                ..Second::default()
            };
        }
        Some(slot)
    }

    fn count_read(&mut self, kind: &'static str) {
        *self.records_read.entry(kind).or_default() += 1;
    }

    /// A verdict from vigil.verdicts (`from_anomalies` false) or
    /// vigil.anomalies (true), read from `partition`. Returns the event to
    /// push live when it is an anomaly seen for the first time.
    pub fn apply_verdict(
        &mut self,
        v: &Verdict,
        partition: i32,
        from_anomalies: bool,
        now_ms: u64,
    ) -> Option<Event> {
        self.count_read(if from_anomalies {
            "anomalies"
        } else {
            "verdicts"
        });
        let limits = self.limits.clone();
        let point = Point {
            seq: v.seq,
            ts: v.event_ts,
            score: v.score,
            threshold: v.threshold,
            anomaly: v.anomaly,
            model_version: v.model_version,
            scored_at: v.scored_at,
            counted: false,
        };
        let device = self.device(&v.device_id, v.scored_ts.min(now_ms));
        let new_verdict = device.insert_point(point, limits.device_history);
        if new_verdict {
            device.verdicts += 1;
            if device.last.as_ref().is_some_and(|l| l.seq == v.seq) {
                device.last_model = Some(v.model.clone());
            }
        }
        if !from_anomalies {
            let first_read = device.count_once(v.seq);
            if v.scored_at == ScoredAt::Cloud {
                self.partition_versions
                    .insert(partition, (v.model.clone(), v.model_version));
            }
            if first_read {
                if let Some(s) = self.bucket(v.scored_ts, now_ms) {
                    s.verdicts += 1;
                    if v.anomaly {
                        s.anomalies += 1;
                    }
                    if s.e2e.len() < LATENCY_SAMPLES_PER_SEC {
                        s.e2e.push(ms32(v.scored_ts.saturating_sub(v.event_ts)));
                    }
                    if let Some(ingest) = v.ingest_ts {
                        if s.scoring.len() < LATENCY_SAMPLES_PER_SEC {
                            s.scoring.push(ms32(v.scored_ts.saturating_sub(ingest)));
                        }
                    }
                }
            }
        }
        if !v.anomaly {
            return None;
        }
        let view = AnomalyView::of(v);
        let key = view.key();
        if self.feed_keys.contains(&key) {
            return None;
        }
        if let Some(device) = self.devices.get_mut(&v.device_id) {
            device.anomaly_count += 1;
            device.anomalies.push_front(view.clone());
            device.anomalies.truncate(DEVICE_ANOMALIES);
        }
        // The feed is newest first by event time; a late anomaly older
        // than everything kept in a full feed is not shown.
        let at = self
            .feed
            .iter()
            .position(|a| (a.event_ts, a.seq) < (view.event_ts, view.seq))
            .unwrap_or(self.feed.len());
        if at >= self.limits.anomaly_history {
            return None;
        }
        self.feed_keys.insert(key);
        self.feed.insert(at, view.clone());
        while self.feed.len() > self.limits.anomaly_history {
            if let Some(old) = self.feed.pop_back() {
                self.feed_keys.remove(&old.key());
            }
        }
        Some(Event::Anomaly(view))
    }

    /// A telemetry record from vigil.telemetry.
    pub fn apply_telemetry(&mut self, t: &Telemetry, now_ms: u64) {
        self.count_read("telemetry");
        let limits = self.limits.clone();
        let seen = t.ingest_ts.unwrap_or(now_ms).min(now_ms);
        if let Some(s) = self.bucket(seen, now_ms) {
            s.telemetry += 1;
        }
        let device = self.device(&t.device_id, seen);
        let mut values = Vec::with_capacity(t.metrics.len().min(limits.max_metrics_per_device));
        for (name, value) in &t.metrics {
            if let Some(slot) = device.slot(name, limits.max_metrics_per_device) {
                values.push((slot, *value));
            }
        }
        let sample = Sample {
            seq: t.seq,
            ts: t.ts,
            values,
        };
        insert_by_seq(
            &mut device.samples,
            sample,
            limits.telemetry_history,
            |s| s.seq,
            |_, _| {},
        );
    }

    /// A device status from vigil.device-status; `None` is a tombstone
    /// (the device was removed). Returns the event to push live.
    pub fn apply_status(
        &mut self,
        device_id: &str,
        status: Option<DeviceStatus>,
        now_ms: u64,
    ) -> Option<Event> {
        self.count_read("device_status");
        match status {
            Some(status) => {
                let seen = status.ts.min(now_ms);
                let device = self.device(device_id, seen);
                if device.status.as_ref().is_some_and(|s| s.ts > status.ts) {
                    return None;
                }
                device.status = Some(status);
                self.summary_of(device_id, now_ms).map(Event::Status)
            }
            None => {
                if let Some(device) = self.devices.get_mut(device_id) {
                    device.status = None;
                }
                None
            }
        }
    }

    /// A release from vigil.models (its header parsed from the signed
    /// payload when it has one). Returns the event to push live when new.
    pub fn apply_release(
        &mut self,
        release: &vigil_schemas::ModelRelease,
        published_ts: Option<u64>,
    ) -> Option<Event> {
        self.count_read("models");
        let header: Option<ReleaseHeader> = serde_json::from_str(release.payload.get()).ok();
        let view = ModelView {
            model: release.model.clone(),
            version: release.version,
            key_id: release.key_id.clone(),
            payload_sha256: release.payload_sha256.clone(),
            created_ts: header.as_ref().map(|h| h.created_ts),
            published_ts,
            threshold: header.as_ref().map(|h| h.threshold),
            training: header.as_ref().map(|h| h.training.clone()),
            validation: header.map(|h| h.validation),
        };
        let key = (view.model.clone(), view.version);
        if self.releases.get(&key) == Some(&view) {
            return None;
        }
        // Releases are few (versions of a handful of models) and compacted
        // on the topic; keep the newest 1000 should someone publish more.
        self.releases.insert(key, view.clone());
        while self.releases.len() > 1_000 {
            self.releases.pop_first();
        }
        Some(Event::Model(view))
    }

    /// A record from vigil.dlq.
    pub fn apply_dlq(&mut self, r: &DlqRecord, now_ms: u64) {
        self.count_read("dlq");
        self.dlq_read += 1;
        if let Some(s) = self.bucket(r.ts, now_ms) {
            s.dlq += 1;
        }
        let mut key = (r.service.clone(), r.reason.clone());
        if !self.dlq.contains_key(&key) && self.dlq.len() >= MAX_DLQ_REASONS {
            key = ("other".to_owned(), "other".to_owned());
        }
        let entry = self.dlq.entry(key.clone()).or_insert_with(|| DlqCount {
            service: key.0,
            reason: key.1,
            count: 0,
            last_detail: String::new(),
            last_ts: 0,
        });
        entry.count += 1;
        if r.ts >= entry.last_ts {
            entry.last_ts = r.ts;
            entry.last_detail = r.detail.chars().take(300).collect();
        }
    }

    /// A record the dashboard could not decode.
    pub fn record_decode_error(&mut self, topic: &str, error: String) {
        if self.decode_errors.contains_key(topic) || self.decode_errors.len() < MAX_ERROR_TOPICS {
            *self.decode_errors.entry(topic.to_owned()).or_default() += 1;
        }
        self.last_decode_error = Some(format!("{topic}: {error}"));
    }

    /// New lag and retention measurements.
    pub fn set_log_facts(&mut self, facts: LogFacts) {
        self.log = facts;
    }

    fn summary_of(&self, id: &str, now_ms: u64) -> Option<DeviceSummary> {
        self.devices
            .get(id)
            .map(|d| summarise(id, d, now_ms, self.limits.stale_ms))
    }

    /// The fleet page: counts and at most `limit` devices, anomalous first,
    /// then most recently seen.
    pub fn overview(&self, now_ms: u64, limit: usize) -> Overview {
        let mut counts = FleetCounts::default();
        let mut devices: Vec<DeviceSummary> = self
            .devices
            .iter()
            .map(|(id, d)| summarise(id, d, now_ms, self.limits.stale_ms))
            .collect();
        for d in &devices {
            counts.total += 1;
            match d.status {
                "ok" => counts.ok += 1,
                "anomalous" => counts.anomalous += 1,
                "stale" => counts.stale += 1,
                _ => counts.offline += 1,
            }
            match d.scored_at {
                Some(ScoredAt::Edge) => counts.edge += 1,
                Some(ScoredAt::Cloud) => counts.cloud += 1,
                None => {}
            }
        }
        devices.sort_by(|a, b| {
            (b.status == "anomalous")
                .cmp(&(a.status == "anomalous"))
                .then(b.last_seen_ms.cmp(&a.last_seen_ms))
                .then(a.device_id.cmp(&b.device_id))
        });
        let omitted = devices.len().saturating_sub(limit) as u64;
        devices.truncate(limit);
        Overview {
            now_ms,
            counts,
            devices,
            omitted,
            evicted: self.evicted,
        }
    }

    /// The device page, if the device is known.
    pub fn device_detail(&self, id: &str, now_ms: u64) -> Option<DeviceDetail> {
        let d = self.devices.get(id)?;
        let mut telemetry: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
        for s in &d.samples {
            for (slot, value) in &s.values {
                if let Some(name) = d.metrics.get(usize::from(*slot)) {
                    telemetry
                        .entry(name.clone())
                        .or_default()
                        .push((s.ts, *value));
                }
            }
        }
        let mut shares: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
        for a in &d.anomalies {
            for c in &a.contributions {
                let e = shares.entry(c.metric.as_str()).or_default();
                e.0 += c.share;
                e.1 += 1;
            }
        }
        let n = d.anomalies.len().max(1) as f64;
        let mut contributions: Vec<MetricShare> = shares
            .into_iter()
            .map(|(metric, (sum, count))| MetricShare {
                metric: metric.to_owned(),
                share: sum / n,
                anomalies: count,
            })
            .collect();
        contributions.sort_by(|a, b| b.share.total_cmp(&a.share));
        Some(DeviceDetail {
            summary: summarise(id, d, now_ms, self.limits.stale_ms),
            points: d.points.iter().cloned().collect(),
            telemetry,
            anomalies_recent: d.anomalies.iter().cloned().collect(),
            contributions,
            device_status: d.status.clone(),
        })
    }

    /// The live feed, newest first, at most `limit`.
    pub fn anomalies(&self, limit: usize) -> Vec<AnomalyView> {
        self.feed.iter().take(limit).cloned().collect()
    }

    /// Every known model version with its rollout, newest first per model.
    pub fn models(&self) -> Vec<ModelRow> {
        type Rows = BTreeMap<(String, Option<u64>), ModelRow>;
        fn entry<'r>(rows: &'r mut Rows, model: &str, version: Option<u64>) -> &'r mut ModelRow {
            rows.entry((model.to_owned(), version))
                .or_insert_with(|| ModelRow {
                    release: None,
                    model: model.to_owned(),
                    version,
                    rollout: Rollout::default(),
                })
        }
        let mut rows = Rows::new();
        for ((model, version), view) in &self.releases {
            entry(&mut rows, model, Some(*version)).release = Some(view.clone());
        }
        for d in self.devices.values() {
            if let Some(s) = &d.status {
                if s.state == DeviceState::Online && !s.model.is_empty() {
                    entry(&mut rows, &s.model, s.model_version)
                        .rollout
                        .edge_devices += 1;
                }
            }
            if let (Some(last), Some(model)) = (&d.last, &d.last_model) {
                if last.scored_at == ScoredAt::Cloud {
                    entry(&mut rows, model, last.model_version)
                        .rollout
                        .cloud_devices += 1;
                }
            }
        }
        for (model, version) in self.partition_versions.values() {
            entry(&mut rows, model, *version).rollout.cloud_partitions += 1;
        }
        let mut out: Vec<ModelRow> = rows.into_values().collect();
        out.sort_by(|a, b| a.model.cmp(&b.model).then(b.version.cmp(&a.version)));
        out
    }

    /// The pipeline-health page.
    pub fn pipeline(&self, now_ms: u64) -> PipelineView {
        let now = now_ms / 1_000;
        let mut series = Vec::with_capacity(WINDOW_SECS as usize);
        let mut e2e_all = Vec::new();
        let mut scoring_all = Vec::new();
        let (mut recent_v, mut recent_t, mut recent_a) = (0, 0, 0);
        for second in (now + 1).saturating_sub(WINDOW_SECS)..=now {
            let slot = &self.seconds[(second % WINDOW_SECS) as usize];
            let live = slot.second == second;
            let mut e2e = if live { slot.e2e.clone() } else { Vec::new() };
            e2e.sort_unstable();
            if live {
                e2e_all.extend_from_slice(&e2e);
                scoring_all.extend_from_slice(&slot.scoring);
                // The current second is still filling: average over the
                // RECENT_SECS complete seconds before it.
                if second < now && second + RECENT_SECS >= now {
                    recent_v += slot.verdicts;
                    recent_t += slot.telemetry;
                    recent_a += slot.anomalies;
                }
            }
            let pick = |q: f64| percentile(&e2e, q);
            series.push(SecondView {
                second,
                verdicts: if live { slot.verdicts } else { 0 },
                anomalies: if live { slot.anomalies } else { 0 },
                telemetry: if live { slot.telemetry } else { 0 },
                dlq: if live { slot.dlq } else { 0 },
                e2e_p50_ms: pick(0.5),
                e2e_p99_ms: pick(0.99),
            });
        }
        let per_sec = |n: u64| n as f64 / RECENT_SECS as f64;
        let mut dlq: Vec<DlqCount> = self.dlq.values().cloned().collect();
        dlq.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        PipelineView {
            now_ms,
            series,
            verdicts_per_sec: per_sec(recent_v),
            telemetry_per_sec: per_sec(recent_t),
            anomalies_per_sec: per_sec(recent_a),
            e2e_latency_ms: percentiles(e2e_all),
            scoring_latency_ms: percentiles(scoring_all),
            records_read: self.records_read.clone(),
            decode_errors: self.decode_errors.clone(),
            last_decode_error: self.last_decode_error.clone(),
            dlq,
            dlq_read: self.dlq_read,
            log: self.log.clone(),
        }
    }
}

/// A device page completed with verdicts from the audit store: the
/// in-memory view (if the device is known) plus older or missing verdicts,
/// by seq, at most `device_history` of the newest. A device only the store
/// knows gets a page from its history alone (status `stale`: nothing of it
/// was seen live).
pub fn with_history(
    live: Option<DeviceDetail>,
    id: &str,
    history: &[Verdict],
    limits: &Limits,
) -> Option<DeviceDetail> {
    if history.is_empty() {
        return live;
    }
    let mut detail = match live {
        Some(d) => d,
        None => {
            let newest = history.iter().max_by_key(|v| v.seq)?;
            DeviceDetail {
                summary: DeviceSummary {
                    device_id: id.to_owned(),
                    status: "stale",
                    last_seen_ms: newest.scored_ts,
                    model: Some(newest.model.clone()),
                    model_version: newest.model_version,
                    scored_at: Some(newest.scored_at),
                    score: Some(newest.score),
                    threshold: Some(newest.threshold),
                    verdicts: 0,
                    anomalies: 0,
                    agent_version: None,
                    buffered_records: None,
                },
                points: Vec::new(),
                telemetry: BTreeMap::new(),
                anomalies_recent: Vec::new(),
                contributions: Vec::new(),
                device_status: None,
            }
        }
    };
    let mut points: BTreeMap<u64, Point> = detail.points.drain(..).map(|p| (p.seq, p)).collect();
    let mut anomalies: BTreeMap<u64, AnomalyView> = detail
        .anomalies_recent
        .drain(..)
        .map(|a| (a.seq, a))
        .collect();
    for v in history {
        let point = Point {
            seq: v.seq,
            ts: v.event_ts,
            score: v.score,
            threshold: v.threshold,
            anomaly: v.anomaly,
            model_version: v.model_version,
            scored_at: v.scored_at,
            counted: true,
        };
        let keep = points
            .get(&v.seq)
            .is_none_or(|p| v.model_version > p.model_version);
        if keep {
            points.insert(v.seq, point);
        }
        if v.anomaly {
            anomalies.entry(v.seq).or_insert_with(|| AnomalyView::of(v));
        }
    }
    let skip = points.len().saturating_sub(limits.device_history);
    detail.points = points.into_values().skip(skip).collect();
    detail.anomalies_recent = anomalies
        .into_values()
        .rev()
        .take(DEVICE_ANOMALIES)
        .collect();
    Some(detail)
}

fn summarise(id: &str, d: &Device, now_ms: u64, stale_ms: u64) -> DeviceSummary {
    let edge = d.status.as_ref().filter(|s| !s.model.is_empty());
    DeviceSummary {
        device_id: id.to_owned(),
        status: d.status_label(now_ms, stale_ms),
        last_seen_ms: d.last_seen_ms,
        model: edge
            .map(|s| s.model.clone())
            .or_else(|| d.last_model.clone()),
        model_version: match edge {
            Some(s) => s.model_version,
            None => d.last.as_ref().and_then(|p| p.model_version),
        },
        scored_at: d
            .last
            .as_ref()
            .map(|p| p.scored_at)
            .or(edge.map(|_| ScoredAt::Edge)),
        score: d.last.as_ref().map(|p| p.score),
        threshold: d.last.as_ref().map(|p| p.threshold),
        verdicts: d.verdicts,
        anomalies: d.anomaly_count,
        agent_version: d.status.as_ref().map(|s| s.agent_version.clone()),
        buffered_records: d.status.as_ref().map(|s| s.buffered_records),
    }
}

fn ms32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// The `q` quantile of sorted `values` (nearest rank).
fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

fn percentiles(mut values: Vec<u32>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        samples: values.len() as u64,
        p50: percentile(&values, 0.5),
        p90: percentile(&values, 0.9),
        p99: percentile(&values, 0.99),
        max: values.last().copied(),
    }
}

/// Shared handle on the state, for the reader, the lag poller and the
/// HTTP handlers.
pub type Shared = Arc<std::sync::Mutex<State>>;

#[cfg(test)]
mod tests;
