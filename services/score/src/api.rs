//! `POST /v1/score`: scores one Telemetry record synchronously.
//!
//! The request goes to the scoring loop through a bounded queue and is
//! scored there by the same [`vigil_model::Scorer`] as the stream, against
//! a copy of the device's state ([`vigil_model::Scorer::score_detached`]):
//! the answer is what the stream would say if this record arrived now, and
//! the stream's state is left untouched. A replica only holds state for
//! the devices of its partitions; for other devices the answer is a cold
//! start's.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use vigil_schemas::{Message as _, Telemetry, Verdict};

use crate::metrics::ScoreMetrics;

/// A request for the scoring loop.
#[derive(Debug)]
pub struct ScoreRequest {
    /// The record.
    pub record: Telemetry,
    /// Where the verdict goes.
    pub reply: oneshot::Sender<Verdict>,
}

/// Largest request body (the telemetry payload limit of ingest).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a request may wait for the scoring loop.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct ApiState {
    queue: mpsc::Sender<ScoreRequest>,
    metrics: ScoreMetrics,
    max_bytes: usize,
}

/// The routes, to mount on the service's HTTP server.
pub fn router(queue: mpsc::Sender<ScoreRequest>, metrics: ScoreMetrics) -> Router {
    Router::new()
        .route("/v1/score", post(score))
        .with_state(ApiState {
            queue,
            metrics,
            max_bytes: MAX_BODY_BYTES,
        })
}

#[derive(serde::Serialize)]
struct ErrorBody {
    error: String,
    reason: &'static str,
}

fn error(status: StatusCode, reason: &'static str, error: String) -> Response {
    (status, Json(ErrorBody { error, reason })).into_response()
}

async fn score(State(state): State<ApiState>, body: Bytes) -> Response {
    let outcome = |o: &str| state.metrics.api_requests.with_label_values(&[o]).inc();
    let record = match Telemetry::decode_limited(&body, state.max_bytes) {
        Ok(r) => r,
        Err(e) => {
            outcome("bad_request");
            return error(StatusCode::BAD_REQUEST, e.reason(), e.to_string());
        }
    };
    let (reply, answer) = oneshot::channel();
    if state
        .queue
        .try_send(ScoreRequest { record, reply })
        .is_err()
    {
        outcome("busy");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the scoring loop has too many requests waiting; retry later".into(),
        );
    }
    match tokio::time::timeout(REPLY_TIMEOUT, answer).await {
        Ok(Ok(verdict)) => {
            outcome("ok");
            Json(verdict).into_response()
        }
        _ => {
            outcome("timeout");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the scoring loop did not answer in time (still starting or shutting down)".into(),
            )
        }
    }
}
