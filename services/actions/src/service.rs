//! The role's run loop: recovery from `vigil.incidents`, then verdicts in,
//! incident events out, actions after their event is confirmed, offsets
//! after that.
//!
//! ```text
//! start: vigil.incidents (from the start, no group) ──► Engine::recover
//! vigil.anomalies ┐                                        (pending actions → interrupted)
//! vigil.verdicts  ┴► consumer group ─► Engine::verdict ─► events ─► vigil.incidents (confirmed, in order)
//!                                                                      │ then
//!                                                      jobs ─► Dispatcher ─► MQTT commands / webhooks
//!                                                                      │        │ outcomes
//!                                                   store offsets ◄────┘        └─► Engine::outcome ─► events
//! ```
//!
//! Exactly one effect per transition: an event is the journal entry of
//! the transition and of the actions it decides, and it is written
//! (confirmed by Kafka) before any of those actions starts and before the
//! offsets of the records behind it are stored. A crash before the write
//! replays the records and decides the same again (nothing went out); a
//! crash after it finds the event at the next start-up, which therefore
//! neither emits it again nor repeats its actions. An action whose
//! outcome was not recorded is not sent again (`interrupted`): at most
//! once, never twice.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::stream::{FuturesOrdered, StreamExt as _};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::Message as _;
use tokio::sync::mpsc;
use vigil_schemas::topics::MqttTopics;
use vigil_schemas::{CommandResult, Incident, Message as _, Verdict};
use vigil_service::bootstrap::{self, Bootstrap};
use vigil_service::dlq::{kafka_source, Rejection};
use vigil_service::from_start::{self, TopicError};
use vigil_service::kafka::{self, ProducerTuning, RetryPolicy, TopicSpec, VigilContext};
use vigil_service::{now_ms, Shutdown};

use crate::config::ActionsArgs;
use crate::dispatch::{DispatchConfig, Dispatcher, SERVICE};
use crate::engine::{Engine, EngineConfig, Job, Step};
use crate::metrics::ActionsMetrics;
use crate::rules::Rules;
use crate::signing::CommandSigner;

/// Name in `/readyz` of the read-back of `vigil.incidents` at start-up.
pub const RECOVERED: &str = "recovered";
/// Topic kind of vigil.command-results (metrics label).
const RESULTS: &str = "command_results";
/// Writes (and the records behind them) waiting for Kafka at once.
const WINDOW: usize = 1024;
/// How often the wall-clock quiet periods are checked.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

type Delivery = Pin<Box<dyn Future<Output = Done> + Send>>;

/// A write confirmed (or nothing to write), and what follows it.
struct Done {
    result: Result<(), KafkaError>,
    jobs: Vec<Job>,
    offset: Option<(String, i32, i64)>,
}

