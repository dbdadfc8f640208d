//! The dashboard's incidents, `GET /api/incidents?state=&device=&limit=`:
//! incidents as they stand (each one's latest event, most recently active
//! first) from the audit store `vigil audit` writes, with the same query
//! the audit API's `GET /v1/incidents` runs, over the last
//! [`RECENT_MS`]; and the number of open incidents, for the Fleet page.
//!
//! Incidents come only from the audit store (`VIGIL_AUDIT_STORE`); without
//! one the answer says `available: false` and the page says why. A store
//! that fails answers 502 with the error.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use vigil_audit_store::{IncidentQuery, Store as _, MAX_PAGE};
use vigil_schemas::Incident;
use vigil_service::now_ms;

use crate::http::History;

/// How far back the dashboard lists incidents, ms (as `/v1/incidents`
/// does by default): a week.
pub const RECENT_MS: u64 = 7 * 86_400_000;
/// Most incidents listed unless asked for fewer.
const DEFAULT_LIMIT: usize = 200;

/// The query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `open` (opened or updated) or `resolved`; both when absent.
    pub state: Option<String>,
    /// Only this device's incidents.
    pub device: Option<String>,
    /// Most incidents to list (0: none, only the open count).
    pub limit: Option<usize>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct IncidentsView {
    /// Whether the dashboard reads an audit store (incidents come from it).
    pub available: bool,
    /// Open incidents (of the device, when one is asked for), counted up
    /// to [`MAX_PAGE`].
    pub open: usize,
    /// `open` reached that bound: there may be more.
    pub open_capped: bool,
    /// The incidents asked for, most recently active first.
    pub items: Vec<Incident>,
}

impl Params {
    /// The store's queries: the list asked for (none for `limit=0`) and
    /// the open count, at `now` (ms).
    pub fn queries(&self, now: u64) -> Result<(Option<IncidentQuery>, IncidentQuery), String> {
        let resolved = match self.state.as_deref() {
            None | Some("") => None,
            Some("open") => Some(false),
            Some("resolved") => Some(true),
            Some(other) => return Err(format!("state {other:?}: expected open or resolved")),
        };
        let device_id = self.device.clone().filter(|d| !d.is_empty());
        let since_ms = now.saturating_sub(RECENT_MS);
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_PAGE);
        let list = (limit > 0).then(|| IncidentQuery {
            resolved,
            device_id: device_id.clone(),
            since_ms,
            limit,
        });
        let open = IncidentQuery {
            resolved: Some(false),
            device_id,
            since_ms,
            limit: MAX_PAGE,
        };
        Ok((list, open))
    }
}

/// `GET /api/incidents`, from `history`'s store when there is one.
pub async fn list(history: Option<&History>, q: Params) -> Response {
    let (list, open) = match q.queries(now_ms()) {
        Ok(queries) => queries,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(history) = history else {
        return Json(IncidentsView {
            available: false,
            open: 0,
            open_capped: false,
            items: Vec::new(),
        })
        .into_response();
    };
    let store = history.store();
    let open = match store.incidents(open).await {
        Ok(open) => open.len(),
        Err(e) => return unavailable(e),
    };
    let items = match list {
        Some(list) => match store.incidents(list).await {
            Ok(items) => items,
            Err(e) => return unavailable(e),
        },
        None => Vec::new(),
    };
    Json(IncidentsView {
        available: true,
        open,
        open_capped: open >= MAX_PAGE,
        items,
    })
    .into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "cannot read incidents from the audit store");
    error(
        StatusCode::BAD_GATEWAY,
        format!("reading incidents from the audit store: {e}"),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_becomes_the_stores_queries() {
        let now = 10 * 86_400_000;
        let (list, open) = Params::default().queries(now).expect("valid");
        let list = list.expect("a list");
        assert_eq!(list.resolved, None);
        assert_eq!(list.limit, DEFAULT_LIMIT);
        assert_eq!(list.since_ms, now - RECENT_MS);
        assert_eq!(open.resolved, Some(false));
        assert_eq!(open.limit, MAX_PAGE);

        let q = Params {
            state: Some("resolved".into()),
            device: Some("edge-1".into()),
            limit: Some(5_000),
        };
        let (list, open) = q.queries(now).expect("valid");
        let list = list.expect("a list");
        assert_eq!(list.resolved, Some(true));
        assert_eq!(list.limit, MAX_PAGE, "bounded");
        assert_eq!(list.device_id.as_deref(), Some("edge-1"));
        assert_eq!(open.device_id.as_deref(), Some("edge-1"));

        let count_only = Params {
            limit: Some(0),
            ..Params::default()
        };
        assert!(count_only.queries(now).expect("valid").0.is_none());
        let bad = Params {
            state: Some("closed".into()),
            ..Params::default()
        };
        assert!(bad.queries(now).is_err());
    }
}
