//! Kafka clients built the same way by every service.
//!
//! Producers are idempotent with `acks=all`; consumers commit manually.
//! Options the operator passes with `--kafka-option` go through unchanged
//! (security settings), applied last so they win. Connection state feeds
//! [`Readiness`] under the name `kafka`.
//!
//! **Latency defaults.** Every client Vigil runs gets its Kafka tuning
//! from here: [`CLIENT_DEFAULTS`], [`CONSUMER_DEFAULTS`] (or
//! [`CONTROL_CONSUMER_DEFAULTS`] for readers of rarely written topics) and
//! [`DEFAULT_LINGER_MS`] for producers. They are chosen for milliseconds
//! from device to verdict at moderate rates without costing throughput
//! under a backlog (figures in BENCHMARKS.md, issue 19; the reasoning in
//! docs/ARCHITECTURE.md). `--kafka-option` / `VIGIL_KAFKA_OPTIONS`
//! overrides any of them.
//!
//! **Fatal errors.** librdkafka reports an error it cannot recover from
//! (an idempotent producer that lost its sequence, a fenced producer) as
//! `Fatal`; the client is unusable from then on. [`watch_connection`] (which
//! asks the client every few seconds) and every send that meets it record
//! it ([`fatal_error`]), mark `kafka` down for good and trigger every
//! shutdown registered with [`stop_on_fatal`], so the service stops with a
//! non-zero exit and a clear message (the orchestrator restarts it) instead
//! of retrying on a dead client behind a green `/readyz`.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::ProducerContext;
use rdkafka::util::Timeout;
use rdkafka::TopicPartitionList;

use crate::config::KafkaArgs;
use crate::health::Readiness;
use crate::shutdown::Shutdown;

/// Name of the Kafka dependency in `/readyz`.
pub const DEPENDENCY: &str = "kafka";

/// The first fatal client error of this process, if any.
static FATAL: OnceLock<String> = OnceLock::new();
/// Shutdowns to trigger on a fatal client error.
static ON_FATAL: Mutex<Vec<Shutdown>> = Mutex::new(Vec::new());

/// Makes a fatal Kafka client error (see the module docs) trigger
/// `shutdown`. Every role registers its own.
pub fn stop_on_fatal(shutdown: &Shutdown) {
    if FATAL.get().is_some() {
        shutdown.trigger();
    }
    ON_FATAL
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(shutdown.clone());
}

/// The fatal Kafka client error this process met, if any: the reason it
/// stopped (a service's `run` turns it into its error).
pub fn fatal_error() -> Option<&'static str> {
    FATAL.get().map(String::as_str)
}

/// Whether `error` is librdkafka's fatal error (the client is unusable).
pub fn is_fatal(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
}

/// Records a fatal client error and triggers the registered shutdowns.
fn fatal(detail: String) {
    if FATAL.set(detail.clone()).is_ok() {
        tracing::error!(error = %detail,
            "fatal kafka client error: the client cannot recover; stopping so the service is restarted");
    }
    for shutdown in ON_FATAL.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        shutdown.trigger();
    }
}

/// Settings of every client: requests go out at once rather than waiting
/// for Nagle's algorithm to coalesce them with the next ones.
pub const CLIENT_DEFAULTS: &[(&str, &str)] = &[("socket.nagle.disable", "true")];

/// Settings of every consumer on the data path (telemetry, verdicts,
/// anomalies: score, audit, the dashboard, the load generator).
///
/// - `fetch.wait.max.ms=1`: how long the broker may hold a fetch when
///   fewer than `fetch.min.bytes` are available. Apache Kafka answers as
///   soon as `fetch.min.bytes` are there, so there it only bounds how often
///   an idle consumer asks again; tansu holds *every* fetch for the whole
///   wait, so there it is added to each hop (librdkafka's default, 500 ms,
///   was ~97 % of the end-to-end latency). Under a backlog a fetch still
///   returns up to `fetch.max.bytes`, so the short wait costs no
///   throughput.
/// - `fetch.min.bytes=1`: answer with the first record (librdkafka's
///   default, stated so an operator's override is visible next to it).
/// - `fetch.queue.backoff.ms=10`: when the consumer's prefetch queue is
///   full, ask again after 10 ms instead of librdkafka's 1 s, so a scorer
///   working through a backlog does not drain the queue and then sit idle.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "1"),
    ("fetch.min.bytes", "1"),
    ("fetch.queue.backoff.ms", "10"),
];

