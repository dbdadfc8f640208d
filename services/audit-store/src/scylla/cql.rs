//! The Scylla/Cassandra store's CQL: the schema file and its DDL
//! statements, the keyspace statement, the column lists and every
//! statement the store prepares, as text.

use crate::codec::VERDICT_COLUMNS;

/// The table DDL, shared with operators who run it with cqlsh.
pub const AUDIT_CQL: &str = include_str!("../../../../schemas/cql/audit.cql");

/// Columns of a verdict row in `verdicts` / `anomalies`, in bind order.
pub const DAY_TABLE_COLUMNS: &str = "device_id, day, event_ts, seq, model, model_version, \
     ingest_ts, scored_ts, score, threshold, anomaly, scored_at, unscored, contributions, alarm";
/// Columns read back from any verdict table, in [`VerdictTuple`](super::rows::VerdictTuple) order (the codec's
/// verdict columns).
pub const READ_COLUMNS: &str = VERDICT_COLUMNS;
/// Columns of `verdicts_by_record`, in bind order.
pub const RECORD_TABLE_COLUMNS: &str = READ_COLUMNS;
/// Columns of a release, in [`ReleaseTuple`](super::rows::ReleaseTuple) order (the envelope last).
pub const RELEASE_COLUMNS: &str = "model, version, key_id, payload_sha256, created_ts, \
     published_ts, threshold, training_from_ts, training_to_ts, training_records, \
     training_devices, training_source, validation, signature_verified, envelope";

/// Every CQL statement the store prepares, as text (unit-tested).
pub mod statements {
    use super::{DAY_TABLE_COLUMNS, READ_COLUMNS, RECORD_TABLE_COLUMNS, RELEASE_COLUMNS};

    /// `?, ?, …` with `n` markers.
    pub fn markers(n: usize) -> String {
        vec!["?"; n].join(", ")
    }

    fn column_count(columns: &str) -> usize {
        columns.split(',').count()
    }

    /// Upsert into `verdicts` or `anomalies` (last marker: TTL).
    pub fn insert_day_row(table: &str) -> String {
        format!(
            "INSERT INTO {table} ({DAY_TABLE_COLUMNS}) VALUES ({}) USING TTL ?",
            markers(column_count(DAY_TABLE_COLUMNS))
        )
    }

    /// Upsert into `verdicts_by_record` (last marker: TTL).
    pub fn insert_by_record() -> String {
        format!(
            "INSERT INTO verdicts_by_record ({RECORD_TABLE_COLUMNS}) VALUES ({}) USING TTL ?",
            markers(column_count(RECORD_TABLE_COLUMNS))
        )
    }

    /// Marks that a device has rows of `kind` on `day` (last marker: TTL).
    pub const INSERT_DEVICE_DAY: &str =
        "INSERT INTO device_days (device_id, kind, day) VALUES (?, ?, ?) USING TTL ?";

    /// Marks a record scored by a version (last marker: TTL).
    pub const INSERT_SCORED: &str = "INSERT INTO scored_records (model, model_version, shard, \
         device_id, seq) VALUES (?, ?, ?, ?, ?) USING TTL ?";

    /// Upsert of a release (never expires).
    pub fn insert_release() -> String {
        format!(
            "INSERT INTO model_releases ({RELEASE_COLUMNS}) VALUES ({})",
            markers(column_count(RELEASE_COLUMNS))
        )
    }

    /// Upsert of an incident event (last marker: TTL).
    pub const INSERT_INCIDENT: &str = "INSERT INTO incidents (device_id, ts, incident_id, state, \
         body) VALUES (?, ?, ?, ?, ?) USING TTL ?";

    /// Upsert of an incident's latest event of a day (markers after the
    /// values: TTL, then the write timestamp, µs).
    pub const INSERT_INCIDENT_DAY: &str = "INSERT INTO incidents_by_day (day, incident_id, \
         device_id, state, ts, body) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?";

