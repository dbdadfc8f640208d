//! Stall detection of the audit sink: how long the batch being flushed
//! has been at it, and a watchdog that turns `/readyz` red (`sink: false`)
//! while that exceeds a bound, whether the store keeps failing, hangs, or
//! Kafka keeps refusing the batch's DLQ records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vigil_service::{now_ms, Readiness, Shutdown};

/// Name of the sink's progress in `/readyz`: false while a batch has been
/// failing to complete for longer than `--stall-timeout-secs`.
pub const PROGRESS_DEPENDENCY: &str = "sink";

/// When the batch being flushed started (ms since the Unix epoch; 0 when
/// the sink is not flushing), watched for stalls.
#[derive(Debug, Clone, Default)]
pub struct Stall {
    flushing_since_ms: Arc<AtomicU64>,
}

impl Stall {
    pub fn started(&self) {
        self.flushing_since_ms
            .store(now_ms().max(1), Ordering::Relaxed);
    }

    pub fn done(&self) {
        self.flushing_since_ms.store(0, Ordering::Relaxed);
    }

    /// Sets [`PROGRESS_DEPENDENCY`] false while one flush has lasted longer
    /// than `bound` (a store retrying for ever, or hanging), true
    /// otherwise, checked a few times per bound until shutdown.
    pub fn watch(&self, bound: Duration, readiness: Readiness, shutdown: &Shutdown) {
        let since = self.flushing_since_ms.clone();
        let every = (bound / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                let started = since.load(Ordering::Relaxed);
                let stalled_ms = if started == 0 {
                    0
                } else {
                    now_ms().saturating_sub(started)
                };
                let stalled = stalled_ms > bound_ms;
                if stalled && readiness.is_up(PROGRESS_DEPENDENCY) {
                    tracing::error!(
                        stalled_ms,
                        "the audit sink has not completed a batch for longer than the stall timeout; /readyz reports it"
                    );
                }
                readiness.set(PROGRESS_DEPENDENCY, !stalled);
            }
        });
    }
}
