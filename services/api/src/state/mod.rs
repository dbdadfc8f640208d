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

mod device;
mod queries;
mod stats;
mod views;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use vigil_schemas::{DeviceStatus, DlqRecord, ReleaseHeader, ScoredAt, Telemetry, Verdict};

use device::{insert_by_seq, AnomalyKey, Device, Sample};
pub use queries::with_history;
use stats::{ms32, Second};
pub use views::*;

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
        let point = Point::of(v, false);
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
                    // An edge verdict is made where the sample is taken;
                    // its delay to here is the uplink's (an outage, a
                    // backlog), not the pipeline's scoring latency.
                    if v.scored_at == ScoredAt::Cloud && s.e2e.len() < LATENCY_SAMPLES_PER_SEC {
                        s.e2e.push(ms32(v.scored_ts.saturating_sub(v.event_ts)));
                    }
                    if let Some(ingest) = v.ingest_ts {
                        if s.scoring.len() < LATENCY_SAMPLES_PER_SEC {
                            s.scoring.push(ms32(v.scored_ts.saturating_sub(ingest)));
                        }
                        if s.ingest.len() < LATENCY_SAMPLES_PER_SEC {
                            s.ingest.push(ms32(ingest.saturating_sub(v.event_ts)));
                        }
                    }
                }
            }
        }
        if !v.anomaly {
            return None;
        }
        // One entry per alarm, from the verdict that opens it (verdicts
        // without alarm information, from scorers older than alarms, each
        // make one).
        if v.alarm
            .as_ref()
            .is_some_and(|a| a.state != vigil_schemas::AlarmState::Opened)
        {
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
}

/// Shared handle on the state, for the reader, the lag poller and the
/// HTTP handlers.
pub type Shared = Arc<std::sync::Mutex<State>>;

#[cfg(test)]
mod tests;
