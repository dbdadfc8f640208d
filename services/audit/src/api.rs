//! The audit query API (JSON over HTTP, axum), served by `vigil audit` on
//! the same address as its health endpoints.
//!
//! | route | answers |
//! |---|---|
//! | `GET /v1/devices/{id}/verdicts?from=&to=&limit=&cursor=&scored_at=` | a device's verdicts in `[from, to)`, newest first |
//! | `GET /v1/devices/{id}/anomalies?from=&to=&limit=&cursor=&scored_at=` | its anomalous verdicts with contributions |
//! | `GET /v1/devices/{id}/incidents?limit=` | its incident events, newest first |
//! | `GET /v1/incidents?state=&device=&since=&limit=` | incidents as they stand (each one's latest event), most recently active first |
//! | `GET /v1/records/{device_id}/{seq}` | every verdict of one record, with model name and version |
//! | `GET /v1/models` | every release with the records it scored |
//! | `GET /v1/models/{name}` | one model's releases, newest first |
//! | `GET /v1/models/{name}/{version}` | one release in full (404 when unknown) |
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 description (`services/audit/openapi.json`) |
//!
//! Times are ms since the Unix epoch or RFC 3339 (`2026-11-23T10:00:00Z`,
//! any offset). `from` defaults to the epoch, `to` to the end of time,
//! `limit` to 100 (at most 1000). `cursor` is the `next_cursor` of the
//! previous page. `scored_at=cloud|edge` keeps only the verdicts made
//! there (filtered as pages are read, so a filtered page may hold fewer
//! than `limit` rows and still have a `next_cursor`). Bad parameters get 400 with `{"error", "parameter"}`
//! naming the parameter; an unknown device is an empty list.
//!
//! `/v1/incidents`: `state` is `open` (opened or updated) or `resolved`;
//! `since` (default 7 days ago, at most 31 days back: the Scylla store
//! scans a partition per day) keeps the incidents with an event since.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use vigil_schemas::{Incident, ScoredAt, Verdict};

use crate::metrics::AuditMetrics;
use crate::store::{
    AnyStore, Cursor, IncidentQuery, ModelSummary, Page, RangeQuery, Store, StoreError, MAX_PAGE,
};

/// The committed OpenAPI description, served as is.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Rows a page holds when the client does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// Latest time a query may name: the largest ms value the stores keep.
const END_OF_TIME: u64 = i64::MAX as u64;

/// Every route, in axum's path syntax (the OpenAPI test checks each is
/// described and each description is served).
pub const ROUTES: &[&str] = &[
    "/v1/devices/{id}/verdicts",
    "/v1/devices/{id}/anomalies",
    "/v1/devices/{id}/incidents",
    "/v1/records/{device_id}/{seq}",
    "/v1/models",
    "/v1/models/{name}",
    "/v1/models/{name}/{version}",
    "/v1/openapi.json",
    "/v1/incidents",
];

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The store, once open (503 until then).
    store: Arc<OnceLock<AnyStore>>,
    metrics: AuditMetrics,
}

impl ApiState {
    /// State over a store slot that is filled when the store opens.
    pub fn new(store: Arc<OnceLock<AnyStore>>, metrics: AuditMetrics) -> Self {
        Self { store, metrics }
    }

    /// State over an open store.
    pub fn with_store(store: AnyStore, metrics: AuditMetrics) -> Self {
        let slot = OnceLock::new();
        let _ = slot.set(store);
        Self::new(Arc::new(slot), metrics)
    }
}

/// The API's routes, to merge into the service's HTTP server.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(ROUTES[0], get(device_verdicts))
        .route(ROUTES[1], get(device_anomalies))
        .route(ROUTES[2], get(device_incidents))
        .route(ROUTES[3], get(record))
        .route(ROUTES[4], get(models))
        .route(ROUTES[5], get(model))
        .route(ROUTES[6], get(model_version))
        .route(ROUTES[7], get(openapi))
        .route(ROUTES[8], get(incidents))
        .with_state(state)
}

/// An error answer: status plus `{"error": …, "parameter": …}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    parameter: Option<&'static str>,
}

impl ApiError {
    fn bad(parameter: &'static str, message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            parameter: Some(parameter),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "audit store query failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("audit store query failed: {e}"),
            parameter: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "parameter": self.parameter });
        (self.status, Json(body)).into_response()
    }
}

