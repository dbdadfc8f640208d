//! The connection to the cluster: [`ScyllaStore`] connects, creates the
//! keyspace and tables, prepares every statement once, and runs the
//! writes and reads the [`Store`](crate::Store) impl (`store.rs`) is made of.

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use vigil_schemas::Verdict;

use super::cql::{
    create_keyspace, ddl_statements, statements, ADDED_COLUMNS, KEYED_BY_PLACE, SELECT_COLUMN,
    SELECT_COLUMN_KIND,
};
use super::rows::{
    day_of, release_from_row, verdict_from_row, ReleaseTuple, Stmt, VerdictTuple, Write,
    SCORED_SHARDS,
};
use super::{scylla_err, ScyllaOptions};
use crate::codec::{from_i64, stored_version, to_i64};
use crate::{Conflict, ModelRecord, ModelSummary, Page, RangeQuery, StoreError};

/// Prepared statements, prepared once at connect.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) verdict: PreparedStatement,
    pub(super) anomaly: PreparedStatement,
    pub(super) by_record: PreparedStatement,
    pub(super) device_day: PreparedStatement,
    pub(super) scored: PreparedStatement,
    pub(super) release: PreparedStatement,
    pub(super) incident: PreparedStatement,
    pub(super) incident_day: PreparedStatement,
    pub(super) verdict_range: PreparedStatement,
    pub(super) anomaly_range: PreparedStatement,
    pub(super) device_days: PreparedStatement,
    pub(super) record: PreparedStatement,
    pub(super) stored_event_ts: PreparedStatement,
    pub(super) count_scored: PreparedStatement,
    pub(super) all_releases: PreparedStatement,
    pub(super) model_releases: PreparedStatement,
    pub(super) release_one: PreparedStatement,
    pub(super) incidents: PreparedStatement,
    pub(super) incidents_of_day: PreparedStatement,
}

impl Prepared {
    pub(super) fn for_write(&self, stmt: Stmt) -> &PreparedStatement {
        match stmt {
            Stmt::Verdict => &self.verdict,
            Stmt::Anomaly => &self.anomaly,
            Stmt::ByRecord => &self.by_record,
            Stmt::DeviceDay => &self.device_day,
            Stmt::Scored => &self.scored,
            Stmt::Release => &self.release,
            Stmt::Incident => &self.incident,
            Stmt::IncidentDay => &self.incident_day,
        }
    }
}