    /// The incidents of one day partition.
    pub const SELECT_INCIDENT_DAY: &str = "SELECT body FROM incidents_by_day WHERE day = ?";

    /// One day partition of a device, strictly below a position and at or
    /// above a time: a multi-column slice on the descending clustering key.
    pub fn select_day_range(table: &str) -> String {
        format!(
            "SELECT {READ_COLUMNS} FROM {table} WHERE device_id = ? AND day = ? \
             AND (event_ts, seq, model, model_version, scored_at) < (?, ?, ?, ?, ?) \
             AND (event_ts) >= (?) LIMIT ?"
        )
    }

    /// The days of a device that hold rows of a kind, newest first.
    pub const SELECT_DEVICE_DAYS: &str =
        "SELECT day FROM device_days WHERE device_id = ? AND kind = ? AND day >= ? AND day <= ?";

    /// Every verdict of one record.
    pub fn select_record() -> String {
        format!("SELECT {READ_COLUMNS} FROM verdicts_by_record WHERE device_id = ? AND seq = ?")
    }

    /// The event time of the stored verdict with a key (the conflict
    /// check before a write).
    pub const SELECT_STORED_EVENT_TS: &str = "SELECT event_ts FROM verdicts_by_record \
         WHERE device_id = ? AND seq = ? AND model = ? AND model_version = ? AND scored_at = ?";

    /// Records one shard of a version scored.
    pub const COUNT_SCORED: &str = "SELECT COUNT(*) FROM scored_records \
         WHERE model = ? AND model_version = ? AND shard = ?";

    /// Every release (small table; paged).
    pub fn select_all_releases() -> String {
        format!("SELECT {RELEASE_COLUMNS} FROM model_releases")
    }

    /// The releases of one model, newest first.
    pub fn select_model_releases() -> String {
        format!("SELECT {RELEASE_COLUMNS} FROM model_releases WHERE model = ?")
    }

    /// One release.
    pub fn select_release() -> String {
        format!("SELECT {RELEASE_COLUMNS} FROM model_releases WHERE model = ? AND version = ?")
    }

    /// A device's incident events, newest first.
    pub const SELECT_INCIDENTS: &str = "SELECT body FROM incidents WHERE device_id = ? LIMIT ?";
}

/// The DDL statements of [`AUDIT_CQL`], comments removed, in file order.
pub fn ddl_statements() -> Vec<String> {
    let without_comments: String = AUDIT_CQL
        .lines()
        .map(|line| match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Columns added to tables after they were first created (`table`,
/// `column`, CQL type): a keyspace made by an older build gets them with
/// `ALTER TABLE … ADD` when they are missing.
pub const ADDED_COLUMNS: [(&str, &str, &str); 3] = [
    ("verdicts", "alarm", "text"),
    ("anomalies", "alarm", "text"),
    ("verdicts_by_record", "alarm", "text"),
];

/// Tables whose key must hold `scored_at` (schema version 2); a keyspace
/// made by an older build has it as a plain column and is refused.
pub const KEYED_BY_PLACE: [&str; 3] = ["verdicts", "anomalies", "verdicts_by_record"];

/// The kind of a column (`partition_key`, `clustering`, `regular`; bind:
/// keyspace, table, column).
pub const SELECT_COLUMN_KIND: &str = "SELECT kind FROM system_schema.columns \
     WHERE keyspace_name = ? AND table_name = ? AND column_name = ?";

/// Whether a column exists (bind: keyspace, table, column).
pub const SELECT_COLUMN: &str = "SELECT column_name FROM system_schema.columns \
     WHERE keyspace_name = ? AND table_name = ? AND column_name = ?";

/// `CREATE KEYSPACE IF NOT EXISTS` with the configured replication.
pub fn create_keyspace(keyspace: &str, replication: &str) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication} \
         AND durable_writes = true"
    )
}
