//! The scoring run loop (see the crate docs for the guarantees).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _};
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{Producer as _, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use vigil_model::{Scorer, VerifiedModel};
use vigil_releases::feed::{self, FeedEvent};
use vigil_releases::Offer;
use vigil_schemas::{KafkaTopics, Message as _, ScoredAt, Telemetry};
use vigil_service::dlq::{self, Rejection};
use vigil_service::kafka::{self, ProducerTuning, TopicSpec, VigilContext};
use vigil_service::{now_ms, HttpServer, Readiness, Shutdown};

use crate::api::{self, ScoreRequest};
use crate::config::ScoreArgs;
use crate::context::{Fresh, ScoreContext};
use crate::delivery::{self, Deliveries, Failed, Ledger, Outcomes, Produce, ProduceContext, Sink};
use crate::edge::{Decision, DevicePatterns, EdgeRecords};
use crate::metrics::{ScoreMetrics, LATENCY_SAMPLE};
use crate::replay::{self, ReplayRequest};
use crate::retry::Retries;

/// Name of this service in DLQ records and logs.
const SERVICE: &str = "score";
/// Name of the model-log dependency in `/readyz`.
const MODELS: &str = "models";
/// Largest telemetry record accepted from the log.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// How often confirmed offsets are handed to librdkafka for commit.
const STORE_INTERVAL: Duration = Duration::from_millis(100);
/// Longest pause between attempts to follow the model log.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// Runs the scorer until `shutdown`, then drains in-flight verdicts
/// (bounded by `--shutdown-timeout-secs`) and commits.
pub async fn run(args: ScoreArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    args.validate()?;
    let key = vigil_model::load_key_ring(&args.verify_key)?;
    tracing::info!(verify_keys = %key.summary(), "model releases are verified with");
    let registry = vigil_service::metrics::registry();
    let readiness = Readiness::new(&registry)?;
    readiness.register(kafka::DEPENDENCY);
    readiness.register(MODELS);
    let metrics = ScoreMetrics::register(&registry)?;
    let edge = EdgeRecords::register(DevicePatterns::parse(&args.shadow_edge), &registry)?;
    let (api_tx, api_rx) = mpsc::channel(args.api_queue);
    HttpServer::start(
        &args.http,
        readiness.clone(),
        registry,
        api::router(api_tx, metrics.clone()),
        &shutdown,
    )
    .await?;

    let topics = args.kafka.topics();
    let specs = [
        TopicSpec::delete(&topics.telemetry),
        TopicSpec::delete(&topics.verdicts),
        TopicSpec::delete(&topics.anomalies),
        TopicSpec::delete(&topics.dlq),
        TopicSpec::compact(&topics.models),
    ];
    kafka::ensure_topics_retrying(&args.kafka, &specs, &shutdown).await;
    if shutdown.is_triggered() {
        return Ok(());
    }

    // Models first: no telemetry is read before the live model is known.
    let (model_tx, model_rx) = watch::channel(None);
    let caught_up = follow_models(&args, key, model_tx, &readiness, &metrics, &shutdown).await?;
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = caught_up => {}
    }

    let tuning = ProducerTuning {
        compression: args.compression.clone(),
        linger_ms: args.linger_ms,
        // A verdict, an anomaly and a DLQ record at most per record.
        max_queued_messages: args.max_in_flight * 2 + 1024,
        message_timeout_ms: 0,
    };
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<ProduceContext> =
        kafka::producer_config(&args.kafka, "vigil-score", &tuning)
            .create_with_context(ProduceContext::new(
                VigilContext::new(readiness.clone()),
                deliveries.clone(),
            ))
            .context("creating the kafka producer")?;
    kafka::watch_connection(
        producer.clone(),
        readiness.clone(),
        Duration::from_secs(5),
        &shutdown,
    );

    let fresh = Fresh::default();
    let context = ScoreContext::new(
        VigilContext::new(readiness.clone()),
        topics.telemetry.clone(),
        fresh.clone(),
        metrics.lag.clone(),
    );
    let mut config = kafka::consumer_config(&args.kafka, "vigil-score", &args.group);
    config
        // librdkafka commits the offsets the loop stores (only confirmed
        // ones) every interval, and on revocation.
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            args.commit_interval_ms.to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("statistics.interval.ms", "5000");
    if let Some(id) = &args.instance_id {
        config.set("group.instance.id", id);
    }
    kafka::apply_operator_options(&mut config, &args.kafka);
    let consumer: StreamConsumer<ScoreContext> = config
        .create_with_context(context)
        .context("creating the telemetry consumer")?;
    consumer
        .subscribe(&[&topics.telemetry])
        .with_context(|| format!("subscribing to {}", topics.telemetry))?;
    tracing::info!(group = %args.group, topic = %topics.telemetry, "scoring");

    let mut scoring = Scoring {
        scorer: Scorer::new(args.model.clone(), args.device_capacity),
        edge,
        models: model_rx,
        producer: producer.clone(),
        deliveries,
        metrics,
        topics,
        fresh,
        kafka: args.kafka.clone(),
        replay_span_ms: args.replay_secs.saturating_mul(1000),
        replay_max_records: args.replay_max_records,
        window: args.max_in_flight,
        ledger: Ledger::default(),
        outcomes: Outcomes::default(),
        buf: Vec::with_capacity(1024),
        processed: 0,
        shutdown: shutdown.clone(),
        retries: Retries::default(),
    };
    scoring
        .run(
            &consumer,
            api_rx,
            Duration::from_secs(args.shutdown_timeout_secs),
        )
        .await;
    drop(scoring);

    let consumer = Arc::new(consumer);
    let c = consumer.clone();
    let committed =
        tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync)).await;
    match committed {
        Ok(Ok(())) => tracing::info!("offsets committed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed"),
        Err(e) => tracing::warn!(error = %e, "final offset commit panicked"),
    }
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    shutdown.trigger();
    shutdown.wait().await;
    tracing::info!("scorer stopped");
    Ok(())
}

