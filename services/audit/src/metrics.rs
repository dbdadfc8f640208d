//! Metrics of `vigil audit`. No label carries a device id.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the audit sink and API export.
#[derive(Debug, Clone)]
pub struct AuditMetrics {
    /// Kafka records consumed, by topic kind (verdicts, anomalies, models,
    /// incidents).
    pub consumed: IntCounterVec,
    /// Rows handed to the store in confirmed writes, by kind (verdict,
    /// release, incident). Replays count again: the store dedups them.
    pub written: IntCounterVec,
    /// Store writes (batches) confirmed.
    pub batches: IntCounter,
    /// Time of one confirmed store write, including retries.
    pub batch_latency: Histogram,
    /// Records per confirmed store write.
    pub batch_records: Histogram,
    /// Failed store write attempts (each retried).
    pub store_errors: IntCounter,
    /// Records sent to the DLQ, by reason.
    pub dlq: IntCounterVec,
    /// Records the store can never hold (a value out of its range, a row
    /// it refuses), by reason; each also goes to the DLQ.
    pub store_refused: IntCounterVec,
    /// Verdicts left out because their key holds a different record (same
    /// device, seq, model, version and place; another event time), each
    /// also logged.
    pub conflicts: IntCounter,
    /// Consumer lag summed over assigned partitions, records (from
    /// librdkafka's statistics).
    pub lag: IntGauge,
    /// Offset commits requested after a durable write.
    pub commits: IntCounter,
    /// Query API requests, by route and status class.
    pub api_requests: IntCounterVec,
}

impl AuditMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            consumed: IntCounterVec::new(
                Opts::new(
                    "vigil_audit_records_consumed_total",
                    "Kafka records consumed, by topic kind",
                ),
                &["topic"],
            )?,
            written: IntCounterVec::new(
                Opts::new(
                    "vigil_audit_rows_written_total",
                    "Rows in confirmed store writes, by kind (replays included)",
                ),
                &["kind"],
            )?,
            batches: IntCounter::new(
                "vigil_audit_batches_written_total",
                "Store writes confirmed",
            )?,
            batch_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_audit_batch_write_seconds",
                    "Time of one confirmed store write, retries included",
                )
                .buckets(vigil_service::metrics::latency_buckets()),
            )?,
            batch_records: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_audit_batch_records",
                    "Kafka records per confirmed store write",
                )
                .buckets(vec![
                    1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 50_000.0,
                ]),
            )?,
            store_errors: IntCounter::new(
                "vigil_audit_store_errors_total",
                "Failed store write attempts (each retried)",
            )?,
            dlq: IntCounterVec::new(
                Opts::new(
                    "vigil_audit_dlq_total",
                    "Records sent to the DLQ, by reason",
                ),
                &["reason"],
            )?,
            store_refused: IntCounterVec::new(
                Opts::new(
                    "vigil_audit_store_refused_total",
                    "Records the store can never hold, by reason (each also sent to the DLQ)",
                ),
                &["reason"],
            )?,
            conflicts: IntCounter::new(
                "vigil_audit_conflicts_total",
                "Verdicts not written because their key holds a different record (a reused seq)",
            )?,
            lag: IntGauge::new(
                "vigil_audit_consumer_lag",
                "Consumer lag summed over assigned partitions, records",
            )?,
            commits: IntCounter::new(
                "vigil_audit_offset_commits_total",
                "Offset commits requested after a durable write",
            )?,
            api_requests: IntCounterVec::new(
                Opts::new(
                    "vigil_audit_api_requests_total",
                    "Query API requests, by route and status class",
                ),
                &["route", "status"],
            )?,
        };
        registry.register(Box::new(m.consumed.clone()))?;
        registry.register(Box::new(m.written.clone()))?;
        registry.register(Box::new(m.batches.clone()))?;
        registry.register(Box::new(m.batch_latency.clone()))?;
        registry.register(Box::new(m.batch_records.clone()))?;
        registry.register(Box::new(m.store_errors.clone()))?;
        registry.register(Box::new(m.dlq.clone()))?;
        registry.register(Box::new(m.store_refused.clone()))?;
        registry.register(Box::new(m.conflicts.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.commits.clone()))?;
        registry.register(Box::new(m.api_requests.clone()))?;
        Ok(m)
    }
}
