//! Metrics of `vigil push`. Labels name models, versions and reasons,
//! never a device id.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric push exports.
#[derive(Debug, Clone)]
pub struct PushMetrics {
    /// Releases published retained on MQTT and acknowledged by the broker,
    /// by model.
    pub releases_mirrored: IntCounterVec,
    /// Releases read from vigil.models and not mirrored, by reason.
    pub releases_rejected: IntCounterVec,
    /// Newest verified version in vigil.models, by model.
    pub live_version: IntGaugeVec,
    /// Verified version retained on the broker, by model (0: none).
    pub retained_version: IntGaugeVec,
    /// Status messages received over MQTT (including redeliveries).
    pub statuses_received: IntCounter,
    /// Statuses Kafka confirmed on vigil.device-status.
    pub statuses_bridged: IntCounter,
    /// Status messages refused, by reason; each also went to the DLQ.
    pub statuses_rejected: IntCounterVec,
    /// DLQ records Kafka confirmed.
    pub dlq_produced: IntCounter,
    /// DLQ records Kafka refused for good; their messages are left
    /// unacknowledged (the broker keeps them) and this counter alerts.
    pub dlq_refused: IntCounter,
    /// Status messages received and not yet acknowledged.
    pub in_flight: IntGauge,
    /// Times the status bridge stopped reading from the broker because it
    /// held as many messages as it may.
    pub read_pauses: IntCounter,
    /// 1 while the status bridge is not reading from the broker.
    pub read_paused: IntGauge,
    /// Produce attempts repeated after a failed delivery.
    pub produce_retries: IntCounter,
    /// Time from produce call to Kafka's confirmation.
    pub produce_latency: Histogram,
    /// MQTT connection losses, by connection (`bridge`, `models`).
    pub mqtt_disconnects: IntCounterVec,
    /// Devices in the rollout view, by model and running version
    /// (`none` before a device's first release).
    pub devices: IntGaugeVec,
    /// Devices running an older version than the live one, by model.
    pub devices_stale: IntGaugeVec,
    /// Devices offline or silent for longer than --offline-after-ms, by
    /// model.
    pub devices_offline: IntGaugeVec,
    /// Devices dropped from the rollout view because it was full.
    pub devices_evicted: IntCounter,
    /// Records of vigil.device-status the rollout view could not read.
    pub view_invalid: IntCounter,
}

