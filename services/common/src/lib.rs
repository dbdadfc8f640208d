//! Plumbing every Vigil service shares, so that each service's own crate
//! holds only its logic.
//!
//! - [`bridge`]: the Kafka side of an MQTT → Kafka bridge (ingest, push).
//! - [`config`]: flags with `VIGIL_*` environment variables for Kafka, MQTT,
//!   HTTP and logging, validated once at start-up.
//! - [`duration`]: the one form of every duration flag (`30s`, `10m`,
//!   `1h`, or a plain number in the flag's unit).
//! - [`logging`]: `tracing` output, human or JSON.
//! - [`health`]: readiness of named dependencies and the HTTP server that
//!   serves `/healthz`, `/readyz`, `/metrics` (and a service's own routes).
//! - [`metrics`]: helpers around the Prometheus registry.
//! - [`memory`]: heap figures by allocator and the allocator settings.
//! - [`shutdown`]: the one cancellation signal every task selects on.
//! - [`kafka`]: producer/consumer construction, topic creation, connection
//!   state.
//! - [`mqtt`]: MQTT client options from a URL.
//! - [`subscription`]: a persistent, manually acknowledged, bounded shared
//!   subscription (the MQTT side of every MQTT → Kafka bridge).

pub mod bridge;
pub mod config;
pub mod duration;
pub mod health;
pub mod kafka;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod mqtt;
pub mod shutdown;
pub mod subscription;

pub use health::{HttpServer, Readiness};
pub use shutdown::Shutdown;

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