/// A connected, migrated Scylla/Cassandra store.
pub struct ScyllaStore {
    pub(super) session: Session,
    pub(super) prepared: Prepared,
    pub(super) ttl_secs: u32,
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

impl ScyllaStore {
    /// Connects to `nodes`, creates the keyspace and tables when missing,
    /// and prepares every statement.
    pub async fn connect(
        nodes: &[String],
        keyspace: &str,
        options: &ScyllaOptions,
    ) -> Result<Self, StoreError> {
        let tls = if options.tls.is_some() { "?tls=1" } else { "" };
        let uri = format!("scylla://{}/{keyspace}{tls}", nodes.join(","));
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
            .connection_timeout(options.connect_timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let Some((user, password)) = &options.credentials {
            builder = builder.user(user, password);
        }
        if let Some(tls) = &options.tls {
            let config = super::tls::client_config(tls, options.allow_shared_key)
                .map_err(|e| open(format!("TLS: {e}")))?;
            builder = builder.tls_context(Some(Arc::new(config)));
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
        for (table, column, kind) in ADDED_COLUMNS {
            let result = session
                .query_unpaged(SELECT_COLUMN, (keyspace, table, column))
                .await
                .map_err(|e| open(format!("looking up column {table}.{column}: {e}")))?;
            let found = result
                .into_rows_result()
                .map(|rows| rows.rows_num())
                .unwrap_or(0);
            if found == 0 {
                let alter = format!("ALTER TABLE {table} ADD {column} {kind}");
                session
                    .query_unpaged(alter.as_str(), ())
                    .await
                    .map_err(|e| open(format!("running {alter:?}: {e}")))?;
                tracing::info!(table, column, "audit store column added");
            }
        }
        for table in KEYED_BY_PLACE {
            let result = session
                .query_unpaged(SELECT_COLUMN_KIND, (keyspace, table, "scored_at"))
                .await
                .map_err(|e| open(format!("looking up the key of {table}: {e}")))?;
            let kind = result
                .into_rows_result()
                .ok()
                .and_then(|rows| rows.maybe_first_row::<(String,)>().ok().flatten())
                .map(|(k,)| k);
            if kind.as_deref() != Some("clustering") {
                return Err(open(format!(
                    "table {keyspace}.{table} was created by an older build: scored_at is not part of its key \
                     (kind {kind:?}), so an edge and a cloud verdict of one record would overwrite each other. \
                     CQL cannot change a primary key: migrate the rows into a new keyspace \
                     (services/audit/README.md, \"Scylla schema version 2\") or point --store at a new one"
                )));
            }
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
            incident_day: prepare(s::INSERT_INCIDENT_DAY.into(), true).await?,
            verdict_range: prepare(s::select_day_range("verdicts"), true).await?,
            anomaly_range: prepare(s::select_day_range("anomalies"), true).await?,
            device_days: prepare(s::SELECT_DEVICE_DAYS.into(), true).await?,
            record: prepare(s::select_record(), true).await?,
            stored_event_ts: prepare(s::SELECT_STORED_EVENT_TS.into(), true).await?,
            count_scored: prepare(s::COUNT_SCORED.into(), true).await?,
            all_releases: prepare(s::select_all_releases(), true).await?,
            model_releases: prepare(s::select_model_releases(), true).await?,
            release_one: prepare(s::select_release(), true).await?,
            incidents: prepare(s::SELECT_INCIDENTS.into(), true).await?,
            incidents_of_day: prepare(s::SELECT_INCIDENT_DAY.into(), true).await?,
        })
    }

    /// Sends one partition's writes: a single statement, or an unlogged
    /// batch.
    pub(super) async fn send(&self, group: Vec<Write>) -> Result<(), StoreError> {
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

    pub(super) async fn range(&self, anomalies: bool, q: RangeQuery) -> Result<Page, StoreError> {
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
        let (bound_ts, bound_seq, bound_model, bound_version, bound_at) = match &q.after {
            Some(c) => (
                to_i64("cursor event_ts", c.event_ts)?,
                to_i64("cursor seq", c.seq)?,
                c.model.clone(),
                to_i64("cursor model_version", c.model_version)?,
                c.scored_at.clone(),
            ),
            // (to, MIN, "", MIN, "") is above every row with event_ts < to.
            None => (
                to_i64("to", q.to_ms)?,
                i64::MIN,
                String::new(),
                i64::MIN,
                String::new(),
            ),
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
                            &bound_at,
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

    /// The verdicts of `verdicts` whose key holds a different record (a
    /// read of each key in `verdicts_by_record`, concurrently).
    pub(super) async fn conflicts(
        &self,
        verdicts: &[Verdict],
        concurrency: usize,
    ) -> Result<Vec<Option<Conflict>>, StoreError> {
        let lookups: Vec<_> = verdicts.iter().map(|v| self.conflict_of(v)).collect();
        futures::stream::iter(lookups)
            .buffered(concurrency)
            .try_collect()
            .await
    }

    /// Whether `v`'s key holds a different record.
    async fn conflict_of(&self, v: &Verdict) -> Result<Option<Conflict>, StoreError> {
        let key = (
            v.device_id.as_str(),
            to_i64("seq", v.seq)?,
            v.model.as_str(),
            to_i64("model_version", stored_version(v))?,
            v.scored_at.as_str(),
        );
        let result = cql!(
            "looking up a stored verdict",
            self.session
                .execute_unpaged(&self.prepared.stored_event_ts, key)
                .await
        )?;
        let rows = cql!("looking up a stored verdict", result.into_rows_result())?;
        let stored = cql!(
            "looking up a stored verdict",
            rows.maybe_first_row::<(i64,)>()
        )?;
        match stored {
            Some((ts,)) => Ok(Conflict::between(v, from_i64("event_ts", ts)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn records_scored(
        &self,
        model: &str,
        version: u64,
    ) -> Result<u64, StoreError> {
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

    pub(super) async fn summaries(
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

    pub(super) async fn read_releases(
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
