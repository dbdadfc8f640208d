//! Reads the topics the dashboard shows, live, into [`State`](crate::state::State).
//!
//! The dashboard is an observer: it must never take partitions away from
//! the services it watches, nor commit anything. So it joins no consumer
//! group: it assigns itself every partition of every topic it reads, from
//! a starting point chosen per topic:
//!
//! - vigil.models and vigil.device-status are compacted (latest value per
//!   key): read whole, so every release and every device's last status is
//!   known;
//! - vigil.verdicts, vigil.anomalies, vigil.telemetry and vigil.dlq: the
//!   newest `--backfill-records` of each partition, so a restarted
//!   dashboard shows recent history at once, then everything new.
//!
//! Partitions added to a topic after start-up are not followed until the
//! dashboard restarts (Vigil's topics are created with a fixed count).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::broadcast;
use vigil_schemas::{DeviceStatus, DlqRecord, Message, ModelRelease, Telemetry, Verdict};
use vigil_service::from_start;
use vigil_service::kafka::{self, TopicSpec, VigilContext};
use vigil_service::{now_ms, Readiness, Shutdown};

use crate::config::ApiArgs;
use crate::metrics::ApiMetrics;
use crate::state::{Event, Shared};

/// Name of the "assigned and reading" dependency in `/readyz`.
pub const READING: &str = "reading";
/// Largest record the dashboard decodes; larger ones are counted as
/// decode errors.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What a topic holds, deciding how its records are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// vigil.verdicts.
    Verdicts,
    /// vigil.anomalies.
    Anomalies,
    /// vigil.telemetry.
    Telemetry,
    /// vigil.models.
    Models,
    /// vigil.device-status.
    DeviceStatus,
    /// vigil.dlq.
    Dlq,
}

impl Kind {
    /// Label of the topic kind in metrics and views.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Verdicts => "verdicts",
            Kind::Anomalies => "anomalies",
            Kind::Telemetry => "telemetry",
            Kind::Models => "models",
            Kind::DeviceStatus => "device_status",
            Kind::Dlq => "dlq",
        }
    }

    fn compacted(self) -> bool {
        matches!(self, Kind::Models | Kind::DeviceStatus)
    }
}

/// A pushed event, serialised once for every client.
#[derive(Debug)]
pub struct Outgoing {
    /// SSE event name.
    pub name: &'static str,
    /// JSON data.
    pub json: String,
}

/// The topics to read: (full name, kind).
fn topics(args: &ApiArgs) -> Vec<(String, Kind)> {
    let t = args.kafka.topics();
    let mut list = vec![
        (t.verdicts, Kind::Verdicts),
        (t.anomalies, Kind::Anomalies),
        (t.models, Kind::Models),
        (t.device_status, Kind::DeviceStatus),
        (t.dlq, Kind::Dlq),
    ];
    if args.read_telemetry {
        list.push((t.telemetry, Kind::Telemetry));
    }
    list
}

