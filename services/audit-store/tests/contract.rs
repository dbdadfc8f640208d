//! The audit store contract: one suite, run against every backend.
//!
//! Each case is a generic async function over [`Store`]; the `contract!`
//! macro turns it into one test per backend:
//!
//! - `sqlite::<case>` runs on a fresh SQLite file in a temporary directory
//!   (always, in CI).
//! - `scylla::<case>` runs on the cluster named by `VIGIL_TEST_SCYLLA_URI`
//!   (`scylla://127.0.0.1:9042/vigil_test`), in a keyspace of its own
//!   created for the run; without the variable it prints
//!   `skipped: VIGIL_TEST_SCYLLA_URI not set` and passes. TLS options of
//!   the URI apply (`scylla://127.0.0.1:9142/vigil_test?tls=1&tls_ca=ca.pem`,
//!   plus `tls_cert` / `tls_key` for a cluster that requires client
//!   certificates), so the same cases run over TLS.

use std::collections::HashSet;
use std::sync::Arc;

use vigil_audit_store::scylla::{Consistency, ScyllaOptions, ScyllaStore};
use vigil_audit_store::sqlite::SqliteStore;
use vigil_audit_store::{
    Cursor, IncidentQuery, ModelRecord, RangeQuery, ReleaseRow, Store, StoreUri, WriteBatch,
    MAX_PAGE,
};
use vigil_schemas::{
    Contribution, Incident, IncidentState, ScoredAt, TrainingWindow, UnscoredReason,
    ValidationMetrics, Verdict,
};

/// 2026-11-23T00:00:00Z, a day boundary, in ms.
const T0: u64 = 1_795_392_000_000;
const DAY: u64 = 86_400_000;

fn verdict(device: &str, seq: u64, event_ts: u64, version: Option<u64>, anomaly: bool) -> Verdict {
    Verdict {
        // Anomalous verdicts belong to an alarm opened at the device's
        // first record: the store keeps it.
        alarm: anomaly.then(|| vigil_schemas::Alarm {
            id: vigil_schemas::Alarm::id_for(device, 1),
            opened_seq: 1,
            opened_ts: event_ts.saturating_sub(seq),
            state: vigil_schemas::AlarmState::Ongoing,
        }),
        schema: 1,
        device_id: device.into(),
        seq,
        event_ts,
        ingest_ts: Some(event_ts + 3),
        scored_ts: event_ts + 5,
        model: "default".into(),
        model_version: version,
        score: if anomaly { 0.93 } else { 0.12 },
        threshold: 0.8,
        anomaly,
        contributions: if anomaly {
            vec![
                Contribution {
                    metric: "temperature_c".into(),
                    share: 0.71,
                },
                Contribution {
                    metric: "current_a".into(),
                    share: 0.2,
                },
            ]
        } else {
            Vec::new()
        },
        scored_at: ScoredAt::Cloud,
        unscored: version.is_none().then_some(UnscoredReason::NoModel),
    }
}

fn release(model: &str, version: u64) -> ReleaseRow {
    let record = ModelRecord {
        model: model.into(),
        version,
        key_id: "k-0123456789abcdef".into(),
        payload_sha256: format!("{version:064x}"),
        created_ts: T0 + version,
        published_ts: T0 + version + 10,
        threshold: 0.8,
        training: TrainingWindow {
            from_ts: T0 - DAY,
            to_ts: T0,
            records: 1_000_000,
            devices: 100,
            source: "kafka:vigil.telemetry".into(),
        },
        validation: ValidationMetrics {
            estimated_false_alarm_rate: None,
            expected_false_alarm_rate: None,
            holdout_records: 200_000,
            false_alarm_rate: 0.001,
            detection_rate: Some(0.95),
            mean_detection_delay: None,
        },
        signature_verified: version.is_multiple_of(2),
    };
    let envelope = format!(
        r#"{{"schema":1,"model":"{model}","version":{version},"key_id":"k","payload_sha256":"x","signature":"s","payload":{{"a":1}}}}"#
    );
    ReleaseRow { record, envelope }
}