/// Settings of consumers that follow rarely written topics off the data
/// path (model releases, device statuses): a release reaching the scorers
/// within ~100 ms is plenty, and an idle 1-ms fetch loop on tansu would
/// cost CPU for nothing.
pub const CONTROL_CONSUMER_DEFAULTS: &[(&str, &str)] =
    &[("fetch.wait.max.ms", "100"), ("fetch.min.bytes", "1")];

/// Default `linger.ms` of every producer (each service's `--linger-ms`;
/// a `linger.ms` in `--kafka-option` wins over both): how long a record
/// may wait for others to share its batch. Measured on tansu at 10,000
/// msg/s, each batch costs the broker enough that *shorter* lingers are
/// slower end to end (p50 ~300 ms at 1 ms, ~150 ms at 2 ms, ~75 ms at
/// 5 ms, ~42 ms at 20 ms, ~80 ms at 50 ms; BENCHMARKS.md, issue 19), and at
/// 1,000 msg/s 20 ms was no slower than 5 ms. On Apache Kafka, where a
/// batch is cheap, `linger.ms=5` saves up to 15 ms per producer hop at
/// low rates.
pub const DEFAULT_LINGER_MS: u64 = 20;

/// Sets `settings` on `config`.
pub fn set_all(config: &mut ClientConfig, settings: &[(&str, &str)]) {
    for (key, value) in settings {
        config.set(*key, *value);
    }
}

/// Applies the operator's `--kafka-option`s to `config`: call it after any
/// setting of Vigil's own, so the operator's win.
pub fn apply_operator_options(config: &mut ClientConfig, args: &KafkaArgs) {
    for (key, value) in &args.kafka_options {
        config.set(key, value);
        if key == "debug" {
            // librdkafka's debug contexts log at debug level; let them through.
            config.set_log_level(RDKafkaLogLevel::Debug);
        }
    }
}

/// Base configuration: brokers, client id, [`CLIENT_DEFAULTS`], then the
/// pass-through options.
pub fn client_config(args: &KafkaArgs, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.kafka_brokers)
        .set("client.id", client_id)
        .set_log_level(RDKafkaLogLevel::Warning);
    set_all(&mut config, CLIENT_DEFAULTS);
    apply_operator_options(&mut config, args);
    config
}

/// Producer tuning a service exposes as its own flags.
#[derive(Debug, Clone)]
pub struct ProducerTuning {
    /// `compression.type`: none, gzip, snappy, lz4, zstd.
    pub compression: String,
    /// `linger.ms`: how long to wait to fill a batch.
    pub linger_ms: u64,
    /// `queue.buffering.max.messages`: librdkafka's own queue bound.
    pub max_queued_messages: usize,
    /// `message.timeout.ms`; 0 retries until delivered (for services that
    /// must not drop, with their own in-flight bound).
    pub message_timeout_ms: u64,
}

impl Default for ProducerTuning {
    fn default() -> Self {
        Self {
            compression: "lz4".into(),
            linger_ms: DEFAULT_LINGER_MS,
            max_queued_messages: 100_000,
            message_timeout_ms: 0,
        }
    }
}

/// An idempotent, `acks=all` producer configuration.
pub fn producer_config(args: &KafkaArgs, client_id: &str, tuning: &ProducerTuning) -> ClientConfig {
    let mut config = client_config(args, client_id);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &tuning.compression)
        .set("linger.ms", tuning.linger_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            tuning.max_queued_messages.to_string(),
        )
        .set("message.timeout.ms", tuning.message_timeout_ms.to_string());
    apply_operator_options(&mut config, args);
    config
}

/// A manually committing consumer configuration in `group_id`, with
/// [`CONSUMER_DEFAULTS`].
pub fn consumer_config(args: &KafkaArgs, client_id: &str, group_id: &str) -> ClientConfig {
    let mut config = client_config(args, client_id);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    set_all(&mut config, CONSUMER_DEFAULTS);
    apply_operator_options(&mut config, args);
    config
}

