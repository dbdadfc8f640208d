//! At the end of a run: did every verdict the edge agents published reach
//! the audit store? The verdicts seen over MQTT (`watch`, one per device
//! and seq) are looked up in the demo's SQLite store, read after the audit
//! sink stopped, device by device; the summary reports both counts.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use vigil_audit::store::sqlite::SqliteStore;
use vigil_audit::store::{AnyStore, RangeQuery, Store as _, MAX_PAGE};
use vigil_schemas::ScoredAt;

use crate::watch::EdgeView;

/// Edge verdicts published and audited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EdgeAudit {
    /// Distinct edge verdicts (device, seq) seen published over MQTT.
    pub published: u64,
    /// Of those, the ones the audit store holds as scored at the edge.
    pub audited: u64,
    /// Published and not in the audit store.
    pub missing: u64,
}

/// Looks up every verdict `view` saw published in the store at `path`.
pub async fn check(path: &Path, view: &EdgeView) -> anyhow::Result<EdgeAudit> {
    let store = AnyStore::Sqlite(Arc::new(SqliteStore::open(path)?));
    let mut out = EdgeAudit::default();
    for (device, published) in &view.seqs {
        let audited = audited_seqs(&store, device).await?;
        let found = published.intersection(&audited).count() as u64;
        out.published += published.len() as u64;
        out.audited += found;
        out.missing += published.len() as u64 - found;
    }
    Ok(out)
}

/// Seqs of `device`'s edge verdicts in the store.
async fn audited_seqs(store: &AnyStore, device: &str) -> anyhow::Result<HashSet<u64>> {
    let mut seqs = HashSet::new();
    let mut after = None;
    loop {
        let page = store
            .device_verdicts(RangeQuery {
                device_id: device.to_owned(),
                from_ms: 0,
                to_ms: i64::MAX as u64,
                limit: MAX_PAGE,
                after,
            })
            .await?;
        seqs.extend(
            page.items
                .iter()
                .filter(|v| v.scored_at == ScoredAt::Edge)
                .map(|v| v.seq),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(seqs),
        }
    }
}
