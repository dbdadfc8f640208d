//! Vigil's services, run in this process through the same `run(args,
//! shutdown)` functions the `vigil` binary calls (with the typed arguments
//! [`crate::roles`] builds), so every production code path and validation
//! is used.
//!
//! Each service gets its own [`Shutdown`], so the demo can stop them in
//! data-flow order (ingest before the scorer before the audit sink) and
//! each flushes what it holds before the next one stops.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vigil_service::Shutdown;

/// Most KiB a Kafka consumer of the demo prefetches
/// (`queued.max.messages.kbytes`).
pub const CONSUMER_PREFETCH_KIB: u32 = 8192;
/// How long a service may take to flush and stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// A command's flags, parsed the way its binary parses them (the load
/// generator's, for the demo's fleet).
#[derive(Debug, Parser)]
struct Flags<T: Args> {
    #[command(flatten)]
    args: T,
}

/// Parses `argv` (without the program name) into a command's arguments.
pub fn parse<T: Args>(role: &str, argv: &[String]) -> anyhow::Result<T> {
    let full = std::iter::once(OsString::from(role)).chain(argv.iter().map(OsString::from));
    Flags::<T>::try_parse_from(full)
        .map(|f| f.args)
        .with_context(|| format!("{role} flags {argv:?}"))
}

/// Why a service task ended, reported to the demo's main loop.
#[derive(Debug)]
pub struct Exit {
    pub name: &'static str,
    pub result: anyhow::Result<()>,
}

/// A service running in this process.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    /// Where it serves /healthz, /readyz, /metrics (and its API).
    pub http: Option<SocketAddr>,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

impl Service {
    /// Spawns `run` with a shutdown of its own; its end (early or not) is
    /// reported on `exits`.
    pub fn spawn<F>(
        name: &'static str,
        http: Option<SocketAddr>,
        exits: &mpsc::Sender<Exit>,
        run: impl FnOnce(Shutdown) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = Shutdown::new();
        let fut = run(shutdown.clone());
        let exits = exits.clone();
        let task = tokio::spawn(async move {
            let result = fut.await;
            let _ = exits.send(Exit { name, result }).await;
        });
        Self {
            name,
            http,
            shutdown,
            task,
        }
    }

    /// Asks the service to stop and waits until it has flushed.
    pub async fn stop(self) {
        self.shutdown.trigger();
        match tokio::time::timeout(STOP_TIMEOUT, self.task).await {
            Ok(_) => tracing::debug!(service = self.name, "stopped"),
            Err(_) => tracing::warn!(
                service = self.name,
                "did not stop within {STOP_TIMEOUT:?}; abandoned"
            ),
        }
    }
}

/// A free loopback address for a service's HTTP endpoints.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from((
        [127, 0, 0, 1],
        crate::brokers::free_port()?,
    )))
}

/// How often [`wait_ready`] asks each `/readyz`.
const READY_POLL: Duration = Duration::from_millis(100);

/// Waits until every one of `services` answers 200 on `/readyz` (ingest
/// only once its MQTT subscription is acknowledged, so the fleet's first
/// records are not published to nobody), failing early if any service
/// ends, and after `timeout` with what each one that is not ready says.
pub async fn wait_ready(
    services: &[&Service],
    exits: &mut mpsc::Receiver<Exit>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut poll = tokio::time::interval(READY_POLL);
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            Some(exit) = exits.recv() => {
                return Err(match exit.result {
                    Ok(()) => anyhow::anyhow!("{} stopped while starting", exit.name),
                    Err(e) => e.context(format!("{} failed while starting", exit.name)),
                });
            }
        }
        let mut waiting = Vec::new();
        for service in services {
            let Some(addr) = service.http else { continue };
            let answer = match client.get(format!("http://{addr}/readyz")).send().await {
                Ok(r) if r.status().is_success() => continue,
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            waiting.push(format!("{}: {}", service.name, answer.trim()));
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "services not ready after {}: {}",
                humantime::format_duration(timeout),
                waiting.join("; ")
            );
        }
    }
}
