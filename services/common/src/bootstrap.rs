//! The start and the stop every role repeats: a metrics registry with the
//! process metrics, the readiness of the role's dependencies, the HTTP
//! server for `/healthz`, `/readyz`, `/metrics` and the role's own routes,
//! its Kafka topics, and at the end the stop that waits for every task.
//!
//! A role's `run` reads:
//!
//! ```text
//! let boot = Bootstrap::new(&[mqtt::DEPENDENCY, kafka::DEPENDENCY])?;
//! let metrics = RoleMetrics::register(&boot.registry)?;
//! boot.serve(&args.http, routes, &shutdown).await?;
//! if !bootstrap::ensure_topics(&args.kafka, &specs, &shutdown).await { … }
//! … the role's own work …
//! bootstrap::stop(&shutdown, "role").await;
//! ```

use axum::Router;
use prometheus::Registry;

use crate::config::{HttpArgs, KafkaArgs};
use crate::health::{HttpServer, Readiness};
use crate::kafka::{self, TopicSpec};
use crate::shutdown::Shutdown;

/// What a role starts with: its metrics registry and the readiness of its
/// dependencies (all registered, none ready yet).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The process registry: the role registers its metrics here.
    pub registry: Registry,
    /// `/readyz`'s state; the role's tasks set their dependencies.
    pub readiness: Readiness,
}

impl Bootstrap {
    /// A registry with process metrics and a readiness with `dependencies`
    /// registered (not ready).
    pub fn new(dependencies: &[&'static str]) -> Result<Self, prometheus::Error> {
        let registry = crate::metrics::registry();
        let readiness = Readiness::new(&registry)?;
        for dependency in dependencies {
            readiness.register(dependency);
        }
        Ok(Bootstrap {
            registry,
            readiness,
        })
    }

    /// Serves the health endpoints, the metrics and `routes` on `addr`
    /// until shutdown.
    pub async fn serve(
        &self,
        http: &HttpArgs,
        routes: Router,
        shutdown: &Shutdown,
    ) -> anyhow::Result<HttpServer> {
        HttpServer::start(
            http,
            self.readiness.clone(),
            self.registry.clone(),
            routes,
            shutdown,
        )
        .await
    }
}

/// Creates the role's topics, retrying until Kafka answers. `false` when
/// shutdown came first (the role should then stop).
pub async fn ensure_topics(args: &KafkaArgs, specs: &[TopicSpec], shutdown: &Shutdown) -> bool {
    kafka::ensure_topics_retrying(args, specs, shutdown).await;
    !shutdown.is_triggered()
}

/// Stops every task of the role, waits until they have finished (flushed,
/// acknowledged) and logs that `role` stopped.
pub async fn stop(shutdown: &Shutdown, role: &str) {
    shutdown.trigger();
    shutdown.wait().await;
    tracing::info!("{role} stopped");
}
