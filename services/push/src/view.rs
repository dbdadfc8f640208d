//! Feeds the rollout view from `vigil.device-status`.
//!
//! Every replica reads the whole topic, without a consumer group, from the
//! first offset of every partition at every start (the topic is compacted:
//! about one record per device), then follows it. With a shared MQTT
//! subscription each bridge replica sees only its share of the statuses;
//! reading the log instead gives every replica the whole fleet. `/readyz`
//! reports `device_status: true` once the records present at start-up
//! have been read.
//!
//! Partitions added to the topic while push runs are picked up at its next
//! start.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{BorrowedMessage, Message as _};
use vigil_schemas::{DeviceStatus, Message as _};
use vigil_service::config::KafkaArgs;
use vigil_service::from_start::{self, EndOffsets, Follow, Next};
use vigil_service::{now_ms, Readiness, Shutdown};

use crate::api::{lock, SharedRollout};
use crate::metrics::PushMetrics;
use crate::rollout::version_label;

/// Name of the view's dependency in `/readyz`.
pub const DEPENDENCY: &str = "device_status";
/// How long to wait for the topic's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to check progress when no record arrives (compaction gaps).
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// How often the device gauges are recomputed from the view.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// Largest status record the view decodes.
const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Pause before retrying a failed start.
const RETRY: Duration = Duration::from_secs(1);

/// Starts the task that keeps `view` current until shutdown, and the one
/// that keeps the device gauges current.
pub fn start(
    args: KafkaArgs,
    models: Vec<String>,
    view: SharedRollout,
    readiness: Readiness,
    metrics: PushMetrics,
    shutdown: &Shutdown,
) {
    let stop = shutdown.clone();
    let gauges_view = view.clone();
    let gauges_metrics = metrics.clone();
    shutdown.spawn(async move {
        let consumer = loop {
            match open(&args).await {
                Ok(started) => break started,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot read the device-status log yet; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        };
        follow(consumer, view, readiness, metrics, stop).await;
    });
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut tick = tokio::time::interval(GAUGE_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => update_gauges(&gauges_view, &gauges_metrics, &models),
            }
        }
    });
}

/// A consumer assigned to every partition from the beginning, and the end
/// offset each non-empty partition had when it started.
struct Started {
    consumer: StreamConsumer,
    ends: EndOffsets,
}

async fn open(args: &KafkaArgs) -> anyhow::Result<Started> {
    let topic = args.topics().device_status;
    let config = from_start::control_config(args, "vigil-push-view");
    tokio::task::spawn_blocking(move || -> anyhow::Result<Started> {
        let consumer: StreamConsumer = config
            .create()
            .context("creating the device-status consumer")?;
        let ends = from_start::assign_from_start(&consumer, &topic, METADATA_TIMEOUT)?;
        Ok(Started { consumer, ends })
    })
    .await
    .context("device-status reader set-up panicked")?
}

async fn follow(
    started: Started,
    view: SharedRollout,
    readiness: Readiness,
    metrics: PushMetrics,
    stop: Shutdown,
) {
    let Started { consumer, ends } = started;
    let mut log = Follow::new(consumer, ends, IDLE_CHECK);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = log.next() => next,
        };
        match next {
            Next::Record(m) => apply(&m, &view, &metrics),
            Next::CaughtUp => {
                tracing::info!(
                    devices = lock(&view).len(),
                    "device-status log read; rollout view complete"
                );
                readiness.set(DEPENDENCY, true);
            }
            Next::Failed(e) => {
                tracing::warn!(error = %e, "device-status reader: kafka error; continuing")
            }
        }
    }
}

fn apply(m: &BorrowedMessage<'_>, view: &SharedRollout, metrics: &PushMetrics) {
    let seen_ms = m
        .timestamp()
        .to_millis()
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or_else(now_ms);
    match m.payload() {
        None => match m.key().map(std::str::from_utf8) {
            Some(Ok(device)) => {
                tracing::info!(
                    device,
                    "device status cleared; removed from the rollout view"
                );
                lock(view).remove(device);
            }
            _ => {
                metrics.view_invalid.inc();
                tracing::warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "tombstone without a device key; ignored"
                );
            }
        },
        Some(bytes) => match DeviceStatus::decode_limited(bytes, MAX_RECORD_BYTES) {
            Ok(status) => {
                if lock(view).apply(status, seen_ms) {
                    metrics.devices_evicted.inc();
                }
            }
            Err(e) => {
                metrics.view_invalid.inc();
                tracing::warn!(partition = m.partition(), offset = m.offset(), reason = e.reason(), error = %e,
                    "unreadable device-status record; ignored");
            }
        },
    }
}

/// Most version labels exported per model; lower versions are summed
/// under `older`. Versions come from devices, so the label set must be
/// bounded whatever they send.
const MAX_VERSION_LABELS: usize = 16;

/// Recomputes the device gauges. Only configured models get their own
/// label; devices reporting any other model name are summed under
/// `other` (model names come from devices too).
fn update_gauges(view: &SharedRollout, metrics: &PushMetrics, models: &[String]) {
    let counts = lock(view).counts(now_ms());
    let label = |model: &str| -> String {
        if models.iter().any(|m| m == model) {
            model.to_owned()
        } else {
            "other".to_owned()
        }
    };
    let mut versions: BTreeMap<String, BTreeMap<Option<u64>, u64>> = BTreeMap::new();
    for ((model, version), n) in counts.versions {
        *versions
            .entry(label(&model))
            .or_default()
            .entry(version)
            .or_default() += n;
    }
    metrics.devices.reset();
    for (model, per_version) in &versions {
        // Highest versions first; None (no release yet) sorts lowest but
        // always gets its own label.
        let mut older = 0;
        for (i, (version, n)) in per_version.iter().rev().enumerate() {
            if i >= MAX_VERSION_LABELS && version.is_some() {
                older += n;
                continue;
            }
            set(&metrics.devices, &[model, &version_label(*version)], *n);
        }
        if older > 0 {
            set(&metrics.devices, &[model, "older"], older);
        }
    }
    let mut stale: BTreeMap<String, u64> = models.iter().map(|m| (m.clone(), 0)).collect();
    let mut offline = stale.clone();
    for (model, n) in counts.stale {
        *stale.entry(label(&model)).or_default() += n;
    }
    for (model, n) in counts.offline {
        *offline.entry(label(&model)).or_default() += n;
    }
    metrics.devices_stale.reset();
    metrics.devices_offline.reset();
    for (model, n) in &stale {
        set(&metrics.devices_stale, &[model], *n);
    }
    for (model, n) in &offline {
        set(&metrics.devices_offline, &[model], *n);
    }
}

fn set(gauge: &prometheus::IntGaugeVec, labels: &[&str], n: u64) {
    gauge
        .with_label_values(labels)
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}
