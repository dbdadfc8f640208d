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
use vigil_model::VerifyingKey;
use vigil_service::config::KafkaArgs;
use vigil_service::from_start::{self, EndOffsets, Follow, Next};
use vigil_service::Shutdown;

use crate::{Lineage, Offer, ReleasesError};

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

/// Starts following `model` releases signed by `key`. Events arrive on the
/// returned channel until shutdown.
pub async fn follow(
    args: &KafkaArgs,
    model: &str,
    key: VerifyingKey,
    client_id: &str,
    shutdown: &Shutdown,
) -> Result<mpsc::Receiver<FeedEvent>, ReleasesError> {
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
    let mut lineage = Lineage::new(model, key);
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut log = Follow::new(consumer, ends, IDLE_CHECK);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                next = log.next() => next,
            };
            let event = match next {
                Next::Record(m) => FeedEvent::Offer {
                    partition: m.partition(),
                    offset: m.offset(),
                    published_ms: m.timestamp().to_millis(),
                    offer: lineage.offer_bytes(m.payload()),
                    claimed: m
                        .payload()
                        .and_then(|b| crate::decode_envelope(b).ok())
                        .map(|r| (r.model, r.version)),
                },
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
