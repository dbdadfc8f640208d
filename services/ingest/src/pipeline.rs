//! The ingest run loop.
//!
//! Two tasks, joined by a bounded channel:
//!
//! 1. The MQTT task polls rumqttc's event loop (keep-alives, reconnects,
//!    re-subscribing after a session loss) and forwards each PUBLISH.
//! 2. The pipeline task validates each message in arrival order, hands the
//!    record to librdkafka at once (so Kafka sees a device's records in the
//!    order they arrived), and keeps the delivery in a FIFO window. When the
//!    oldest delivery completes, its MQTT message is acknowledged; PUBACKs
//!    therefore leave in arrival order, as MQTT requires.
//!
//! The window is bounded by `--max-in-flight`, which is also the MQTT 5
//! receive maximum announced to the broker: when Kafka stalls, deliveries
//! stop completing, the window fills, the subscription stops reading from
//! the broker (see [`vigil_service::subscription`]), and nothing grows.
//! When Kafka returns, librdkafka (which retries without a message timeout)
//! completes the deliveries and the flow resumes by itself.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::producer::FutureProducer;
use rumqttc::v5::mqttbytes::v5::Publish;
use vigil_schemas::{Message, MqttTopics, TelemetryLimits};
use vigil_service::bridge::{Counters, Delivery, Destination, Forward};
use vigil_service::dlq::Rejection;
use vigil_service::kafka::{self, VigilContext};
use vigil_service::now_ms;

use crate::config::IngestArgs;
use crate::metrics::IngestMetrics;
use crate::validate::validate;

/// Biggest MQTT packet this client accepts: comfortably above the payload
/// limit so oversized payloads reach validation (and the DLQ) instead of
/// breaking the connection.
pub(crate) fn max_packet_size(max_payload_bytes: usize) -> u32 {
    let wanted = max_payload_bytes.saturating_mul(2).max(1024 * 1024);
    u32::try_from(wanted).unwrap_or(u32::MAX)
}

/// Ingest's handling of one telemetry message.
pub(crate) struct Pipeline {
    producer: FutureProducer<VigilContext>,
    counters: Counters,
    pub(crate) metrics: IngestMetrics,
    pub(crate) mqtt_topics: MqttTopics,
    limits: TelemetryLimits,
    telemetry_topic: Arc<str>,
    dlq_topic: Arc<str>,
}

impl Forward for Pipeline {
    const SERVICE: &'static str = "ingest";

    /// Validates `publish` and hands its record (or DLQ record) to Kafka.
    fn start(&self, publish: Publish) -> Delivery {
        self.metrics.received.inc();
        let now = now_ms();
        let topic = std::str::from_utf8(&publish.topic).unwrap_or("");
        match validate(
            &self.mqtt_topics,
            topic,
            &publish.payload,
            now,
            &self.limits,
        ) {
            Ok(mut telemetry) => {
                telemetry.ingest_ts = Some(now);
                if now >= telemetry.ts {
                    self.metrics
                        .event_to_ingest
                        .observe((now - telemetry.ts) as f64 / 1000.0);
                }
                match telemetry.encode() {
                    Ok(bytes) => {
                        let key = telemetry.device_id;
                        self.deliver(
                            publish,
                            Destination::Record,
                            self.telemetry_topic.clone(),
                            key,
                            bytes,
                        )
                    }
                    Err(e) => self.reject(publish, Rejection::new("encode_failed", e.to_string())),
                }
            }
            Err(rejection) => self.reject(publish, rejection),
        }
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn count_rejection(&self, reason: &'static str) {
        self.metrics.rejected.with_label_values(&[reason]).inc();
    }

    fn send_dlq(&self, publish: Publish, key: String, payload: Vec<u8>) -> Delivery {
        let topic = self.dlq_topic.clone();
        self.deliver(publish, Destination::Dlq, topic, key, payload)
    }
}

impl Pipeline {
    pub(crate) fn new(
        args: &IngestArgs,
        producer: FutureProducer<VigilContext>,
        metrics: IngestMetrics,
    ) -> Self {
        let kafka_topics = args.kafka.topics();
        Self {
            producer,
            counters: Counters {
                confirmed: metrics.produced.clone(),
                dlq_confirmed: metrics.dlq_produced.clone(),
                dlq_refused: metrics.dlq_refused.clone(),
                in_flight: metrics.in_flight.clone(),
            },
            metrics,
            mqtt_topics: args.mqtt.topics(),
            limits: args.limits(),
            telemetry_topic: Arc::from(kafka_topics.telemetry.as_str()),
            dlq_topic: Arc::from(kafka_topics.dlq.as_str()),
        }
    }

    /// Enqueues the record now (keeping arrival order in Kafka) and returns
    /// the future of its confirmed delivery, retrying retriable failures.
    fn deliver(
        &self,
        publish: Publish,
        dest: Destination,
        topic: Arc<str>,
        key: String,
        payload: Vec<u8>,
    ) -> Delivery {
        let started = Instant::now();
        let sent = kafka::send_retrying(
            &self.producer,
            topic,
            key,
            payload.into(),
            kafka::RetryPolicy::Retriable,
            self.metrics.produce_retries.clone(),
        );
        let latency = self.metrics.produce_latency.clone();
        Box::pin(async move {
            let result = sent.await;
            if result.is_ok() {
                latency.observe(started.elapsed().as_secs_f64());
            }
            (publish, dest, result)
        })
    }
}