/// Client context that reports connection loss to [`Readiness`] and logs
/// librdkafka errors through `tracing`.
#[derive(Debug, Clone)]
pub struct VigilContext {
    readiness: Readiness,
}

impl VigilContext {
    /// A context that marks `kafka` down in `readiness` on broker loss.
    pub fn new(readiness: Readiness) -> Self {
        Self { readiness }
    }
}

impl ClientContext for VigilContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if is_fatal(&error) {
            self.readiness.set(DEPENDENCY, false);
            fatal(format!("{error}: {reason}"));
            return;
        }
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.readiness.set(DEPENDENCY, false);
        }
        tracing::warn!(%error, reason, "kafka client error");
    }
}

impl ProducerContext for VigilContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ConsumerContext for VigilContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        tracing::info!(?rebalance, "consumer group rebalance starting");
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

/// Topic to create when missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Full topic name.
    pub name: String,
    /// `cleanup.policy`: `delete` or `compact`.
    pub cleanup_policy: &'static str,
    /// `retention.ms`, when not the broker default.
    pub retention_ms: Option<u64>,
}

impl TopicSpec {
    /// A delete-policy topic with the broker's default retention.
    pub fn delete(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            cleanup_policy: "delete",
            retention_ms: None,
        }
    }

    /// A compacted topic (latest value per key kept).
    pub fn compact(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            cleanup_policy: "compact",
            retention_ms: None,
        }
    }
}

/// Error from [`ensure_topics`].
#[derive(Debug, thiserror::Error)]
#[error("creating kafka topic {topic}: {source}")]
pub struct TopicError {
    topic: String,
    #[source]
    source: KafkaError,
}

/// Creates the topics that do not exist yet (no-op when
/// `--kafka-create-topics=false`). Existing topics are left as they are.
pub async fn ensure_topics(args: &KafkaArgs, topics: &[TopicSpec]) -> Result<(), TopicError> {
    if !args.kafka_create_topics || topics.is_empty() {
        return Ok(());
    }
    let first = topics[0].name.clone();
    let admin: AdminClient<DefaultClientContext> = client_config(args, "vigil-admin")
        .create()
        .map_err(|source| TopicError {
            topic: first.clone(),
            source,
        })?;
    let retention: Vec<Option<String>> = topics
        .iter()
        .map(|t| t.retention_ms.map(|ms| ms.to_string()))
        .collect();
    let min_insync = args.kafka_min_insync_replicas.map(|n| n.to_string());
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&retention)
        .map(|(t, retention)| {
            let mut topic = NewTopic::new(
                &t.name,
                args.kafka_partitions,
                TopicReplication::Fixed(args.kafka_replication_factor),
            )
            .set("cleanup.policy", t.cleanup_policy);
            if let Some(ms) = retention {
                topic = topic.set("retention.ms", ms);
            }
            if let Some(n) = &min_insync {
                topic = topic.set("min.insync.replicas", n);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|source| TopicError {
            topic: first,
            source,
        })?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(TopicError {
                    topic: name,
                    source: KafkaError::AdminOp(code),
                })
            }
        }
    }
    Ok(())
}

/// [`ensure_topics`], retried with backoff while Kafka is unreachable,
/// until it succeeds or `shutdown` fires.
pub async fn ensure_topics_retrying(args: &KafkaArgs, topics: &[TopicSpec], shutdown: &Shutdown) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match ensure_topics(args, topics).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cannot create topics yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Keeps `kafka` in [`Readiness`] current by asking `client` for cluster
/// metadata every `interval` (on a blocking thread: librdkafka's call is
/// synchronous) until shutdown. `client` is any rdkafka client handle that
/// is cheap to clone (`FutureProducer`, `Arc<StreamConsumer>`).
pub fn watch_connection<H>(client: H, readiness: Readiness, interval: Duration, shutdown: &Shutdown)
where
    H: MetadataProbe + Clone + Send + 'static,
{
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            if let Some(error) = client.fatal() {
                readiness.set(DEPENDENCY, false);
                fatal(error);
                break;
            }
            let probe = client.clone();
            let up = tokio::task::spawn_blocking(move || probe.brokers_reachable())
                .await
                .unwrap_or(false);
            // A client that met a fatal error stays down even if a broker
            // still answers its metadata requests.
            readiness.set(DEPENDENCY, up && fatal_error().is_none());
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
}

