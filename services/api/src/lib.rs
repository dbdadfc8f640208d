//! `vigil api`: the live web dashboard and the JSON/SSE API behind it.
//!
//! ```text
//! vigil.verdicts ─┐
//! vigil.anomalies ┤  no consumer group: every partition assigned,
//! vigil.telemetry ┤  compacted topics read whole, the others from
//! vigil.models ───┤  the newest --backfill-records
//! vigil.device-status
//! vigil.dlq ──────┘
//!        │ reader (decode, count errors)
//!        ▼
//!   State (bounded: devices, per-device rings, feed, per-second stats)
//!        │                         ▲ lag poller: committed offsets of
//!        ├─► JSON views /api/…     │ vigil-score, vigil-audit vs log ends
//!        └─► broadcast ─► SSE /api/events ─► the page (embedded assets)
//! ```
//!
//! - [`config`]: flags and environment variables (every memory bound).
//! - [`state`]: what the dashboard knows and the views it serves.
//! - [`reader`]: the Kafka reader that feeds the state.
//! - [`lag`]: consumer lag and DLQ retention from the log.
//! - [`http`]: the routes, the live feed and the embedded page; with
//!   `VIGIL_AUDIT_STORE` set, device pages are completed from the audit
//!   store (read only: queries, never writes).
//! - [`incidents`]: incidents and the open count, read from the audit
//!   store (`VIGIL_AUDIT_STORE`).
//! - [`metrics`]: the service's Prometheus metrics.
//!
//! The dashboard only observes: it joins no consumer group and commits
//! nothing, so it never takes partitions from the services it shows, and
//! any number of replicas can run (each holds its own picture).

pub mod config;
pub mod http;
pub mod incidents;
pub mod lag;
pub mod metrics;
pub mod reader;
pub mod state;

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use vigil_service::{kafka, Bootstrap, Shutdown};

pub use config::ApiArgs;

/// Runs the dashboard until `shutdown`.
pub async fn run(args: ApiArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let boot = Bootstrap::new(&[kafka::DEPENDENCY, reader::READING])?;
    let metrics = metrics::ApiMetrics::register(&boot.registry)?;
    let state: state::Shared = Arc::new(Mutex::new(state::State::new(args.limits())));
    let (events, _) = broadcast::channel(args.sse_buffer as usize);
    let history = match &args.audit_store {
        Some(uri) => {
            Some(http::History::open(uri, &args.scylla_options()?, args.history_secs).await?)
        }
        None => None,
    };

    let server = boot
        .serve(
            &args.http,
            http::router(
                state.clone(),
                events.clone(),
                args.max_sse_clients as usize,
                history,
                metrics.clone(),
                shutdown.clone(),
            ),
            &shutdown,
        )
        .await?;
    tracing::info!(url = %format!("{}/", server.base_url()), "dashboard");

    reader::start(
        &args,
        state.clone(),
        events,
        metrics.clone(),
        boot.readiness,
        &shutdown,
    )
    .await?;
    lag::spawn(
        args.kafka.clone(),
        args.lag_groups.clone(),
        args.lag_interval(),
        state,
        metrics,
        &shutdown,
    );

    shutdown.cancelled().await;
    shutdown.wait().await;
    Ok(())
}