/// Parses a time parameter: ms since the epoch, or RFC 3339.
pub fn parse_time(name: &'static str, value: &str) -> Result<u64, ApiError> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= END_OF_TIME)
            .ok_or_else(|| {
                ApiError::bad(
                    name,
                    format!("{name}={value}: milliseconds out of range (at most {END_OF_TIME})"),
                )
            });
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(value).map_err(|e| {
        ApiError::bad(
            name,
            format!(
                "{name}={value:?} is neither milliseconds since the Unix epoch nor an RFC 3339 time like 2026-11-23T10:00:00Z ({e})"
            ),
        )
    })?;
    u64::try_from(parsed.timestamp_millis())
        .map_err(|_| ApiError::bad(name, format!("{name}={value:?} is before 1970-01-01")))
}

/// Parses `limit`: 1..=[`MAX_PAGE`].
pub fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let bad = || {
        ApiError::bad(
            "limit",
            format!("limit={value:?} must be a whole number from 1 to {MAX_PAGE}"),
        )
    };
    let n: i64 = value.trim().parse().map_err(|_| bad())?;
    if n < 1 || n > MAX_PAGE as i64 {
        return Err(bad());
    }
    usize::try_from(n).map_err(|_| bad())
}

/// Store pages one filtered request reads at most before it answers
/// with what it found and a cursor to go on from (bounds the work of a
/// filter that matches little).
const MAX_FILTERED_READS: usize = 16;

/// The query parameters of a range query, checked, and its `scored_at`
/// filter.
fn range_query(
    device_id: String,
    params: Vec<(String, String)>,
) -> Result<(RangeQuery, Option<ScoredAt>), ApiError> {
    let mut scored_at = None;
    let mut from = None;
    let mut to = None;
    let mut limit = None;
    let mut after = None;
    for (name, value) in params {
        let seen = match name.as_str() {
            "from" => from.replace(parse_time("from", &value)?).is_some(),
            "to" => to.replace(parse_time("to", &value)?).is_some(),
            "limit" => limit.replace(parse_limit(&value)?).is_some(),
            "scored_at" => {
                let at = match value.as_str() {
                    "cloud" => ScoredAt::Cloud,
                    "edge" => ScoredAt::Edge,
                    _ => {
                        return Err(ApiError::bad(
                            "scored_at",
                            format!("scored_at must be cloud or edge, not {value:?}"),
                        ))
                    }
                };
                scored_at.replace(at).is_some()
            }
            "cursor" => {
                let cursor = Cursor::decode(&value).map_err(|e| {
                    ApiError::bad(
                        "cursor",
                        format!("invalid cursor: {e}; pass the next_cursor of a previous page unchanged"),
                    )
                })?;
                after.replace(cursor).is_some()
            }
            _ => {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    message: format!(
                    "unknown query parameter {name:?}; expected from, to, limit, cursor, scored_at"
                ),
                    parameter: None,
                })
            }
        };
        if seen {
            let name: &'static str = match name.as_str() {
                "from" => "from",
                "to" => "to",
                "limit" => "limit",
                "scored_at" => "scored_at",
                _ => "cursor",
            };
            return Err(ApiError::bad(name, format!("{name} given more than once")));
        }
    }
    let from_ms = from.unwrap_or(0);
    let to_ms = to.unwrap_or(END_OF_TIME);
    if from_ms >= to_ms {
        return Err(ApiError::bad(
            "to",
            format!("to ({to_ms}) must be later than from ({from_ms})"),
        ));
    }
    let query = RangeQuery {
        device_id,
        from_ms,
        to_ms,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        after,
    };
    Ok((query, scored_at))
}

fn store(state: &ApiState) -> Result<&AnyStore, ApiError> {
    state.store.get().ok_or_else(|| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the audit store is not open yet".into(),
        parameter: None,
    })
}

/// Counts the request and turns the result into a response.
fn answer<T: Serialize>(state: &ApiState, route: &str, result: Result<T, ApiError>) -> Response {
    let response = match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    };
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .api_requests
        .with_label_values(&[route, class])
        .inc();
    response
}