async fn write<S: Store>(store: &S, verdicts: Vec<Verdict>) {
    store
        .write(Arc::new(WriteBatch {
            verdicts,
            ..WriteBatch::default()
        }))
        .await
        .expect("write succeeds");
}

fn range(device: &str, from_ms: u64, to_ms: u64, limit: usize) -> RangeQuery {
    RangeQuery {
        device_id: device.into(),
        from_ms,
        to_ms,
        limit,
        after: None,
    }
}

/// Every page of a query, following cursors.
async fn all_pages<S: Store>(store: &S, mut q: RangeQuery, anomalies: bool) -> Vec<Verdict> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = if anomalies {
            store.device_anomalies(q.clone()).await
        } else {
            store.device_verdicts(q.clone()).await
        }
        .expect("query succeeds");
        assert!(page.items.len() <= q.limit);
        out.extend(page.items);
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

fn keys(v: &[Verdict]) -> Vec<(u64, u64, Option<u64>)> {
    v.iter()
        .map(|v| (v.event_ts, v.seq, v.model_version))
        .collect()
}

// ---- the cases --------------------------------------------------------

/// A verdict delivered three times (separate batches and within a batch)
/// is stored once and counted once.
async fn replays_create_no_rows<S: Store>(store: S) {
    let v = verdict("dup-1", 7, T0 + 1000, Some(1), true);
    write(&store, vec![v.clone()]).await;
    write(&store, vec![v.clone(), v.clone()]).await;
    write(&store, vec![v.clone()]).await;
    let rows = store.record("dup-1".into(), 7).await.expect("lookup");
    assert_eq!(rows, vec![v.clone()]);
    let page = store
        .device_verdicts(range("dup-1", T0, T0 + DAY, 100))
        .await
        .expect("range");
    assert_eq!(page.items, vec![v.clone()]);
    let anomalies = store
        .device_anomalies(range("dup-1", T0, T0 + DAY, 100))
        .await
        .expect("range");
    assert_eq!(anomalies.items, vec![v]);
    store
        .write(Arc::new(WriteBatch {
            releases: vec![release("default", 1)],
            ..WriteBatch::default()
        }))
        .await
        .expect("release");
    let detail = store
        .model_version("default".into(), 1)
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(detail.summary.records_scored, 1);
}

/// One record scored by several versions (and unscored before any model)
/// keeps one row per version; the lookup names each.
async fn versions_are_kept_apart<S: Store>(store: S) {
    let unscored = verdict("multi-1", 3, T0 + 50, None, false);
    let v1 = verdict("multi-1", 3, T0 + 50, Some(1), false);
    let v2 = verdict("multi-1", 3, T0 + 50, Some(2), true);
    write(&store, vec![v2.clone(), unscored.clone(), v1.clone()]).await;
    let rows = store.record("multi-1".into(), 3).await.expect("lookup");
    assert_eq!(rows, vec![unscored.clone(), v1, v2]);
    assert_eq!(rows[0].model_version, None);
    assert_eq!(rows[0].unscored, Some(UnscoredReason::NoModel));
    assert!(store
        .record("multi-1".into(), 4)
        .await
        .expect("lookup")
        .is_empty());
}

