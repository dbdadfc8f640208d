//! The SQLite store's SQL: the schema (DDL of each version) and the
//! statements it prepares. Verdict columns are the shared codec's
//! [`VERDICT_COLUMNS`].

use crate::codec::VERDICT_COLUMNS;

/// DDL of schema version 1. Tables named for what they hold; see the
/// module docs for why they are laid out this way.
pub(super) const DDL_V1: &str = "
CREATE TABLE IF NOT EXISTS verdicts (
    device_id TEXT NOT NULL,
    event_ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    ingest_ts INTEGER,
    scored_ts INTEGER NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    anomaly INTEGER NOT NULL,
    scored_at TEXT NOT NULL,
    unscored TEXT,
    contributions TEXT,
    PRIMARY KEY (device_id, event_ts, seq, model, model_version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS verdicts_by_record
    ON verdicts (device_id, seq, model, model_version);
CREATE TABLE IF NOT EXISTS anomalies (
    device_id TEXT NOT NULL,
    event_ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    ingest_ts INTEGER,
    scored_ts INTEGER NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    anomaly INTEGER NOT NULL,
    scored_at TEXT NOT NULL,
    unscored TEXT,
    contributions TEXT,
    PRIMARY KEY (device_id, event_ts, seq, model, model_version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS anomalies_by_record
    ON anomalies (device_id, seq, model, model_version);
CREATE TABLE IF NOT EXISTS model_releases (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    published_ts INTEGER NOT NULL,
    threshold REAL NOT NULL,
    training_from_ts INTEGER NOT NULL,
    training_to_ts INTEGER NOT NULL,
    training_records INTEGER NOT NULL,
    training_devices INTEGER NOT NULL,
    training_source TEXT NOT NULL,
    validation TEXT NOT NULL,
    signature_verified INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (model, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scored_counts (
    model TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (model, model_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    device_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    incident_id TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (device_id, ts, incident_id, state)
) WITHOUT ROWID;
";

/// DDL of schema version 2: each verdict's alarm (JSON), for stores
/// created by version 1.
pub(super) const DDL_V2: &str = "
ALTER TABLE verdicts ADD COLUMN alarm TEXT;
ALTER TABLE anomalies ADD COLUMN alarm TEXT;
";

/// DDL of schema version 3: each incident's latest event, filled from the
/// events already stored.
pub(super) const DDL_V3: &str = "
CREATE TABLE IF NOT EXISTS incident_latest (
    incident_id TEXT NOT NULL PRIMARY KEY,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    ts INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incident_latest_ts ON incident_latest (ts);
CREATE INDEX IF NOT EXISTS incident_latest_device ON incident_latest (device_id, ts);
INSERT INTO incident_latest (incident_id, device_id, state, ts, body)
    SELECT incident_id, device_id, state, ts, body FROM incidents WHERE true
    ON CONFLICT (incident_id) DO UPDATE SET device_id = excluded.device_id,
        state = excluded.state, ts = excluded.ts, body = excluded.body
    WHERE excluded.ts > incident_latest.ts;
";

/// The verdict tables keyed with where each verdict was made (schema
/// version 4): `{table}` rebuilt with `scored_at` in its primary key and
/// unique index, rows copied. SQLite cannot change the primary key of a
/// table in place, hence create, copy, drop, rename. `{table}` is
/// `verdicts` or `anomalies`.
fn ddl_v4_table(table: &str) -> String {
    format!(
        "
CREATE TABLE {table}_v4 (
    device_id TEXT NOT NULL,
    event_ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    ingest_ts INTEGER,
    scored_ts INTEGER NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    anomaly INTEGER NOT NULL,
    scored_at TEXT NOT NULL,
    unscored TEXT,
    contributions TEXT,
    alarm TEXT,
    PRIMARY KEY (device_id, event_ts, seq, model, model_version, scored_at)
) WITHOUT ROWID;
INSERT INTO {table}_v4 ({VERDICT_COLUMNS}) SELECT {VERDICT_COLUMNS} FROM {table};
DROP TABLE {table};
ALTER TABLE {table}_v4 RENAME TO {table};
CREATE UNIQUE INDEX {table}_by_record
    ON {table} (device_id, seq, model, model_version, scored_at);
"
    )
}

/// DDL of schema version 4 (see [`ddl_v4_table`]).
pub(super) fn ddl_v4() -> String {
    format!("{}{}", ddl_v4_table("verdicts"), ddl_v4_table("anomalies"))
}

/// The event time of the stored verdict with a key: ?1 device, ?2 seq,
/// ?3 model, ?4 version, ?5 scored_at.
pub(super) const STORED_EVENT_TS_SQL: &str =
    "SELECT event_ts FROM verdicts INDEXED BY verdicts_by_record \
     WHERE device_id = ?1 AND seq = ?2 AND model = ?3 AND model_version = ?4 AND scored_at = ?5";

/// Whether the record was scored by that version somewhere else too (the
/// scored count counts records, not places): ?1 device, ?2 seq, ?3 model,
/// ?4 version, ?5 scored_at of the row just inserted.
pub(super) const SCORED_ELSEWHERE_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM verdicts INDEXED BY verdicts_by_record \
     WHERE device_id = ?1 AND seq = ?2 AND model = ?3 AND model_version = ?4 AND scored_at <> ?5)";

/// Upsert of an incident's latest event: a newer `ts` wins.
pub(super) const UPSERT_LATEST_INCIDENT_SQL: &str =
    "INSERT INTO incident_latest (incident_id, device_id, state, ts, body)      VALUES (?1, ?2, ?3, ?4, ?5)      ON CONFLICT (incident_id) DO UPDATE SET device_id = excluded.device_id,          state = excluded.state, ts = excluded.ts, body = excluded.body      WHERE excluded.ts > incident_latest.ts";

/// Incidents as they stand: ?1 device or NULL, ?2 since, ?3 1 (resolved),
/// 0 (open) or NULL, ?4 limit.
pub(super) const SELECT_LATEST_INCIDENTS_SQL: &str =
    "SELECT body FROM incident_latest      WHERE (?1 IS NULL OR device_id = ?1) AND ts >= ?2        AND (?3 IS NULL OR (state = 'resolved') = ?3)      ORDER BY ts DESC, incident_id DESC LIMIT ?4";

pub(super) fn insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} ({VERDICT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT DO NOTHING"
    )
}

pub(super) fn range_sql(table: &str) -> String {
    format!(
        "SELECT {VERDICT_COLUMNS} FROM {table} \
         WHERE device_id = ?1 AND event_ts >= ?2 AND event_ts <= ?3 \
           AND (event_ts, seq, model, model_version, scored_at) < (?4, ?5, ?6, ?7, ?8) \
         ORDER BY event_ts DESC, seq DESC, model DESC, model_version DESC, scored_at DESC \
         LIMIT ?9"
    )
}

pub(super) fn record_sql() -> String {
    format!(
        "SELECT {VERDICT_COLUMNS} FROM verdicts INDEXED BY verdicts_by_record \
         WHERE device_id = ?1 AND seq = ?2 ORDER BY model, model_version, scored_at"
    )
}

pub(super) const BUMP_COUNT_SQL: &str =
    "INSERT INTO scored_counts (model, model_version, records) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (model, model_version) DO UPDATE SET records = records + excluded.records";

pub(super) const INSERT_RELEASE_SQL: &str = "INSERT INTO model_releases (model, version, key_id, \
     payload_sha256, created_ts, published_ts, threshold, training_from_ts, training_to_ts, \
     training_records, training_devices, training_source, validation, signature_verified, envelope) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
     ON CONFLICT DO NOTHING";

pub(super) const RELEASE_COLUMNS: &str =
    "m.model, m.version, m.key_id, m.payload_sha256, m.created_ts, \
     m.published_ts, m.threshold, m.training_from_ts, m.training_to_ts, m.training_records, \
     m.training_devices, m.training_source, m.validation, m.signature_verified, \
     COALESCE(c.records, 0)";

pub(super) const INSERT_INCIDENT_SQL: &str =
    "INSERT INTO incidents (device_id, ts, incident_id, state, body) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";
