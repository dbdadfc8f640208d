//! The production audit store: ScyllaDB or Apache Cassandra through the
//! `scylla` driver.
//!
//! - **Schema.** `schemas/cql/audit.cql` (plain CQL for Cassandra 4/5 and
//!   ScyllaDB 5+), run statement by statement at start-up after `CREATE
//!   KEYSPACE IF NOT EXISTS` with the configured replication; every
//!   statement is `IF NOT EXISTS`, so migration is idempotent.
//! - **Writes.** Prepared statements only, marked idempotent (every insert
//!   is an upsert of the same values), so the driver may retry them. Each
//!   verdict becomes rows in several tables; the rows are grouped by
//!   partition ([`group_by_partition`]) and each group of two or more goes
//!   as one *unlogged* batch: a single-partition batch is applied
//!   atomically by one replica set at the cost of one write, whereas a
//!   multi-partition batch would make its coordinator fan out and is the
//!   classic Cassandra anti-pattern. Groups run concurrently (bounded).
//! - **Routing.** The default load-balancing policy is token-aware (and
//!   shard-aware on ScyllaDB): prepared statements carry their partition
//!   key, so each request goes straight to a replica.
//! - **Consistency** is configurable (default `LOCAL_QUORUM`); the retry
//!   policy is the driver's default (retry idempotent requests on another
//!   node after a broken connection, overload or one unavailable error).
//!   A batch that still fails is returned to the sink, which retries the
//!   whole batch with backoff and commits no offset until it succeeds.
//! - **Reads.** Range queries walk a device's day partitions newest first
//!   (only days that exist, from `device_days`), each a multi-column slice
//!   on the descending clustering key, until the page is full.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::CqlValue;
use vigil_schemas::{Incident, TrainingWindow, ValidationMetrics, Verdict, SCHEMA_VERSION};

use super::sqlite::{
    decode_contributions, encode_contributions, parse_scored_at, parse_unscored, state_name,
    unscored_name,
};
use super::{
    from_i64, stored_version, to_i64, ModelDetail, ModelRecord, ModelSummary, Page, RangeQuery,
    ReleaseRow, Store, StoreError, WriteBatch,
};

/// The table DDL, shared with operators who run it with cqlsh.
pub const AUDIT_CQL: &str = include_str!("../../../../schemas/cql/audit.cql");

/// Milliseconds in a partition day.
pub const DAY_MS: u64 = 86_400_000;
/// Shards of `scored_records` per model version.
pub const SCORED_SHARDS: i32 = 16;
/// Most statements in one unlogged batch (keeps batches well under the
/// servers' batch-size warning threshold).
pub const MAX_BATCH_STATEMENTS: usize = 100;
/// Requests (batches or single statements) in flight per `write`.
const WRITE_CONCURRENCY: usize = 64;

/// Options of the Scylla backend (flags of `vigil audit`).
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// CQL map literal for `CREATE KEYSPACE … WITH replication = …`.
    pub replication: String,
    /// Consistency of every read and write.
    pub consistency: Consistency,
    /// TTL of verdict rows, seconds; 0 keeps them forever.
    pub ttl_secs: u32,
    /// Client-side timeout of one request.
    pub request_timeout: Duration,
    /// User name and password, when the cluster requires them.
    pub credentials: Option<(String, String)>,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".into(),
            consistency: Consistency::LocalQuorum,
            ttl_secs: 0,
            request_timeout: Duration::from_secs(10),
            credentials: None,
        }
    }
}

/// Parses a consistency level name (`local_quorum`, `QUORUM`, `one`, …).
pub fn parse_consistency(s: &str) -> Result<Consistency, String> {
    Ok(match s.to_ascii_uppercase().replace('-', "_").as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        other => {
            return Err(format!(
                "unknown consistency {other:?}; one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE, ANY"
            ))
        }
    })
}

/// Columns of a verdict row in `verdicts` / `anomalies`, in bind order.
pub const DAY_TABLE_COLUMNS: &str = "device_id, day, event_ts, seq, model, model_version, \
     ingest_ts, scored_ts, score, threshold, anomaly, scored_at, unscored, contributions";