/// A record scored on the edge and shadow-scored in the cloud by the same
/// version keeps both verdicts: the lookup, the range (also a page at a
/// time) and the anomalies name each; neither is a conflict; the version's
/// scored count counts the record once.
async fn edge_and_cloud_verdicts_are_kept_apart<S: Store>(store: S) {
    let cloud = verdict("shadow-1", 5, T0 + 70, Some(1), true);
    let edge = Verdict {
        scored_at: ScoredAt::Edge,
        score: 0.91,
        ..cloud.clone()
    };
    let written = store
        .write(Arc::new(WriteBatch {
            verdicts: vec![edge.clone(), cloud.clone(), edge.clone()],
            releases: vec![release("default", 1)],
            ..WriteBatch::default()
        }))
        .await
        .expect("writes");
    assert!(written.conflicts.is_empty(), "{:?}", written.conflicts);
    let rows = store.record("shadow-1".into(), 5).await.expect("lookup");
    assert_eq!(rows, vec![cloud.clone(), edge.clone()], "cloud before edge");
    let whole = all_pages(&store, range("shadow-1", T0, T0 + DAY, 100), false).await;
    assert_eq!(
        whole,
        vec![edge.clone(), cloud.clone()],
        "newest first, edge above cloud"
    );
    let one_by_one = all_pages(&store, range("shadow-1", T0, T0 + DAY, 1), false).await;
    assert_eq!(one_by_one, whole, "a page of one row walks both");
    let anomalies = all_pages(&store, range("shadow-1", T0, T0 + DAY, 1), true).await;
    assert_eq!(anomalies, whole);
    let detail = store
        .model_version("default".into(), 1)
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(detail.summary.records_scored, 1, "one record, scored twice");
}

/// A verdict whose key is stored with another event time is a different
/// record under a reused seq: it is returned as a conflict and not written
/// (the stored row and its anomaly row stay as they were); a replay of the
/// stored record with other scoring times is not a conflict.
async fn a_different_record_under_a_stored_key_is_a_conflict<S: Store>(store: S) {
    let first = verdict("reuse-1", 9, T0 + 100, Some(1), true);
    write(&store, vec![first.clone()]).await;
    let replay = Verdict {
        scored_ts: first.scored_ts + 60_000,
        ingest_ts: Some(first.event_ts + 50_000),
        ..first.clone()
    };
    let other = Verdict {
        event_ts: T0 + 5_000,
        score: 0.99,
        ..first.clone()
    };
    let fresh = verdict("reuse-1", 10, T0 + 6_000, Some(1), false);
    let written = store
        .write(Arc::new(WriteBatch {
            verdicts: vec![replay, other.clone(), fresh.clone()],
            ..WriteBatch::default()
        }))
        .await
        .expect("writes");
    assert_eq!(written.conflicts.len(), 1, "{:?}", written.conflicts);
    let c = &written.conflicts[0];
    assert_eq!(
        (
            c.device_id.as_str(),
            c.seq,
            c.model_version,
            c.scored_at.as_str()
        ),
        ("reuse-1", 9, 1, "cloud")
    );
    assert_eq!(
        (c.stored_event_ts, c.refused_event_ts),
        (first.event_ts, other.event_ts)
    );
    assert_eq!(
        store.record("reuse-1".into(), 9).await.expect("lookup"),
        vec![first.clone()]
    );
    let rows = all_pages(&store, range("reuse-1", T0, T0 + DAY, 100), false).await;
    assert_eq!(
        rows,
        vec![fresh, first.clone()],
        "the rest of the batch is written"
    );
    let anomalies = all_pages(&store, range("reuse-1", T0, T0 + DAY, 100), true).await;
    assert_eq!(anomalies, vec![first]);
}

/// Ranges are [from, to), newest first, and only the device's own rows.
async fn ranges_are_half_open_and_newest_first<S: Store>(store: S) {
    let rows: Vec<Verdict> = (0..50)
        .map(|i| verdict("range-1", i, T0 + i * 1000, Some(1), i % 5 == 0))
        .collect();
    write(&store, rows.clone()).await;
    write(
        &store,
        vec![verdict("range-2", 1, T0 + 10_000, Some(1), true)],
    )
    .await;
    let page = store
        .device_verdicts(range("range-1", T0 + 10_000, T0 + 20_000, 100))
        .await
        .expect("range");
    let seqs: Vec<u64> = page.items.iter().map(|v| v.seq).collect();
    assert_eq!(seqs, (10..20).rev().collect::<Vec<_>>());
    assert_eq!(page.next, None);
    let anomalies = store
        .device_anomalies(range("range-1", T0, T0 + DAY, 100))
        .await
        .expect("range");
    let seqs: Vec<u64> = anomalies.items.iter().map(|v| v.seq).collect();
    assert_eq!(seqs, vec![45, 40, 35, 30, 25, 20, 15, 10, 5, 0]);
    assert!(anomalies
        .items
        .iter()
        .all(|v| v.anomaly && v.contributions.len() == 2));
    let empty = store
        .device_verdicts(range("range-1", T0 + 20_000, T0 + 20_000, 100))
        .await
        .expect("range");
    assert!(empty.items.is_empty() && empty.next.is_none());
}