/// Creates missing topics, assigns every partition and spawns the reading
/// loop. Returns once reading has started (or shutdown was asked for).
pub async fn start(
    args: &ApiArgs,
    state: Shared,
    events: broadcast::Sender<Arc<Outgoing>>,
    metrics: ApiMetrics,
    readiness: Readiness,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let topics = topics(args);
    let specs: Vec<TopicSpec> = topics
        .iter()
        .map(|(name, kind)| {
            if kind.compacted() {
                TopicSpec::compact(name)
            } else {
                TopicSpec::delete(name)
            }
        })
        .collect();
    kafka::ensure_topics_retrying(&args.kafka, &specs, shutdown).await;
    if shutdown.is_triggered() {
        return Ok(());
    }

    let mut config = from_start::unjoined_config(&args.kafka, "vigil-api");
    // The data path's fetch defaults (vigil_service::kafka): verdicts and
    // anomalies reach the page within milliseconds.
    config.set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer<VigilContext> = config
        .create_with_context(VigilContext::new(readiness.clone()))
        .context("creating the dashboard's kafka consumer")?;
    let consumer = Arc::new(consumer);
    kafka::watch_connection(
        consumer.clone(),
        readiness.clone(),
        Duration::from_secs(5),
        shutdown,
    );

    let backfill = i64::from(args.backfill_records);
    let mut backoff = Duration::from_millis(500);
    loop {
        let probe = consumer.clone();
        let list = topics.clone();
        let assigned = tokio::task::spawn_blocking(move || assign(&probe, &list, backfill))
            .await
            .context("assigning partitions panicked")?;
        match assigned {
            Ok(partitions) => {
                tracing::info!(partitions, "reading the dashboard's topics");
                break;
            }
            Err(e) => tracing::warn!(error = %e, "cannot assign partitions yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    readiness.set(READING, true);

    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let reader = Reader {
            kinds: topics,
            state,
            events,
            metrics,
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                received = consumer.recv() => match received {
                    Ok(message) => reader.handle(&message),
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka read failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        readiness.set(READING, false);
    });
    Ok(())
}

/// Assigns every partition of `topics` at its starting point; returns how
/// many. Blocking (metadata requests).
fn assign(
    consumer: &StreamConsumer<VigilContext>,
    topics: &[(String, Kind)],
    backfill: i64,
) -> anyhow::Result<usize> {
    let mut list = TopicPartitionList::new();
    for (topic, kind) in topics {
        let start = if kind.compacted() {
            Offset::Beginning
        } else {
            Offset::OffsetTail(backfill)
        };
        for partition in from_start::partitions(consumer, topic, METADATA_TIMEOUT)? {
            list.add_partition_offset(topic, partition, start)
                .with_context(|| format!("assigning {topic}/{partition}"))?;
        }
    }
    consumer.assign(&list).context("assigning partitions")?;
    Ok(list.count())
}

/// The reading loop's state.
struct Reader {
    kinds: Vec<(String, Kind)>,
    state: Shared,
    events: broadcast::Sender<Arc<Outgoing>>,
    metrics: ApiMetrics,
}

impl Reader {
    fn kind_of(&self, topic: &str) -> Option<Kind> {
        self.kinds
            .iter()
            .find(|(name, _)| name == topic)
            .map(|(_, k)| *k)
    }

    fn handle(&self, message: &BorrowedMessage<'_>) {
        let Some(kind) = self.kind_of(message.topic()) else {
            return;
        };
        self.metrics
            .records
            .with_label_values(&[kind.label()])
            .inc();
        let now = now_ms();
        let payload = message.payload();
        // Decode outside the lock; apply inside it.
        let event = match (kind, payload) {
            (Kind::Verdicts | Kind::Anomalies, Some(bytes)) => {
                match Verdict::decode_limited(bytes, MAX_RECORD_BYTES) {
                    Ok(v) => self.with_state(|s| {
                        s.apply_verdict(&v, message.partition(), kind == Kind::Anomalies, now)
                    }),
                    Err(e) => self.decode_error(kind, message, &e),
                }
            }
            (Kind::Telemetry, Some(bytes)) => {
                match Telemetry::decode_limited(bytes, MAX_RECORD_BYTES) {
                    Ok(t) => self.with_state(|s| {
                        s.apply_telemetry(&t, now);
                        None
                    }),
                    Err(e) => self.decode_error(kind, message, &e),
                }
            }
            (Kind::Models, Some(bytes)) => {
                match ModelRelease::decode_limited(bytes, MAX_RECORD_BYTES) {
                    Ok(r) => {
                        let published = message
                            .timestamp()
                            .to_millis()
                            .and_then(|ms| u64::try_from(ms).ok());
                        self.with_state(|s| s.apply_release(&r, published))
                    }
                    Err(e) => self.decode_error(kind, message, &e),
                }
            }
            (Kind::DeviceStatus, Some(bytes)) => {
                match DeviceStatus::decode_limited(bytes, MAX_RECORD_BYTES) {
                    Ok(st) => {
                        let id = st.device_id.clone();
                        self.with_state(|s| s.apply_status(&id, Some(st), now))
                    }
                    Err(e) => self.decode_error(kind, message, &e),
                }
            }
            (Kind::DeviceStatus, None) => {
                // A tombstone: the device's status was deleted.
                let key = message.key().map(String::from_utf8_lossy);
                match key {
                    Some(id) => self.with_state(|s| s.apply_status(&id, None, now)),
                    None => None,
                }
            }
            (Kind::Dlq, Some(bytes)) => match DlqRecord::decode_limited(bytes, MAX_RECORD_BYTES) {
                Ok(r) => self.with_state(|s| {
                    s.apply_dlq(&r, now);
                    None
                }),
                Err(e) => self.decode_error(kind, message, &e),
            },
            // Tombstones elsewhere carry nothing to show.
            (_, None) => None,
        };
        if let Some(event) = event {
            self.push(&event);
        }
    }

    /// Runs `f` on the locked state and keeps the device gauges current.
    fn with_state<T>(&self, f: impl FnOnce(&mut crate::state::State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let evicted = state.evicted();
        let out = f(&mut state);
        let evicted_now = state.evicted();
        if evicted_now > evicted {
            self.metrics.devices_evicted.inc_by(evicted_now - evicted);
        }
        self.metrics
            .devices
            .set(i64::try_from(state.device_count()).unwrap_or(i64::MAX));
        out
    }

    fn decode_error(
        &self,
        kind: Kind,
        message: &BorrowedMessage<'_>,
        error: &vigil_schemas::DecodeError,
    ) -> Option<Event> {
        let at = format!(
            "{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        tracing::debug!(%error, record = %at, "cannot decode record");
        self.metrics
            .decode_errors
            .with_label_values(&[kind.label()])
            .inc();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.record_decode_error(message.topic(), format!("{at}: {error}"));
        None
    }

    fn push(&self, event: &Event) {
        match serde_json::to_string(event) {
            Ok(json) => {
                // No receiver (no page open) is fine: nothing to push to.
                let _ = self.events.send(Arc::new(Outgoing {
                    name: event.name(),
                    json,
                }));
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode a live event"),
        }
    }
}