/// Columns read back from any verdict table, in [`VerdictTuple`] order.
pub const READ_COLUMNS: &str = "device_id, event_ts, seq, model, model_version, ingest_ts, \
     scored_ts, score, threshold, anomaly, scored_at, unscored, contributions";
/// Columns of `verdicts_by_record`, in bind order.
pub const RECORD_TABLE_COLUMNS: &str = READ_COLUMNS;
/// Columns of a release, in [`ReleaseTuple`] order (the envelope last).
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

    /// One day partition of a device, strictly below a position and at or
    /// above a time: a multi-column slice on the descending clustering key.
    pub fn select_day_range(table: &str) -> String {
        format!(
            "SELECT {READ_COLUMNS} FROM {table} WHERE device_id = ? AND day = ? \
             AND (event_ts, seq, model, model_version) < (?, ?, ?, ?) AND (event_ts) >= (?) \
             LIMIT ?"
        )
    }

    /// The days of a device that hold rows of a kind, newest first.
    pub const SELECT_DEVICE_DAYS: &str =
        "SELECT day FROM device_days WHERE device_id = ? AND kind = ? AND day >= ? AND day <= ?";

    /// Every verdict of one record.
    pub fn select_record() -> String {
        format!("SELECT {READ_COLUMNS} FROM verdicts_by_record WHERE device_id = ? AND seq = ?")
    }

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

/// `CREATE KEYSPACE IF NOT EXISTS` with the configured replication.
pub fn create_keyspace(keyspace: &str, replication: &str) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication} \
         AND durable_writes = true"
    )
}

/// The UTC day (partition bucket) of an event time.
pub fn day_of(event_ts: u64) -> i32 {
    i32::try_from(event_ts / DAY_MS).unwrap_or(i32::MAX)
}

/// Stable shard of a device in `scored_records` (FNV-1a, so every sink
/// replica and version of Vigil agrees).
pub fn shard_of(device_id: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in device_id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::try_from(hash % SCORED_SHARDS.unsigned_abs()).unwrap_or(0)
}

/// Which prepared statement a write uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stmt {
    /// Into `verdicts`.
    Verdict,
    /// Into `anomalies`.
    Anomaly,
    /// Into `verdicts_by_record`.
    ByRecord,
    /// Into `device_days`.
    DeviceDay,
    /// Into `scored_records`.
    Scored,
    /// Into `model_releases`.
    Release,
    /// Into `incidents`.
    Incident,
}

/// The partition a write lands in: table plus partition key values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartitionKey {
    /// `verdicts` or `anomalies` `(device_id, day)`.
    Day(Stmt, String, i32),
    /// `device_days (device_id)`.
    DeviceDays(String),
    /// `verdicts_by_record (device_id, seq)`.
    Record(String, u64),
    /// `scored_records (model, model_version, shard)`.
    Scored(String, u64, i32),
    /// `model_releases (model)`.
    Release(String),
    /// `incidents (device_id)`.
    Incident(String),
}

/// One row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// Its partition.
    pub key: PartitionKey,
    /// Its statement.
    pub stmt: Stmt,
    /// Bound values in statement order.
    pub values: Vec<Option<CqlValue>>,
}

/// Groups `items` by `key`, keeping first-seen order of groups and of
/// items within a group, and splits groups longer than `max` into chunks.
/// Every returned group shares one key: a batch built from it touches one
/// partition.
pub fn group_by_partition<T, K, F>(items: Vec<T>, max: usize, key: F) -> Vec<Vec<T>>
where
    K: Eq + Hash + Clone,
    F: Fn(&T) -> K,
{
    let max = max.max(1);
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut groups: Vec<Vec<T>> = Vec::new();
    for item in items {
        let k = key(&item);
        let i = *index.entry(k).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(item);
    }
    groups
        .into_iter()
        .flat_map(|group| {
            let mut chunks = Vec::new();
            let mut rest = group;
            while rest.len() > max {
                let tail = rest.split_off(max);
                chunks.push(rest);
                rest = tail;
            }
            chunks.push(rest);
            chunks
        })
        .collect()
}