/// A client that can tell whether any broker answers.
pub trait MetadataProbe {
    /// Blocking metadata request; true when at least one broker answered.
    fn brokers_reachable(&self) -> bool;

    /// The client's fatal error, if it met one (it is unusable then).
    fn fatal(&self) -> Option<String>;
}

/// A client's fatal error as text.
fn fatal_of<C: ClientContext>(client: &rdkafka::client::Client<C>) -> Option<String> {
    client
        .fatal_error()
        .map(|(code, reason)| format!("{code}: {reason}"))
}

impl<C: ClientContext + 'static> MetadataProbe for rdkafka::producer::FutureProducer<C> {
    fn brokers_reachable(&self) -> bool {
        use rdkafka::producer::Producer as _;
        self.client()
            .fetch_metadata(None, Timeout::After(Duration::from_secs(5)))
            .map(|m| !m.brokers().is_empty())
            .unwrap_or(false)
    }

    fn fatal(&self) -> Option<String> {
        use rdkafka::producer::Producer as _;
        fatal_of(self.client())
    }
}

impl<C: ProducerContext + 'static> MetadataProbe for rdkafka::producer::ThreadedProducer<C> {
    fn brokers_reachable(&self) -> bool {
        use rdkafka::producer::Producer as _;
        self.client()
            .fetch_metadata(None, Timeout::After(Duration::from_secs(5)))
            .map(|m| !m.brokers().is_empty())
            .unwrap_or(false)
    }

    fn fatal(&self) -> Option<String> {
        use rdkafka::producer::Producer as _;
        fatal_of(self.client())
    }
}

impl<C: ConsumerContext + 'static> MetadataProbe
    for std::sync::Arc<rdkafka::consumer::StreamConsumer<C>>
{
    fn brokers_reachable(&self) -> bool {
        use rdkafka::consumer::Consumer as _;
        self.client()
            .fetch_metadata(None, Timeout::After(Duration::from_secs(5)))
            .map(|m| !m.brokers().is_empty())
            .unwrap_or(false)
    }

    fn fatal(&self) -> Option<String> {
        use rdkafka::consumer::Consumer as _;
        fatal_of(self.client())
    }
}

/// Which failed deliveries [`send_retrying`] tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Errors [`is_retriable`] accepts; any other is returned to the caller
    /// (who may route the record elsewhere, like ingest's DLQ).
    Retriable,
    /// Every error: the record is delivered or the caller waits on it (and
    /// never commits past it).
    UntilDelivered,
}

/// Longest pause between two attempts of [`send_retrying`].
const MAX_SEND_BACKOFF: Duration = Duration::from_secs(5);

/// Hands the record to librdkafka *now*, so records keep the order of the
/// calls, and returns the future of its confirmed delivery. Failed
/// deliveries are retried with exponential backoff per `policy`, each retry
/// counted in `retries` and logged.
pub fn send_retrying(
    producer: &rdkafka::producer::FutureProducer<VigilContext>,
    topic: std::sync::Arc<str>,
    key: String,
    payload: std::sync::Arc<[u8]>,
    policy: RetryPolicy,
    retries: prometheus::IntCounter,
) -> impl std::future::Future<Output = Result<(), KafkaError>> + Send + 'static {
    use rdkafka::producer::FutureRecord;
    let first = producer
        .send_result(FutureRecord::to(&topic).key(&key).payload(&payload[..]))
        .map_err(|(e, _)| e);
    let producer = producer.clone();
    async move {
        let mut attempt = first;
        let mut backoff = Duration::from_millis(50);
        loop {
            let error = match attempt {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err((e, _))) => e,
                    Err(_) => KafkaError::Canceled,
                },
                Err(e) => e,
            };
            if is_fatal(&error) {
                fatal(format!("{error}"));
            }
            if fatal_error().is_some() {
                // The client is dead and the service is stopping: leave
                // the record undelivered (never acknowledged or
                // committed) rather than retry for ever.
                return std::future::pending().await;
            }
            if policy == RetryPolicy::Retriable && !is_retriable(&error) {
                return Err(error);
            }
            retries.inc();
            tracing::warn!(%error, topic = %topic, "delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_SEND_BACKOFF);
            attempt = producer
                .send_result(FutureRecord::to(&topic).key(&key).payload(&payload[..]))
                .map_err(|(e, _)| e);
        }
    }
}

