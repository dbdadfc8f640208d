//! Metrics of `vigil api`. No label carries a device id.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the dashboard exports.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    /// Records read, by topic kind (`verdicts`, `telemetry`, …).
    pub records: IntCounterVec,
    /// Records that could not be decoded, by topic kind.
    pub decode_errors: IntCounterVec,
    /// Devices held in memory.
    pub devices: IntGauge,
    /// Devices forgotten to stay within `--max-devices`.
    pub devices_evicted: IntCounter,
    /// Live-feed (SSE) clients connected.
    pub sse_clients: IntGauge,
    /// Live-feed events a slow client missed (it was told to reload).
    pub sse_dropped: IntCounter,
    /// Live-feed connections refused at `--max-sse-clients`.
    pub sse_refused: IntCounter,
    /// Consumer-lag measurements that failed.
    pub lag_errors: IntCounter,
}

impl ApiMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            records: IntCounterVec::new(
                Opts::new("vigil_api_records_total", "Records read, by topic kind"),
                &["topic"],
            )?,
            decode_errors: IntCounterVec::new(
                Opts::new(
                    "vigil_api_decode_errors_total",
                    "Records that could not be decoded, by topic kind",
                ),
                &["topic"],
            )?,
            devices: IntGauge::new("vigil_api_devices", "Devices held in memory")?,
            devices_evicted: IntCounter::new(
                "vigil_api_devices_evicted_total",
                "Devices forgotten to stay within the device bound",
            )?,
            sse_clients: IntGauge::new(
                "vigil_api_sse_clients",
                "Live-feed (server-sent events) clients connected",
            )?,
            sse_dropped: IntCounter::new(
                "vigil_api_sse_dropped_events_total",
                "Live-feed events slow clients missed",
            )?,
            sse_refused: IntCounter::new(
                "vigil_api_sse_refused_total",
                "Live-feed connections refused at the client bound",
            )?,
            lag_errors: IntCounter::new(
                "vigil_api_lag_errors_total",
                "Consumer-lag measurements that failed",
            )?,
        };
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.decode_errors.clone()))?;
        registry.register(Box::new(m.devices.clone()))?;
        registry.register(Box::new(m.devices_evicted.clone()))?;
        registry.register(Box::new(m.sse_clients.clone()))?;
        registry.register(Box::new(m.sse_dropped.clone()))?;
        registry.register(Box::new(m.sse_refused.clone()))?;
        registry.register(Box::new(m.lag_errors.clone()))?;
        Ok(m)
    }
}
