//! The status bridge: device statuses from MQTT to `vigil.device-status`.
//!
//! ```text
//! vigil-edge ──retained QoS1──► broker ──$share/<group>/vigil/devices/+/status──► bridge
//!                                                                                 │ validate
//!                      PUBACK only after Kafka confirmed ◄────────────────────────┤
//!                                    vigil.device-status ◄────────────────────────┤ valid: original bytes, key=device_id
//!                                                                                 │ empty: tombstone, key=device_id
//!                                               vigil.dlq ◄───────────────────────┘ invalid, key=source
//! ```
//!
//! The same shape as `vigil ingest`: an MQTT task that keeps polling the
//! event loop (keep-alives, PUBACKs) and forwards each PUBLISH; a pipeline
//! that validates in arrival order, hands the record to Kafka at once and
//! acknowledges each message, in arrival order, once Kafka confirmed it.
//! The MQTT side is [`vigil_service::subscription`]: a persistent session,
//! at most `--max-in-flight` messages held per stage, reads paused (never
//! dropped) while the pipeline is full.
//!
//! The valid status is forwarded as the device sent it (fields a newer
//! agent adds survive). Statuses of one device normally reach one replica
//! in turn; with several replicas two consecutive statuses of a device can
//! be bridged by different replicas, and the later Kafka write wins. Agents
//! refresh their status periodically, which corrects such a swap.
//!
//! MQTT 5 does not send retained messages to a *shared* subscription, so a
//! bridge that starts after a device published sees that device at its
//! next status refresh (`vigil-edge --status-interval-ms`, 30 s by
//! default) or reconnect; until then it is absent from the rollout view.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rumqttc::v5::mqttbytes::v5::Publish;
use vigil_schemas::MqttTopics;
use vigil_service::bridge::{Counters, Delivery, Destination, Forward};
use vigil_service::kafka::{self, VigilContext};

use crate::metrics::PushMetrics;
use crate::validate::{validate, Accepted};

/// Longest pause between two attempts to write a tombstone.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The status bridge's handling of one status message.
pub(crate) struct Pipeline {
    pub producer: FutureProducer<VigilContext>,
    pub counters: Counters,
    pub metrics: PushMetrics,
    pub topics: MqttTopics,
    pub max_status_bytes: usize,
    pub status_topic: Arc<str>,
    pub dlq_topic: Arc<str>,
}

impl Forward for Pipeline {
    const SERVICE: &'static str = "push";

    fn start(&self, publish: Publish) -> Delivery {
        self.metrics.statuses_received.inc();
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        match validate(
            &self.topics,
            &topic,
            &publish.payload,
            self.max_status_bytes,
        ) {
            Ok(Accepted::Status(status)) => {
                let payload: Arc<[u8]> = Arc::from(&publish.payload[..]);
                self.deliver(
                    publish,
                    Destination::Record,
                    status.device_id,
                    Some(payload),
                )
            }
            Ok(Accepted::Cleared { device_id }) => {
                tracing::info!(device = %device_id, "device status cleared on the broker; writing a tombstone");
                self.deliver(publish, Destination::Record, device_id, None)
            }
            Err(rejection) => self.reject(publish, rejection),
        }
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn count_rejection(&self, reason: &'static str) {
        self.metrics
            .statuses_rejected
            .with_label_values(&[reason])
            .inc();
    }

    fn send_dlq(&self, publish: Publish, key: String, payload: Vec<u8>) -> Delivery {
        self.deliver(publish, Destination::Dlq, key, Some(Arc::from(payload)))
    }
}

impl Pipeline {
    /// Enqueues the record now (so Kafka keeps arrival order) and returns
    /// the future of its confirmed delivery.
    fn deliver(
        &self,
        publish: Publish,
        dest: Destination,
        key: String,
        payload: Option<Arc<[u8]>>,
    ) -> Delivery {
        let topic = match dest {
            Destination::Record => self.status_topic.clone(),
            Destination::Dlq => self.dlq_topic.clone(),
        };
        let started = Instant::now();
        let latency = self.metrics.produce_latency.clone();
        let retries = self.metrics.produce_retries.clone();
        let sent: Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send>> = match payload {
            Some(payload) => Box::pin(kafka::send_retrying(
                &self.producer,
                topic,
                key,
                payload,
                kafka::RetryPolicy::Retriable,
                retries,
            )),
            None => Box::pin(send_tombstone(self.producer.clone(), topic, key, retries)),
        };
        Box::pin(async move {
            let result = sent.await;
            if result.is_ok() {
                latency.observe(started.elapsed().as_secs_f64());
            }
            (publish, dest, result)
        })
    }
}

/// Writes a tombstone (no value) for `key`, retrying retriable failures.
async fn send_tombstone(
    producer: FutureProducer<VigilContext>,
    topic: Arc<str>,
    key: String,
    retries: prometheus::IntCounter,
) -> Result<(), KafkaError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let record: FutureRecord<'_, String, [u8]> = FutureRecord::to(&topic).key(&key);
        let error = match producer.send_result(record) {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err((e, _))) => e,
                Err(_) => KafkaError::Canceled,
            },
            Err((e, _)) => e,
        };
        if !kafka::is_retriable(&error) {
            return Err(error);
        }
        retries.inc();
        tracing::warn!(%error, topic = %topic, "tombstone delivery failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Hands a record to Kafka now (so Kafka keeps arrival order) and returns
/// the future of its confirmed delivery, timed into
/// `produce_latency` and retried as every push bridge does.
pub(crate) fn send_timed(
    producer: &FutureProducer<VigilContext>,
    metrics: &PushMetrics,
    topic: Arc<str>,
    key: String,
    payload: Arc<[u8]>,
) -> impl Future<Output = Result<(), KafkaError>> + Send + 'static {
    let started = Instant::now();
    let sent = kafka::send_retrying(
        producer,
        topic,
        key,
        payload,
        kafka::RetryPolicy::Retriable,
        metrics.produce_retries.clone(),
    );
    let latency = metrics.produce_latency.clone();
    async move {
        let result = sent.await;
        if result.is_ok() {
            latency.observe(started.elapsed().as_secs_f64());
        }
        result
    }
}