fn big(field: &'static str, v: u64) -> Result<Option<CqlValue>, StoreError> {
    Ok(Some(CqlValue::BigInt(to_i64(field, v)?)))
}

fn text(s: &str) -> Option<CqlValue> {
    Some(CqlValue::Text(s.to_owned()))
}

fn ttl_value(ttl_secs: u32) -> Option<CqlValue> {
    Some(CqlValue::Int(i32::try_from(ttl_secs).unwrap_or(i32::MAX)))
}

/// Values of a verdict for [`READ_COLUMNS`] (shared by every verdict table).
fn verdict_common(v: &Verdict) -> Result<Vec<Option<CqlValue>>, StoreError> {
    Ok(vec![
        text(&v.device_id),
        big("event_ts", v.event_ts)?,
        big("seq", v.seq)?,
        text(&v.model),
        big("model_version", stored_version(v))?,
        v.ingest_ts
            .map(|t| big("ingest_ts", t))
            .transpose()?
            .flatten(),
        big("scored_ts", v.scored_ts)?,
        Some(CqlValue::Double(v.score)),
        Some(CqlValue::Double(v.threshold)),
        Some(CqlValue::Boolean(v.anomaly)),
        text(v.scored_at.as_str()),
        v.unscored.map(unscored_name).and_then(text),
        encode_contributions(&v.contributions)?.map(CqlValue::Text),
    ])
}

/// The rows one verdict writes: its day row, its record row, the device
/// day marker, the scored marker, and for anomalies the anomaly row and
/// marker.
pub fn verdict_writes(v: &Verdict, ttl_secs: u32) -> Result<Vec<Write>, StoreError> {
    let common = verdict_common(v)?;
    let day = day_of(v.event_ts);
    let ttl = ttl_value(ttl_secs);
    // DAY_TABLE_COLUMNS is READ_COLUMNS with `day` after device_id.
    let mut day_row = Vec::with_capacity(common.len() + 2);
    day_row.push(common[0].clone());
    day_row.push(Some(CqlValue::Int(day)));
    day_row.extend(common[1..].iter().cloned());
    day_row.push(ttl.clone());
    let mut record_row = common;
    record_row.push(ttl.clone());
    let version = stored_version(v);
    let device = v.device_id.clone();
    let mut writes = vec![
        Write {
            key: PartitionKey::Day(Stmt::Verdict, device.clone(), day),
            stmt: Stmt::Verdict,
            values: day_row.clone(),
        },
        Write {
            key: PartitionKey::Record(device.clone(), v.seq),
            stmt: Stmt::ByRecord,
            values: record_row,
        },
        Write {
            key: PartitionKey::DeviceDays(device.clone()),
            stmt: Stmt::DeviceDay,
            values: vec![
                text(&device),
                text("v"),
                Some(CqlValue::Int(day)),
                ttl.clone(),
            ],
        },
        Write {
            key: PartitionKey::Scored(v.model.clone(), version, shard_of(&device)),
            stmt: Stmt::Scored,
            values: vec![
                text(&v.model),
                big("model_version", version)?,
                Some(CqlValue::Int(shard_of(&device))),
                text(&device),
                big("seq", v.seq)?,
                ttl.clone(),
            ],
        },
    ];
    if v.anomaly {
        writes.push(Write {
            key: PartitionKey::Day(Stmt::Anomaly, device.clone(), day),
            stmt: Stmt::Anomaly,
            values: day_row,
        });
        writes.push(Write {
            key: PartitionKey::DeviceDays(device.clone()),
            stmt: Stmt::DeviceDay,
            values: vec![text(&device), text("a"), Some(CqlValue::Int(day)), ttl],
        });
    }
    Ok(writes)
}

