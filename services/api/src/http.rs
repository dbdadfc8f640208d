//! The dashboard's HTTP surface, on the same server as `/healthz`,
//! `/readyz` and `/metrics`:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (HTML, CSS, JS and icon embedded in the binary: it works offline) |
//! | `GET /api/overview?limit=N` | fleet counts and the device table |
//! | `GET /api/devices/{id}` | one device: scores, thresholds, telemetry, anomalies, contributions (older verdicts from the audit store when `VIGIL_AUDIT_STORE` is set) |
//! | `GET /api/anomalies?limit=N` | the anomaly feed, newest first |
//! | `GET /api/incidents?state=&device=&limit=N` | incidents from the audit store, most recently active first, and the open count ([`crate::incidents`]) |
//! | `GET /api/models` | releases, provenance, validation, rollout |
//! | `GET /api/pipeline` | throughput, latency, consumer lag, DLQ, errors |
//! | `GET /api/events` | server-sent events: `hello`, then `anomaly`, `status`, `model`; `resync` when the client fell behind |
//!
//! The live feed is a bounded broadcast channel: each client has
//! `--sse-buffer` events of slack; one that falls further behind misses the
//! oldest (counted) and receives `resync`, upon which the page reloads its
//! JSON views. Clients beyond `--max-sse-clients` are refused with 503.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{broadcast, Semaphore};
use vigil_service::{now_ms, Shutdown};

use anyhow::Context as _;
use vigil_audit_store::scylla::ScyllaOptions;
use vigil_audit_store::{AnyStore, RangeQuery, Store as _, StoreUri, MAX_PAGE};

use crate::metrics::ApiMetrics;
use crate::reader::Outgoing;
use crate::state::{with_history, Shared};

/// Most devices the overview lists unless asked for fewer.
const DEFAULT_DEVICES: usize = 500;
/// Most anomalies the feed returns unless asked for fewer.
const DEFAULT_ANOMALIES: usize = 100;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON: &str = include_str!("../assets/favicon.svg");

/// Device history from the audit store.
#[derive(Debug, Clone)]
pub struct History {
    store: AnyStore,
    window_ms: u64,
}

impl History {
    /// Opens the store `uri` names (`VIGIL_AUDIT_STORE`); device pages
    /// read up to `window_secs` of history from it.
    pub async fn open(uri: &str, scylla: &ScyllaOptions, window_secs: u64) -> anyhow::Result<Self> {
        // Errors quote the URI with any password hidden.
        let shown = vigil_service::redact::redact_url(uri);
        let parsed: StoreUri = uri
            .parse()
            .with_context(|| format!("VIGIL_AUDIT_STORE {shown:?}"))?;
        let store = AnyStore::open(&parsed, scylla)
            .await
            .with_context(|| format!("opening the audit store {shown} for device history"))?;
        tracing::info!(
            store = store.kind(),
            "device pages read history from the audit store"
        );
        Ok(Self {
            store,
            window_ms: window_secs.saturating_mul(1_000),
        })
    }

    /// The store (read only).
    pub fn store(&self) -> &AnyStore {
        &self.store
    }
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    state: Shared,
    history: Option<History>,
    events: broadcast::Sender<Arc<Outgoing>>,
    sse_slots: Arc<Semaphore>,
    metrics: ApiMetrics,
    shutdown: Shutdown,
}

/// The dashboard's routes.
pub fn router(
    state: Shared,
    events: broadcast::Sender<Arc<Outgoing>>,
    max_sse_clients: usize,
    history: Option<History>,
    metrics: ApiMetrics,
    shutdown: Shutdown,
) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/favicon.svg", get(|| asset("image/svg+xml", FAVICON)))
        .route("/api/overview", get(overview))
        .route("/api/devices/{id}", get(device))
        .route("/api/anomalies", get(anomalies))
        .route("/api/incidents", get(incidents))
        .route("/api/models", get(models))
        .route("/api/pipeline", get(pipeline))
        .route("/api/events", get(live_feed))
        .with_state(App {
            state,
            history,
            events,
            sse_slots: Arc::new(Semaphore::new(max_sse_clients)),
            metrics,
            shutdown,
        })
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<usize>,
}

impl App {
    fn with<T>(&self, f: impl FnOnce(&crate::state::State) -> T) -> T {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&state)
    }
}

async fn overview(State(app): State<App>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_DEVICES);
    Json(app.with(|s| s.overview(now_ms(), limit))).into_response()
}

async fn device(State(app): State<App>, Path(id): Path<String>) -> Response {
    let (live, limits) = app.with(|s| (s.device_detail(&id, now_ms()), s.limits().clone()));
    let short = live
        .as_ref()
        .is_none_or(|d| d.points.len() < limits.device_history);
    let detail = match &app.history {
        Some(history) if short => {
            let now = now_ms();
            let query = RangeQuery {
                device_id: id.clone(),
                from_ms: now.saturating_sub(history.window_ms),
                // Device clocks run a little ahead at times.
                to_ms: now.saturating_add(60_000),
                limit: limits.device_history.clamp(1, MAX_PAGE),
                after: None,
            };
            match history.store.device_verdicts(query).await {
                Ok(page) => with_history(live, &id, &page.items, &limits),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read device history from the audit store");
                    live
                }
            }
        }
        _ => live,
    };
    match detail {
        Some(detail) => Json(detail).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": format!("device {id:?} is not known to the dashboard (no record of it seen since start-up)")
            })),
        )
            .into_response(),
    }
}