/// A page of verdicts.
#[derive(Debug, Serialize)]
struct VerdictPage {
    device_id: String,
    from: u64,
    to: u64,
    items: Vec<Verdict>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

async fn range(
    state: &ApiState,
    anomalies: bool,
    id: String,
    params: Vec<(String, String)>,
) -> Result<VerdictPage, ApiError> {
    let (q, scored_at) = range_query(id, params)?;
    let store = store(state)?;
    let (device_id, from, to) = (q.device_id.clone(), q.from_ms, q.to_ms);
    let page = match scored_at {
        None => read_page(store, anomalies, q).await?,
        Some(at) => filtered(store, anomalies, q, at).await?,
    };
    Ok(VerdictPage {
        device_id,
        from,
        to,
        items: page.items,
        next_cursor: page.next.as_ref().map(Cursor::encode),
    })
}

async fn read_page(store: &AnyStore, anomalies: bool, q: RangeQuery) -> Result<Page, StoreError> {
    if anomalies {
        store.device_anomalies(q).await
    } else {
        store.device_verdicts(q).await
    }
}

/// Up to `q.limit` verdicts made `at`, read page by page (at most
/// [`MAX_FILTERED_READS`] pages); the cursor continues after the last row
/// examined.
async fn filtered(
    store: &AnyStore,
    anomalies: bool,
    mut q: RangeQuery,
    at: ScoredAt,
) -> Result<Page, StoreError> {
    let limit = q.limit;
    let mut items = Vec::new();
    for _ in 0..MAX_FILTERED_READS {
        let page = read_page(store, anomalies, q.clone()).await?;
        for v in page.items {
            if v.scored_at != at {
                continue;
            }
            items.push(v);
            if items.len() == limit {
                let next = items.last().map(Cursor::after);
                return Ok(Page { items, next });
            }
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => return Ok(Page { items, next: None }),
        }
    }
    Ok(Page {
        items,
        next: q.after,
    })
}

async fn device_verdicts(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let result = range(&state, false, id, params).await;
    answer(&state, "device_verdicts", result)
}

async fn device_anomalies(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let result = range(&state, true, id, params).await;
    answer(&state, "device_anomalies", result)
}

#[derive(Debug, Serialize)]
struct IncidentList {
    device_id: String,
    items: Vec<Incident>,
}

async fn device_incidents(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let mut limit = DEFAULT_LIMIT;
        for (name, value) in params {
            match name.as_str() {
                "limit" => limit = parse_limit(&value)?,
                _ => {
                    return Err(ApiError {
                        status: StatusCode::BAD_REQUEST,
                        message: format!("unknown query parameter {name:?}; expected limit"),
                        parameter: None,
                    })
                }
            }
        }
        let items = store(&state)?.device_incidents(id.clone(), limit).await?;
        Ok(IncidentList {
            device_id: id,
            items,
        })
    }
    .await;
    answer(&state, "device_incidents", result)
}

/// How far back `/v1/incidents` looks by default, ms.
const INCIDENTS_DEFAULT_SPAN: u64 = 7 * 86_400_000;
/// How far back it may look, ms.
const INCIDENTS_MAX_SPAN: u64 = 31 * 86_400_000;

#[derive(Debug, Serialize)]
struct Incidents {
    items: Vec<Incident>,
}

/// The query of `/v1/incidents` from its parameters, at `now` (ms).
pub fn incident_query(params: &[(String, String)], now: u64) -> Result<IncidentQuery, ApiError> {
    let bad = |parameter: &'static str, message: String| ApiError {
        status: StatusCode::BAD_REQUEST,
        message,
        parameter: Some(parameter),
    };
    let earliest = now.saturating_sub(INCIDENTS_MAX_SPAN);
    let mut q = IncidentQuery {
        resolved: None,
        device_id: None,
        since_ms: now.saturating_sub(INCIDENTS_DEFAULT_SPAN),
        limit: DEFAULT_LIMIT,
    };
    for (name, value) in params {
        match name.as_str() {
            "state" => {
                q.resolved = match value.as_str() {
                    "open" => Some(false),
                    "resolved" => Some(true),
                    other => {
                        return Err(bad(
                            "state",
                            format!("state {other:?}: expected open or resolved"),
                        ))
                    }
                }
            }
            "device" => {
                if value.is_empty() {
                    return Err(bad("device", "device is empty".into()));
                }
                q.device_id = Some(value.clone());
            }
            "since" => {
                q.since_ms = parse_time("since", value)?;
                if q.since_ms < earliest {
                    return Err(bad(
                        "since",
                        format!("since {value:?} is more than 31 days back (at most {earliest})"),
                    ));
                }
            }
            "limit" => q.limit = parse_limit(value)?,
            _ => {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    message: format!(
                        "unknown query parameter {name:?}; expected state, device, since, limit"
                    ),
                    parameter: None,
                })
            }
        }
    }
    Ok(q)
}

async fn incidents(
    State(state): State<ApiState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let q = incident_query(&params, vigil_service::now_ms())?;
        let items = store(&state)?.incidents(q).await?;
        Ok(Incidents { items })
    }
    .await;
    answer(&state, "incidents", result)
}