/// A device the store never saw is an empty page, not an error.
async fn unknown_device_is_empty<S: Store>(store: S) {
    let page = store
        .device_verdicts(range("nobody", 0, u64::MAX / 4, MAX_PAGE))
        .await
        .expect("range");
    assert!(page.items.is_empty());
    assert!(page.next.is_none());
    assert!(store
        .record("nobody".into(), 1)
        .await
        .expect("lookup")
        .is_empty());
    assert!(store
        .device_incidents("nobody".into(), 10)
        .await
        .expect("incidents")
        .is_empty());
}

/// Pages across several days, with ties on event time, return every row
/// exactly once in order; rows written between pages never shift a page.
async fn pagination_is_stable_under_concurrent_writes<S: Store>(store: S) {
    // 3 days, 40 rows a day, pairs of rows sharing an event time, and two
    // model versions for some records.
    let mut rows = Vec::new();
    for i in 0..120u64 {
        let ts = T0 + (i / 40) * DAY + (i % 40 / 2) * 60_000;
        rows.push(verdict("page-1", i, ts, Some(1), false));
        if i % 7 == 0 {
            rows.push(verdict("page-1", i, ts, Some(2), false));
        }
    }
    write(&store, rows.clone()).await;
    let mut expected = keys(&rows);
    expected.sort_by(|a, b| b.cmp(a));

    let mut q = range("page-1", T0, T0 + 3 * DAY, 9);
    let mut seen = Vec::new();
    let mut extra_seq = 10_000;
    loop {
        let page = store.device_verdicts(q.clone()).await.expect("page");
        seen.extend(page.items.iter().cloned());
        // Concurrent writers between pages: a newer row (above every
        // cursor: never seen) and a row in the oldest, unread part (seen
        // in its place, or not yet: both are correct).
        write(
            &store,
            vec![
                verdict("page-1", extra_seq, T0 + 3 * DAY - 1, Some(1), false),
                verdict("page-1", extra_seq + 1, T0 + 1, Some(1), false),
            ],
        )
        .await;
        extra_seq += 2;
        match page.next {
            Some(c) => {
                let token = c.encode();
                q.after = Some(Cursor::decode(&token).expect("token round-trips"));
            }
            None => break,
        }
    }
    let got = keys(&seen);
    let distinct: HashSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "a row was returned twice");
    let originals: Vec<_> = got.iter().filter(|k| k.1 < 10_000).cloned().collect();
    assert_eq!(originals, expected, "every original row once, in order");
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, sorted, "newest first across pages");
}

/// A full page (limit) and the cursor-less "last page" are told apart.
async fn limit_and_next_cursor<S: Store>(store: S) {
    let rows: Vec<Verdict> = (0..10)
        .map(|i| verdict("limit-1", i, T0 + i, Some(1), false))
        .collect();
    write(&store, rows).await;
    let exact = store
        .device_verdicts(range("limit-1", T0, T0 + DAY, 10))
        .await
        .expect("range");
    assert_eq!(exact.items.len(), 10);
    assert_eq!(exact.next, None, "no cursor when nothing follows");
    let first = store
        .device_verdicts(range("limit-1", T0, T0 + DAY, 4))
        .await
        .expect("range");
    assert_eq!(first.items.len(), 4);
    let c = first.next.expect("more to come");
    assert_eq!(c.seq, 6);
    assert_eq!(
        all_pages(&store, range("limit-1", T0, T0 + DAY, 3), false)
            .await
            .len(),
        10
    );
}

