//! [`Store`] for [`ScyllaStore`]: each operation as the session's
//! writes and reads.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use vigil_schemas::{Incident, Verdict};

use super::rows::{
    day_of, group_by_partition, incident_writes, release_write, verdict_from_row, verdict_writes,
    VerdictTuple, MAX_BATCH_STATEMENTS,
};
use super::{scylla_err, ScyllaStore};
use crate::codec::{envelope_json, incident_from_body, stored_version, to_i64};
use crate::{
    IncidentQuery, ModelDetail, ModelSummary, Page, RangeQuery, Store, StoreError, WriteBatch,
    Written,
};

/// Requests (batches or single statements) in flight per `write`.
const WRITE_CONCURRENCY: usize = 64;

impl Store for ScyllaStore {
    async fn write(&self, batch: Arc<WriteBatch>) -> Result<Written, StoreError> {
        // Upserts would write a different record over the stored one:
        // read each key first and leave such verdicts out (one
        // single-partition read per verdict; see the module docs).
        let found = self.conflicts(&batch.verdicts, WRITE_CONCURRENCY).await?;
        let mut written = Written::default();
        let mut writes = Vec::with_capacity(batch.verdicts.len() * 4 + batch.releases.len());
        for (v, conflict) in batch.verdicts.iter().zip(found) {
            match conflict {
                Some(c) => written.conflicts.push(c),
                None => writes.extend(verdict_writes(v, self.ttl_secs)?),
            }
        }
        for r in &batch.releases {
            writes.push(release_write(r)?);
        }
        for i in &batch.incidents {
            writes.extend(incident_writes(i, self.ttl_secs)?);
        }
        let groups = group_by_partition(writes, MAX_BATCH_STATEMENTS, |w| w.key.clone());
        futures::stream::iter(groups.into_iter().map(|group| self.send(group)))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(written)
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
                .then(a.scored_at.as_str().cmp(b.scored_at.as_str()))
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
        let release = envelope_json(envelope)?;
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
            out.push(incident_from_body(&body)?);
        }
        Ok(out)
    }

    /// Scans the day partitions from `since_ms`'s day to tomorrow (the API
    /// bounds how far back), keeps each incident's newest event, filters
    /// and orders like the SQLite store.
    async fn incidents(&self, query: IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        let first = day_of(query.since_ms);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = day_of(now).saturating_add(1).max(first);
        let mut newest: std::collections::HashMap<String, Incident> =
            std::collections::HashMap::new();
        for day in first..=last {
            let result = cql!(
                "listing incidents of a day",
                self.session
                    .execute_unpaged(&self.prepared.incidents_of_day, (day,))
                    .await
            )?;
            let rows = cql!("listing incidents of a day", result.into_rows_result())?;
            for row in cql!("listing incidents of a day", rows.rows::<(String,)>())? {
                let (body,) = row.map_err(|e| scylla_err("reading an incident row")(&e))?;
                let i = incident_from_body(&body)?;
                if newest.get(&i.incident_id).is_none_or(|old| old.ts < i.ts) {
                    newest.insert(i.incident_id.clone(), i);
                }
            }
        }
        let mut out: Vec<Incident> = newest.into_values().filter(|i| query.admits(i)).collect();
        out.sort_by(|a, b| (b.ts, &b.incident_id).cmp(&(a.ts, &a.incident_id)));
        out.truncate(query.limit);
        Ok(out)
    }
}