/// The row a release writes.
pub fn release_write(r: &ReleaseRow) -> Result<Write, StoreError> {
    let m = &r.record;
    let validation = serde_json::to_string(&m.validation).map_err(|e| StoreError::Corrupt {
        what: "validation metrics",
        detail: e.to_string(),
    })?;
    Ok(Write {
        key: PartitionKey::Release(m.model.clone()),
        stmt: Stmt::Release,
        values: vec![
            text(&m.model),
            big("version", m.version)?,
            text(&m.key_id),
            text(&m.payload_sha256),
            big("created_ts", m.created_ts)?,
            big("published_ts", m.published_ts)?,
            Some(CqlValue::Double(m.threshold)),
            big("training.from_ts", m.training.from_ts)?,
            big("training.to_ts", m.training.to_ts)?,
            big("training.records", m.training.records)?,
            big("training.devices", m.training.devices)?,
            text(&m.training.source),
            Some(CqlValue::Text(validation)),
            Some(CqlValue::Boolean(m.signature_verified)),
            text(&r.envelope),
        ],
    })
}

/// The row an incident event writes.
pub fn incident_write(i: &Incident, ttl_secs: u32) -> Result<Write, StoreError> {
    let body = serde_json::to_string(i).map_err(|e| StoreError::Corrupt {
        what: "incident",
        detail: e.to_string(),
    })?;
    Ok(Write {
        key: PartitionKey::Incident(i.device_id.clone()),
        stmt: Stmt::Incident,
        values: vec![
            text(&i.device_id),
            big("ts", i.ts)?,
            text(&i.incident_id),
            text(state_name(i.state)),
            Some(CqlValue::Text(body)),
            ttl_value(ttl_secs),
        ],
    })
}

/// A verdict row as read ([`READ_COLUMNS`] order).
pub type VerdictTuple = (
    String,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    i64,
    f64,
    f64,
    bool,
    String,
    Option<String>,
    Option<String>,
);

/// Maps a verdict row back to the message.
pub fn verdict_from_row(row: VerdictTuple) -> Result<Verdict, StoreError> {
    let (
        device_id,
        event_ts,
        seq,
        model,
        version,
        ingest_ts,
        scored_ts,
        score,
        threshold,
        anomaly,
        scored_at,
        unscored,
        contributions,
    ) = row;
    let version = from_i64("model_version", version)?;
    Ok(Verdict {
        schema: SCHEMA_VERSION,
        device_id,
        seq: from_i64("seq", seq)?,
        event_ts: from_i64("event_ts", event_ts)?,
        ingest_ts: ingest_ts.map(|t| from_i64("ingest_ts", t)).transpose()?,
        scored_ts: from_i64("scored_ts", scored_ts)?,
        model,
        model_version: (version != 0).then_some(version),
        score,
        threshold,
        anomaly,
        contributions: decode_contributions(contributions.as_deref())?,
        scored_at: parse_scored_at(&scored_at)?,
        unscored: parse_unscored(unscored.as_deref())?,
    })
}

/// A release row as read ([`RELEASE_COLUMNS`] order).
pub type ReleaseTuple = (
    String,
    i64,
    String,
    String,
    i64,
    i64,
    f64,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    bool,
    String,
);

/// Maps a release row back to its record and envelope.
pub fn release_from_row(row: ReleaseTuple) -> Result<(ModelRecord, String), StoreError> {
    let (
        model,
        version,
        key_id,
        payload_sha256,
        created_ts,
        published_ts,
        threshold,
        from_ts,
        to_ts,
        records,
        devices,
        source,
        validation,
        signature_verified,
        envelope,
    ) = row;
    let validation: ValidationMetrics =
        serde_json::from_str(&validation).map_err(|e| StoreError::Corrupt {
            what: "validation metrics",
            detail: e.to_string(),
        })?;
    Ok((
        ModelRecord {
            model,
            version: from_i64("version", version)?,
            key_id,
            payload_sha256,
            created_ts: from_i64("created_ts", created_ts)?,
            published_ts: from_i64("published_ts", published_ts)?,
            threshold,
            training: TrainingWindow {
                from_ts: from_i64("training.from_ts", from_ts)?,
                to_ts: from_i64("training.to_ts", to_ts)?,
                records: from_i64("training.records", records)?,
                devices: from_i64("training.devices", devices)?,
                source,
            },
            validation,
            signature_verified,
        },
        envelope,
    ))
}

