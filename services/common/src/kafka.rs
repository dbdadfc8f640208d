//! Kafka clients built the same way by every service.
//!
//! Producers are idempotent with `acks=all`; consumers commit manually.
//! Options the operator passes with `--kafka-option` go through unchanged
//! (security settings), applied last so they win. Connection state feeds
//! [`Readiness`] under the name `kafka`.

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

/// Base configuration: brokers, client id, then the pass-through options.
pub fn client_config(args: &KafkaArgs, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.kafka_brokers)
        .set("client.id", client_id)
        .set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in &args.kafka_options {
        config.set(key, value);
        if key == "debug" {
            // librdkafka's debug contexts log at debug level; let them through.
            config.set_log_level(RDKafkaLogLevel::Debug);
        }
    }
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
            linger_ms: 5,
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
    for (key, value) in &args.kafka_options {
        config.set(key, value);
    }
    config
}

/// A manually committing consumer configuration in `group_id`.
pub fn consumer_config(args: &KafkaArgs, client_id: &str, group_id: &str) -> ClientConfig {
    let mut config = client_config(args, client_id);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    for (key, value) in &args.kafka_options {
        config.set(key, value);
    }
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
            let probe = client.clone();
            let up = tokio::task::spawn_blocking(move || probe.brokers_reachable())
                .await
                .unwrap_or(false);
            readiness.set(DEPENDENCY, up);
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
}

impl<C: ClientContext + 'static> MetadataProbe for rdkafka::producer::FutureProducer<C> {
    fn brokers_reachable(&self) -> bool {
        use rdkafka::producer::Producer as _;
        self.client()
            .fetch_metadata(None, Timeout::After(Duration::from_secs(5)))
            .map(|m| !m.brokers().is_empty())
            .unwrap_or(false)
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
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopic
        ),
        None => true,
    }
}
