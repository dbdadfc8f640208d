//! Pipeline statistics: one bucket per second (records, anomalies,
//! latency samples) and the percentiles computed from them.

use super::Percentiles;

/// One second of pipeline activity.
#[derive(Debug, Clone, Default)]
pub(super) struct Second {
    pub(super) second: u64,
    pub(super) verdicts: u64,
    pub(super) anomalies: u64,
    pub(super) telemetry: u64,
    pub(super) dlq: u64,
    /// Event time → scored, ms.
    pub(super) e2e: Vec<u32>,
    /// Ingest → scored, ms.
    pub(super) scoring: Vec<u32>,
    /// Event time → ingest (the MQTT hop), ms.
    pub(super) ingest: Vec<u32>,
}

pub(super) fn ms32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// The `q` quantile of sorted `values` (nearest rank).
pub(super) fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

pub(super) fn percentiles(mut values: Vec<u32>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        samples: values.len() as u64,
        p50: percentile(&values, 0.5),
        p90: percentile(&values, 0.9),
        p99: percentile(&values, 0.99),
        max: values.last().copied(),
    }
}
