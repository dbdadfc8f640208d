//! The sampling loop: take a sample, stamp it with the device id and the
//! next `seq`, score it with the current model, append its uplink record to
//! the queue, and trigger the local action on an anomaly.
//!
//! Everything a sample produces is written to the on-disk queue *before*
//! anything is sent, online or not; the uplink only ever reads from there.
//! So the order of a device's records on the wire is the sampling order,
//! and an outage, a crash or a reboot changes only when records arrive,
//! never which or in what order.
//!
//! A sequence number is used only once [`SeqReservation`] holds it
//! durably (one write per block), so a power cut never leads to a number
//! being used twice.
//!
//! Model swaps happen between two samples (`Scorer::install`), so each
//! verdict is produced entirely by one model and names its version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use vigil_model::{Scorer, VerifiedModel};
use vigil_schemas::{EdgeScored, Message, ScoredAt, Telemetry, SCHEMA_VERSION};

use crate::action::Trigger;
use crate::config::{TelemetryMode, VerdictMode};
use crate::queue::Queue;
use crate::record::UplinkRecord;
use crate::seq::SeqReservation;
use crate::sources::{Sample, Source};
use crate::status::Stats;

/// Device state slots: the agent scores one device, plus room for a model
/// swap's remap.
const DEVICE_CAPACITY: usize = 4;

/// What the sampler needs to know.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// This device.
    pub device_id: String,
    /// Model name.
    pub model: String,
    /// `vigil/devices/{id}/telemetry`.
    pub telemetry_topic: String,
    /// `vigil/devices/{id}/verdicts`.
    pub verdicts_topic: String,
    /// Telemetry uplink mode.
    pub telemetry: TelemetryMode,
    /// Verdict uplink mode.
    pub verdicts: VerdictMode,
    /// Summary period (summary mode).
    pub summary_interval: Duration,
    /// Pacing; None reads as fast as the source gives.
    pub interval: Option<Duration>,
    /// Stop after this seq.
    pub stop_after_seq: Option<u64>,
    /// seq of the last sample taken before this run (from the queue).
    pub last_seq: u64,
}

/// Per-interval means of each metric.
#[derive(Debug, Default)]
struct Summary {
    sums: BTreeMap<String, (f64, u64)>,
    samples: u64,
    first_seq: u64,
    last_seq: u64,
    last_ts: u64,
    started: Option<Instant>,
}

