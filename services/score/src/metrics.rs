//! Metrics of `vigil score`. No label carries a device id.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// One record in this many is timed for the scoring-latency histogram.
pub const LATENCY_SAMPLE: u64 = 16;

/// Devices whose state is measured for the state-bytes gauge on each
/// store tick (a fixed cost, however many devices a scorer holds).
pub const STATE_SAMPLE: usize = 256;

/// Every metric the scorer exports.
#[derive(Debug, Clone)]
pub struct ScoreMetrics {
    /// Live model version, by model name.
    pub model_version: IntGaugeVec,
    /// Releases read from vigil.models, by outcome (`accepted` or the
    /// refusal reason).
    pub releases: IntCounterVec,
    /// Records scored by a model.
    pub scored: IntCounter,
    /// Records answered unscored (no model yet).
    pub unscored: IntCounter,
    /// Verdicts with anomaly = true.
    pub anomalies: IntCounter,
    /// Records that were not valid telemetry, by reason (sent to the DLQ).
    pub rejected: IntCounterVec,
    /// Records whose verdict (and anomaly, or DLQ record) Kafka confirmed.
    pub produced: IntCounter,
    /// Produce attempts repeated after a failed delivery.
    pub produce_retries: IntCounter,
    /// Records read and not yet confirmed.
    pub in_flight: IntGauge,
    /// Time to decode, score and encode one record (sampled: one record
    /// in [`crate::metrics::LATENCY_SAMPLE`], to keep clock reads off the
    /// hot path; the distribution is the same).
    pub scoring_latency: Histogram,
    /// From the record's event time to its verdict.
    pub end_to_end_latency: Histogram,
    /// Hop 2: from ingest receiving the record (`ingest_ts`) to its
    /// verdict (`scored_ts`): Kafka produce, fetch and scoring.
    pub ingest_to_scored: Histogram,
    /// Consumer lag, by partition of vigil.telemetry.
    pub lag: IntGaugeVec,
    /// Records replayed to rebuild per-device state.
    pub replayed: IntCounter,
    /// Devices with state.
    pub devices: IntGauge,
    /// Estimated bytes of their state (sampled, [`STATE_SAMPLE`] devices).
    pub state_bytes: IntGauge,
    /// Synchronous score requests, by outcome.
    pub api_requests: IntCounterVec,
}

impl ScoreMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            model_version: IntGaugeVec::new(
                Opts::new("vigil_score_model_version", "Live model version"),
                &["model"],
            )?,
            releases: IntCounterVec::new(
                Opts::new(
                    "vigil_score_releases_total",
                    "Model releases read, by outcome (accepted or why refused)",
                ),
                &["outcome"],
            )?,
            scored: IntCounter::new("vigil_score_records_scored_total", "Records scored")?,
            unscored: IntCounter::new(
                "vigil_score_records_unscored_total",
                "Records answered unscored because no model was live",
            )?,
            anomalies: IntCounter::new("vigil_score_anomalies_total", "Anomalous verdicts")?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "vigil_score_records_rejected_total",
                    "Records that were not valid telemetry, by reason",
                ),
                &["reason"],
            )?,
            produced: IntCounter::new(
                "vigil_score_verdicts_produced_total",
                "Records whose verdict (or DLQ record) Kafka confirmed",
            )?,
            produce_retries: IntCounter::new(
                "vigil_score_produce_retries_total",
                "Produce attempts repeated after a failed delivery",
            )?,
            in_flight: IntGauge::new(
                "vigil_score_in_flight",
                "Records read whose verdicts are not yet confirmed",
            )?,
            scoring_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_score_scoring_latency_seconds",
                    "Time to decode, score and encode one record (one record in 16 sampled)",
                )
                .buckets(vec![
                    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2,
                ]),
            )?,
            end_to_end_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_score_end_to_end_latency_seconds",
                    "From a record's event time to its verdict",
                )
                .buckets(vigil_service::metrics::latency_buckets()),
            )?,
            ingest_to_scored: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_score_ingest_to_scored_seconds",
                    "Hop 2: ingest receiving a record to its verdict (scored_ts - ingest_ts)",
                )
                .buckets(vigil_service::metrics::latency_buckets()),
            )?,
            lag: IntGaugeVec::new(
                Opts::new(
                    "vigil_score_consumer_lag",
                    "Records behind the end of each assigned partition",
                ),
                &["partition"],
            )?,
            replayed: IntCounter::new(
                "vigil_score_state_replayed_records_total",
                "Records replayed to rebuild per-device state",
            )?,
            devices: IntGauge::new("vigil_score_devices", "Devices with state")?,
            state_bytes: IntGauge::new(
                "vigil_score_device_state_bytes",
                "Estimated bytes of per-device state (mean of a sample of devices times the devices)",
            )?,
            api_requests: IntCounterVec::new(
                Opts::new(
                    "vigil_score_api_requests_total",
                    "POST /v1/score requests, by outcome",
                ),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(m.model_version.clone()))?;
        registry.register(Box::new(m.releases.clone()))?;
        registry.register(Box::new(m.scored.clone()))?;
        registry.register(Box::new(m.unscored.clone()))?;
        registry.register(Box::new(m.anomalies.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.produced.clone()))?;
        registry.register(Box::new(m.produce_retries.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.scoring_latency.clone()))?;
        registry.register(Box::new(m.end_to_end_latency.clone()))?;
        registry.register(Box::new(m.ingest_to_scored.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.replayed.clone()))?;
        registry.register(Box::new(m.devices.clone()))?;
        registry.register(Box::new(m.state_bytes.clone()))?;
        registry.register(Box::new(m.api_requests.clone()))?;
        Ok(m)
    }
}
