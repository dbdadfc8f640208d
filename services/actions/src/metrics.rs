//! Metrics of `vigil actions`. No label carries a device id.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the role exports.
#[derive(Debug, Clone)]
pub struct ActionsMetrics {
    /// Verdicts consumed, by topic kind (anomalies, verdicts).
    pub consumed: IntCounterVec,
    /// Records refused (undecodable, invalid), by reason; each also goes
    /// to the DLQ.
    pub rejected: IntCounterVec,
    /// Incident events written, by state.
    pub events: IntCounterVec,
    /// Incident events read back at start-up.
    pub recovered: IntCounter,
    /// Open incidents held.
    pub open: IntGauge,
    /// Actions by kind (command, webhook) and final status (sent,
    /// delivered, failed, dead_lettered) or the status they were recorded
    /// with when not sent (suppressed, cooldown, rate_limited).
    pub actions: IntCounterVec,
    /// Webhook attempts, by result (ok, failed).
    pub webhook_attempts: IntCounterVec,
    /// Rules file reloads, by outcome (ok, refused).
    pub reloads: IntCounterVec,
    /// Retried Kafka deliveries.
    pub kafka_retries: IntCounter,
    /// Command results read from vigil.command-results, by what became of
    /// them: the outcome joined (ok, failed, refused), `duplicate`
    /// (already recorded), or why it was not joined.
    pub results: IntCounterVec,
}

impl ActionsMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            consumed: IntCounterVec::new(
                Opts::new(
                    "vigil_actions_records_consumed_total",
                    "Verdicts consumed, by topic kind",
                ),
                &["topic"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_actions_records_rejected_total",
                    "Records refused and sent to the DLQ, by reason",
                ),
                &["reason"],
            )?,
            events: IntCounterVec::new(
                Opts::new(
                    "vigil_actions_incident_events_total",
                    "Incident events written, by state",
                ),
                &["state"],
            )?,
            recovered: IntCounter::new(
                "vigil_actions_incident_events_recovered_total",
                "Incident events read back from vigil.incidents at start-up",
            )?,
            open: IntGauge::new("vigil_actions_open_incidents", "Open incidents held")?,
            actions: IntCounterVec::new(
                Opts::new("vigil_actions_actions_total", "Actions by kind and status"),
                &["kind", "status"],
            )?,
            webhook_attempts: IntCounterVec::new(
                Opts::new(
                    "vigil_actions_webhook_attempts_total",
                    "Webhook attempts, by result",
                ),
                &["result"],
            )?,
            reloads: IntCounterVec::new(
                Opts::new(
                    "vigil_actions_rules_reloads_total",
                    "Rules file reloads, by outcome",
                ),
                &["outcome"],
            )?,
            kafka_retries: IntCounter::new(
                "vigil_actions_kafka_retries_total",
                "Retried Kafka deliveries",
            )?,
            results: IntCounterVec::new(
                Opts::new(
                    "vigil_actions_command_results_total",
                    "Command results read, by what became of them (ok, failed, refused, duplicate, or why not joined)",
                ),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(m.consumed.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.recovered.clone()))?;
        registry.register(Box::new(m.open.clone()))?;
        registry.register(Box::new(m.actions.clone()))?;
        registry.register(Box::new(m.webhook_attempts.clone()))?;
        registry.register(Box::new(m.reloads.clone()))?;
        registry.register(Box::new(m.kafka_retries.clone()))?;
        registry.register(Box::new(m.results.clone()))?;
        Ok(m)
    }
}