#[derive(Debug, Serialize)]
struct RecordVerdicts {
    device_id: String,
    seq: u64,
    /// One per model version that scored the record (empty when none).
    verdicts: Vec<Verdict>,
}

async fn record(
    State(state): State<ApiState>,
    Path((device_id, seq)): Path<(String, String)>,
) -> Response {
    let result = async {
        let seq: u64 = seq.parse().map_err(|_| {
            ApiError::bad(
                "seq",
                format!("seq {seq:?} is not a whole number from 0 to {END_OF_TIME}"),
            )
        })?;
        let verdicts = store(&state)?.record(device_id.clone(), seq).await?;
        Ok(RecordVerdicts {
            device_id,
            seq,
            verdicts,
        })
    }
    .await;
    answer(&state, "record", result)
}

#[derive(Debug, Serialize)]
struct ModelList {
    models: Vec<ModelSummary>,
}

async fn models(State(state): State<ApiState>) -> Response {
    let result = async {
        Ok(ModelList {
            models: store(&state)?.models().await?,
        })
    }
    .await;
    answer(&state, "models", result)
}

#[derive(Debug, Serialize)]
struct ModelVersions {
    model: String,
    /// Newest first; empty when the model is unknown.
    versions: Vec<ModelSummary>,
}

async fn model(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let result = async {
        let versions = store(&state)?.model(name.clone()).await?;
        Ok(ModelVersions {
            model: name,
            versions,
        })
    }
    .await;
    answer(&state, "model", result)
}

async fn model_version(
    State(state): State<ApiState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let result = async {
        let version: u64 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
            ApiError::bad(
                "version",
                format!("version {version:?} is not a whole number of at least 1"),
            )
        })?;
        store(&state)?
            .model_version(name.clone(), version)
            .await?
            .ok_or_else(|| ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("no release {name} v{version} is stored"),
                parameter: None,
            })
    }
    .await;
    answer(&state, "model_version", result)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_ms_or_rfc3339() {
        assert_eq!(
            parse_time("from", "1795446981908").ok(),
            Some(1_795_446_981_908)
        );
        assert_eq!(
            parse_time("from", "2026-11-23T10:00:00Z").ok(),
            Some(1_795_428_000_000)
        );
        assert_eq!(
            parse_time("from", "2026-11-23T12:00:00.5+02:00").ok(),
            Some(1_795_428_000_500)
        );
        for bad in [
            "yesterday",
            "2026-11-23",
            "-5",
            "1.5",
            "",
            "99999999999999999999",
        ] {
            let e = parse_time("from", bad).expect_err(bad);
            assert_eq!(e.parameter, Some("from"));
            assert!(e.message.starts_with("from="), "{}", e.message);
        }
        let e = parse_time("to", "1969-12-31T23:59:59Z").expect_err("before epoch");
        assert!(e.message.contains("before 1970"), "{}", e.message);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit("1").ok(), Some(1));
        assert_eq!(parse_limit("1000").ok(), Some(1000));
        for bad in ["0", "-1", "1001", "ten", "1e3"] {
            let e = parse_limit(bad).expect_err(bad);
            assert_eq!(e.parameter, Some("limit"));
            assert!(e.message.contains("1 to 1000"), "{}", e.message);
        }
    }

    #[test]
    fn range_parameters_are_checked_together() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let (q, at) = range_query("d".into(), p(&[])).expect("defaults");
        assert_eq!(
            (q.from_ms, q.to_ms, q.limit, at),
            (0, END_OF_TIME, DEFAULT_LIMIT, None)
        );
        let (_, at) = range_query("d".into(), p(&[("scored_at", "edge")])).expect("edge");
        assert_eq!(at, Some(ScoredAt::Edge));
        let e = range_query("d".into(), p(&[("scored_at", "fog")])).expect_err("fog");
        assert_eq!(e.parameter, Some("scored_at"));
        let e = range_query("d".into(), p(&[("from", "10"), ("to", "10")])).expect_err("empty");
        assert_eq!(e.parameter, Some("to"));
        let e = range_query("d".into(), p(&[("cursor", "%%")])).expect_err("cursor");
        assert_eq!(e.parameter, Some("cursor"));
        let e = range_query("d".into(), p(&[("limit", "5"), ("limit", "6")])).expect_err("twice");
        assert_eq!(e.parameter, Some("limit"));
        let e = range_query("d".into(), p(&[("form", "5")])).expect_err("typo");
        assert!(e.message.contains("\"form\""), "{}", e.message);
    }
}
