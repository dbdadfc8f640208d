//! Unit tests of the Scylla/Cassandra store that need no cluster:
//! statement text, rows per verdict, the row mapping, batching, DDL,
//! consistency names, shards and days.

use scylla::statement::Consistency;
use scylla::value::CqlValue;
use vigil_schemas::Verdict;

use super::cql::{create_keyspace, ddl_statements, statements};
use super::rows::*;
use super::{parse_consistency, ScyllaOptions};
use vigil_schemas::{Contribution, ScoredAt};

fn verdict(anomaly: bool) -> Verdict {
    Verdict {
        alarm: anomaly.then(|| vigil_schemas::Alarm {
            id: "pump-0042@1870".into(),
            opened_seq: 1870,
            opened_ts: 1_795_446_981_408,
            state: vigil_schemas::AlarmState::Ongoing,
        }),
        schema: 1,
        device_id: "pump-0042".into(),
        seq: 1871,
        event_ts: 1_795_446_981_908,
        ingest_ts: Some(1_795_446_981_911),
        scored_ts: 1_795_446_981_913,
        model: "default".into(),
        model_version: Some(2),
        score: 0.93,
        threshold: 0.8,
        anomaly,
        contributions: vec![Contribution {
            metric: "temperature_c".into(),
            share: 0.71,
        }],
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

fn markers_in(text: &str) -> usize {
    text.matches('?').count()
}

#[test]
fn statements_bind_as_many_values_as_they_have_markers() {
    let v = verdict(true);
    for w in verdict_writes(&v, 3600).expect("writes") {
        let text = match w.stmt {
            Stmt::Verdict => statements::insert_day_row("verdicts"),
            Stmt::Anomaly => statements::insert_day_row("anomalies"),
            Stmt::ByRecord => statements::insert_by_record(),
            Stmt::DeviceDay => statements::INSERT_DEVICE_DAY.into(),
            Stmt::Scored => statements::INSERT_SCORED.into(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(markers_in(&text), w.values.len(), "{text}");
    }
    assert_eq!(
        statements::insert_day_row("verdicts"),
        "INSERT INTO verdicts (device_id, day, event_ts, seq, model, model_version, ingest_ts, \
         scored_ts, score, threshold, anomaly, scored_at, unscored, contributions, alarm) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    );
    assert_eq!(
        statements::select_day_range("anomalies"),
        "SELECT device_id, event_ts, seq, model, model_version, ingest_ts, scored_ts, score, \
         threshold, anomaly, scored_at, unscored, contributions, alarm FROM anomalies \
         WHERE device_id = ? AND day = ? \
         AND (event_ts, seq, model, model_version, scored_at) < (?, ?, ?, ?, ?) \
         AND (event_ts) >= (?) LIMIT ?"
    );
}

#[test]
fn a_verdict_writes_its_rows_and_anomalies_two_more() {
    let normal = verdict_writes(&verdict(false), 0).expect("writes");
    let stmts: Vec<Stmt> = normal.iter().map(|w| w.stmt).collect();
    assert_eq!(
        stmts,
        [Stmt::Verdict, Stmt::ByRecord, Stmt::DeviceDay, Stmt::Scored]
    );
    let anomalous = verdict_writes(&verdict(true), 0).expect("writes");
    assert_eq!(anomalous.len(), 6);
    assert_eq!(
        anomalous[4].key,
        PartitionKey::Day(Stmt::Anomaly, "pump-0042".into(), 20_780)
    );
    // TTL is the last value; 0 means "no expiry" in CQL.
    assert_eq!(anomalous[0].values.last(), Some(&Some(CqlValue::Int(0))));
}

#[test]
fn rows_map_back_to_the_same_verdict() {
    for v in [
        verdict(true),
        Verdict {
            model_version: None,
            ingest_ts: None,
            contributions: Vec::new(),
            unscored: Some(vigil_schemas::UnscoredReason::NoModel),
            scored_at: ScoredAt::Edge,
            anomaly: false,
            score: 0.0,
            ..verdict(false)
        },
    ] {
        let values = verdict_common(&v).expect("values");
        let get_i64 = |i: usize| match &values[i] {
            Some(CqlValue::BigInt(n)) => Some(*n),
            _ => None,
        };
        let get_text = |i: usize| match &values[i] {
            Some(CqlValue::Text(s)) => Some(s.clone()),
            _ => None,
        };
        let row: VerdictTuple = (
            get_text(0).expect("device"),
            get_i64(1).expect("event_ts"),
            get_i64(2).expect("seq"),
            get_text(3).expect("model"),
            get_i64(4).expect("version"),
            get_i64(5),
            get_i64(6).expect("scored_ts"),
            v.score,
            v.threshold,
            v.anomaly,
            get_text(10).expect("scored_at"),
            get_text(11),
            get_text(12),
            get_text(13),
        );
        assert_eq!(verdict_from_row(row).expect("maps"), v);
    }
}

#[test]
fn out_of_range_values_are_refused_not_wrapped() {
    let v = Verdict {
        seq: u64::MAX,
        ..verdict(false)
    };
    let err = verdict_writes(&v, 0).expect_err("seq too large");
    assert!(err.to_string().contains("seq"), "{err}");
}

#[test]
fn batches_touch_one_partition_each_and_keep_everything() {
    let verdicts: Vec<Verdict> = (0..250u64)
        .map(|i| Verdict {
            device_id: format!("dev-{}", i % 3),
            seq: i,
            // Two days.
            event_ts: 1_795_400_000_000 + i * 600_000,
            anomaly: i % 10 == 0,
            ..verdict(false)
        })
        .collect();
    let writes: Vec<Write> = verdicts
        .iter()
        .flat_map(|v| verdict_writes(v, 0).expect("writes"))
        .collect();
    let total = writes.len();
    let groups = group_by_partition(writes, MAX_BATCH_STATEMENTS, |w| w.key.clone());
    assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), total);
    for g in &groups {
        assert!(!g.is_empty() && g.len() <= MAX_BATCH_STATEMENTS);
        assert!(g.iter().all(|w| w.key == g[0].key), "mixed partitions");
    }
    // 250 records → 250 single-row record partitions, plus a few
    // multi-row groups: 3 devices × 2 days of verdicts, etc.
    let records = groups
        .iter()
        .filter(|g| matches!(g[0].key, PartitionKey::Record(..)))
        .count();
    assert_eq!(records, 250);
    let day_groups: Vec<&Vec<Write>> = groups
        .iter()
        .filter(|g| matches!(g[0].key, PartitionKey::Day(Stmt::Verdict, ..)))
        .collect();
    assert!(day_groups.len() >= 6, "{}", day_groups.len());
}

#[test]
fn grouping_keeps_order_and_splits_long_groups() {
    let items = vec![("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)];
    let groups = group_by_partition(items, 2, |(k, _)| *k);
    assert_eq!(
        groups,
        vec![
            vec![("a", 1), ("a", 2)],
            vec![("a", 3)],
            vec![("b", 1), ("b", 2)]
        ]
    );
}

#[test]
fn ddl_is_plain_idempotent_cql() {
    let ddl = ddl_statements();
    assert_eq!(ddl.len(), 8, "{ddl:#?}");
    // Columns added after first release exist in the DDL too, so a new
    // keyspace and a migrated one end up the same.
    for (table, column, kind) in super::cql::ADDED_COLUMNS {
        let create = ddl
            .iter()
            .find(|s| s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} (")))
            .expect("table in the DDL");
        assert!(create.contains(&format!(" {column} {kind},")), "{create}");
    }
    for s in &ddl {
        assert!(s.starts_with("CREATE TABLE IF NOT EXISTS "), "{s}");
        assert!(!s.contains("--"), "{s}");
        for forbidden in ["MATERIALIZED", "INDEX", "counter", "IF NOT EXISTS;"] {
            assert!(!s.contains(forbidden), "{forbidden} in {s}");
        }
    }
    assert!(ddl[0].contains(
        "PRIMARY KEY ((device_id, day), event_ts, seq, model, model_version, scored_at) ) \
         WITH CLUSTERING ORDER BY (event_ts DESC, seq DESC, model DESC, model_version DESC, \
         scored_at DESC)"
    ));
    // Every table the conflict check and the start-up check name keys
    // verdicts by where they were scored.
    for table in super::cql::KEYED_BY_PLACE {
        let create = ddl
            .iter()
            .find(|s| s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} (")))
            .expect("table in the DDL");
        assert!(
            create.contains("model_version, scored_at)"),
            "{table}: {create}"
        );
    }
    assert_eq!(
        create_keyspace("vigil", &ScyllaOptions::default().replication),
        "CREATE KEYSPACE IF NOT EXISTS vigil WITH replication = \
         {'class': 'NetworkTopologyStrategy', 'replication_factor': 1} AND durable_writes = true"
    );
}

#[test]
fn consistency_names_parse() {
    assert_eq!(
        parse_consistency("local_quorum"),
        Ok(Consistency::LocalQuorum)
    );
    assert_eq!(parse_consistency("LOCAL-ONE"), Ok(Consistency::LocalOne));
    assert!(parse_consistency("most")
        .expect_err("bad")
        .contains("LOCAL_QUORUM"));
}

#[test]
fn shards_and_days_are_stable() {
    assert_eq!(shard_of("pump-0042"), shard_of("pump-0042"));
    assert!((0..SCORED_SHARDS).contains(&shard_of("x")));
    let spread: std::collections::HashSet<i32> =
        (0..200).map(|i| shard_of(&format!("dev-{i}"))).collect();
    assert_eq!(spread.len(), SCORED_SHARDS as usize);
    assert_eq!(day_of(0), 0);
    assert_eq!(day_of(DAY_MS - 1), 0);
    assert_eq!(day_of(DAY_MS), 1);
}