/// Whether a produce error is worth retrying with the same record.
pub fn is_retriable(error: &KafkaError) -> bool {
    match error.rdkafka_error_code() {
        Some(code) => !matches!(
            code,
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopic
        ),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::{FutureProducer, Producer as _};

    use super::*;
    use crate::config::KafkaArgs;

    // The fatal state is process-wide: this is the only test that sets it
    // (nextest runs each test in its own process).
    #[tokio::test]
    async fn a_fatal_client_error_marks_kafka_down_and_stops_the_service() {
        let registry = prometheus::Registry::new();
        let readiness = Readiness::new(&registry).expect("readiness");
        readiness.set(DEPENDENCY, true);
        let shutdown = Shutdown::new();
        stop_on_fatal(&shutdown);
        let args = KafkaArgs {
            kafka_brokers: "127.0.0.1:1".into(),
            kafka_topic_prefix: "vigil".into(),
            kafka_options: Vec::new(),
            kafka_create_topics: false,
            kafka_partitions: 1,
            kafka_replication_factor: 1,
            kafka_min_insync_replicas: None,
        };
        let producer: FutureProducer<VigilContext> =
            producer_config(&args, "fatal-test", &ProducerTuning::default())
                .create_with_context(VigilContext::new(readiness.clone()))
                .expect("producer");
        assert!(fatal_error().is_none());
        watch_connection(
            producer.clone(),
            readiness.clone(),
            Duration::from_millis(50),
            &Shutdown::new(),
        );
        inject_fatal(&producer);
        // The connection watch finds it; the shutdown it triggers is the
        // event to wait for.
        tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled())
            .await
            .expect("a fatal error stops the service within seconds");
        assert!(!readiness.is_up(DEPENDENCY), "/readyz reports kafka down");
        let reason = fatal_error().expect("recorded");
        assert!(reason.contains("injected by a test"), "{reason}");
        assert!(!is_retriable(&KafkaError::MessageProduction(
            RDKafkaErrorCode::Fatal
        )));
    }

    fn args(options: &[(&str, &str)]) -> KafkaArgs {
        KafkaArgs {
            kafka_brokers: "127.0.0.1:1".into(),
            kafka_topic_prefix: "vigil".into(),
            kafka_options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            kafka_create_topics: false,
            kafka_partitions: 1,
            kafka_replication_factor: 1,
            kafka_min_insync_replicas: None,
        }
    }

    #[test]
    fn latency_defaults_apply_and_the_operator_overrides_them() {
        let plain = args(&[]);
        let consumer = consumer_config(&plain, "c", "g");
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("1"));
        assert_eq!(consumer.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(consumer.get("socket.nagle.disable"), Some("true"));
        let control = crate::from_start::control_config(&plain, "c");
        assert_eq!(control.get("fetch.wait.max.ms"), Some("100"));
        let data = crate::from_start::unjoined_config(&plain, "c");
        assert_eq!(data.get("fetch.wait.max.ms"), Some("1"));
        let producer = producer_config(&plain, "p", &ProducerTuning::default());
        assert_eq!(producer.get("linger.ms"), Some("20"));

        let tuned = args(&[("fetch.wait.max.ms", "500"), ("linger.ms", "5")]);
        for config in [
            consumer_config(&tuned, "c", "g"),
            crate::from_start::control_config(&tuned, "c"),
            crate::from_start::unjoined_config(&tuned, "c"),
        ] {
            assert_eq!(config.get("fetch.wait.max.ms"), Some("500"));
        }
        let producer = producer_config(&tuned, "p", &ProducerTuning::default());
        assert_eq!(producer.get("linger.ms"), Some("5"));
    }

    /// Raises a fatal error in `producer` as librdkafka would.
    #[allow(unsafe_code)]
    fn inject_fatal(producer: &FutureProducer<VigilContext>) {
        let reason = std::ffi::CString::new("injected by a test").expect("no nul");
        // SAFETY: the client pointer is valid while `producer` lives, and
        // librdkafka copies the reason string.
        let code = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            )
        };
        assert_eq!(
            code,
            rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        );
    }
}