/// Releases: listing, per model newest first, one version in full with
/// the envelope as published and how many records it scored.
async fn model_releases_and_scored_counts<S: Store>(store: S) {
    store
        .write(Arc::new(WriteBatch {
            releases: vec![
                release("alpha", 1),
                release("alpha", 2),
                release("beta", 1),
                release("alpha", 2),
            ],
            ..WriteBatch::default()
        }))
        .await
        .expect("write");
    let mut scored = Vec::new();
    for i in 0..30 {
        let mut v = verdict(&format!("m-{}", i % 4), i, T0 + i, Some(1 + i % 2), false);
        v.model = "alpha".into();
        scored.push(v);
    }
    write(&store, scored.clone()).await;
    write(&store, scored).await;

    let all = store.models().await.expect("models");
    let names: Vec<(String, u64)> = all
        .iter()
        .map(|m| (m.release.model.clone(), m.release.version))
        .filter(|(n, _)| n == "alpha" || n == "beta")
        .collect();
    assert_eq!(
        names,
        vec![("alpha".into(), 2), ("alpha".into(), 1), ("beta".into(), 1)]
    );
    let alpha = store.model("alpha".into()).await.expect("model");
    assert_eq!(alpha.len(), 2);
    assert_eq!(alpha[0].release.version, 2);
    assert_eq!(alpha[0].records_scored, 15);
    assert_eq!(alpha[1].records_scored, 15);
    assert_eq!(alpha[0].release, release("alpha", 2).record);
    let detail = store
        .model_version("alpha".into(), 2)
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(detail.release.get(), release("alpha", 2).envelope);
    assert_eq!(detail.summary.records_scored, 15);
    assert!(store
        .model_version("alpha".into(), 3)
        .await
        .expect("lookup")
        .is_none());
    assert!(store.model("gamma".into()).await.expect("model").is_empty());
}

/// Incident events are kept once each, newest first.
async fn incidents_are_kept<S: Store>(store: S) {
    let event = |state, ts| Incident {
        schema: 1,
        incident_id: "inc-1:5".into(),
        device_id: "inc-1".into(),
        state,
        ts,
        opened_ts: T0,
        first_seq: 5,
        last_seq: 9,
        anomalies: 3,
        max_score: 0.97,
        model: "default".into(),
        model_version: Some(2),
        action: None,
        ..Incident::default()
    };
    let events = vec![
        event(IncidentState::Opened, T0),
        event(IncidentState::Updated, T0 + 10),
        event(IncidentState::Resolved, T0 + 20),
    ];
    for _ in 0..2 {
        store
            .write(Arc::new(WriteBatch {
                incidents: events.clone(),
                ..WriteBatch::default()
            }))
            .await
            .expect("write");
    }
    let got = store
        .device_incidents("inc-1".into(), 10)
        .await
        .expect("incidents");
    let states: Vec<IncidentState> = got.iter().map(|i| i.state).collect();
    assert_eq!(
        states,
        vec![
            IncidentState::Resolved,
            IncidentState::Updated,
            IncidentState::Opened
        ]
    );
}

