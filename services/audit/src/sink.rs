//! The audit sink's run loop: Kafka → batches → store → offset commit.
//!
//! ```text
//! vigil.verdicts ─┐                      ┌─► store.write(batch)  (durable)
//! vigil.anomalies ┼─► consumer group ──► batch ─┤
//! vigil.models ───┤   (manual commit)    │ └─► vigil.dlq (rejected, confirmed)
//! vigil.incidents ┘                      └─► commit offsets of the batch
//! ```
//!
//! - **Durable before committed.** A batch's offsets are stored and
//!   committed only after the store confirmed the write (and Kafka
//!   confirmed the batch's DLQ records). A crash at any point loses
//!   nothing committed upstream: the uncommitted records are consumed again
//!   at restart, and the store's upserts make the second write a no-op.
//! - **Bounded.** A batch closes at `--batch-max-records`,
//!   `--batch-max-bytes` or `--batch-max-ms`, whichever comes first. The
//!   loop does not poll Kafka while a batch is being written, so a slow or
//!   failing store slows the sink down instead of growing a buffer;
//!   librdkafka's own prefetch queue is bounded by
//!   `queued.max.messages.kbytes`.
//! - **Permanent vs transient.** A write that fails for a transient reason
//!   (busy or locked database, I/O, a cluster that does not answer) is
//!   retried with capped exponential backoff until it succeeds or the
//!   process stops. A record the store can never hold (`seq` above
//!   `i64::MAX`, …) is refused before it joins a batch, and a batch the
//!   store refuses for good anyway is written row by row ([`crate::write`]):
//!   either way the refused record goes to `vigil.dlq` with its reason and
//!   is counted (`vigil_audit_store_refused_total`), and the rest of the
//!   batch is written. One record never stops the sink.
//! - **Stalls are visible.** While a batch has been failing to complete for
//!   longer than `--stall-timeout-secs`, `/readyz` reports `sink: false`.
//! - **Bad input** (undecodable, wrong schema, unverifiable release) goes to
//!   `vigil.dlq` as a `DlqRecord` with the decoder's reason code, and the
//!   sink keeps going.
//! - **Shutdown** stops polling, writes the last batch, commits its offsets
//!   synchronously and leaves the group.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use vigil_model::KeyRing;
use vigil_schemas::Message as _;
use vigil_service::dlq::{self, DlqMessage, Rejection};
use vigil_service::kafka::{self, ProducerTuning, TopicSpec, VigilContext};
use vigil_service::{now_ms, HttpServer, Readiness, Shutdown};

use crate::api::{self, ApiState};
use crate::config::AuditArgs;
use crate::decode::{decode, DecodeContext, Decoded, TopicKind};
use crate::metrics::AuditMetrics;
use crate::stall::Stall;
use crate::store::codec::{admit_incident, admit_release, admit_verdict};
use crate::store::{AnyStore, Store, StoreError, StoreUri, WriteBatch};
use crate::write::{write_or_split, Backoff, Refused, RowKind};

/// Name of this service in DLQ records and logs.
const SERVICE: &str = "audit";
/// Name of the store dependency in `/readyz`.
pub const STORE_DEPENDENCY: &str = "store";
/// Conflicting verdicts logged one by one per batch (the rest are counted).
const CONFLICTS_LOGGED: usize = 10;
pub use crate::stall::PROGRESS_DEPENDENCY;
/// How often the Kafka connection is probed for `/readyz`.
const KAFKA_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// librdkafka's prefetch bound per consumer, KiB: what the sink may hold
/// beyond the batch it is building while the store is slow.
const PREFETCH_KBYTES: &str = "16384";
/// How often librdkafka reports statistics (consumer lag), ms.
const STATS_INTERVAL_MS: &str = "5000";
/// First and longest pause between retries of a failed write.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Retry pauses of store writes.
const WRITE_BACKOFF: Backoff = Backoff {
    first: MIN_BACKOFF,
    max: MAX_BACKOFF,
};

