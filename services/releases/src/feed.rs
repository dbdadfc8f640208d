//! Following `vigil.models` from the beginning, for a scorer.
//!
//! A scorer must never score with a model older than the live one, and
//! must know every release regardless of what any consumer group
//! committed, so the feed reads the topic without a group, from the first
//! offset of every partition, at every start. It verifies each release
//! here, off the scoring path, and reports [`FeedEvent::CaughtUp`] once it
//! has read up to the end the topic had when it started: from then on the
//! scorer knows the live model and may start scoring.

use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message as _;
use tokio::sync::mpsc;
use vigil_model::KeyRing;
use vigil_service::config::KafkaArgs;
use vigil_service::from_start::{self, EndOffsets, Follow, Next};
use vigil_service::Shutdown;

use crate::kept::{KeptError, KeptRelease};
use crate::{decode_envelope, Lineage, Offer, ReleasesError};

/// Events a feed reports, in log order.
#[derive(Debug)]
pub enum FeedEvent {
    /// A release was read and judged.
    Offer {
        /// Partition of `vigil.models`.
        partition: i32,
        /// Offset in that partition.
        offset: i64,
        /// Kafka timestamp of the record, ms since the Unix epoch.
        published_ms: Option<i64>,
        /// What the lineage made of it.
        offer: Offer,
        /// Model name and version the envelope claims, when it decodes
        /// (also for a refused release: a follower can tell "published
        /// but refused" from "never published").
        claimed: Option<(String, u64)>,
    },
    /// Everything present at start-up has been read.
    CaughtUp,
}

/// How long to wait for the first metadata of the topic.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to check progress when no record arrives (compaction gaps).
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Starts following `model` releases signed by a key of `keys`. Events
/// arrive on the returned channel until shutdown. With `kept`, the release
/// kept there is offered first (reported at partition -1, offset -1), each
/// release accepted afterwards is kept there, and the log's copy of the
/// kept release is passed over silently. A kept release signed by a
/// retired key is reported at -1 as refused (`retired_key`) and not used.
pub async fn follow(
    args: &KafkaArgs,
    model: &str,
    keys: KeyRing,
    client_id: &str,
    kept: Option<KeptRelease>,
    shutdown: &Shutdown,
) -> Result<mpsc::Receiver<FeedEvent>, ReleasesError> {
    let mut lineage = Lineage::new(model, keys);
    let mut first = None;
    let mut kept_signature = None;
    if let Some(k) = &kept {
        match k.load(model, lineage.keys()) {
            Ok(Some(release)) => {
                kept_signature = Some((release.version, release.signature.clone()));
                first = Some((
                    lineage.offer(&release),
                    (release.model.clone(), release.version),
                ));
            }
            Ok(None) => {}
            Err(KeptError::Retired {
                path,
                version,
                error,
            }) => {
                tracing::warn!(path = %path.display(), version, error = %error,
                    "the kept release is signed by a retired key; starting from the log");
                first = Some((Offer::Rejected(error), (model.to_owned(), version)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let topic = args.topics().models;
    // A new release should reach scorers within a fraction of a second.
    let config = from_start::control_config(args, client_id);
    let (consumer, ends) = tokio::task::spawn_blocking(
        move || -> Result<(StreamConsumer, EndOffsets), ReleasesError> {
            let consumer: StreamConsumer = config.create().map_err(ReleasesError::Consumer)?;
            let ends = from_start::assign_from_start(&consumer, &topic, METADATA_TIMEOUT)?;
            Ok((consumer, ends))
        },
    )
    .await
    .map_err(|_| ReleasesError::Panicked("model feed set-up"))??;

    let (tx, rx) = mpsc::channel(64);
    if let Some((offer, claimed)) = first {
        let _ = tx
            .send(FeedEvent::Offer {
                partition: -1,
                offset: -1,
                published_ms: None,
                offer,
                claimed: Some(claimed),
            })
            .await;
    }
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut log = Follow::new(consumer, ends, IDLE_CHECK);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                next = log.next() => next,
            };
            let event = match next {
                Next::Record(m) => {
                    let decoded = m.payload().map(decode_envelope);
                    let claimed = match &decoded {
                        Some(Ok(r)) => Some((r.model.clone(), r.version)),
                        _ => None,
                    };
                    let offer = match decoded {
                        // The log's copy of the release kept on disk.
                        Some(Ok(r))
                            if kept_signature
                                .as_ref()
                                .is_some_and(|(v, s)| *v == r.version && *s == r.signature) =>
                        {
                            continue
                        }
                        Some(Ok(r)) => lineage.offer(&r),
                        None => lineage.offer_bytes(None),
                        Some(Err(e)) => Offer::Rejected(e),
                    };
                    if let (Offer::Accepted(_), Some(k), Some(bytes)) = (&offer, &kept, m.payload()) {
                        if let Err(e) = k.store(bytes) {
                            tracing::error!(error = %e, "cannot keep the accepted release; a restart may go back to an older one");
                        }
                    }
                    FeedEvent::Offer {
                        partition: m.partition(),
                        offset: m.offset(),
                        published_ms: m.timestamp().to_millis(),
                        offer,
                        claimed,
                    }
                }
                Next::CaughtUp => FeedEvent::CaughtUp,
                Next::Failed(e) => {
                    tracing::warn!(error = %e, "model feed: kafka error; continuing");
                    continue;
                }
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}
