//! Prometheus helpers. Each service defines its metrics in its own
//! `metrics.rs` and registers them in the process registry created here.
//! Labels never carry a device id.

use prometheus::{Encoder, Registry, TextEncoder};

/// A fresh registry with process metrics (CPU, memory, fds) where the
/// platform supports them, and the heaps by allocator ([`crate::memory`]).
pub fn registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    if let Err(e) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::warn!(error = %e, "process metrics unavailable");
    }
    match crate::memory::HeapCollector::new() {
        Ok(heaps) => {
            if let Err(e) = registry.register(Box::new(heaps)) {
                tracing::warn!(error = %e, "heap metrics unavailable");
            }
        }
        Err(e) => tracing::warn!(error = %e, "heap metrics unavailable"),
    }
    registry
}

/// The registry in Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Latency buckets in seconds from 100 µs to 30 s.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0,
    ]
}