/// Runs `vigil audit` until `shutdown`: the sink (unless `--api-only`) and
/// the query API with health and metrics on `--http-addr`.
pub async fn run(args: AuditArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    args.validate()?;
    let uri = args.store_uri()?;
    let scylla = args.scylla_options()?;
    if args.migrate_only {
        let store = AnyStore::open(&uri, &scylla).await?;
        tracing::info!(store = store.kind(), "audit store schema is up to date");
        return Ok(());
    }
    let verify_key = match &args.verify_key {
        Some(path) => Some(
            vigil_model::load_key_ring(path)
                .with_context(|| format!("loading VIGIL_VERIFY_KEY {}", path.display()))?,
        ),
        None => {
            tracing::info!(
                "no VIGIL_VERIFY_KEY: model releases are recorded with checksum checks only (signature_verified: false)"
            );
            None
        }
    };

    let registry = vigil_service::metrics::registry();
    let readiness = Readiness::new(&registry)?;
    readiness.register(STORE_DEPENDENCY);
    if !args.api_only {
        readiness.register(kafka::DEPENDENCY);
        readiness.register(PROGRESS_DEPENDENCY);
        readiness.set(PROGRESS_DEPENDENCY, true);
    }
    let metrics = AuditMetrics::register(&registry)?;
    let slot: Arc<OnceLock<AnyStore>> = Arc::default();
    HttpServer::start(
        &args.http,
        readiness.clone(),
        registry,
        api::router(ApiState::new(slot.clone(), metrics.clone())),
        &shutdown,
    )
    .await?;

    let Some(store) = open_store(&uri, &scylla, &shutdown).await? else {
        shutdown.wait().await;
        return Ok(());
    };
    tracing::info!(store = store.kind(), "audit store open");
    let _ = slot.set(store.clone());
    readiness.set(STORE_DEPENDENCY, true);

    if args.api_only {
        shutdown.cancelled().await;
        shutdown.wait().await;
        return Ok(());
    }

    let topics = args.kafka.topics();
    create_topics(&args, &topics, &shutdown).await;
    let mut config = kafka::consumer_config(&args.kafka, "vigil-audit", &args.group);
    config
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
        .set("statistics.interval.ms", STATS_INTERVAL_MS)
        .set("topic.metadata.refresh.interval.ms", "10000");
    if let Some(id) = &args.instance_id {
        config.set("group.instance.id", id);
    }
    kafka::apply_operator_options(&mut config, &args.kafka);
    let consumer: Arc<StreamConsumer<AuditContext>> = Arc::new(
        config
            .create_with_context(AuditContext {
                inner: VigilContext::new(readiness.clone()),
                lag: metrics.lag.clone(),
            })
            .context("creating the kafka consumer")?,
    );
    let mut kinds = HashMap::new();
    kinds.insert(topics.verdicts.clone(), TopicKind::Verdicts);
    kinds.insert(topics.anomalies.clone(), TopicKind::Anomalies);
    kinds.insert(topics.models.clone(), TopicKind::Models);
    kinds.insert(topics.incidents.clone(), TopicKind::Incidents);
    let names: Vec<&str> = kinds.keys().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .context("subscribing to the audit topics")?;
    kafka::watch_connection(
        consumer.clone(),
        readiness.clone(),
        KAFKA_PROBE_INTERVAL,
        &shutdown,
    );
    let producer: FutureProducer<VigilContext> =
        kafka::producer_config(&args.kafka, "vigil-audit-dlq", &ProducerTuning::default())
            .create_with_context(VigilContext::new(readiness.clone()))
            .context("creating the dlq producer")?;

    let stall = Stall::default();
    stall.watch(
        Duration::from_secs(args.stall_timeout_secs),
        readiness.clone(),
        &shutdown,
    );
    let sink = Sink {
        stall,
        consumer,
        producer,
        store,
        metrics,
        readiness,
        kinds,
        incidents_topic: topics.incidents.clone(),
        dlq_topic: topics.dlq.clone(),
        max_records: args.batch_max_records as usize,
        max_bytes: args.batch_max_bytes,
        max_age: Duration::from_millis(args.batch_max_ms),
        max_payload_bytes: args.max_payload_bytes,
        verify_key,
        committed: std::sync::Mutex::default(),
    };
    sink.run(&shutdown, Duration::from_secs(args.shutdown_timeout_secs))
        .await;
    shutdown.trigger();
    shutdown.wait().await;
    tracing::info!("audit stopped");
    Ok(())
}