/// Runs `vigil actions` until `shutdown`.
pub async fn run(args: ActionsArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    args.validate()?;
    let mut rules = match &args.rules {
        Some(path) => Rules::load(path)?,
        None => {
            tracing::info!("no rules file (--rules): incidents are tracked, no action is taken");
            Rules::default()
        }
    };
    tracing::info!(rules = rules.rules.len(), "rules loaded");
    let signer = match &args.command_signing_key {
        Some(path) => {
            let signer = CommandSigner::load(path, args.command_ttl, args.allow_shared_key_file)?;
            tracing::info!(key_id = %signer.key_id(), ttl = ?args.command_ttl, "commands are signed");
            Some(signer)
        }
        None => {
            anyhow::ensure!(
                !sends_commands(&rules),
                "the rules send commands to devices, and commands must be signed: \
                 give --command-signing-key / VIGIL_ACTIONS_COMMAND_SIGNING_KEY \
                 (`vigil commands keygen --out DIR` makes the key pair)"
            );
            None
        }
    };
    let boot = Bootstrap::new(&[
        kafka::DEPENDENCY,
        vigil_service::mqtt::DEPENDENCY,
        RECOVERED,
    ])?;
    let metrics = ActionsMetrics::register(&boot.registry)?;
    boot.serve(&args.http, axum::Router::new(), &shutdown)
        .await?;
    let topics = args.kafka.topics();
    let specs = [
        TopicSpec::delete(&topics.verdicts),
        TopicSpec::delete(&topics.anomalies),
        TopicSpec::delete(&topics.incidents),
        TopicSpec::delete(&topics.command_results),
        TopicSpec::delete(&topics.dlq),
    ];
    if !bootstrap::ensure_topics(&args.kafka, &specs, &shutdown).await {
        bootstrap::stop(&shutdown, "actions").await;
        return Ok(());
    }
    let tuning = ProducerTuning {
        linger_ms: 5,
        ..ProducerTuning::default()
    };
    let producer: FutureProducer<VigilContext> =
        kafka::producer_config(&args.kafka, "vigil-actions", &tuning)
            .create_with_context(VigilContext::new(boot.readiness.clone()))
            .context("creating the kafka producer")?;
    kafka::watch_connection(
        producer.clone(),
        boot.readiness.clone(),
        Duration::from_secs(5),
        &shutdown,
    );

    // Rebuild from what was already emitted, before reading any verdict.
    let engine = Engine::new(EngineConfig {
        quiet: args.quiet_period,
        max_open: args.max_open_incidents,
        rate_per_sec: args.max_actions_per_sec,
        burst: args.action_burst,
        result_timeout: args.result_timeout,
    });
    let (kafka_args, incidents_topic, timeout, recovered) = (
        args.kafka.clone(),
        topics.incidents.clone(),
        args.recover_timeout,
        metrics.recovered.clone(),
    );
    let recovery = tokio::task::spawn_blocking(move || {
        let mut engine = engine;
        recover(
            &kafka_args,
            &incidents_topic,
            timeout,
            &mut engine,
            &recovered,
        )
        .map(|n| (engine, n))
    });
    let (mut engine, events) = tokio::select! {
        _ = shutdown.cancelled() => {
            bootstrap::stop(&shutdown, "actions").await;
            return Ok(());
        }
        r = recovery => r.context("recovery task")??,
    };
    tracing::info!(
        events,
        open = engine.open_count(),
        "incidents read back from {}",
        topics.incidents
    );
    // Before the role reports ready, so a SIGHUP after that reloads rather
    // than ends the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    boot.readiness.set(RECOVERED, true);

    let (outcome_tx, mut outcomes) = mpsc::channel(WINDOW);
    let mut mqtt = vigil_service::mqtt::options(&args.mqtt, "actions")?;
    mqtt.set_clean_start(true);
    let dispatcher = Dispatcher::start(
        DispatchConfig {
            topics: MqttTopics::with_prefix(&args.mqtt.mqtt_topic_prefix),
            command_timeout: args.command_timeout,
            max_concurrent_webhooks: args.max_concurrent_webhooks,
            dlq_topic: topics.dlq.as_str().into(),
            signer,
        },
        mqtt,
        producer.clone(),
        outcome_tx,
        boot.readiness.clone(),
        metrics.clone(),
        &shutdown,
    )?;

    let mut config = kafka::consumer_config(&args.kafka, "vigil-actions", &args.group);
    config.set("enable.auto.commit", "true").set(
        "auto.commit.interval.ms",
        args.commit_interval_ms.to_string(),
    );
    if let Some(id) = &args.instance_id {
        config.set("group.instance.id", id);
    }
    kafka::apply_operator_options(&mut config, &args.kafka);
    let consumer: Arc<StreamConsumer<VigilContext>> = Arc::new(
        config
            .create_with_context(VigilContext::new(boot.readiness.clone()))
            .context("creating the kafka consumer")?,
    );
    consumer
        .subscribe(&[&topics.anomalies, &topics.verdicts, &topics.command_results])
        .context("subscribing to the verdict and command-result topics")?;
    let kinds: HashMap<String, &'static str> = [
        (topics.anomalies.clone(), "anomalies"),
        (topics.verdicts.clone(), "verdicts"),
        (topics.command_results.clone(), RESULTS),
    ]
    .into();

    let mut out = Writer {
        producer,
        incidents: topics.incidents.as_str().into(),
        dlq: topics.dlq.as_str().into(),
        metrics: metrics.clone(),
        queue: FuturesOrdered::new(),
    };
    for step in engine.finish_recovery(now_ms()) {
        out.step(step);
    }
    metrics.open.set(engine.open_count() as i64);

    let mut expiry = tokio::time::interval(EXPIRY_TICK);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = hangup.recv() => match &args.rules {
                Some(path) => match Rules::load(path) {
                    Ok(new) if args.command_signing_key.is_none() && sends_commands(&new) => {
                        tracing::error!("rules file refused: it sends commands and no --command-signing-key is configured; the rules in force stay");
                        metrics.reloads.with_label_values(&["refused"]).inc();
                    }
                    Ok(new) => {
                        tracing::info!(rules = new.rules.len(), "rules reloaded");
                        metrics.reloads.with_label_values(&["ok"]).inc();
                        rules = new;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "rules file refused; the rules in force stay");
                        metrics.reloads.with_label_values(&["refused"]).inc();
                    }
                },
                None => tracing::info!("SIGHUP without --rules: nothing to reload"),
            },
            Some(done) = out.queue.next() => {
                match done.result {
                    Ok(()) => {
                        for job in done.jobs {
                            dispatcher.dispatch(job).await;
                        }
                        if let Some((topic, partition, offset)) = done.offset {
                            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                                tracing::warn!(error = %e, topic, partition, offset, "cannot store an offset");
                            }
                        }
                    }
                    // Only when the client is dead: stop without storing
                    // the offset or acting (both happen after a restart).
                    Err(e) => {
                        tracing::error!(error = %e, "an incident event could not be written; stopping");
                        break;
                    }
                }
            }
            Some(o) = outcomes.recv() => {
                if let Some(step) = engine.outcome(o, now_ms()) {
                    out.step(step);
                }
            }
            _ = expiry.tick() => {
                for step in engine.expire(&rules, now_ms()) {
                    out.step(step);
                }
                metrics.open.set(engine.open_count() as i64);
            }
            m = consumer.recv(), if out.queue.len() < WINDOW => match m {
                Ok(m) => {
                    let topic = m.topic().to_owned();
                    let kind = kinds.get(&topic).copied().unwrap_or("other");
                    metrics.consumed.with_label_values(&[kind]).inc();
                    let offset = Some((topic.clone(), m.partition(), m.offset()));
                    let payload = m.payload().unwrap_or_default();
                    if kind == RESULTS {
                        match CommandResult::decode_limited(payload, args.max_payload_bytes) {
                            Ok(r) => {
                                let step = join_result(&mut engine, &r, &metrics);
                                out.steps(step.into_iter().collect(), offset);
                            }
                            Err(e) => {
                                let rejection = Rejection::from(e);
                                metrics.rejected.with_label_values(&[rejection.reason]).inc();
                                let source = kafka_source(&topic, m.partition(), m.offset());
                                out.reject(rejection, source, payload, offset);
                            }
                        }
                        continue;
                    }
                    match Verdict::decode_limited(payload, args.max_payload_bytes) {
                        Ok(v) => {
                            let steps = engine.verdict(&v, &rules, now_ms());
                            metrics.open.set(engine.open_count() as i64);
                            out.steps(steps, offset);
                        }
                        Err(e) => {
                            let rejection = Rejection::from(e);
                            metrics.rejected.with_label_values(&[rejection.reason]).inc();
                            let source = kafka_source(&topic, m.partition(), m.offset());
                            out.reject(rejection, source, payload, offset);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
            },
        }
    }
    // Let confirmed writes finish their offsets (not their actions).
    let drain = async {
        while let Some(done) = out.queue.next().await {
            if let (Ok(()), Some((topic, partition, offset))) = (done.result, done.offset) {
                let _ = consumer.store_offset(&topic, partition, offset);
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit");
    }
    bootstrap::stop(&shutdown, "actions").await;
    Ok(())
}

/// Whether any rule sends a command to a device.
fn sends_commands(rules: &Rules) -> bool {
    rules.rules.iter().any(|r| !r.commands.is_empty())
}

/// Joins a device's command result to its incident (see
/// [`Engine::command_result`]), counting what became of it.
fn join_result(engine: &mut Engine, r: &CommandResult, metrics: &ActionsMetrics) -> Option<Step> {
    match engine.command_result(r, now_ms()) {
        Ok(Some(step)) => {
            metrics
                .results
                .with_label_values(&[r.status.as_str()])
                .inc();
            Some(step)
        }
        Ok(None) => {
            metrics.results.with_label_values(&["duplicate"]).inc();
            None
        }
        Err(why) => {
            tracing::info!(device = %r.device_id, command_id = ?r.command_id, ?why,
                "a command result that matches no command of a held incident; not recorded");
            metrics.results.with_label_values(&[why.reason()]).inc();
            None
        }
    }
}

/// Writes events (and DLQ records) in order, each followed by its jobs
/// and the offset of the record behind it once confirmed.
struct Writer {
    producer: FutureProducer<VigilContext>,
    incidents: Arc<str>,
    dlq: Arc<str>,
    metrics: ActionsMetrics,
    queue: FuturesOrdered<Delivery>,
}

impl Writer {
    fn step(&mut self, step: Step) {
        self.steps(vec![step], None);
    }

    fn steps(&mut self, steps: Vec<Step>, offset: Option<(String, i32, i64)>) {
        if steps.is_empty() && self.queue.is_empty() {
            // Nothing waits ahead of it: the offset can be stored now, in
            // the next turn of the loop.
            self.queue.push_back(Box::pin(async move {
                Done {
                    result: Ok(()),
                    jobs: Vec::new(),
                    offset,
                }
            }));
            return;
        }
        let mut sends = Vec::with_capacity(steps.len());
        let mut jobs = Vec::new();
        for step in steps {
            let state = match step.event.state {
                vigil_schemas::IncidentState::Opened => "opened",
                vigil_schemas::IncidentState::Updated => "updated",
                vigil_schemas::IncidentState::Resolved => "resolved",
            };
            self.metrics.events.with_label_values(&[state]).inc();
            for (kind, status) in &step.skipped {
                let kind = match kind {
                    vigil_schemas::ActionKind::Command => "command",
                    vigil_schemas::ActionKind::Webhook => "webhook",
                };
                self.metrics
                    .actions
                    .with_label_values(&[kind, status.as_str()])
                    .inc();
            }
            match step.event.encode() {
                Ok(bytes) => sends.push(kafka::send_retrying(
                    &self.producer,
                    self.incidents.clone(),
                    step.event.device_id.clone(),
                    bytes.into(),
                    RetryPolicy::UntilDelivered,
                    self.metrics.kafka_retries.clone(),
                )),
                Err(e) => {
                    tracing::error!(error = %e, incident = %step.event.incident_id, "cannot encode an incident event; its actions are not taken");
                    continue;
                }
            }
            jobs.extend(step.jobs);
        }
        self.queue.push_back(Box::pin(async move {
            let mut result = Ok(());
            for send in sends {
                if let Err(e) = send.await {
                    result = Err(e);
                }
            }
            Done {
                result,
                jobs,
                offset,
            }
        }));
    }

    fn reject(
        &mut self,
        rejection: Rejection,
        source: String,
        original: &[u8],
        offset: Option<(String, i32, i64)>,
    ) {
        let send = rejection.into_dlq(SERVICE, source, original).map(|dlq| {
            kafka::send_retrying(
                &self.producer,
                self.dlq.clone(),
                dlq.key,
                dlq.payload.into(),
                RetryPolicy::UntilDelivered,
                self.metrics.kafka_retries.clone(),
            )
        });
        self.queue.push_back(Box::pin(async move {
            let result = match send {
                Some(send) => send.await,
                None => Ok(()),
            };
            Done {
                result,
                jobs: Vec::new(),
                offset,
            }
        }));
    }
}

/// Reads `topic` (vigil.incidents) from its start to the end it had now
/// into `engine`; the number of events read. Blocking.
fn recover(
    args: &vigil_service::config::KafkaArgs,
    topic: &str,
    timeout: Duration,
    engine: &mut Engine,
    counter: &prometheus::IntCounter,
) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = from_start::unjoined_config(args, "vigil-actions-recover")
        .create()
        .context("creating the recovery consumer")?;
    let mut ends = match from_start::assign_from_start(&consumer, topic, Duration::from_secs(10)) {
        Ok(ends) => ends,
        Err(TopicError::Missing { .. }) => return Ok(0),
        Err(e) => return Err(e).context("reading vigil.incidents back"),
    };
    let deadline = Instant::now() + timeout;
    let mut events = 0u64;
    while !ends.reached() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "reading {topic} back took longer than {timeout:?} ({} partitions short of their end); raise --recover-timeout",
            ends.missing()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                ends.read(m.partition(), m.offset());
                let Some(payload) = m.payload() else { continue };
                match Incident::decode(payload) {
                    Ok(event) => {
                        engine.recover(event);
                        events += 1;
                        counter.inc();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, partition = m.partition(), offset = m.offset(),
                        "an undecodable record on {topic}; skipped")
                    }
                }
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic} back")),
            None => ends.check_position(&consumer),
        }
    }
    Ok(events)
}