/// Prepared statements, prepared once at connect.
#[derive(Debug)]
struct Prepared {
    verdict: PreparedStatement,
    anomaly: PreparedStatement,
    by_record: PreparedStatement,
    device_day: PreparedStatement,
    scored: PreparedStatement,
    release: PreparedStatement,
    incident: PreparedStatement,
    verdict_range: PreparedStatement,
    anomaly_range: PreparedStatement,
    device_days: PreparedStatement,
    record: PreparedStatement,
    count_scored: PreparedStatement,
    all_releases: PreparedStatement,
    model_releases: PreparedStatement,
    release_one: PreparedStatement,
    incidents: PreparedStatement,
}

impl Prepared {
    fn for_write(&self, stmt: Stmt) -> &PreparedStatement {
        match stmt {
            Stmt::Verdict => &self.verdict,
            Stmt::Anomaly => &self.anomaly,
            Stmt::ByRecord => &self.by_record,
            Stmt::DeviceDay => &self.device_day,
            Stmt::Scored => &self.scored,
            Stmt::Release => &self.release,
            Stmt::Incident => &self.incident,
        }
    }
}

/// A connected, migrated Scylla/Cassandra store.
pub struct ScyllaStore {
    session: Session,
    prepared: Prepared,
    ttl_secs: u32,
    keyspace: String,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("keyspace", &self.keyspace)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

fn scylla_err(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StoreError {
    move |e| StoreError::Scylla {
        what,
        detail: e.to_string(),
    }
}

macro_rules! cql {
    ($what:literal, $e:expr) => {
        $e.map_err(|e| scylla_err($what)(&e))
    };
}

impl ScyllaStore {
    /// Connects to `nodes`, creates the keyspace and tables when missing,
    /// and prepares every statement.
    pub async fn connect(
        nodes: &[String],
        keyspace: &str,
        options: &ScyllaOptions,
    ) -> Result<Self, StoreError> {
        let uri = format!("scylla://{}/{keyspace}", nodes.join(","));
        let open = |detail: String| StoreError::Open {
            uri: uri.clone(),
            detail,
        };
        let profile = ExecutionProfile::builder()
            .consistency(options.consistency)
            .request_timeout(Some(options.request_timeout))
            .load_balancing_policy(DefaultPolicy::builder().token_aware(true).build())
            .retry_policy(Arc::new(DefaultRetryPolicy::new()))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(nodes)
            .default_execution_profile_handle(profile.into_handle());
        if let Some((user, password)) = &options.credentials {
            builder = builder.user(user, password);
        }
        let session = builder.build().await.map_err(|e| open(e.to_string()))?;
        session
            .query_unpaged(create_keyspace(keyspace, &options.replication), ())
            .await
            .map_err(|e| open(format!("creating keyspace {keyspace}: {e}")))?;
        session
            .use_keyspace(keyspace, false)
            .await
            .map_err(|e| open(format!("using keyspace {keyspace}: {e}")))?;
        for ddl in ddl_statements() {
            session
                .query_unpaged(ddl.as_str(), ())
                .await
                .map_err(|e| open(format!("running {ddl:?}: {e}")))?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(|e| open(format!("waiting for schema agreement: {e}")))?;
        let prepared = Self::prepare_all(&session)
            .await
            .map_err(|e| open(e.to_string()))?;
        tracing::info!(%uri, "audit store connected and migrated");
        Ok(Self {
            session,
            prepared,
            ttl_secs: options.ttl_secs,
            keyspace: keyspace.to_owned(),
        })
    }

    async fn prepare_all(session: &Session) -> Result<Prepared, StoreError> {
        let prepare = |text: String, idempotent: bool| async move {
            let mut p = cql!("preparing a statement", session.prepare(text).await)?;
            p.set_is_idempotent(idempotent);
            Ok::<_, StoreError>(p)
        };
        use statements as s;
        Ok(Prepared {
            verdict: prepare(s::insert_day_row("verdicts"), true).await?,
            anomaly: prepare(s::insert_day_row("anomalies"), true).await?,
            by_record: prepare(s::insert_by_record(), true).await?,
            device_day: prepare(s::INSERT_DEVICE_DAY.into(), true).await?,
            scored: prepare(s::INSERT_SCORED.into(), true).await?,
            release: prepare(s::insert_release(), true).await?,
            incident: prepare(s::INSERT_INCIDENT.into(), true).await?,
            verdict_range: prepare(s::select_day_range("verdicts"), true).await?,
            anomaly_range: prepare(s::select_day_range("anomalies"), true).await?,
            device_days: prepare(s::SELECT_DEVICE_DAYS.into(), true).await?,
            record: prepare(s::select_record(), true).await?,
            count_scored: prepare(s::COUNT_SCORED.into(), true).await?,
            all_releases: prepare(s::select_all_releases(), true).await?,
            model_releases: prepare(s::select_model_releases(), true).await?,
            release_one: prepare(s::select_release(), true).await?,
            incidents: prepare(s::SELECT_INCIDENTS.into(), true).await?,
        })
    }

    /// Sends one partition's writes: a single statement, or an unlogged
    /// batch.
    async fn send(&self, group: Vec<Write>) -> Result<(), StoreError> {
        if let [single] = group.as_slice() {
            cql!(
                "writing a row",
                self.session
                    .execute_unpaged(self.prepared.for_write(single.stmt), &single.values)
                    .await
            )?;
            return Ok(());
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(group.len());
        for w in group {
            batch.append_statement(self.prepared.for_write(w.stmt).clone());
            values.push(w.values);
        }
        cql!("writing a batch", self.session.batch(&batch, values).await)?;
        Ok(())
    }

    async fn range(&self, anomalies: bool, q: RangeQuery) -> Result<Page, StoreError> {
        if q.from_ms >= q.to_ms || q.limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let top = match &q.after {
            Some(c) => c.event_ts.min(q.to_ms - 1),
            None => q.to_ms - 1,
        };
        if top < q.from_ms {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let (kind, stmt) = if anomalies {
            ("a", &self.prepared.anomaly_range)
        } else {
            ("v", &self.prepared.verdict_range)
        };
        let days_result = cql!(
            "listing device days",
            self.session
                .execute_unpaged(
                    &self.prepared.device_days,
                    (&q.device_id, kind, day_of(q.from_ms), day_of(top)),
                )
                .await
        )?;
        let rows = cql!("reading device days", days_result.into_rows_result())?;
        let mut days: Vec<i32> = cql!("reading device days", rows.rows::<(i32,)>())?
            .map(|r| r.map(|(d,)| d))
            .collect::<Result<_, _>>()
            .map_err(|e| scylla_err("reading device days")(&e))?;
        days.sort_unstable_by(|a, b| b.cmp(a));
        let (bound_ts, bound_seq, bound_model, bound_version) = match &q.after {
            Some(c) => (
                to_i64("cursor event_ts", c.event_ts)?,
                to_i64("cursor seq", c.seq)?,
                c.model.clone(),
                to_i64("cursor model_version", c.model_version)?,
            ),
            // (to, MIN, "", MIN) is above every row with event_ts < to.
            None => (to_i64("to", q.to_ms)?, i64::MIN, String::new(), i64::MIN),
        };
        let from = to_i64("from", q.from_ms)?;
        let mut items = Vec::with_capacity(q.limit + 1);
        for day in days {
            let want = q.limit + 1 - items.len();
            let result = cql!(
                "reading a device day",
                self.session
                    .execute_unpaged(
                        stmt,
                        (
                            &q.device_id,
                            day,
                            bound_ts,
                            bound_seq,
                            &bound_model,
                            bound_version,
                            from,
                            i32::try_from(want).unwrap_or(i32::MAX),
                        ),
                    )
                    .await
            )?;
            let rows = cql!("reading a device day", result.into_rows_result())?;
            for row in cql!("reading a device day", rows.rows::<VerdictTuple>())? {
                let row = row.map_err(|e| scylla_err("reading a verdict row")(&e))?;
                items.push(verdict_from_row(row)?);
            }
            if items.len() > q.limit {
                break;
            }
        }
        Ok(Page::from_rows(items, q.limit))
    }

    async fn records_scored(&self, model: &str, version: u64) -> Result<u64, StoreError> {
        let version = to_i64("version", version)?;
        let counts = futures::future::try_join_all((0..SCORED_SHARDS).map(|shard| async move {
            let result = cql!(
                "counting scored records",
                self.session
                    .execute_unpaged(&self.prepared.count_scored, (model, version, shard))
                    .await
            )?;
            let rows = cql!("counting scored records", result.into_rows_result())?;
            let (n,): (i64,) = cql!("counting scored records", rows.single_row())?;
            from_i64("count", n)
        }))
        .await?;
        Ok(counts.into_iter().sum())
    }

    async fn summaries(
        &self,
        rows: Vec<(ModelRecord, String)>,
    ) -> Result<Vec<ModelSummary>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for (release, _) in rows {
            let records_scored = self.records_scored(&release.model, release.version).await?;
            out.push(ModelSummary {
                release,
                records_scored,
            });
        }
        out.sort_by(|a, b| {
            a.release
                .model
                .cmp(&b.release.model)
                .then(b.release.version.cmp(&a.release.version))
        });
        Ok(out)
    }

    async fn read_releases(
        &self,
        stmt: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<(ModelRecord, String)>, StoreError> {
        let pager = cql!(
            "listing releases",
            self.session.execute_iter(stmt.clone(), values).await
        )?;
        let mut stream = cql!("listing releases", pager.rows_stream::<ReleaseTuple>())?;
        let mut out = Vec::new();
        while let Some(row) = cql!("listing releases", stream.try_next().await)? {
            out.push(release_from_row(row)?);
        }
        Ok(out)
    }
}

impl Store for ScyllaStore {
    async fn write(&self, batch: Arc<WriteBatch>) -> Result<(), StoreError> {
        let mut writes = Vec::with_capacity(batch.verdicts.len() * 4 + batch.releases.len());
        for v in &batch.verdicts {
            writes.extend(verdict_writes(v, self.ttl_secs)?);
        }
        for r in &batch.releases {
            writes.push(release_write(r)?);
        }
        for i in &batch.incidents {
            writes.push(incident_write(i, self.ttl_secs)?);
        }
        let groups = group_by_partition(writes, MAX_BATCH_STATEMENTS, |w| w.key.clone());
        futures::stream::iter(groups.into_iter().map(|group| self.send(group)))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn device_verdicts(&self, query: RangeQuery) -> Result<Page, StoreError> {
        self.range(false, query).await
    }

    async fn device_anomalies(&self, query: RangeQuery) -> Result<Page, StoreError> {
        self.range(true, query).await
    }

    async fn record(&self, device_id: String, seq: u64) -> Result<Vec<Verdict>, StoreError> {
        let result = cql!(
            "looking up a record",
            self.session
                .execute_unpaged(&self.prepared.record, (&device_id, to_i64("seq", seq)?))
                .await
        )?;
        let rows = cql!("looking up a record", result.into_rows_result())?;
        let mut out = Vec::new();
        for row in cql!("looking up a record", rows.rows::<VerdictTuple>())? {
            let row = row.map_err(|e| scylla_err("reading a verdict row")(&e))?;
            out.push(verdict_from_row(row)?);
        }
        out.sort_by(|a, b| {
            a.model
                .cmp(&b.model)
                .then(stored_version(a).cmp(&stored_version(b)))
        });
        Ok(out)
    }

    async fn models(&self) -> Result<Vec<ModelSummary>, StoreError> {
        let rows = self.read_releases(&self.prepared.all_releases, ()).await?;
        self.summaries(rows).await
    }

    async fn model(&self, name: String) -> Result<Vec<ModelSummary>, StoreError> {
        let rows = self
            .read_releases(&self.prepared.model_releases, (&name,))
            .await?;
        self.summaries(rows).await
    }

    async fn model_version(
        &self,
        name: String,
        version: u64,
    ) -> Result<Option<ModelDetail>, StoreError> {
        let rows = self
            .read_releases(
                &self.prepared.release_one,
                (&name, to_i64("version", version)?),
            )
            .await?;
        let Some((record, envelope)) = rows.into_iter().next() else {
            return Ok(None);
        };
        let records_scored = self.records_scored(&record.model, record.version).await?;
        let release = serde_json::value::RawValue::from_string(envelope).map_err(|e| {
            StoreError::Corrupt {
                what: "release envelope",
                detail: e.to_string(),
            }
        })?;
        Ok(Some(ModelDetail {
            summary: ModelSummary {
                release: record,
                records_scored,
            },
            release,
        }))
    }

    async fn device_incidents(
        &self,
        device_id: String,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        let result = cql!(
            "listing incidents",
            self.session
                .execute_unpaged(
                    &self.prepared.incidents,
                    (&device_id, i32::try_from(limit).unwrap_or(i32::MAX)),
                )
                .await
        )?;
        let rows = cql!("listing incidents", result.into_rows_result())?;
        let mut out = Vec::new();
        for row in cql!("listing incidents", rows.rows::<(String,)>())? {
            let (body,) = row.map_err(|e| scylla_err("reading an incident row")(&e))?;
            out.push(
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                    what: "incident",
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }
}

/// Lets `Arc<ScyllaStore>` be used wherever a [`Store`] is expected.
impl Store for Arc<ScyllaStore> {
    async fn write(&self, batch: Arc<WriteBatch>) -> Result<(), StoreError> {
        self.as_ref().write(batch).await
    }
    async fn device_verdicts(&self, query: RangeQuery) -> Result<Page, StoreError> {
        self.as_ref().device_verdicts(query).await
    }
    async fn device_anomalies(&self, query: RangeQuery) -> Result<Page, StoreError> {
        self.as_ref().device_anomalies(query).await
    }
    async fn record(&self, device_id: String, seq: u64) -> Result<Vec<Verdict>, StoreError> {
        self.as_ref().record(device_id, seq).await
    }
    async fn models(&self) -> Result<Vec<ModelSummary>, StoreError> {
        self.as_ref().models().await
    }
    async fn model(&self, name: String) -> Result<Vec<ModelSummary>, StoreError> {
        self.as_ref().model(name).await
    }
    async fn model_version(
        &self,
        name: String,
        version: u64,
    ) -> Result<Option<ModelDetail>, StoreError> {
        self.as_ref().model_version(name, version).await
    }
    async fn device_incidents(
        &self,
        device_id: String,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        self.as_ref().device_incidents(device_id, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schemas::{Contribution, ScoredAt};

    fn verdict(anomaly: bool) -> Verdict {
        Verdict {
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
             scored_ts, score, threshold, anomaly, scored_at, unscored, contributions) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
        );
        assert_eq!(
            statements::select_day_range("anomalies"),
            "SELECT device_id, event_ts, seq, model, model_version, ingest_ts, scored_ts, score, \
             threshold, anomaly, scored_at, unscored, contributions FROM anomalies \
             WHERE device_id = ? AND day = ? AND (event_ts, seq, model, model_version) < (?, ?, ?, ?) \
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
        assert_eq!(ddl.len(), 7, "{ddl:#?}");
        for s in &ddl {
            assert!(s.starts_with("CREATE TABLE IF NOT EXISTS "), "{s}");
            assert!(!s.contains("--"), "{s}");
            for forbidden in ["MATERIALIZED", "INDEX", "counter", "IF NOT EXISTS;"] {
                assert!(!s.contains(forbidden), "{forbidden} in {s}");
            }
        }
        assert!(ddl[0].contains(
            "PRIMARY KEY ((device_id, day), event_ts, seq, model, model_version) ) \
             WITH CLUSTERING ORDER BY (event_ts DESC, seq DESC, model DESC, model_version DESC)"
        ));
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
}
