//! The read side of [`State`]: the fleet overview, a device page, the
//! anomaly feed, the models and the pipeline view, and a device page
//! completed with history from the audit store ([`with_history`]).

use std::collections::BTreeMap;

use vigil_schemas::{DeviceState, ScoredAt, Verdict};

use super::device::summarise;
use super::stats::{percentile, percentiles};
use super::{
    AnomalyView, DeviceDetail, DeviceSummary, DlqCount, FleetCounts, Limits, MetricShare, ModelRow,
    Overview, PipelineView, Point, Rollout, SecondView, State, DEVICE_ANOMALIES, RECENT_SECS,
    WINDOW_SECS,
};

impl State {
    pub(super) fn summary_of(&self, id: &str, now_ms: u64) -> Option<DeviceSummary> {
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
        let mut ingest_all = Vec::new();
        let (mut recent_v, mut recent_t, mut recent_a) = (0, 0, 0);
        for second in (now + 1).saturating_sub(WINDOW_SECS)..=now {
            let slot = &self.seconds[(second % WINDOW_SECS) as usize];
            let live = slot.second == second;
            let mut e2e = if live { slot.e2e.clone() } else { Vec::new() };
            e2e.sort_unstable();
            if live {
                e2e_all.extend_from_slice(&e2e);
                scoring_all.extend_from_slice(&slot.scoring);
                ingest_all.extend_from_slice(&slot.ingest);
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
            ingest_latency_ms: percentiles(ingest_all),
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
        let point = Point::of(v, true);
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
