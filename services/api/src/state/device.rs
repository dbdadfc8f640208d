//! One device as the dashboard keeps it: its verdict and telemetry
//! rings (keyed by `seq`, bounded), its recent anomalies, its status, and
//! the summary row it becomes on the fleet page.

use std::collections::VecDeque;

use vigil_schemas::{DeviceState, DeviceStatus, ScoredAt};

use super::{AnomalyView, DeviceSummary, Point};

/// One telemetry sample, its values indexed by the device's metric slots.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub(super) seq: u64,
    pub(super) ts: u64,
    pub(super) values: Vec<(u8, f64)>,
}

pub(super) type AnomalyKey = (String, u64, Option<u64>);

/// What is known about one device.
#[derive(Debug)]
pub(super) struct Device {
    /// Last time a record of it was made on the server side (scored,
    /// ingested, reported), ms since the Unix epoch.
    pub(super) last_seen_ms: u64,
    /// Its latest verdict.
    pub(super) last: Option<Point>,
    /// Model name of the latest verdict.
    pub(super) last_model: Option<String>,
    /// Recent verdicts, ordered by seq.
    pub(super) points: VecDeque<Point>,
    /// Metric names in slot order (bounded).
    pub(super) metrics: Vec<String>,
    /// Recent telemetry, ordered by seq.
    pub(super) samples: VecDeque<Sample>,
    /// Recent anomalies, newest first.
    pub(super) anomalies: VecDeque<AnomalyView>,
    /// Latest status report (edge agents only).
    pub(super) status: Option<DeviceStatus>,
    /// Verdicts seen (duplicates not counted).
    pub(super) verdicts: u64,
    /// Anomalies seen (duplicates not counted).
    pub(super) anomaly_count: u64,
}

impl Device {
    pub(super) fn new(now: u64) -> Self {
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
    pub(super) fn insert_point(&mut self, point: Point, cap: usize) -> bool {
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
    pub(super) fn count_once(&mut self, seq: u64) -> bool {
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

    pub(super) fn slot(&mut self, metric: &str, max: usize) -> Option<u8> {
        if let Some(i) = self.metrics.iter().position(|m| m == metric) {
            return u8::try_from(i).ok();
        }
        if self.metrics.len() >= max.min(usize::from(u8::MAX)) {
            return None;
        }
        self.metrics.push(metric.to_owned());
        u8::try_from(self.metrics.len() - 1).ok()
    }

    pub(super) fn status_label(&self, now: u64, stale_ms: u64) -> &'static str {
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
pub(super) fn insert_by_seq<T>(
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

pub(super) fn summarise(id: &str, d: &Device, now_ms: u64, stale_ms: u64) -> DeviceSummary {
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
