//! Health endpoints every long-running service serves on `VIGIL_HTTP_ADDR`:
//!
//! - `GET /healthz`: the process runs and its HTTP loop answers (liveness).
//! - `GET /readyz`: 200 when every registered dependency is connected, 503
//!   otherwise; the JSON body names each dependency and its state.
//! - `GET /metrics`: the Prometheus registry in text format.
//!
//! A service adds its own routes by passing a router to [`HttpServer::start`].
//! With `--http-tls-cert` and `--http-tls-key` the same listener speaks
//! HTTPS, health endpoints included ([`crate::http_tls`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{IntGaugeVec, Opts, Registry};

use crate::config::HttpArgs;
use crate::http_auth::{protect, Access};
use crate::http_tls::TlsListener;
use crate::shutdown::Shutdown;

/// Connection state of the dependencies a service needs to do its work.
///
/// Also exported as `vigil_dependency_up{dependency="…"}` so dashboards see
/// the same thing `/readyz` answers.
#[derive(Debug, Clone)]
pub struct Readiness {
    deps: Arc<Mutex<BTreeMap<&'static str, bool>>>,
    gauge: IntGaugeVec,
}

impl Readiness {
    /// Readiness with no dependencies (always ready until one is added),
    /// registering its gauge in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "vigil_dependency_up",
                "Whether a dependency is connected (1) or not (0)",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self {
            deps: Arc::default(),
            gauge,
        })
    }

    /// Declares a dependency, initially down.
    pub fn register(&self, name: &'static str) {
        self.set(name, false);
    }

    /// Records whether `name` is connected.
    pub fn set(&self, name: &'static str, up: bool) {
        let mut deps = self.deps.lock().unwrap_or_else(|p| p.into_inner());
        let was = deps.insert(name, up);
        self.gauge.with_label_values(&[name]).set(i64::from(up));
        if was.is_some() && was != Some(up) {
            if up {
                tracing::info!(dependency = name, "dependency connected");
            } else {
                tracing::warn!(dependency = name, "dependency disconnected");
            }
        }
    }

    /// Whether `name` is connected.
    pub fn is_up(&self, name: &'static str) -> bool {
        let deps = self.deps.lock().unwrap_or_else(|p| p.into_inner());
        deps.get(name).copied().unwrap_or(false)
    }

    /// Every dependency and its state.
    pub fn snapshot(&self) -> BTreeMap<&'static str, bool> {
        self.deps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether every dependency is connected.
    pub fn all_up(&self) -> bool {
        self.snapshot().values().all(|up| *up)
    }
}

#[derive(Clone)]
struct HealthState {
    readiness: Readiness,
    registry: Registry,
}

/// A running HTTP server for health, metrics and a service's own routes.
#[derive(Debug)]
pub struct HttpServer {
    /// The address actually bound (port 0 resolves here).
    pub local_addr: SocketAddr,
    /// Whether it speaks HTTPS (`--http-tls-cert`, `--http-tls-key`).
    pub https: bool,
}

impl HttpServer {
    /// Binds `addr` and serves until `shutdown`. Binding errors are returned
    /// here, before anything runs, so a taken port fails start-up clearly.
    pub async fn start(
        http: &HttpArgs,
        readiness: Readiness,
        registry: Registry,
        routes: Router,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let addr = http.http_addr;
        let access = http.access()?;
        let tls = http.tls()?;
        let protected = matches!(access, Access::Tokens(_));
        let routes = protect(routes, &access);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("binding the HTTP server to {addr} (VIGIL_HTTP_ADDR): {e}")
        })?;
        let local_addr = listener.local_addr()?;
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(HealthState {
                readiness,
                registry,
            })
            .merge(routes);
        let https = tls.is_some();
        match tls {
            Some(config) => spawn_serve(TlsListener::new(listener, config)?, app, shutdown),
            None => spawn_serve(listener, app, shutdown),
        }
        tracing::info!(
            %local_addr,
            https,
            api_tokens = protected,
            "serving /healthz, /readyz, /metrics"
        );
        Ok(Self { local_addr, https })
    }

    /// `http://ADDR` or `https://ADDR`, for links in logs.
    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets the open
/// connections finish (TLS ones too) before the task ends.
fn spawn_serve<L>(listener: L, app: Router, shutdown: &Shutdown)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server failed");
        }
    });
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HealthState>) -> impl IntoResponse {
    let deps = state.readiness.snapshot();
    let ready = deps.values().all(|up| *up);
    let body = serde_json::json!({ "ready": ready, "dependencies": deps });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    match crate::metrics::render(&state.registry) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("encoding metrics: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_reports_each_dependency() {
        let registry = Registry::new();
        let readiness = Readiness::new(&registry).expect("gauge registers");
        readiness.register("kafka");
        readiness.register("mqtt");
        let shutdown = Shutdown::new();
        let server = HttpServer::start(
            &HttpArgs::at("127.0.0.1:0".parse().expect("addr")),
            readiness.clone(),
            registry,
            Router::new(),
            &shutdown,
        )
        .await
        .expect("binds");
        let base = format!("http://{}", server.local_addr);
        let client = reqwest::Client::new();

        let r = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 503);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["dependencies"]["kafka"], false);

        readiness.set("kafka", true);
        readiness.set("mqtt", true);
        let r = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);

        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        assert!(
            text.contains(r#"vigil_dependency_up{dependency="mqtt"} 1"#),
            "{text}"
        );

        let r = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);

        shutdown.trigger();
        shutdown.wait().await;
    }
}