/// Opens the store; a cluster that is not reachable yet is retried until
/// shutdown (`None`), while a bad SQLite path fails at once.
async fn open_store(
    uri: &StoreUri,
    scylla: &crate::store::scylla::ScyllaOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<AnyStore>> {
    let mut backoff = MIN_BACKOFF;
    loop {
        match AnyStore::open(uri, scylla).await {
            Ok(store) => return Ok(Some(store)),
            Err(e) if matches!(uri, StoreUri::Sqlite { .. }) => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "audit store not reachable yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Creates the topics the sink reads (not `vigil.incidents`, which belongs
/// to the actions role; the sink reads it once it exists).
async fn create_topics(args: &AuditArgs, topics: &vigil_schemas::KafkaTopics, shutdown: &Shutdown) {
    let specs = [
        TopicSpec::delete(&topics.verdicts),
        TopicSpec::delete(&topics.anomalies),
        TopicSpec::compact(&topics.models),
        TopicSpec::delete(&topics.dlq),
    ];
    let mut backoff = MIN_BACKOFF;
    loop {
        match kafka::ensure_topics(&args.kafka, &specs).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cannot create topics yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Consumer context: connection state and errors as [`VigilContext`]
/// reports them, plus consumer lag from librdkafka's statistics.
struct AuditContext {
    inner: VigilContext,
    lag: prometheus::IntGauge,
}

impl ClientContext for AuditContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.lag.set(lag);
    }
}

impl ConsumerContext for AuditContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        tracing::info!(?rebalance, "consumer group rebalance starting");
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed; the next commit covers it");
        }
    }
}

/// Where each row of a batch came from (`kafka:<topic>/<partition>@<offset>`),
/// by the row's list and index, for the DLQ record of a row the store
/// refuses at write time.
#[derive(Default)]
struct Origins {
    verdicts: Vec<String>,
    releases: Vec<String>,
    incidents: Vec<String>,
}

/// What one batch holds until it is written.
#[derive(Default)]
struct Pending {
    /// Rows to write.
    batch: WriteBatch,
    /// The source of each row of `batch`.
    origins: Origins,
    /// Rejected records to send to the DLQ first, oldest first.
    dlq: std::collections::VecDeque<DlqMessage>,
    /// Next offset to commit per (topic, partition).
    offsets: HashMap<(String, i32), i64>,
    /// Kafka records in the batch (written, rejected or skipped).
    records: usize,
    /// Their payload bytes.
    bytes: usize,
    /// When the first record arrived.
    started: Option<Instant>,
}

/// The sink: one consumer, one store, one DLQ producer.
struct Sink {
    stall: Stall,
    consumer: Arc<StreamConsumer<AuditContext>>,
    producer: FutureProducer<VigilContext>,
    store: AnyStore,
    metrics: AuditMetrics,
    readiness: Readiness,
    kinds: HashMap<String, TopicKind>,
    incidents_topic: String,
    dlq_topic: String,
    max_records: usize,
    max_bytes: usize,
    max_age: Duration,
    max_payload_bytes: usize,
    verify_key: Option<KeyRing>,
    /// Every offset committed so far (after a durable write), for the
    /// final synchronous commit.
    committed: std::sync::Mutex<HashMap<(String, i32), i64>>,
}

impl Sink {
    async fn run(&self, shutdown: &Shutdown, drain_timeout: Duration) {
        let mut pending = Pending::default();
        let mut warned_missing_incidents = false;
        loop {
            let deadline = pending
                .started
                .map(|t| tokio::time::Instant::from_std(t + self.max_age));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    if !self.flush(&mut pending, shutdown.cancelled()).await {
                        break;
                    }
                }
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        self.add(&message, &mut pending);
                        let full = pending.records >= self.max_records
                            || pending.bytes >= self.max_bytes;
                        if full && !self.flush(&mut pending, shutdown.cancelled()).await {
                            break;
                        }
                    }
                    Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                        if !warned_missing_incidents {
                            tracing::info!(
                                topic = %self.incidents_topic,
                                "a subscribed topic does not exist yet; reading it once it does"
                            );
                            warned_missing_incidents = true;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        tracing::info!(
            records = pending.records,
            "shutting down: writing the last batch"
        );
        let deadline = tokio::time::sleep(drain_timeout);
        if self.flush(&mut pending, deadline).await {
            self.commit_sync().await;
        } else {
            tracing::warn!(
                records = pending.records,
                "shutdown timeout: last batch not written; its records are consumed again at the next start"
            );
        }
    }

    /// Decodes one record into the pending batch.
    fn add(&self, message: &rdkafka::message::BorrowedMessage<'_>, pending: &mut Pending) {
        let topic = message.topic();
        let Some(&kind) = self.kinds.get(topic) else {
            return;
        };
        self.metrics
            .consumed
            .with_label_values(&[kind.as_str()])
            .inc();
        let payload = message.payload();
        let published_ts = message
            .timestamp()
            .to_millis()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or_else(now_ms);
        let ctx = DecodeContext {
            max_payload_bytes: self.max_payload_bytes,
            verify_key: self.verify_key.as_ref(),
        };
        let source = || dlq::kafka_source(topic, message.partition(), message.offset());
        // A row the store cannot hold is refused here, alone, instead of
        // failing its whole batch at write time.
        let admitted = decode(kind, payload, published_ts, &ctx).and_then(|decoded| {
            let admitted = match &decoded {
                Decoded::Verdict(v) => admit_verdict(v),
                Decoded::Release(r) => admit_release(&r.record),
                Decoded::Incident(i) => admit_incident(i),
                Decoded::Skip => Ok(()),
            };
            admitted.map(|()| decoded).map_err(|e| {
                self.metrics
                    .store_refused
                    .with_label_values(&[e.reason()])
                    .inc();
                Rejection::new(e.reason(), e.to_string())
            })
        });
        match admitted {
            Ok(Decoded::Verdict(v)) => {
                pending.batch.verdicts.push(v);
                pending.origins.verdicts.push(source());
            }
            Ok(Decoded::Release(r)) => {
                tracing::info!(
                    model = %r.record.model,
                    version = r.record.version,
                    signature_verified = r.record.signature_verified,
                    "model release recorded"
                );
                pending.batch.releases.push(r);
                pending.origins.releases.push(source());
            }
            Ok(Decoded::Incident(i)) => {
                pending.batch.incidents.push(i);
                pending.origins.incidents.push(source());
            }
            Ok(Decoded::Skip) => {}
            Err(rejection) => {
                let original = payload.unwrap_or_default();
                self.reject(rejection, source(), original, pending);
            }
        }
        pending.records += 1;
        pending.bytes += payload.map_or(0, <[u8]>::len);
        pending.started.get_or_insert_with(Instant::now);
        let next = message.offset() + 1;
        let slot = pending
            .offsets
            .entry((topic.to_owned(), message.partition()))
            .or_insert(next);
        *slot = (*slot).max(next);
    }

    /// Counts a refused record and queues its DLQ record.
    fn reject(&self, rejection: Rejection, source: String, original: &[u8], pending: &mut Pending) {
        tracing::warn!(%source, reason = rejection.reason, detail = %rejection.detail,
            "rejected record; sent to the dlq");
        self.metrics
            .dlq
            .with_label_values(&[rejection.reason])
            .inc();
        if let Some(dlq) = rejection.into_dlq(SERVICE, source, original) {
            pending.dlq.push_back(dlq);
        }
    }

    /// Writes the batch's rows (rows refused for good join its DLQ
    /// records), sends its DLQ records, then commits its offsets. Returns
    /// false (leaving `pending` to be flushed again: rows not yet written,
    /// DLQ records not yet confirmed) when `give_up` fires first.
    async fn flush(
        &self,
        pending: &mut Pending,
        give_up: impl std::future::Future<Output = ()>,
    ) -> bool {
        if pending.records == 0 {
            return true;
        }
        self.stall.started();
        let done = self.flush_inner(pending, give_up).await;
        self.stall.done();
        done
    }

    async fn flush_inner(
        &self,
        pending: &mut Pending,
        give_up: impl std::future::Future<Output = ()>,
    ) -> bool {
        tokio::pin!(give_up);
        let started = Instant::now();
        if !pending.batch.is_empty() {
            let batch = Arc::new(std::mem::take(&mut pending.batch));
            let written = write_or_split(
                batch.clone(),
                |b| self.write_counting_conflicts(b),
                WRITE_BACKOFF,
                |e, pause| self.write_failed(e, pause),
            );
            let refused = tokio::select! {
                _ = &mut give_up => {
                    pending.batch = Arc::try_unwrap(batch).unwrap_or_else(|b| (*b).clone());
                    return false;
                }
                refused = written => refused,
            };
            self.readiness.set(STORE_DEPENDENCY, true);
            let mut left_out = [0u64; 3];
            for r in refused {
                left_out[r.kind as usize] += 1;
                self.refused_at_write(&batch, &pending.origins, r, &mut pending.dlq);
            }
            let m = &self.metrics;
            m.written
                .with_label_values(&["verdict"])
                .inc_by(batch.verdicts.len() as u64 - left_out[RowKind::Verdict as usize]);
            m.written
                .with_label_values(&["release"])
                .inc_by(batch.releases.len() as u64 - left_out[RowKind::Release as usize]);
            m.written
                .with_label_values(&["incident"])
                .inc_by(batch.incidents.len() as u64 - left_out[RowKind::Incident as usize]);
        }
        let mut backoff = MIN_BACKOFF;
        while let Some(dlq) = pending.dlq.front() {
            let delivered = tokio::select! {
                _ = &mut give_up => return false,
                result = self.send_dlq(dlq) => result,
            };
            if delivered {
                pending.dlq.pop_front();
                backoff = MIN_BACKOFF;
                continue;
            }
            // Kafka refused it for a reason worth retrying: try again
            // after a pause, as store writes are.
            tokio::select! {
                _ = &mut give_up => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.commit(&pending.offsets);
        self.metrics.batches.inc();
        self.metrics
            .batch_latency
            .observe(started.elapsed().as_secs_f64());
        self.metrics.batch_records.observe(pending.records as f64);
        *pending = Pending::default();
        true
    }

    /// Writes a batch; counts and logs the verdicts the store left out as
    /// conflicts (a different record under a stored key: never a silent
    /// drop).
    async fn write_counting_conflicts(&self, batch: Arc<WriteBatch>) -> Result<(), StoreError> {
        let written = self.store.write(batch).await?;
        let conflicts = written.conflicts;
        self.metrics.conflicts.inc_by(conflicts.len() as u64);
        for c in conflicts.iter().take(CONFLICTS_LOGGED) {
            tracing::warn!(
                device_id = %c.device_id,
                seq = c.seq,
                model = %c.model,
                model_version = c.model_version,
                scored_at = %c.scored_at,
                stored_event_ts = c.stored_event_ts,
                refused_event_ts = c.refused_event_ts,
                "verdict conflicts with the stored one (same key, another record: a reused seq); the stored one is kept"
            );
        }
        if conflicts.len() > CONFLICTS_LOGGED {
            tracing::warn!(
                more = conflicts.len() - CONFLICTS_LOGGED,
                "more conflicting verdicts in this batch (counted in vigil_audit_conflicts_total)"
            );
        }
        Ok(())
    }

    /// A transient write failure, about to be retried after `pause`.
    fn write_failed(&self, e: &StoreError, pause: Duration) {
        self.metrics.store_errors.inc();
        self.readiness.set(STORE_DEPENDENCY, false);
        tracing::warn!(error = %e, retry_in = ?pause, "store write failed; retrying");
    }

    /// Counts a row the store refused at write time and queues its DLQ
    /// record (the row as its message's JSON: the original bytes are not
    /// kept past decoding).
    fn refused_at_write(
        &self,
        batch: &WriteBatch,
        origins: &Origins,
        refused: Refused,
        dlq: &mut std::collections::VecDeque<DlqMessage>,
    ) {
        let Refused { kind, index, error } = refused;
        let (source, original) = match kind {
            RowKind::Verdict => (
                origins.verdicts.get(index),
                batch.verdicts.get(index).and_then(|v| v.encode().ok()),
            ),
            RowKind::Release => (
                origins.releases.get(index),
                batch
                    .releases
                    .get(index)
                    .map(|r| r.envelope.clone().into_bytes()),
            ),
            RowKind::Incident => (
                origins.incidents.get(index),
                batch.incidents.get(index).and_then(|i| i.encode().ok()),
            ),
        };
        let source = source
            .cloned()
            .unwrap_or_else(|| "kafka:unknown".to_owned());
        let reason = error.reason();
        self.metrics
            .store_refused
            .with_label_values(&[reason])
            .inc();
        self.metrics.dlq.with_label_values(&[reason]).inc();
        tracing::error!(%source, reason, %error, "the store refused a record for good; sent to the dlq");
        if let Some(record) = Rejection::new(reason, error.to_string()).into_dlq(
            SERVICE,
            source,
            &original.unwrap_or_default(),
        ) {
            dlq.push_back(record);
        }
    }

    /// Delivers one DLQ record; false when Kafka refused it for a reason
    /// worth retrying (the caller pauses and tries again).
    async fn send_dlq(&self, dlq: &DlqMessage) -> bool {
        let record = FutureRecord::to(&self.dlq_topic)
            .key(&dlq.key)
            .payload(&dlq.payload);
        match self
            .producer
            .send(record, rdkafka::util::Timeout::Never)
            .await
        {
            Ok(_) => true,
            Err((e, _)) if kafka::is_retriable(&e) => {
                tracing::warn!(error = %e, "dlq delivery failed; retrying");
                false
            }
            Err((e, _)) => {
                tracing::error!(error = %e, "kafka refused a dlq record for good; dropping it");
                true
            }
        }
    }

    /// Stores and commits (asynchronously) the offsets after a durable
    /// write.
    fn commit(&self, offsets: &HashMap<(String, i32), i64>) {
        if offsets.is_empty() {
            return;
        }
        let tpl = {
            let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
            for (key, next) in offsets {
                let slot = committed.entry(key.clone()).or_insert(*next);
                *slot = (*slot).max(*next);
            }
            offset_list(offsets)
        };
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // Partitions revoked by a rebalance: their new owner re-reads
            // them; the store dedups.
            tracing::debug!(error = %e, "storing offsets failed");
        }
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => self.metrics.commits.inc(),
            Err(e) => tracing::warn!(error = %e, "offset commit not sent; the next one covers it"),
        }
    }

    /// A synchronous commit of everything stored, at shutdown.
    async fn commit_sync(&self) {
        // Only partitions still assigned: a partition revoked by a
        // rebalance belongs to another member now, and committing our
        // older offset for it would make that member re-read records.
        let assigned: std::collections::HashSet<(String, i32)> = match self.consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the assignment; skipping the final commit");
                return;
            }
        };
        let tpl = {
            let committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
            let mine: HashMap<(String, i32), i64> = committed
                .iter()
                .filter(|(k, _)| assigned.contains(*k))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            if mine.is_empty() {
                return;
            }
            offset_list(&mine)
        };
        let consumer = self.consumer.clone();
        let result =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match result {
            Ok(Ok(())) => tracing::info!("final offsets committed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed"),
            Err(e) => tracing::warn!(error = %e, "final offset commit task failed"),
        }
    }
}

/// The offsets as a list librdkafka takes.
fn offset_list(offsets: &HashMap<(String, i32), i64>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::error!(error = %e, %topic, partition, "cannot list an offset to commit");
        }
    }
    tpl
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