impl PushMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            releases_mirrored: IntCounterVec::new(
                Opts::new(
                    "vigil_push_releases_mirrored_total",
                    "Releases published retained on MQTT and acknowledged by the broker",
                ),
                &["model"],
            )?,
            releases_rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_push_releases_rejected_total",
                    "Releases read from the model log and not mirrored, by reason",
                ),
                &["reason"],
            )?,
            live_version: IntGaugeVec::new(
                Opts::new(
                    "vigil_push_live_version",
                    "Newest verified release version in the model log",
                ),
                &["model"],
            )?,
            retained_version: IntGaugeVec::new(
                Opts::new(
                    "vigil_push_retained_version",
                    "Verified release version retained on the MQTT broker (0: none)",
                ),
                &["model"],
            )?,
            statuses_received: IntCounter::new(
                "vigil_push_statuses_received_total",
                "Device status messages received over MQTT",
            )?,
            statuses_bridged: IntCounter::new(
                "vigil_push_statuses_bridged_total",
                "Device statuses confirmed by Kafka on the device-status topic",
            )?,
            statuses_rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_push_statuses_rejected_total",
                    "Status messages refused and sent to the DLQ, by reason",
                ),
                &["reason"],
            )?,
            dlq_produced: IntCounter::new(
                "vigil_push_dlq_produced_total",
                "DLQ records confirmed by Kafka",
            )?,
            dlq_refused: IntCounter::new(
                "vigil_push_dlq_refused_total",
                "DLQ records Kafka refused for good (their messages are left unacknowledged)",
            )?,
            in_flight: IntGauge::new(
                "vigil_push_statuses_in_flight",
                "Status messages received and not yet acknowledged",
            )?,
            read_pauses: IntCounter::new(
                "vigil_push_status_read_pauses_total",
                "Times the status bridge stopped reading from the broker because it held as many messages as it may",
            )?,
            read_paused: IntGauge::new(
                "vigil_push_status_read_paused",
                "1 while the status bridge is not reading from the broker (saturated)",
            )?,
            produce_retries: IntCounter::new(
                "vigil_push_produce_retries_total",
                "Produce attempts repeated after a failed delivery",
            )?,
            produce_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_push_produce_latency_seconds",
                    "Time from produce to Kafka's confirmation",
                )
                .buckets(vigil_service::metrics::latency_buckets()),
            )?,
            mqtt_disconnects: IntCounterVec::new(
                Opts::new(
                    "vigil_push_mqtt_disconnects_total",
                    "MQTT connection losses, by connection",
                ),
                &["connection"],
            )?,
            devices: IntGaugeVec::new(
                Opts::new(
                    "vigil_push_devices",
                    "Devices in the rollout view, by model and running version",
                ),
                &["model", "version"],
            )?,
            devices_stale: IntGaugeVec::new(
                Opts::new(
                    "vigil_push_devices_stale",
                    "Devices running an older version than the live one",
                ),
                &["model"],
            )?,
            devices_offline: IntGaugeVec::new(
                Opts::new(
                    "vigil_push_devices_offline",
                    "Devices reported offline or silent for longer than --offline-after-ms",
                ),
                &["model"],
            )?,
            devices_evicted: IntCounter::new(
                "vigil_push_devices_evicted_total",
                "Devices dropped from the rollout view because it was full",
            )?,
            view_invalid: IntCounter::new(
                "vigil_push_view_invalid_records_total",
                "Records of the device-status topic the rollout view could not read",
            )?,
        };
        registry.register(Box::new(m.releases_mirrored.clone()))?;
        registry.register(Box::new(m.releases_rejected.clone()))?;
        registry.register(Box::new(m.live_version.clone()))?;
        registry.register(Box::new(m.retained_version.clone()))?;
        registry.register(Box::new(m.statuses_received.clone()))?;
        registry.register(Box::new(m.statuses_bridged.clone()))?;
        registry.register(Box::new(m.statuses_rejected.clone()))?;
        registry.register(Box::new(m.dlq_produced.clone()))?;
        registry.register(Box::new(m.dlq_refused.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.read_pauses.clone()))?;
        registry.register(Box::new(m.read_paused.clone()))?;
        registry.register(Box::new(m.produce_retries.clone()))?;
        registry.register(Box::new(m.produce_latency.clone()))?;
        registry.register(Box::new(m.mqtt_disconnects.clone()))?;
        registry.register(Box::new(m.devices.clone()))?;
        registry.register(Box::new(m.devices_stale.clone()))?;
        registry.register(Box::new(m.devices_offline.clone()))?;
        registry.register(Box::new(m.devices_evicted.clone()))?;
        registry.register(Box::new(m.view_invalid.clone()))?;
        Ok(m)
    }

    /// The handles the status bridge's MQTT subscription reports to.
    pub fn subscription(&self) -> vigil_service::subscription::SubscriptionMetrics {
        vigil_service::subscription::SubscriptionMetrics {
            disconnects: self.mqtt_disconnects.with_label_values(&["bridge"]),
            pauses: self.read_pauses.clone(),
            paused: self.read_paused.clone(),
        }
    }
}

/// Metrics of the edge-verdict bridge (see [`crate::verdicts`]).
#[derive(Debug, Clone)]
pub struct VerdictMetrics {
    /// Edge verdict messages received over MQTT (including redeliveries).
    pub received: IntCounter,
    /// Edge verdicts Kafka confirmed on vigil.verdicts (and, when
    /// anomalous, on vigil.anomalies).
    pub bridged: IntCounter,
    /// Of those, anomalous ones (also on vigil.anomalies).
    pub anomalies: IntCounter,
    /// Edge verdicts refused, by reason; each also went to the DLQ.
    pub rejected: IntCounterVec,
    /// Verdicts naming a version newer than any read yet, held until the
    /// model log brought it or `--release-wait-ms` passed.
    pub release_waits: IntCounter,
    /// Verdict messages received and not yet acknowledged.
    pub in_flight: IntGauge,
    /// Times the verdict bridge stopped reading from the broker.
    pub read_pauses: IntCounter,
    /// 1 while the verdict bridge is not reading from the broker.
    pub read_paused: IntGauge,
}

