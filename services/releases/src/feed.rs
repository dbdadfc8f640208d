//! Following `vigil.models` from the beginning, for a scorer.
//!
//! A scorer must never score with a model older than the live one, and
//! must know every release regardless of what any consumer group
//! committed, so the feed reads the topic without a group, from the first
//! offset of every partition, at every start. It verifies each release
//! here, off the scoring path, and reports [`FeedEvent::CaughtUp`] once it
//! has read up to the end the topic had when it started: from then on the
//! scorer knows the live model and may start scoring.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use vigil_model::VerifyingKey;
use vigil_service::config::KafkaArgs;
use vigil_service::{kafka, Shutdown};

use crate::{Lineage, Offer};

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
) -> anyhow::Result<mpsc::Receiver<FeedEvent>> {
    let topic = args.topics().models;
    let mut config = kafka::client_config(args, client_id);
    config
        // librdkafka wants a group id even for assign(); nothing joins
        // it and nothing is committed.
        .set("group.id", format!("{}-unjoined", client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // A new release should reach scorers within a fraction of a second.
        .set("fetch.wait.max.ms", "100");
    let (consumer, Start { assignment, ends }) = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(StreamConsumer, Start)> {
            let consumer: StreamConsumer = config
                .create()
                .context("creating the model feed consumer")?;
            let start = starting_point(&consumer, &topic)?;
            Ok((consumer, start))
        })
        .await
        .context("model feed set-up panicked")??
    };
    consumer
        .assign(&assignment)
        .with_context(|| format!("assigning {topic}"))?;

    let (tx, rx) = mpsc::channel(64);
    let mut lineage = Lineage::new(model, key);
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut ends = ends;
        if ends.is_empty() && tx.send(FeedEvent::CaughtUp).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                r = tokio::time::timeout(IDLE_CHECK, consumer.recv()) => r,
            };
            match received {
                Ok(Ok(m)) => {
                    let offer = lineage.offer_bytes(m.payload());
                    let event = FeedEvent::Offer {
                        partition: m.partition(),
                        offset: m.offset(),
                        published_ms: m.timestamp().to_millis(),
                        offer,
                    };
                    if tx.send(event).await.is_err() {
                        break;
                    }
                    if !ends.is_empty() {
                        if ends
                            .get(&m.partition())
                            .is_some_and(|end| m.offset() + 1 >= *end)
                        {
                            ends.remove(&m.partition());
                        }
                        if ends.is_empty() && tx.send(FeedEvent::CaughtUp).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "model feed: kafka error; continuing");
                }
                Err(_idle) if !ends.is_empty() => {
                    if let Ok(position) = consumer.position() {
                        for el in position.elements() {
                            if let (Offset::Offset(at), Some(end)) =
                                (el.offset(), ends.get(&el.partition()))
                            {
                                if at >= *end {
                                    ends.remove(&el.partition());
                                }
                            }
                        }
                    }
                    if ends.is_empty() && tx.send(FeedEvent::CaughtUp).await.is_err() {
                        break;
                    }
                }
                Err(_idle) => {}
            }
        }
    });
    Ok(rx)
}

struct Start {
    assignment: TopicPartitionList,
    ends: HashMap<i32, i64>,
}

/// Every partition of `topic` from its beginning, and the end offset each
/// had at start-up (partitions that were empty are left out of `ends`).
fn starting_point(consumer: &StreamConsumer, topic: &str) -> anyhow::Result<Start> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(METADATA_TIMEOUT))
        .with_context(|| format!("reading metadata of {topic}"))?;
    let meta = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .with_context(|| format!("topic {topic} does not exist"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in meta.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Timeout::After(METADATA_TIMEOUT))
            .with_context(|| format!("reading the end of {topic}/{}", p.id()))?;
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        if high > low {
            ends.insert(p.id(), high);
        }
    }
    Ok(Start { assignment, ends })
}
