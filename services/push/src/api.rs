//! The rollout API, served beside `/healthz`, `/readyz` and `/metrics`:
//!
//! - `GET /v1/rollout[?model=NAME][&limit=N]`: per model, the live and the
//!   retained version, devices per running version, and the stale and
//!   offline devices (lists of at most `limit`, default 1000, by device
//!   id; counts are always complete).
//! - `GET /v1/devices/{id}/status`: one device's last status, its
//!   standing against the live version and whether it is offline; 404 when
//!   the view does not have it.
//!
//! Answers come from the rollout view ([`crate::rollout`]), built from
//! `vigil.device-status`; until that log has been read once, `/readyz`
//! says `device_status: false`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use vigil_service::now_ms;

use crate::rollout::Rollout;

/// Devices listed per model when the request gives no `limit`.
const DEFAULT_LIMIT: usize = 1000;

/// The rollout view shared by the view reader, the mirror and the API.
pub type SharedRollout = Arc<Mutex<Rollout>>;

/// Locks the view; a panic elsewhere while holding it leaves the data
/// usable (every update is a single insert or remove).
pub fn lock(view: &SharedRollout) -> std::sync::MutexGuard<'_, Rollout> {
    view.lock().unwrap_or_else(|p| p.into_inner())
}

/// The routes, to mount on the service's HTTP server.
pub fn router(view: SharedRollout) -> Router {
    Router::new()
        .route("/v1/rollout", get(rollout))
        .route("/v1/devices/{id}/status", get(device))
        .with_state(view)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutQuery {
    model: Option<String>,
    limit: Option<usize>,
}

async fn rollout(State(view): State<SharedRollout>, Query(query): Query<RolloutQuery>) -> Response {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let report = lock(&view).report(now_ms(), query.model.as_deref(), limit);
    Json(report).into_response()
}

async fn device(State(view): State<SharedRollout>, Path(id): Path<String>) -> Response {
    match lock(&view).device(&id, now_ms()) {
        Some(report) => Json(report).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": format!("no status from device {id:?} in the rollout view"),
                "reason": "unknown_device",
            })),
        )
            .into_response(),
    }
}