impl Summary {
    fn add(&mut self, t: &Telemetry) {
        if self.samples == 0 {
            self.first_seq = t.seq;
            self.started = Some(Instant::now());
        }
        self.samples += 1;
        self.last_seq = t.seq;
        self.last_ts = t.ts;
        for (name, v) in &t.metrics {
            let e = self.sums.entry(name.clone()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }

    fn due(&self, every: Duration) -> bool {
        self.started.is_some_and(|s| s.elapsed() >= every)
    }

    /// The summary record, resetting the accumulator.
    fn take(&mut self, device_id: &str) -> Option<Telemetry> {
        if self.samples == 0 {
            return None;
        }
        let done = std::mem::take(self);
        let metrics = done
            .sums
            .into_iter()
            .map(|(k, (sum, n))| (k, sum / n as f64))
            .collect();
        let mut tags = BTreeMap::new();
        tags.insert("summary".to_owned(), "mean".to_owned());
        tags.insert("samples".to_owned(), done.samples.to_string());
        tags.insert("first_seq".to_owned(), done.first_seq.to_string());
        Some(Telemetry {
            schema: SCHEMA_VERSION,
            device_id: device_id.to_owned(),
            seq: done.last_seq,
            ts: done.last_ts,
            metrics,
            tags: Some(tags),
            ingest_ts: None,
            edge: None,
        })
    }
}

/// The sampling loop's state.
#[derive(Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    scorer: Scorer,
    models: watch::Receiver<Option<Arc<VerifiedModel>>>,
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    actions: mpsc::Sender<Trigger>,
    next_seq: u64,
    seqs: Option<SeqReservation>,
    summary: Summary,
    invalid_logged: u64,
    reserve_logged: u64,
}

/// Locks the queue; a poisoned lock (a panic while holding it) still
/// guards a consistent queue: every method leaves it valid on error.
pub fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sampler {
    /// A sampler starting after `cfg.last_seq`, scoring with the model in
    /// `models` (and every later one sent there).
    pub fn new(
        cfg: SamplerConfig,
        mut models: watch::Receiver<Option<Arc<VerifiedModel>>>,
        queue: Arc<Mutex<Queue>>,
        wake: Arc<Notify>,
        stats: Arc<Stats>,
        actions: mpsc::Sender<Trigger>,
    ) -> Sampler {
        let mut scorer = Scorer::new(cfg.model.clone(), DEVICE_CAPACITY);
        if let Some(m) = models.borrow_and_update().clone() {
            if let Err(e) = scorer.install(m) {
                tracing::error!(error = %e, "installing the start-up model failed");
            }
        }
        let next_seq = cfg.last_seq + 1;
        Sampler {
            cfg,
            scorer,
            models,
            queue,
            wake,
            stats,
            actions,
            next_seq,
            seqs: None,
            summary: Summary::default(),
            invalid_logged: 0,
            reserve_logged: 0,
        }
    }

    /// Uses sequence numbers only once `seqs` holds them durably (the
    /// agent always does; without it, as in unit tests, numbers are not
    /// protected against power loss).
    pub fn with_reservation(mut self, seqs: SeqReservation) -> Sampler {
        self.seqs = Some(seqs);
        self
    }

    /// Samples until the source ends, the seq limit is reached or
    /// `shutdown`.
    pub async fn run(mut self, mut source: Source, shutdown: CancellationToken) {
        use std::sync::atomic::Ordering;
        self.stats.sampling.store(true, Ordering::Relaxed);
        let mut ticker = self.cfg.interval.map(|d| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        tracing::info!(first_seq = self.next_seq, "sampling");
        loop {
            if self
                .cfg
                .stop_after_seq
                .is_some_and(|last| self.next_seq > last)
            {
                tracing::info!(
                    last_seq = self.next_seq - 1,
                    "sample limit reached; sampling stopped (the uplink keeps draining)"
                );
                break;
            }
            if let Some(t) = ticker.as_mut() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = t.tick() => {}
                }
            }
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = source.next() => s,
            };
            match next {
                Ok(Some(sample)) => self.take(sample),
                Ok(None) => {
                    tracing::info!(
                        last_seq = self.next_seq - 1,
                        "source ended; sampling stopped (the uplink keeps draining)"
                    );
                    break;
                }
                Err(e) if source.is_live() => {
                    tracing::warn!(error = %e, "sampling failed; retrying at the next interval");
                }
                Err(e) => {
                    tracing::error!(error = %e, "source failed; sampling stopped");
                    break;
                }
            }
        }
        if let Some(summary) = self.summary.take(&self.cfg.device_id) {
            self.enqueue_summary(summary);
        }
        // No number past this one is used in this run: the next start
        // continues right after it, reboot or not.
        let last_used = self.next_seq - 1;
        if let Some(Err(e)) = self.seqs.as_mut().map(|s| s.close(last_used)) {
            tracing::warn!(error = %e, last_used,
                "could not record the last seq used; the next start may skip up to a block");
        }
        self.stats.sampling.store(false, Ordering::Relaxed);
    }

    /// Scores one sample and queues what it produces.
    pub fn take(&mut self, sample: Sample) {
        use std::sync::atomic::Ordering;
        if self.models.has_changed().unwrap_or(false) {
            if let Some(m) = self.models.borrow_and_update().clone() {
                let version = m.version();
                match self.scorer.install(m) {
                    Ok(outcome) => tracing::info!(version, ?outcome, "scoring with the new model"),
                    Err(e) => tracing::warn!(version, error = %e, "model not installed"),
                }
            }
        }
        let now = crate::now_ms();
        let mut telemetry = Telemetry {
            schema: SCHEMA_VERSION,
            device_id: self.cfg.device_id.clone(),
            seq: self.next_seq,
            ts: sample.ts.unwrap_or(now),
            metrics: sample.metrics,
            tags: sample.tags,
            ingest_ts: None,
            edge: None,
        };
        if let Err(e) = telemetry.check() {
            Stats::bump(&self.stats.invalid_samples);
            // Bad input tends to repeat; the counter keeps the rest.
            if self.invalid_logged < 10 {
                self.invalid_logged += 1;
                tracing::warn!(error = %e, "sample refused; not scored");
            }
            return;
        }
        if let Some(Err(e)) = self.seqs.as_mut().map(|s| s.take(telemetry.seq)) {
            // Without a durable reservation the number could be reused
            // after a power loss: the sample is not taken.
            Stats::bump(&self.stats.enqueue_failures);
            if self.reserve_logged < 10 {
                self.reserve_logged += 1;
                tracing::error!(seq = telemetry.seq, error = %e,
                    "could not reserve sequence numbers durably; sample not taken");
            }
            return;
        }
        self.next_seq += 1;
        let verdict = self.scorer.score(&telemetry, None, now, ScoredAt::Edge);
        Stats::bump(&self.stats.samples);
        self.stats.seq.store(telemetry.seq, Ordering::Relaxed);

        let send_verdict =
            self.cfg.verdicts == VerdictMode::All || verdict.anomaly || verdict.alarm.is_some();
        // A record whose verdict goes up says so, and the cloud does not
        // score it again (vigil_schemas::EdgeScored): one decision per
        // record, also before the first model (an unscored verdict).
        if send_verdict {
            telemetry.edge = Some(EdgeScored {
                model: verdict.model.clone(),
                model_version: verdict.model_version,
                anomaly: verdict.anomaly,
            });
        }
        let mut messages = Vec::with_capacity(2);
        if self.cfg.telemetry == TelemetryMode::Every {
            if let Ok(bytes) = telemetry.encode() {
                messages.push((self.cfg.telemetry_topic.clone(), bytes));
            }
        }
        let verdict_json = verdict.encode().unwrap_or_default();
        if verdict.anomaly {
            Stats::bump(&self.stats.anomalies);
        }
        // One action per alarm, when it opens (not on every record of it).
        let opened = verdict
            .alarm
            .as_ref()
            .is_some_and(|a| a.state == vigil_schemas::AlarmState::Opened);
        if opened
            && self
                .actions
                .try_send(Trigger::Anomaly(verdict_json.clone()))
                .is_err()
        {
            Stats::bump(&self.stats.actions_skipped);
        }
        if send_verdict {
            messages.push((self.cfg.verdicts_topic.clone(), verdict_json));
        }
        if !messages.is_empty() {
            self.enqueue(UplinkRecord {
                seq: telemetry.seq,
                messages,
            });
        }
        if self.cfg.telemetry == TelemetryMode::Summary {
            self.summary.add(&telemetry);
            if self.summary.due(self.cfg.summary_interval) {
                if let Some(summary) = self.summary.take(&self.cfg.device_id) {
                    self.enqueue_summary(summary);
                }
            }
        }
    }

    fn enqueue_summary(&mut self, summary: Telemetry) {
        if let Ok(bytes) = summary.encode() {
            self.enqueue(UplinkRecord {
                seq: summary.seq,
                messages: vec![(self.cfg.telemetry_topic.clone(), bytes)],
            });
        }
    }

    fn enqueue(&mut self, record: UplinkRecord) {
        let bytes = record.encode();
        let result = lock(&self.queue).append(&bytes);
        match result {
            Ok(appended) => {
                if appended.dropped > 0 {
                    let total = lock(&self.queue).dropped();
                    tracing::warn!(
                        dropped = appended.dropped,
                        dropped_total = total,
                        "uplink queue full: dropped the oldest records"
                    );
                }
                self.wake.notify_one();
            }
            Err(e) => {
                Stats::bump(&self.stats.enqueue_failures);
                tracing::error!(seq = record.seq, error = %e, "could not queue the sample's uplink record; it is lost");
            }
        }
    }
}
