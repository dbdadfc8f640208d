//! [`AnyStore`]: the backend `VIGIL_AUDIT_STORE` names, chosen at
//! start-up, behind the one [`Store`] trait.

use std::sync::Arc;

use vigil_schemas::{Incident, Verdict};

use crate::scylla::{ScyllaOptions, ScyllaStore};
use crate::sqlite::SqliteStore;
use crate::{
    IncidentQuery, ModelDetail, ModelSummary, Page, RangeQuery, Store, StoreError, StoreUri,
    WriteBatch, Written,
};

/// The store chosen at start-up by `VIGIL_AUDIT_STORE`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// Embedded SQLite.
    Sqlite(Arc<SqliteStore>),
    /// ScyllaDB / Cassandra.
    Scylla(Arc<ScyllaStore>),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Scylla($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn write(&self, batch: Arc<WriteBatch>) -> Result<Written, StoreError> {
        dispatch!(self, s => s.write(batch))
    }
    async fn device_verdicts(&self, query: RangeQuery) -> Result<Page, StoreError> {
        dispatch!(self, s => s.device_verdicts(query))
    }
    async fn device_anomalies(&self, query: RangeQuery) -> Result<Page, StoreError> {
        dispatch!(self, s => s.device_anomalies(query))
    }
    async fn record(&self, device_id: String, seq: u64) -> Result<Vec<Verdict>, StoreError> {
        dispatch!(self, s => s.record(device_id, seq))
    }
    async fn models(&self) -> Result<Vec<ModelSummary>, StoreError> {
        dispatch!(self, s => s.models())
    }
    async fn model(&self, name: String) -> Result<Vec<ModelSummary>, StoreError> {
        dispatch!(self, s => s.model(name))
    }
    async fn model_version(
        &self,
        name: String,
        version: u64,
    ) -> Result<Option<ModelDetail>, StoreError> {
        dispatch!(self, s => s.model_version(name, version))
    }
    async fn device_incidents(
        &self,
        device_id: String,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        dispatch!(self, s => s.device_incidents(device_id, limit))
    }
    async fn incidents(&self, query: IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        dispatch!(self, s => s.incidents(query))
    }
}

impl AnyStore {
    /// Opens (and migrates) the store `uri` names.
    pub async fn open(uri: &StoreUri, scylla: &ScyllaOptions) -> Result<Self, StoreError> {
        match uri {
            StoreUri::Sqlite { path, tuning } => {
                let (path, tuning) = (path.clone(), *tuning);
                let store =
                    tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, tuning))
                        .await
                        .map_err(|e| StoreError::Worker(e.to_string()))??;
                Ok(AnyStore::Sqlite(Arc::new(store)))
            }
            StoreUri::Scylla {
                nodes,
                keyspace,
                tls,
            } => {
                let options = ScyllaOptions {
                    tls: tls.clone(),
                    ..scylla.clone()
                };
                let store = ScyllaStore::connect(nodes, keyspace, &options).await?;
                Ok(AnyStore::Scylla(Arc::new(store)))
            }
        }
    }

    /// `sqlite` or `scylla`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Scylla(_) => "scylla",
        }
    }
}
