//! One batch into the store, whatever it holds: transient store errors are
//! retried with capped backoff, and a batch the store refuses for good is
//! split into its rows, so only the rows that can never be written are left
//! out (the sink sends them to the DLQ) and the rest is written.
//!
//! The sink checks every row before batching it
//! ([`crate::store::codec::admit_verdict`] and friends), so the split is the
//! safety net for refusals those checks do not foresee (a constraint, a
//! size limit of the backend).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{StoreError, WriteBatch};

/// Pauses between attempts: from `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Which list of a [`WriteBatch`] a row is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Verdict,
    Release,
    Incident,
}

/// A row the store refused for good: where it is in the batch and why.
#[derive(Debug)]
pub struct Refused {
    pub kind: RowKind,
    /// Its index in the batch's list of `kind`.
    pub index: usize,
    pub error: StoreError,
}

/// Writes `batch` with `write`, retrying transient errors (each reported to
/// `on_transient` with the pause before the next attempt) until it is
/// written; rows refused permanently are returned, everything else is
/// written. Cancel-safe: dropping the future leaves a batch partly written,
/// which the store's idempotent upserts make harmless when it is written
/// again.
pub async fn write_or_split<W, F>(
    batch: Arc<WriteBatch>,
    mut write: W,
    backoff: Backoff,
    mut on_transient: impl FnMut(&StoreError, Duration),
) -> Vec<Refused>
where
    W: FnMut(Arc<WriteBatch>) -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    match retry_transient(batch.clone(), &mut write, backoff, &mut on_transient).await {
        Ok(()) => return Vec::new(),
        Err(e) => tracing::warn!(error = %e, rows = batch.len(),
            "the store refused a batch for good; writing its rows one by one"),
    }
    let mut refused = Vec::new();
    let rows = single_rows(&batch);
    for (kind, index, row) in rows {
        if let Err(error) = retry_transient(row, &mut write, backoff, &mut on_transient).await {
            refused.push(Refused { kind, index, error });
        }
    }
    refused
}

/// Writes `batch` until it is written (`Ok`) or refused for good (`Err`).
async fn retry_transient<W, F>(
    batch: Arc<WriteBatch>,
    write: &mut W,
    backoff: Backoff,
    on_transient: &mut impl FnMut(&StoreError, Duration),
) -> Result<(), StoreError>
where
    W: FnMut(Arc<WriteBatch>) -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    let mut pause = backoff.first;
    loop {
        match write(batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                on_transient(&e, pause);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(backoff.max);
            }
        }
    }
}

/// Each row of `batch` as a batch of its own, with where it came from.
fn single_rows(batch: &WriteBatch) -> Vec<(RowKind, usize, Arc<WriteBatch>)> {
    let verdicts = batch.verdicts.iter().enumerate().map(|(i, v)| {
        let one = WriteBatch {
            verdicts: vec![v.clone()],
            ..WriteBatch::default()
        };
        (RowKind::Verdict, i, Arc::new(one))
    });
    let releases = batch.releases.iter().enumerate().map(|(i, r)| {
        let one = WriteBatch {
            releases: vec![r.clone()],
            ..WriteBatch::default()
        };
        (RowKind::Release, i, Arc::new(one))
    });
    let incidents = batch.incidents.iter().enumerate().map(|(i, e)| {
        let one = WriteBatch {
            incidents: vec![e.clone()],
            ..WriteBatch::default()
        };
        (RowKind::Incident, i, Arc::new(one))
    });
    verdicts.chain(releases).chain(incidents).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use vigil_schemas::{ScoredAt, Verdict};

    use super::*;

    fn verdict(seq: u64) -> Verdict {
        Verdict {
            alarm: None,
            schema: 1,
            device_id: "d".into(),
            seq,
            event_ts: 1_795_392_000_000 + seq,
            ingest_ts: None,
            scored_ts: 1_795_392_000_000 + seq,
            model: "default".into(),
            model_version: Some(1),
            score: 0.1,
            threshold: 0.8,
            anomaly: false,
            contributions: Vec::new(),
            scored_at: ScoredAt::Cloud,
            unscored: None,
        }
    }

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    /// A store that is busy for its first `busy` writes, refuses any batch
    /// holding a verdict with seq `poison` by a constraint, and records
    /// the seqs it wrote.
    struct FakeStore {
        busy: Mutex<u32>,
        poison: u64,
        written: Mutex<Vec<u64>>,
    }

    impl FakeStore {
        async fn write(&self, batch: Arc<WriteBatch>) -> Result<(), StoreError> {
            let code = {
                let mut busy = self.busy.lock().expect("lock");
                if *busy > 0 {
                    *busy -= 1;
                    Some(rusqlite::ffi::SQLITE_BUSY)
                } else if batch.verdicts.iter().any(|v| v.seq == self.poison) {
                    Some(rusqlite::ffi::SQLITE_CONSTRAINT)
                } else {
                    None
                }
            };
            if let Some(code) = code {
                return Err(StoreError::Sqlite {
                    what: "inserting a verdict",
                    source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
                });
            }
            let mut written = self.written.lock().expect("lock");
            written.extend(batch.verdicts.iter().map(|v| v.seq));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_row_is_left_out_and_the_rest_is_written() {
        let store = FakeStore {
            busy: Mutex::new(2),
            poison: 13,
            written: Mutex::default(),
        };
        let batch = Arc::new(WriteBatch {
            verdicts: (10..20).map(verdict).collect(),
            ..WriteBatch::default()
        });
        let mut transient = 0;
        let refused = write_or_split(batch, |b| store.write(b), FAST, |_, _| transient += 1).await;
        assert_eq!(transient, 2, "busy errors are retried");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!((refused[0].kind, refused[0].index), (RowKind::Verdict, 3));
        assert!(refused[0].error.is_permanent());
        let mut written = store.written.lock().expect("lock").clone();
        written.sort_unstable();
        let expected: Vec<u64> = (10..20).filter(|s| *s != 13).collect();
        assert_eq!(written, expected);
    }

    #[tokio::test]
    async fn a_batch_written_at_once_is_not_split() {
        let store = FakeStore {
            busy: Mutex::new(0),
            poison: 99,
            written: Mutex::default(),
        };
        let batch = Arc::new(WriteBatch {
            verdicts: (1..=3).map(verdict).collect(),
            ..WriteBatch::default()
        });
        let refused = write_or_split(batch, |b| store.write(b), FAST, |_, _| {}).await;
        assert!(refused.is_empty());
        assert_eq!(*store.written.lock().expect("lock"), vec![1, 2, 3]);
    }
}
