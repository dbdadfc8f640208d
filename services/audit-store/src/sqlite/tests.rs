//! Tests of the SQLite backend: connection tuning, schema migrations, and
//! two stores opening one new file at once.

use super::*;

fn pragma(conn: &Connection, name: &str) -> i64 {
    conn.pragma_query_value(None, name, |r| r.get(0))
        .expect(name)
}

#[test]
fn the_uri_tuning_bounds_every_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let tuning = SqliteTuning {
        cache_mib: 16,
        mmap_mib: 0,
    };
    let store = SqliteStore::open_with(&path, tuning).expect("opens");
    let writer = store.writer();
    assert_eq!(pragma(&writer, "cache_size"), -16 * 1024);
    assert_eq!(pragma(&writer, "mmap_size"), 0);
    drop(writer);
    for reader in &store.readers {
        let reader = reader.lock().expect("reader");
        assert_eq!(
            pragma(&reader, "cache_size"),
            -2000,
            "readers keep SQLite's default cache"
        );
        assert_eq!(pragma(&reader, "mmap_size"), 0);
    }

    let defaults = SqliteStore::open(&dir.path().join("b.db")).expect("opens");
    let writer = defaults.writer();
    assert_eq!(pragma(&writer, "cache_size"), -64 * 1024);
    assert_eq!(pragma(&writer, "mmap_size"), 256 << 20);
}

#[test]
fn a_version_1_store_is_migrated_and_keeps_alarms_from_then_on() {
    use vigil_schemas::{Alarm, AlarmState, ScoredAt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    {
        // A store as version 1 made it, with one verdict in it.
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(&format!("BEGIN; {DDL_V1} PRAGMA user_version = 1; COMMIT;"))
            .expect("v1 schema");
        conn.execute(
            "INSERT INTO verdicts (device_id, event_ts, seq, model, model_version, ingest_ts, \
             scored_ts, score, threshold, anomaly, scored_at, unscored, contributions) \
             VALUES ('d', 1000, 1, 'default', 1, NULL, 1001, 0.1, 0.5, 0, 'cloud', NULL, NULL)",
            [],
        )
        .expect("v1 row");
    }
    let store = SqliteStore::open(&path).expect("migrates");
    assert_eq!(pragma(&store.writer(), "user_version"), SCHEMA);
    let old = store.record_blocking("d", 1).expect("reads");
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].alarm, None);
    let v = Verdict {
        seq: 2,
        event_ts: 1001,
        score: 0.9,
        anomaly: true,
        alarm: Some(Alarm {
            id: Alarm::id_for("d", 2),
            opened_seq: 2,
            opened_ts: 1001,
            state: AlarmState::Opened,
        }),
        ..old[0].clone()
    };
    assert_eq!(v.scored_at, ScoredAt::Cloud);
    store
        .write_blocking(&WriteBatch {
            verdicts: vec![v.clone()],
            ..WriteBatch::default()
        })
        .expect("writes");
    assert_eq!(store.record_blocking("d", 2).expect("reads"), vec![v]);
    // Opening it again changes nothing.
    drop(store);
    let again = SqliteStore::open(&path).expect("reopens");
    assert_eq!(pragma(&again.writer(), "user_version"), SCHEMA);
}

#[test]
fn a_version_2_store_gets_its_incidents_as_they_stand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let event = |state, ts| Incident {
        schema: 1,
        incident_id: "d:1".into(),
        device_id: "d".into(),
        state,
        ts,
        ..Incident::default()
    };
    {
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(&format!(
            "BEGIN; {DDL_V1} {DDL_V2} PRAGMA user_version = 2; COMMIT;"
        ))
        .expect("v2 schema");
        for (state, ts) in [
            (vigil_schemas::IncidentState::Opened, 10_i64),
            (vigil_schemas::IncidentState::Resolved, 30),
        ] {
            let e = event(state, ts.unsigned_abs());
            conn.execute(
                INSERT_INCIDENT_SQL,
                params![
                    "d",
                    ts,
                    "d:1",
                    state_name(state),
                    incident_body(&e).expect("body")
                ],
            )
            .expect("v2 row");
        }
    }
    let store = SqliteStore::open(&path).expect("migrates");
    assert_eq!(pragma(&store.writer(), "user_version"), SCHEMA);
    let q = IncidentQuery {
        resolved: None,
        device_id: None,
        since_ms: 0,
        limit: 10,
    };
    let got = store.latest_incidents_blocking(&q).expect("reads");
    assert_eq!(got, vec![event(vigil_schemas::IncidentState::Resolved, 30)]);
}

#[test]
fn a_version_3_store_keys_its_verdicts_by_where_they_were_scored() {
    use vigil_schemas::ScoredAt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    {
        // A store as version 3 made it, with a cloud verdict that is also
        // an anomaly.
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(&format!(
            "BEGIN; {DDL_V1} {DDL_V2} {DDL_V3} PRAGMA user_version = 3; COMMIT;"
        ))
        .expect("v3 schema");
        for table in ["verdicts", "anomalies"] {
            conn.execute(
                &format!(
                    "INSERT INTO {table} (device_id, event_ts, seq, model, model_version, \
                     ingest_ts, scored_ts, score, threshold, anomaly, scored_at, unscored, \
                     contributions, alarm) VALUES ('d', 1000, 1, 'default', 1, NULL, 1001, \
                     0.9, 0.5, 1, 'cloud', NULL, NULL, NULL)"
                ),
                [],
            )
            .expect("v3 row");
        }
    }
    let store = SqliteStore::open(&path).expect("migrates");
    assert_eq!(pragma(&store.writer(), "user_version"), SCHEMA);
    let old = store.record_blocking("d", 1).expect("reads");
    assert_eq!(old.len(), 1, "the old row is kept");
    assert_eq!(old[0].scored_at, ScoredAt::Cloud);
    // The edge's verdict of the same record and version is now a row of
    // its own, in both tables.
    let edge = Verdict {
        scored_at: ScoredAt::Edge,
        ..old[0].clone()
    };
    let written = store
        .write_blocking(&WriteBatch {
            verdicts: vec![edge.clone()],
            ..WriteBatch::default()
        })
        .expect("writes");
    assert!(written.conflicts.is_empty());
    assert_eq!(
        store.record_blocking("d", 1).expect("reads"),
        vec![old[0].clone(), edge]
    );
    let anomalies: i64 = store
        .writer()
        .query_row("SELECT COUNT(*) FROM anomalies", [], |r| r.get(0))
        .expect("counts");
    assert_eq!(anomalies, 2);
    drop(store);
    let again = SqliteStore::open(&path).expect("reopens");
    assert_eq!(pragma(&again.writer(), "user_version"), SCHEMA);
    assert_eq!(again.record_blocking("d", 1).expect("reads").len(), 2);
}

#[test]
fn stores_opened_at_once_on_a_new_file_both_open() {
    // The demo's audit sink and dashboard open the same new file
    // together; the schema must be created once, not twice.
    for round in 0..8 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("audit-{round}.db"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no panic").expect("opens");
        }
    }
}
