//! Metrics of `vigil ingest`. No label carries a device id.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric ingest exports.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    /// MQTT telemetry messages received (including redeliveries).
    pub received: IntCounter,
    /// Records Kafka confirmed on `vigil.telemetry`.
    pub produced: IntCounter,
    /// Messages refused, by reason; each also went to the DLQ.
    pub rejected: IntCounterVec,
    /// DLQ records Kafka confirmed.
    pub dlq_produced: IntCounter,
    /// DLQ records Kafka refused for good; their messages are left
    /// unacknowledged (the broker keeps them) and this counter alerts.
    pub dlq_refused: IntCounter,
    /// Messages received and not yet acknowledged.
    pub in_flight: IntGauge,
    /// The configured bound of `in_flight`.
    pub in_flight_limit: IntGauge,
    /// Time from produce call to Kafka's confirmation.
    pub produce_latency: Histogram,
    /// First hop of a record: from its event time (`ts`) to ingest
    /// receiving it (`ingest_ts`). Includes the device's clock offset.
    pub event_to_ingest: Histogram,
    /// Produce attempts repeated after a failed delivery.
    pub produce_retries: IntCounter,
    /// MQTT connection losses.
    pub mqtt_disconnects: IntCounter,
    /// Times ingest stopped reading from the broker because it held as
    /// many messages as it may.
    pub mqtt_read_pauses: IntCounter,
    /// 1 while ingest is not reading from the broker.
    pub mqtt_read_paused: IntGauge,
    /// Departed replicas' sessions emptied and ended (`--adopt-session`).
    pub sessions_adopted: IntCounter,
    /// Adoptions that failed (the session was left as it was).
    pub session_adoptions_failed: IntCounter,
    /// Messages taken from adopted sessions (each also counted in
    /// `received`).
    pub adopted_messages: IntCounter,
}

impl IngestMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            received: IntCounter::new(
                "vigil_ingest_messages_received_total",
                "MQTT telemetry messages received",
            )?,
            produced: IntCounter::new(
                "vigil_ingest_messages_produced_total",
                "Telemetry records confirmed by Kafka",
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_ingest_messages_rejected_total",
                    "Messages refused and sent to the DLQ, by reason",
                ),
                &["reason"],
            )?,
            dlq_produced: IntCounter::new(
                "vigil_ingest_dlq_produced_total",
                "DLQ records confirmed by Kafka",
            )?,
            dlq_refused: IntCounter::new(
                "vigil_ingest_dlq_refused_total",
                "DLQ records Kafka refused for good (their messages are left unacknowledged)",
            )?,
            in_flight: IntGauge::new(
                "vigil_ingest_in_flight",
                "Messages received and not yet acknowledged",
            )?,
            in_flight_limit: IntGauge::new(
                "vigil_ingest_in_flight_limit",
                "Bound on messages received and not yet acknowledged",
            )?,
            produce_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_ingest_produce_latency_seconds",
                    "Time from produce to Kafka's confirmation",
                )
                .buckets(vigil_service::metrics::latency_buckets()),
            )?,
            event_to_ingest: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_ingest_event_to_ingest_seconds",
                    "Hop 1: record event time to ingest receiving it (ingest_ts - ts; device clock included)",
                )
                .buckets(vigil_service::metrics::latency_buckets()),
            )?,
            produce_retries: IntCounter::new(
                "vigil_ingest_produce_retries_total",
                "Produce attempts repeated after a failed delivery",
            )?,
            mqtt_disconnects: IntCounter::new(
                "vigil_ingest_mqtt_disconnects_total",
                "MQTT connection losses",
            )?,
            mqtt_read_pauses: IntCounter::new(
                "vigil_ingest_mqtt_read_pauses_total",
                "Times ingest stopped reading from the broker because it held as many messages as it may",
            )?,
            mqtt_read_paused: IntGauge::new(
                "vigil_ingest_mqtt_read_paused",
                "1 while ingest is not reading from the broker (saturated)",
            )?,
            sessions_adopted: IntCounter::new(
                "vigil_ingest_sessions_adopted_total",
                "Departed replicas' sessions emptied into Kafka and ended (--adopt-session)",
            )?,
            session_adoptions_failed: IntCounter::new(
                "vigil_ingest_session_adoptions_failed_total",
                "Session adoptions that failed (the session was left with the broker)",
            )?,
            adopted_messages: IntCounter::new(
                "vigil_ingest_adopted_messages_total",
                "Messages taken from adopted sessions",
            )?,
        };
        registry.register(Box::new(m.sessions_adopted.clone()))?;
        registry.register(Box::new(m.session_adoptions_failed.clone()))?;
        registry.register(Box::new(m.adopted_messages.clone()))?;
        registry.register(Box::new(m.mqtt_read_pauses.clone()))?;
        registry.register(Box::new(m.mqtt_read_paused.clone()))?;
        registry.register(Box::new(m.received.clone()))?;
        registry.register(Box::new(m.produced.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.dlq_produced.clone()))?;
        registry.register(Box::new(m.dlq_refused.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.in_flight_limit.clone()))?;
        registry.register(Box::new(m.produce_latency.clone()))?;
        registry.register(Box::new(m.event_to_ingest.clone()))?;
        registry.register(Box::new(m.produce_retries.clone()))?;
        registry.register(Box::new(m.mqtt_disconnects.clone()))?;
        Ok(m)
    }

    /// The handles the MQTT subscription reports to.
    pub fn subscription(&self) -> vigil_service::subscription::SubscriptionMetrics {
        vigil_service::subscription::SubscriptionMetrics {
            disconnects: self.mqtt_disconnects.clone(),
            pauses: self.mqtt_read_pauses.clone(),
            paused: self.mqtt_read_paused.clone(),
        }
    }
}