async fn anomalies(State(app): State<App>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_ANOMALIES);
    Json(app.with(|s| s.anomalies(limit))).into_response()
}

async fn incidents(State(app): State<App>, Query(q): Query<crate::incidents::Params>) -> Response {
    crate::incidents::list(app.history.as_ref(), q).await
}

async fn models(State(app): State<App>) -> Response {
    Json(app.with(|s| s.models())).into_response()
}

async fn pipeline(State(app): State<App>) -> Response {
    Json(app.with(|s| s.pipeline(now_ms()))).into_response()
}

/// Decrements the client gauge when a live-feed stream ends.
struct ClientGuard {
    metrics: ApiMetrics,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics.sse_clients.dec();
    }
}

async fn live_feed(State(app): State<App>) -> Response {
    let Ok(slot) = app.sse_slots.clone().try_acquire_owned() else {
        app.metrics.sse_refused.inc();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live-feed clients; try again later\n",
        )
            .into_response();
    };
    app.metrics.sse_clients.inc();
    let guard = ClientGuard {
        metrics: app.metrics.clone(),
        _slot: slot,
    };
    // Subscribed before `hello` is sent: whatever happens after a client
    // saw `hello` reaches it.
    let rx = app.events.subscribe();
    let hello = SseEvent::default()
        .event("hello")
        .data(now_ms().to_string());
    let start = (Some(hello), rx, guard, app.shutdown.clone());
    let stream = futures::stream::unfold(start, |(hello, mut rx, guard, stop)| async move {
        if let Some(hello) = hello {
            return Some((Ok::<_, Infallible>(hello), (None, rx, guard, stop)));
        }
        let event = tokio::select! {
            // Ends the stream so the server's graceful shutdown can finish.
            _ = stop.cancelled() => return None,
            received = rx.recv() => match received {
                Ok(out) => SseEvent::default().event(out.name).data(out.json.as_str()),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    guard.metrics.sse_dropped.inc_by(missed);
                    SseEvent::default().event("resync").data(missed.to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), (None, rx, guard, stop)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::state::{Limits, State};

    #[tokio::test]
    async fn a_bad_history_store_uri_never_shows_its_password() {
        for uri in ["scylla://vigil:Pa55word@h/ks", "nope://vigil:Pa55word@h"] {
            let err = History::open(uri, &ScyllaOptions::default(), 60)
                .await
                .expect_err(uri);
            let text = format!("{err:#}");
            assert!(
                !text.contains("Pa55") && text.contains("vigil:***@"),
                "{text}"
            );
        }
    }

    /// Reads the event stream until `done` holds for what was read.
    async fn read_until(
        response: &mut reqwest::Response,
        seen: &mut String,
        done: impl Fn(&str) -> bool,
    ) -> bool {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !done(seen) {
                match response.chunk().await {
                    Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                    _ => return false,
                }
            }
            true
        });
        read.await.unwrap_or(false)
    }

    // Single-threaded on purpose: the server cannot drain the channel while
    // the test floods it, so the client is as slow as a client can be.
    #[tokio::test]
    async fn a_slow_client_misses_events_counted_and_is_told_to_resync() {
        let registry = prometheus::Registry::new();
        let metrics = ApiMetrics::register(&registry).expect("metrics register");
        let state = Arc::new(Mutex::new(State::new(Limits::default())));
        let (events, _) = broadcast::channel(4);
        let shutdown = Shutdown::new();
        let app = router(
            state,
            events.clone(),
            1,
            None,
            metrics.clone(),
            shutdown.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });

        let url = format!("http://{addr}/api/events");
        let mut client = reqwest::get(&url).await.expect("connects");
        let mut seen = String::new();
        assert!(read_until(&mut client, &mut seen, |s| s.contains("event: hello")).await);
        assert_eq!(metrics.sse_clients.get(), 1);

        // At the client bound (1), the next one is refused.
        let refused = reqwest::get(&url).await.expect("answers");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(metrics.sse_refused.get(), 1);

        for n in 0..20 {
            events
                .send(Arc::new(Outgoing {
                    name: "anomaly",
                    json: format!(r#"{{"n":{n}}}"#),
                }))
                .expect("a client is subscribed");
        }
        assert!(
            read_until(&mut client, &mut seen, |s| s.contains(r#"{"n":19}"#)).await,
            "{seen}"
        );
        // 16 of 20 did not fit the 4-event buffer: counted, and the client
        // was told to reload; the newest 4 arrived after that.
        assert_eq!(metrics.sse_dropped.get(), 16);
        let resync = seen.find("event: resync").expect("resync sent");
        assert!(seen[resync..].contains(r#"{"n":16}"#), "{seen}");
        assert!(!seen.contains(r#"{"n":15}"#), "{seen}");

        // Shutdown ends open streams, so the server stops.
        shutdown.trigger();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))));
        drop(client);
        tokio::task::yield_now().await;
        assert_eq!(metrics.sse_clients.get(), 0);
    }
}
