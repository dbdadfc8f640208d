//! What the Scylla/Cassandra store writes and reads, as driver values:
//! the partition of each row ([`PartitionKey`], [`day_of`], [`shard_of`]),
//! the rows a verdict, a release or an incident becomes ([`Write`]), the
//! grouping of rows into single-partition batches, and the driver's row
//! tuples mapped back through the shared codec ([`crate::codec`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash;

use scylla::value::CqlValue;
use vigil_schemas::{Incident, Verdict};

use crate::codec::{incident_body, state_name, stored_version, to_i64, ReleaseColumns, VerdictRow};
use crate::{ModelRecord, ReleaseRow, StoreError};

/// Milliseconds in a partition day.
pub const DAY_MS: u64 = 86_400_000;
/// Shards of `scored_records` per model version.
pub const SCORED_SHARDS: i32 = 16;
/// Most statements in one unlogged batch (keeps batches well under the
/// servers' batch-size warning threshold).
pub const MAX_BATCH_STATEMENTS: usize = 100;

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
    /// Into `incidents_by_day`.
    IncidentDay,
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
    /// `incidents_by_day (day)`.
    IncidentDay(i32),
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

/// Values of a verdict for [`READ_COLUMNS`](super::cql::READ_COLUMNS) (shared by every verdict
/// table), from the shared codec's row.
pub(crate) fn verdict_common(v: &Verdict) -> Result<Vec<Option<CqlValue>>, StoreError> {
    let row = VerdictRow::encode(v)?;
    Ok(vec![
        text(&row.device_id),
        Some(CqlValue::BigInt(row.event_ts)),
        Some(CqlValue::BigInt(row.seq)),
        text(&row.model),
        Some(CqlValue::BigInt(row.model_version)),
        row.ingest_ts.map(CqlValue::BigInt),
        Some(CqlValue::BigInt(row.scored_ts)),
        Some(CqlValue::Double(row.score)),
        Some(CqlValue::Double(row.threshold)),
        Some(CqlValue::Boolean(row.anomaly)),
        text(&row.scored_at),
        row.unscored.as_deref().and_then(text),
        row.contributions.map(CqlValue::Text),
        row.alarm.map(CqlValue::Text),
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
    let m = ReleaseColumns::encode(&r.record)?;
    Ok(Write {
        key: PartitionKey::Release(m.model.clone().into_owned()),
        stmt: Stmt::Release,
        values: vec![
            text(&m.model),
            Some(CqlValue::BigInt(m.version)),
            text(&m.key_id),
            text(&m.payload_sha256),
            Some(CqlValue::BigInt(m.created_ts)),
            Some(CqlValue::BigInt(m.published_ts)),
            Some(CqlValue::Double(m.threshold)),
            Some(CqlValue::BigInt(m.training_from_ts)),
            Some(CqlValue::BigInt(m.training_to_ts)),
            Some(CqlValue::BigInt(m.training_records)),
            Some(CqlValue::BigInt(m.training_devices)),
            text(&m.training_source),
            Some(CqlValue::Text(m.validation)),
            Some(CqlValue::Boolean(m.signature_verified)),
            text(&r.envelope),
        ],
    })
}

/// The rows an incident event writes: the event, and the incident as it
/// stands in the day of the event (written at the event's time, so a newer
/// event is never overwritten by an older one).
pub fn incident_writes(i: &Incident, ttl_secs: u32) -> Result<[Write; 2], StoreError> {
    let body = incident_body(i)?;
    let micros =
        i.ts.checked_mul(1000)
            .and_then(|m| i64::try_from(m).ok())
            .ok_or(StoreError::OutOfRange {
                field: "ts",
                value: i.ts,
                max: i64::MAX / 1000,
            })?;
    Ok([
        Write {
            key: PartitionKey::Incident(i.device_id.clone()),
            stmt: Stmt::Incident,
            values: vec![
                text(&i.device_id),
                big("ts", i.ts)?,
                text(&i.incident_id),
                text(state_name(i.state)),
                Some(CqlValue::Text(body.clone())),
                ttl_value(ttl_secs),
            ],
        },
        Write {
            key: PartitionKey::IncidentDay(day_of(i.ts)),
            stmt: Stmt::IncidentDay,
            values: vec![
                Some(CqlValue::Int(day_of(i.ts))),
                text(&i.incident_id),
                text(&i.device_id),
                text(state_name(i.state)),
                big("ts", i.ts)?,
                Some(CqlValue::Text(body)),
                ttl_value(ttl_secs),
                Some(CqlValue::BigInt(micros)),
            ],
        },
    ])
}

/// A verdict row as the driver reads it ([`READ_COLUMNS`](super::cql::READ_COLUMNS) order).
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
    Option<String>,
);

/// Maps a verdict row back to the message (through the shared codec).
pub fn verdict_from_row(row: VerdictTuple) -> Result<Verdict, StoreError> {
    let (
        device_id,
        event_ts,
        seq,
        model,
        model_version,
        ingest_ts,
        scored_ts,
        score,
        threshold,
        anomaly,
        scored_at,
        unscored,
        contributions,
        alarm,
    ) = row;
    VerdictRow {
        device_id: Cow::Owned(device_id),
        event_ts,
        seq,
        model: Cow::Owned(model),
        model_version,
        ingest_ts,
        scored_ts,
        score,
        threshold,
        anomaly,
        scored_at: Cow::Owned(scored_at),
        unscored: unscored.map(Cow::Owned),
        contributions,
        alarm,
    }
    .decode()
}

/// A release row as the driver reads it ([`RELEASE_COLUMNS`](super::cql::RELEASE_COLUMNS) order).
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

/// Maps a release row back to its record (through the shared codec) and
/// envelope.
pub fn release_from_row(row: ReleaseTuple) -> Result<(ModelRecord, String), StoreError> {
    let (
        model,
        version,
        key_id,
        payload_sha256,
        created_ts,
        published_ts,
        threshold,
        training_from_ts,
        training_to_ts,
        training_records,
        training_devices,
        training_source,
        validation,
        signature_verified,
        envelope,
    ) = row;
    let record = ReleaseColumns {
        model: Cow::Owned(model),
        version,
        key_id: Cow::Owned(key_id),
        payload_sha256: Cow::Owned(payload_sha256),
        created_ts,
        published_ts,
        threshold,
        training_from_ts,
        training_to_ts,
        training_records,
        training_devices,
        training_source: Cow::Owned(training_source),
        validation,
        signature_verified,
    }
    .decode()?;
    Ok((record, envelope))
}