/// Incidents stand as their latest event (by `ts`, whatever the write
/// order, across day boundaries), filtered by state, device and time.
async fn incidents_stand_as_their_latest_event<S: Store>(store: S) {
    let event = |device: &str, first: u64, state, ts| Incident {
        schema: 1,
        incident_id: Incident::id_for(device, first),
        device_id: device.into(),
        state,
        ts,
        opened_ts: ts,
        first_seq: first,
        last_seq: first,
        model: "default".into(),
        ..Incident::default()
    };
    // Newest first, so the older events arrive after the one that wins.
    let a = [
        event("std-a", 5, IncidentState::Resolved, T0 + DAY + 5),
        event("std-a", 5, IncidentState::Updated, T0 + 10),
        event("std-a", 5, IncidentState::Opened, T0),
    ];
    let b = event("std-b", 7, IncidentState::Opened, T0 + DAY + 1);
    let c = event("std-a", 1, IncidentState::Resolved, T0 - 2 * DAY + 10);
    for batch in [vec![a[0].clone(), b.clone(), c.clone()], a[1..].to_vec()] {
        store
            .write(Arc::new(WriteBatch {
                incidents: batch,
                ..WriteBatch::default()
            }))
            .await
            .expect("write");
    }
    let list = |resolved: Option<bool>, device: Option<&str>, since_ms: u64, limit: usize| {
        let q = IncidentQuery {
            resolved,
            device_id: device.map(str::to_owned),
            since_ms,
            limit,
        };
        let store = &store;
        async move {
            store
                .incidents(q)
                .await
                .expect("incidents")
                .into_iter()
                .map(|i| (i.incident_id, i.state))
                .collect::<Vec<_>>()
        }
    };
    let (ida, idb, idc) = (
        a[0].incident_id.clone(),
        b.incident_id.clone(),
        c.incident_id.clone(),
    );
    assert_eq!(
        list(None, None, T0, 10).await,
        vec![
            (ida.clone(), IncidentState::Resolved),
            (idb.clone(), IncidentState::Opened)
        ]
    );
    assert_eq!(
        list(Some(false), None, T0, 10).await,
        vec![(idb.clone(), IncidentState::Opened)]
    );
    assert_eq!(
        list(Some(true), None, T0, 10).await,
        vec![(ida.clone(), IncidentState::Resolved)]
    );
    assert_eq!(
        list(None, Some("std-a"), T0 - 3 * DAY, 10).await,
        vec![
            (ida.clone(), IncidentState::Resolved),
            (idc, IncidentState::Resolved)
        ]
    );
    assert_eq!(
        list(None, None, T0, 1).await,
        vec![(ida, IncidentState::Resolved)]
    );
    assert!(list(None, Some("nobody"), T0, 10).await.is_empty());
    // Every event is still kept.
    let events = store
        .device_incidents("std-a".into(), 10)
        .await
        .expect("events");
    assert_eq!(events.len(), 4);
}

// ---- backends ---------------------------------------------------------

async fn sqlite_store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("audit.db")).expect("opens");
    (Arc::new(store), dir)
}

/// A store on a fresh keyspace of the cluster in `VIGIL_TEST_SCYLLA_URI`,
/// or `None` (after printing why) when the variable is not set.
async fn scylla_store() -> Option<ScyllaStore> {
    let Ok(uri) = std::env::var("VIGIL_TEST_SCYLLA_URI") else {
        println!("skipped: VIGIL_TEST_SCYLLA_URI not set");
        return None;
    };
    let parsed: StoreUri = uri.parse().expect("VIGIL_TEST_SCYLLA_URI parses");
    let StoreUri::Scylla {
        nodes,
        keyspace,
        tls,
    } = parsed
    else {
        panic!("VIGIL_TEST_SCYLLA_URI must be scylla://host:port/keyspace, got {uri}");
    };
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let unique = format!(
        "{}_{}_{}",
        &keyspace[..keyspace.len().min(20)],
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let options = ScyllaOptions {
        consistency: Consistency::One,
        tls,
        ..ScyllaOptions::default()
    };
    Some(
        ScyllaStore::connect(&nodes, &unique, &options)
            .await
            .expect("connects to VIGIL_TEST_SCYLLA_URI"),
    )
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::$case(store).await;
                }
            )*
        }
        mod scylla {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(store) = super::scylla_store().await {
                        super::$case(store).await;
                    }
                }
            )*
        }
    };
}

contract!(
    replays_create_no_rows,
    versions_are_kept_apart,
    edge_and_cloud_verdicts_are_kept_apart,
    a_different_record_under_a_stored_key_is_a_conflict,
    ranges_are_half_open_and_newest_first,
    unknown_device_is_empty,
    pagination_is_stable_under_concurrent_writes,
    limit_and_next_cursor,
    model_releases_and_scored_counts,
    incidents_are_kept,
    incidents_stand_as_their_latest_event,
);