impl VerdictMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            received: IntCounter::new(
                "vigil_push_edge_verdicts_received_total",
                "Edge verdict messages received over MQTT",
            )?,
            bridged: IntCounter::new(
                "vigil_push_edge_verdicts_bridged_total",
                "Edge verdicts confirmed by Kafka on the verdicts topic (anomalous ones also on the anomalies topic)",
            )?,
            anomalies: IntCounter::new(
                "vigil_push_edge_anomalies_bridged_total",
                "Anomalous edge verdicts confirmed by Kafka on the anomalies topic",
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_push_edge_verdicts_rejected_total",
                    "Edge verdicts refused and sent to the DLQ, by reason",
                ),
                &["reason"],
            )?,
            release_waits: IntCounter::new(
                "vigil_push_edge_verdict_release_waits_total",
                "Edge verdicts held until the model log brought the version they name",
            )?,
            in_flight: IntGauge::new(
                "vigil_push_edge_verdicts_in_flight",
                "Edge verdict messages received and not yet acknowledged",
            )?,
            read_pauses: IntCounter::new(
                "vigil_push_verdict_read_pauses_total",
                "Times the verdict bridge stopped reading from the broker because it held as many messages as it may",
            )?,
            read_paused: IntGauge::new(
                "vigil_push_verdict_read_paused",
                "1 while the verdict bridge is not reading from the broker (saturated)",
            )?,
        };
        registry.register(Box::new(m.received.clone()))?;
        registry.register(Box::new(m.bridged.clone()))?;
        registry.register(Box::new(m.anomalies.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.release_waits.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.read_pauses.clone()))?;
        registry.register(Box::new(m.read_paused.clone()))?;
        Ok(m)
    }
}

/// Metrics of the command-result bridge (see [`crate::results`]).
#[derive(Debug, Clone)]
pub struct ResultMetrics {
    /// Command results received over MQTT (including redeliveries).
    pub received: IntCounter,
    /// Command results Kafka confirmed on vigil.command-results.
    pub bridged: IntCounter,
    /// Command results refused, by reason; each also went to the DLQ.
    pub rejected: IntCounterVec,
    /// Result messages received and not yet acknowledged.
    pub in_flight: IntGauge,
    /// Times the result bridge stopped reading from the broker.
    pub read_pauses: IntCounter,
    /// 1 while the result bridge is not reading from the broker.
    pub read_paused: IntGauge,
}

impl ResultMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            received: IntCounter::new(
                "vigil_push_command_results_received_total",
                "Command results received over MQTT",
            )?,
            bridged: IntCounter::new(
                "vigil_push_command_results_bridged_total",
                "Command results confirmed by Kafka on the command-results topic",
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_push_command_results_rejected_total",
                    "Command results refused and sent to the DLQ, by reason",
                ),
                &["reason"],
            )?,
            in_flight: IntGauge::new(
                "vigil_push_command_results_in_flight",
                "Command result messages received and not yet acknowledged",
            )?,
            read_pauses: IntCounter::new(
                "vigil_push_result_read_pauses_total",
                "Times the result bridge stopped reading from the broker because it held as many messages as it may",
            )?,
            read_paused: IntGauge::new(
                "vigil_push_result_read_paused",
                "1 while the result bridge is not reading from the broker (saturated)",
            )?,
        };
        registry.register(Box::new(m.received.clone()))?;
        registry.register(Box::new(m.bridged.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.read_pauses.clone()))?;
        registry.register(Box::new(m.read_paused.clone()))?;
        Ok(m)
    }
}