/// Starts the model feed and the task that turns its events into the
/// watch channel, metrics and logs. Resolves when the feed caught up.
async fn follow_models(
    args: &ScoreArgs,
    key: vigil_model::KeyRing,
    models: watch::Sender<Option<Arc<VerifiedModel>>>,
    readiness: &Readiness,
    metrics: &ScoreMetrics,
    shutdown: &Shutdown,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    let mut backoff = Duration::from_millis(500);
    let mut events = loop {
        let kept = args
            .release_dir
            .as_deref()
            .map(|dir| vigil_releases::kept::KeptRelease::in_dir(dir, &args.model));
        match feed::follow(
            &args.kafka,
            &args.model,
            key.clone(),
            "vigil-score-models",
            kept,
            shutdown,
        )
        .await
        {
            Ok(events) => break events,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot follow the model log yet; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down while starting"),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
    };
    let (caught_tx, caught_rx) = tokio::sync::oneshot::channel();
    let readiness = readiness.clone();
    let metrics = metrics.clone();
    let model_name = args.model.clone();
    shutdown.spawn(async move {
        let mut caught_tx = Some(caught_tx);
        while let Some(event) = events.recv().await {
            match event {
                FeedEvent::CaughtUp => {
                    tracing::info!(
                        live = ?models.borrow().as_ref().map(|m| m.version()),
                        "model log read; scoring can start"
                    );
                    readiness.set(MODELS, true);
                    if let Some(tx) = caught_tx.take() {
                        let _ = tx.send(());
                    }
                }
                FeedEvent::Offer {
                    partition,
                    offset,
                    published_ms,
                    offer,
                    ..
                } => match offer {
                    Offer::Accepted(model) => {
                        metrics.releases.with_label_values(&["accepted"]).inc();
                        tracing::info!(
                            model = %model_name,
                            version = model.version(),
                            partition,
                            offset,
                            published_ms,
                            "release accepted"
                        );
                        // Live from now: the loop installs it before the
                        // next record it scores.
                        metrics
                            .model_version
                            .with_label_values(&[&model_name])
                            .set(i64::try_from(model.version()).unwrap_or(i64::MAX));
                        models.send_replace(Some(model));
                    }
                    Offer::OtherModel => {}
                    Offer::Rejected(e) => {
                        metrics.releases.with_label_values(&[e.reason()]).inc();
                        tracing::warn!(
                            model = %model_name,
                            partition,
                            offset,
                            reason = e.reason(),
                            error = %e,
                            "release rejected; keeping the live model"
                        );
                    }
                },
            }
        }
    });
    Ok(caught_rx)
}

/// Records consumed per wake-up before the loop looks at its other work
/// (deliveries, API requests, offset stores, shutdown) again.
const CONSUME_BATCH: usize = 512;

/// The scoring loop's state: one per process, owned by its task.
struct Scoring<P = ThreadedProducer<ProduceContext>> {
    scorer: Scorer,
    /// What to do with records an edge agent scored.
    edge: EdgeRecords,
    models: watch::Receiver<Option<Arc<VerifiedModel>>>,
    producer: P,
    deliveries: Arc<Deliveries>,
    metrics: ScoreMetrics,
    topics: KafkaTopics,
    fresh: Fresh,
    kafka: vigil_service::config::KafkaArgs,
    replay_span_ms: u64,
    replay_max_records: usize,
    window: usize,
    /// Records in flight and the confirmed watermark per partition.
    ledger: Ledger,
    /// Reused for every batch of delivery outcomes.
    outcomes: Outcomes,
    /// Reused for every encoded verdict (librdkafka copies it).
    buf: Vec<u8>,
    /// Records processed (for sampling the scoring-latency histogram).
    processed: u64,
    shutdown: Shutdown,
    /// Failed produces and the records held behind them, per key.
    retries: Retries,
}

impl<P: Produce> Scoring<P> {
    async fn run(
        &mut self,
        consumer: &StreamConsumer<ScoreContext>,
        mut api: mpsc::Receiver<ScoreRequest>,
        drain_timeout: Duration,
    ) {
        let shutdown = self.shutdown.clone();
        let deliveries = self.deliveries.clone();
        // One stream for the whole run: `recv()` would register and
        // unregister a waker per record.
        let mut stream = consumer.stream();
        let mut store = tokio::time::interval(STORE_INTERVAL);
        loop {
            let resend_at = self.retries.due();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = deliveries.ready() => self.settle(),
                () = sleep_until(resend_at), if resend_at.is_some() => self.resend_due(),
                Some(request) = api.recv() => self.answer(request),
                _ = store.tick() => {
                    self.store_offsets(consumer);
                    self.metrics.devices.set(self.scorer.devices() as i64);
                    self.metrics
                        .state_bytes
                        .set(self.scorer.state_bytes(crate::metrics::STATE_SAMPLE) as i64);
                }
                received = stream.next(), if self.ledger.len() < self.window => {
                    let mut next = received;
                    let mut taken = 0;
                    // Take what librdkafka already has queued, up to a
                    // batch, without going back to the select.
                    loop {
                        match next {
                            Some(Ok(message)) => self.process(&message).await,
                            Some(Err(e)) => tracing::warn!(error = %e, "telemetry consumer error"),
                            None => {}
                        }
                        taken += 1;
                        if taken >= CONSUME_BATCH || self.ledger.len() >= self.window {
                            break;
                        }
                        match stream.next().now_or_never() {
                            Some(n) => next = n,
                            None => break,
                        }
                    }
                    self.metrics.in_flight.set(self.ledger.len() as i64);
                }
            }
        }
        tracing::info!(in_flight = self.ledger.len(), "draining in-flight verdicts");
        let deadline = tokio::time::sleep(drain_timeout);
        tokio::pin!(deadline);
        self.settle();
        while !self.ledger.is_empty() {
            tokio::select! {
                () = self.next_outcomes() => {}
                _ = &mut deadline => {
                    tracing::warn!(
                        unconfirmed = self.ledger.len(),
                        "shutdown timeout: their records will be scored again after restart"
                    );
                    break;
                }
            }
        }
        self.store_offsets(consumer);
    }

    /// Waits for delivery outcomes or a due retry, and handles them.
    async fn next_outcomes(&mut self) {
        let deliveries = self.deliveries.clone();
        let resend_at = self.retries.due();
        tokio::select! {
            () = deliveries.ready() => self.settle(),
            () = sleep_until(resend_at), if resend_at.is_some() => self.resend_due(),
        }
    }

    /// Applies every waiting delivery outcome: confirmed produces advance
    /// their partition's watermark (and release the next record of a held
    /// key), failed ones wait to be sent again.
    fn settle(&mut self) {
        self.deliveries.take(&mut self.outcomes);
        let mut done = 0;
        let now = Instant::now();
        for &tag in &self.outcomes.delivered {
            done += self.ledger.delivered(delivery::slot_of(tag));
            if !self.retries.is_empty() {
                self.retries.delivered(tag, now);
            }
        }
        for failed in std::mem::take(&mut self.outcomes.failed) {
            self.retry(failed);
        }
        if !self.retries.is_empty() {
            self.resend_due();
        }
        if done > 0 {
            self.metrics.produced.inc_by(done);
        }
        self.metrics.in_flight.set(self.ledger.len() as i64);
    }

    /// Holds a failed produce for its key: it is sent again after a
    /// backoff that grows with its failures, and the key's later records
    /// wait behind it, so the device's order holds. The offset is never
    /// stored past an undelivered verdict, so the record waits until Kafka
    /// takes it (or shutdown).
    ///
    /// A produce Kafka refuses for good (too large, not authorised, unknown
    /// topic) is never retried: a verdict goes to the DLQ instead (reason
    /// `kafka_refused`, the verdict as the original, capped), and a DLQ
    /// record refused for good is logged as an error and counted
    /// (`vigil_score_records_rejected_total{reason="dlq_refused"}`); either
    /// way its record is settled and its partition moves on. A fatal
    /// client error is not "for good": the service is stopping (see
    /// `vigil_service::kafka`), so the record stays unconfirmed.
    fn retry(&mut self, failed: Failed) {
        if !kafka::is_retriable(&failed.error) && !kafka::is_fatal(&failed.error) {
            self.refused_for_good(failed);
            return;
        }
        let offset = self
            .ledger
            .offset(delivery::slot_of(failed.tag))
            .unwrap_or(i64::MAX);
        self.metrics.produce_retries.inc();
        let attempt = self.retries.failed(
            failed.tag,
            &failed.topic,
            &failed.key,
            offset,
            failed.payload,
            Instant::now(),
        );
        tracing::warn!(error = %failed.error, topic = %failed.topic, attempt, "delivery failed; retrying");
    }

    /// Settles a produce Kafka refused for good (see [`Self::retry`]).
    fn refused_for_good(&mut self, failed: Failed) {
        let slot = delivery::slot_of(failed.tag);
        // A held key's front record: release the key.
        self.retries.delivered(failed.tag, Instant::now());
        if delivery::is_dlq(failed.tag) {
            self.metrics
                .rejected
                .with_label_values(&["dlq_refused"])
                .inc();
            tracing::error!(error = %failed.error, topic = %failed.topic, bytes = failed.payload.len(),
                "kafka refused a dlq record for good; dropping it");
        } else {
            let offset = self.ledger.offset(slot).unwrap_or(-1);
            let source = format!("{}@{offset}", failed.topic);
            let rejection = Rejection::new(
                "kafka_refused",
                format!(
                    "kafka refused the {} record for good: {}",
                    failed.topic, failed.error
                ),
            );
            self.metrics
                .rejected
                .with_label_values(&[rejection.reason])
                .inc();
            tracing::error!(%source, detail = %rejection.detail, "sending the refused record to the dlq");
            if let Some(dlq) =
                rejection.into_dlq(SERVICE, format!("kafka:{source}"), &failed.payload)
            {
                // Started before the failed produce is settled, so the
                // slot cannot complete in between.
                self.send(slot, Sink::Dlq, dlq.key.as_bytes(), &dlq.payload);
            }
        }
        let done = self.ledger.delivered(slot);
        if done > 0 {
            self.metrics.produced.inc_by(done);
        }
    }

    /// Sends again the held records whose backoff is over.
    fn resend_due(&mut self) {
        let producer = &self.producer;
        self.retries
            .resend(Instant::now(), |topic, key, payload, tag| {
                producer.produce(topic, key, payload, tag)
            });
    }

    /// Installs a newly accepted model, between two records.
    fn swap_if_changed(&mut self) {
        if !self.models.has_changed().unwrap_or(false) {
            return;
        }
        let Some(model) = self.models.borrow_and_update().clone() else {
            return;
        };
        let version = model.version();
        match self.scorer.install(model) {
            Ok(outcome) => tracing::info!(version, ?outcome, "model installed"),
            Err(e) => tracing::warn!(error = %e, "model not installed"),
        }
    }

    fn answer(&mut self, request: ScoreRequest) {
        self.swap_if_changed();
        let record = &request.record;
        let verdict =
            self.scorer
                .score_detached(record, record.ingest_ts, now_ms(), ScoredAt::Cloud);
        let _ = request.reply.send(verdict);
    }

    /// Hands the highest confirmed offset of each partition to librdkafka,
    /// which commits it with the next auto-commit.
    fn store_offsets(&mut self, consumer: &StreamConsumer<ScoreContext>) {
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in self.ledger.take_confirmed() {
            if let Err(e) = tpl.add_partition_offset(
                &self.topics.telemetry,
                partition,
                Offset::Offset(offset + 1),
            ) {
                tracing::warn!(error = %e, partition, "cannot store offset");
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile: its new owner re-scores the
            // unconfirmed tail (at-least-once).
            tracing::debug!(error = %e, "offsets not stored");
        }
    }

    /// Scores one record and starts producing its verdict(s), tracked in
    /// the ledger until Kafka confirms them.
    async fn process(&mut self, message: &impl Message) {
        let partition = message.partition();
        let offset = message.offset();
        self.swap_if_changed();
        if self.fresh.take(partition) {
            self.rebuild_state(partition, offset, message.timestamp().to_millis())
                .await;
        }

        self.processed = self.processed.wrapping_add(1);
        let started = (self.processed % LATENCY_SAMPLE == 0).then(Instant::now);
        let slot = self.ledger.open(partition, offset);
        let payload = message.payload().unwrap_or_default();
        match Telemetry::decode_limited(payload, MAX_RECORD_BYTES) {
            Ok(record) => 'scored: {
                let shadow = match self.edge.decide(&record) {
                    Decision::Skip => break 'scored,
                    Decision::Cloud => None,
                    Decision::Shadow(edge) => Some(edge),
                };
                let now = now_ms();
                let verdict = self
                    .scorer
                    .score(&record, record.ingest_ts, now, ScoredAt::Cloud);
                if let Some(edge) = shadow {
                    // Compared and counted, not published: the edge's
                    // verdict is the record's one decision.
                    self.edge.compare(&record.device_id, edge, &verdict);
                    break 'scored;
                }
                match verdict.model_version {
                    Some(_) => self.metrics.scored.inc(),
                    None => self.metrics.unscored.inc(),
                }
                if now >= record.ts {
                    self.metrics
                        .end_to_end_latency
                        .observe((now - record.ts) as f64 / 1000.0);
                }
                if let Some(ingested) = record.ingest_ts.filter(|&t| now >= t) {
                    self.metrics
                        .ingest_to_scored
                        .observe((now - ingested) as f64 / 1000.0);
                }
                let mut buf = std::mem::take(&mut self.buf);
                buf.clear();
                // The same bytes as `Message::encode` (compact JSON of the
                // same type), into a buffer reused across records.
                match serde_json::to_writer(&mut buf, &verdict) {
                    Ok(()) => {
                        let key = record.device_id.as_bytes();
                        // vigil.anomalies carries the verdicts in alarm
                        // (the contract: anomaly = true); the one that
                        // closes an alarm is on vigil.verdicts only.
                        if verdict.anomaly {
                            self.metrics.anomalies.inc();
                            self.send(slot, Sink::Anomalies, key, &buf);
                        }
                        self.send(slot, Sink::Verdicts, key, &buf);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a verdict"),
                }
                self.buf = buf;
            }
            Err(e) => {
                let rejection = Rejection::from(e);
                self.metrics
                    .rejected
                    .with_label_values(&[rejection.reason])
                    .inc();
                let source = dlq::kafka_source(&self.topics.telemetry, partition, offset);
                tracing::warn!(%source, reason = rejection.reason, detail = %rejection.detail,
                    "not telemetry; sent to the dlq");
                if let Some(dlq) = rejection.into_dlq(SERVICE, source, payload) {
                    self.send(slot, Sink::Dlq, dlq.key.as_bytes(), &dlq.payload);
                }
            }
        }
        let done = self.ledger.sealed(slot);
        if done > 0 {
            self.metrics.produced.inc_by(done);
        }
        if let Some(started) = started {
            self.metrics
                .scoring_latency
                .observe(started.elapsed().as_secs_f64());
        }
    }

    /// Enqueues a record now (keeping the consumed order per device),
    /// tracked under `slot`; a record librdkafka cannot take now is retried
    /// like a failed delivery.
    fn send(&mut self, slot: usize, sink: Sink, key: &[u8], payload: &[u8]) {
        let topic = match sink {
            Sink::Verdicts => &self.topics.verdicts,
            Sink::Anomalies => &self.topics.anomalies,
            Sink::Dlq => &self.topics.dlq,
        };
        self.ledger.sending(slot);
        let tag = sink.tag(slot);
        if !self.retries.is_empty() && self.retries.holds(topic, key) {
            let offset = self.ledger.offset(slot).unwrap_or(i64::MAX);
            self.retries.hold(topic, key, tag, offset, payload);
            return;
        }
        if let Err(error) = self.producer.produce(topic, key, payload, tag) {
            let failed = Failed::new(tag, topic, key, payload, error);
            self.retry(failed);
        }
    }

    /// Replays the partition's recent log into the detector's state (see
    /// the crate docs). Only meaningful once a model is live.
    async fn rebuild_state(&mut self, partition: i32, offset: i64, ts: Option<i64>) {
        if self.replay_span_ms == 0 || self.replay_max_records == 0 || self.scorer.model().is_none()
        {
            return;
        }
        let request = ReplayRequest {
            topic: self.topics.telemetry.clone(),
            partition,
            until_offset: offset,
            until_ts: ts,
            span_ms: self.replay_span_ms,
            max_records: self.replay_max_records,
        };
        let kafka = self.kafka.clone();
        let started = Instant::now();
        let read = tokio::task::spawn_blocking(move || replay::read(&kafka, &request)).await;
        match read {
            Ok(Ok(records)) => {
                let mut applied = 0u64;
                for r in &records {
                    applied += u64::from(self.scorer.observe(r));
                }
                self.metrics.replayed.inc_by(records.len() as u64);
                tracing::info!(
                    partition,
                    before_offset = offset,
                    read = records.len(),
                    applied,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "per-device state rebuilt from the log"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(partition, error = %format!("{e:#}"), "state replay failed; devices start cold")
            }
            Err(e) => {
                tracing::warn!(partition, error = %e, "state replay panicked; devices start cold")
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
impl<P: Produce> Scoring<P> {
    /// A loop with no model, no replay and `producer`, whose outcomes come
    /// back through `deliveries`.
    fn for_test(
        producer: P,
        deliveries: Arc<Deliveries>,
        kafka: vigil_service::config::KafkaArgs,
    ) -> Self {
        let registry = prometheus::Registry::new();
        Self {
            scorer: Scorer::new("default", 1024),
            edge: EdgeRecords::register(DevicePatterns::default(), &registry)
                .expect("metrics register once"),
            models: watch::channel(None).1,
            producer,
            deliveries,
            metrics: ScoreMetrics::register(&registry).expect("metrics register once"),
            topics: kafka.topics(),
            fresh: Fresh::default(),
            kafka,
            replay_span_ms: 0,
            replay_max_records: 0,
            window: 1024,
            ledger: Ledger::default(),
            outcomes: Outcomes::default(),
            buf: Vec::new(),
            processed: 0,
            shutdown: Shutdown::new(),
            retries: Retries::default(),
        }
    }
}

#[cfg(test)]
mod tests;
