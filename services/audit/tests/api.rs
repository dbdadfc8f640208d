//! The query API over HTTP, on a real SQLite store: parameter validation,
//! pagination by cursor, record lookup, models, and the OpenAPI document
//! describing exactly the routes served.

use std::sync::Arc;

use serde_json::Value;
use vigil_audit::api::{self, ApiState, OPENAPI_JSON, ROUTES};
use vigil_audit::metrics::AuditMetrics;
use vigil_audit::store::sqlite::SqliteStore;
use vigil_audit::store::{AnyStore, ModelRecord, ReleaseRow, Store, WriteBatch};
use vigil_schemas::{ScoredAt, TrainingWindow, ValidationMetrics, Verdict};

const T0: u64 = 1_795_392_000_000;

struct Api {
    base: String,
    store: AnyStore,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

fn verdict(device: &str, seq: u64, version: u64) -> Verdict {
    Verdict {
        alarm: None,
        schema: 1,
        device_id: device.into(),
        seq,
        event_ts: T0 + seq * 1000,
        ingest_ts: None,
        scored_ts: T0 + seq * 1000 + 2,
        model: "default".into(),
        model_version: Some(version),
        score: 0.5,
        threshold: 0.8,
        anomaly: seq.is_multiple_of(10),
        contributions: Vec::new(),
        scored_at: ScoredAt::Edge,
        unscored: None,
    }
}

async fn start() -> Api {
    let dir = tempfile::tempdir().expect("dir");
    let store = AnyStore::Sqlite(Arc::new(
        SqliteStore::open(&dir.path().join("audit.db")).expect("opens"),
    ));
    let registry = prometheus::Registry::new();
    let metrics = AuditMetrics::register(&registry).expect("metrics");
    let app = api::router(ApiState::with_store(store.clone(), metrics));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Api {
        base,
        store,
        _dir: dir,
        _server: server,
    }
}

async fn get(api: &Api, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{path}", api.base))
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_400_naming_the_parameter() {
    let api = start().await;
    let cases = [
        ("/v1/devices/d/verdicts?from=yesterday", "from"),
        ("/v1/devices/d/verdicts?to=2026-13-01T00:00:00Z", "to"),
        ("/v1/devices/d/anomalies?from=-5", "from"),
        ("/v1/devices/d/verdicts?limit=-1", "limit"),
        ("/v1/devices/d/verdicts?limit=0", "limit"),
        ("/v1/devices/d/verdicts?limit=1001", "limit"),
        ("/v1/devices/d/verdicts?limit=many", "limit"),
        ("/v1/devices/d/verdicts?cursor=not-a-cursor", "cursor"),
        ("/v1/devices/d/anomalies?cursor=Zm9v", "cursor"),
        ("/v1/devices/d/verdicts?from=2000&to=1000", "to"),
        ("/v1/devices/d/incidents?limit=-3", "limit"),
        ("/v1/records/d/abc", "seq"),
        ("/v1/records/d/-1", "seq"),
        ("/v1/models/default/0", "version"),
        ("/v1/models/default/v2", "version"),
    ];
    for (path, parameter) in cases {
        let (status, body) = get(&api, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        let message = body["error"].as_str().expect("message");
        assert!(message.contains(parameter), "{path}: {message}");
    }
    let (status, body) = get(&api, "/v1/devices/d/verdicts?frm=1").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("message").contains("\"frm\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_devices_and_models_are_empty_not_errors() {
    let api = start().await;
    let (status, body) = get(&api, "/v1/devices/nobody/verdicts").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"], serde_json::json!([]));
    assert_eq!(body["next_cursor"], Value::Null);
    let (status, body) = get(&api, "/v1/records/nobody/1").await;
    assert_eq!(status, 200);
    assert_eq!(body["verdicts"], serde_json::json!([]));
    let (status, body) = get(&api, "/v1/models/none").await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"], serde_json::json!([]));
    let (status, _) = get(&api, "/v1/models/none/1").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_cursors_and_accept_rfc3339() {
    let api = start().await;
    let rows: Vec<Verdict> = (1..=25).map(|s| verdict("pump-1", s, 1)).collect();
    api.store
        .write(Arc::new(WriteBatch {
            verdicts: rows,
            ..WriteBatch::default()
        }))
        .await
        .expect("write");
    // 2026-11-23T00:00:05Z .. 00:00:20Z is seqs 5..=19.
    let mut path =
        "/v1/devices/pump-1/verdicts?from=2026-11-23T00:00:05Z&to=2026-11-23T01:00:20%2B01:00&limit=4"
            .to_owned();
    let mut seqs = Vec::new();
    loop {
        let (status, body) = get(&api, &path).await;
        assert_eq!(status, 200, "{body}");
        for item in body["items"].as_array().expect("items") {
            seqs.push(item["seq"].as_u64().expect("seq"));
        }
        match body["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/v1/devices/pump-1/verdicts?from={}&to={}&limit=4&cursor={c}",
                    T0 + 5000,
                    T0 + 20_000
                )
            }
            None => break,
        }
    }
    assert_eq!(seqs, (5..20).rev().collect::<Vec<u64>>());
    let (_, body) = get(&api, "/v1/devices/pump-1/anomalies").await;
    let anomalous: Vec<u64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(anomalous, vec![20, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_filter_by_where_they_were_scored_across_pages() {
    let api = start().await;
    // Seqs 1..=40: the multiples of 3 scored in the cloud, the rest at the
    // edge.
    let rows: Vec<Verdict> = (1..=40)
        .map(|s| Verdict {
            scored_at: if s % 3 == 0 {
                ScoredAt::Cloud
            } else {
                ScoredAt::Edge
            },
            ..verdict("mixed-1", s, 1)
        })
        .collect();
    api.store
        .write(Arc::new(WriteBatch {
            verdicts: rows,
            ..WriteBatch::default()
        }))
        .await
        .expect("write");
    for (at, want) in [
        (
            "cloud",
            (1..=40).filter(|s| s % 3 == 0).rev().collect::<Vec<u64>>(),
        ),
        ("edge", (1..=40).filter(|s| s % 3 != 0).rev().collect()),
    ] {
        let mut path = format!("/v1/devices/mixed-1/verdicts?limit=4&scored_at={at}");
        let mut seqs = Vec::new();
        loop {
            let (status, body) = get(&api, &path).await;
            assert_eq!(status, 200, "{body}");
            for item in body["items"].as_array().expect("items") {
                assert_eq!(item["scored_at"], at);
                seqs.push(item["seq"].as_u64().expect("seq"));
            }
            match body["next_cursor"].as_str() {
                Some(c) => {
                    path = format!("/v1/devices/mixed-1/verdicts?limit=4&scored_at={at}&cursor={c}")
                }
                None => break,
            }
        }
        assert_eq!(seqs, want, "{at}");
    }
    let (status, body) = get(&api, "/v1/devices/mixed-1/verdicts?scored_at=both").await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("scored_at"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_and_a_shadow_cloud_verdict_of_one_record_are_both_answered() {
    let api = start().await;
    // The edge scored record 4 with v1 and the cloud shadow-scored it with
    // v1 too (`vigil score --shadow-edge`): two decisions, two rows.
    let edge = verdict("shadow-2", 4, 1);
    let cloud = Verdict {
        scored_at: ScoredAt::Cloud,
        score: 0.75,
        ..edge.clone()
    };
    api.store
        .write(Arc::new(WriteBatch {
            verdicts: vec![edge, cloud],
            ..WriteBatch::default()
        }))
        .await
        .expect("write");
    let places = |body: &Value, list: &str| -> Vec<(String, f64)> {
        body[list]
            .as_array()
            .expect("list")
            .iter()
            .map(|v| {
                (
                    v["scored_at"].as_str().unwrap_or_default().to_owned(),
                    v["score"].as_f64().unwrap_or_default(),
                )
            })
            .collect()
    };
    let (status, body) = get(&api, "/v1/records/shadow-2/4").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        places(&body, "verdicts"),
        vec![("cloud".into(), 0.75), ("edge".into(), 0.5)]
    );
    let (status, body) = get(&api, "/v1/devices/shadow-2/verdicts").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        places(&body, "items"),
        vec![("edge".into(), 0.5), ("cloud".into(), 0.75)]
    );
    let (_, body) = get(&api, "/v1/devices/shadow-2/verdicts?scored_at=cloud").await;
    assert_eq!(places(&body, "items"), vec![("cloud".into(), 0.75)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_name_every_model_version_and_models_count_them() {
    let api = start().await;
    let release = |version: u64| ReleaseRow {
        record: ModelRecord {
            model: "default".into(),
            version,
            key_id: "k".into(),
            payload_sha256: "ab".into(),
            created_ts: T0,
            published_ts: T0 + 1,
            threshold: 0.8,
            training: TrainingWindow {
                from_ts: 0,
                to_ts: T0,
                records: 10,
                devices: 1,
                source: "test".into(),
            },
            validation: ValidationMetrics {
                estimated_false_alarm_rate: None,
                expected_false_alarm_rate: None,
                holdout_records: 2,
                false_alarm_rate: 0.0,
                detection_rate: None,
                mean_detection_delay: None,
            },
            signature_verified: false,
        },
        envelope: format!(r#"{{"model":"default","version":{version}}}"#),
    };
    api.store
        .write(Arc::new(WriteBatch {
            verdicts: vec![
                verdict("pump-2", 7, 1),
                verdict("pump-2", 7, 2),
                verdict("pump-2", 8, 2),
            ],
            releases: vec![release(1), release(2)],
            ..WriteBatch::default()
        }))
        .await
        .expect("write");
    let (status, body) = get(&api, "/v1/records/pump-2/7").await;
    assert_eq!(status, 200);
    let versions: Vec<u64> = body["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|v| v["model_version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, vec![1, 2]);
    let (_, body) = get(&api, "/v1/models").await;
    assert_eq!(body["models"][0]["version"], 2);
    assert_eq!(body["models"][0]["records_scored"], 2);
    assert_eq!(body["models"][1]["records_scored"], 1);
    let (status, body) = get(&api, "/v1/models/default/2").await;
    assert_eq!(status, 200);
    assert_eq!(body["records_scored"], 2);
    assert_eq!(body["release"]["version"], 2);
    assert_eq!(body["training"]["source"], "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_exactly_the_routes_served() {
    let api = start().await;
    let (status, served) = get(&api, "/v1/openapi.json").await;
    assert_eq!(status, 200);
    let committed: Value = serde_json::from_str(OPENAPI_JSON).expect("committed file is JSON");
    assert_eq!(served, committed);
    let paths = committed["paths"].as_object().expect("paths");
    let described: std::collections::BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed: std::collections::BTreeSet<&str> = ROUTES.iter().copied().collect();
    assert_eq!(described, routed, "openapi.json paths vs api::ROUTES");
    for (path, item) in paths {
        assert!(item["get"]["responses"]["200"].is_object(), "{path}");
        // Every described path is served (fill path parameters).
        let concrete = path
            .replace("{id}", "d")
            .replace("{device_id}", "d")
            .replace("{seq}", "1")
            .replace("{name}", "default")
            .replace("{version}", "1");
        let r = reqwest::get(format!("{}{concrete}", api.base))
            .await
            .expect("request");
        assert!(
            r.status() == 200 || (path.ends_with("{version}") && r.status() == 404),
            "{concrete}: {}",
            r.status()
        );
        // Every path parameter is described.
        for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
            let params = item["get"]["parameters"].as_array().expect("parameters");
            let described = params.iter().any(|p| {
                p["name"] == name
                    || p["$ref"]
                        .as_str()
                        .and_then(|r| r.rsplit('/').next())
                        .and_then(|n| committed["components"]["parameters"][n]["name"].as_str())
                        == Some(name)
            });
            assert!(described, "{path}: parameter {name} not described");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_listed_as_they_stand_with_filters() {
    use vigil_schemas::{Incident, IncidentState};
    let api = start().await;
    let now = vigil_service::now_ms();
    let event = |device: &str, state, ts| Incident {
        schema: 1,
        incident_id: Incident::id_for(device, 1),
        device_id: device.into(),
        state,
        ts,
        opened_ts: ts,
        model: "default".into(),
        ..Incident::default()
    };
    let incidents = vec![
        event("inc-a", IncidentState::Opened, now - 5_000),
        event("inc-a", IncidentState::Resolved, now - 1_000),
        event("inc-b", IncidentState::Updated, now - 2_000),
        // Older than the default window (7 days).
        event("inc-c", IncidentState::Opened, now - 8 * 86_400_000),
    ];
    api.store
        .write(Arc::new(WriteBatch {
            incidents,
            ..WriteBatch::default()
        }))
        .await
        .expect("write");
    let ids = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["device_id"].as_str().unwrap_or_default().to_owned(),
                    i["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let pair = |d: &str, s: &str| (d.to_owned(), s.to_owned());
    let (status, all) = get(&api, "/v1/incidents").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        ids(&all),
        vec![pair("inc-a", "resolved"), pair("inc-b", "updated")]
    );
    let (_, open) = get(&api, "/v1/incidents?state=open").await;
    assert_eq!(ids(&open), vec![pair("inc-b", "updated")]);
    let (_, resolved) = get(&api, "/v1/incidents?state=resolved&device=inc-a").await;
    assert_eq!(ids(&resolved), vec![pair("inc-a", "resolved")]);
    let since = now - 10 * 86_400_000;
    let (_, c) = get(&api, &format!("/v1/incidents?device=inc-c&since={since}")).await;
    assert_eq!(ids(&c), vec![pair("inc-c", "opened")]);
    let (_, one) = get(&api, "/v1/incidents?limit=1").await;
    assert_eq!(ids(&one), vec![pair("inc-a", "resolved")]);
    for (path, parameter) in [
        ("/v1/incidents?state=closed", "state"),
        ("/v1/incidents?since=1", "since"),
        ("/v1/incidents?since=soon", "since"),
        ("/v1/incidents?limit=0", "limit"),
    ] {
        let (status, body) = get(&api, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
    }
    // The device route still lists every event.
    let (_, events) = get(&api, "/v1/devices/inc-a/incidents").await;
    assert_eq!(events["items"].as_array().map(Vec::len), Some(2));
}
