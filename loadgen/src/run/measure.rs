//! Reading verdicts back: from `vigil.verdicts` in Kafka and/or from the
//! edge agents' `vigil/devices/+/verdicts` over MQTT, into one [`Tally`].
//!
//! The Kafka reader is positioned *before* the first message is published:
//! it takes every partition's end offset at that moment (no consumer group
//! is joined and nothing is committed, so a run never disturbs the
//! services' groups or a later run), so it reads exactly what was written
//! from the run's start on. When the topic does not exist yet it waits for
//! it and reads it from the beginning. Verdicts older than the run are
//! filtered by event time anyway (see [`super::tally`]).
//!
//! **Offsets delivered again are skipped.** Reading `vigil.verdicts` on
//! tansu while catching up on a long backlog, librdkafka hands the reader
//! some records a second time, at the same partition and offset, with no
//! error and no offset reset (issue 17: 7,160 of 297,635 in a run of
//! `scripts/bench-scale.sh 1 1 10000 30`, while the topic held every
//! verdict exactly once). Such a record was written once: it is not a
//! duplicate of the pipeline, so the reader keeps the highest offset it
//! passed on per partition, drops anything at or below it and counts it
//! ([`Readers::reread`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{Message, Verdict};
use vigil_service::config::{KafkaArgs, MqttArgs};
use vigil_service::now_ms;

use super::progress::Counters;
use super::tally::{Added, Tally};

/// Verdicts buffered between the readers and the tally.
const CHANNEL: usize = 16_384;
/// Timeout of one metadata or watermark request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a missing verdicts topic is looked for again.
const TOPIC_POLL: Duration = Duration::from_secs(1);
/// How long subscribing to edge verdicts may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);

/// A verdict and when it was read, ms since the epoch.
#[derive(Debug)]
pub struct Received {
    pub verdict: Verdict,
    pub read_ms: u64,
}

/// Running verdict readers.
#[derive(Debug)]
pub struct Readers {
    rx: mpsc::Receiver<Received>,
    tasks: Vec<JoinHandle<()>>,
    /// Messages that were not valid verdicts.
    pub undecodable: Arc<AtomicU64>,
    /// Kafka messages delivered again at an offset already read (skipped).
    pub reread: Arc<AtomicU64>,
}

/// The highest offset passed on per partition: a message at or below it
/// is one the client delivered again.
#[derive(Debug, Default)]
struct Positions(std::collections::HashMap<i32, i64>);

impl Positions {
    /// Whether `offset` of `partition` is past everything passed on so far
    /// (and records it if so).
    fn advance(&mut self, partition: i32, offset: i64) -> bool {
        match self.0.get_mut(&partition) {
            Some(last) if offset <= *last => false,
            Some(last) => {
                *last = offset;
                true
            }
            None => {
                self.0.insert(partition, offset);
                true
            }
        }
    }
}

/// Starts the readers; returns once each is positioned, so everything
/// published afterwards will be read.
pub async fn start(
    kafka: Option<&KafkaArgs>,
    mqtt: Option<(&MqttArgs, MqttOptions)>,
    stop: &CancellationToken,
) -> anyhow::Result<Readers> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let undecodable = Arc::new(AtomicU64::new(0));
    let reread = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    if let Some(args) = kafka {
        let reader = KafkaReader::position(args).await?;
        tasks.push(tokio::spawn(reader.run(
            tx.clone(),
            Arc::clone(&undecodable),
            Arc::clone(&reread),
            stop.clone(),
        )));
    }
    if let Some((args, options)) = mqtt {
        tasks
            .push(subscribe_edge(args, options, tx.clone(), Arc::clone(&undecodable), stop).await?);
    }
    Ok(Readers {
        rx,
        tasks,
        undecodable,
        reread,
    })
}

impl Readers {
    /// Feeds verdicts into `tally` until `expected` (set when publishing
    /// ends) distinct records are verdicted or `stop` fires; then stops the
    /// readers and returns the tally.
    pub async fn collect(
        mut self,
        mut tally: Tally,
        mut expected: watch::Receiver<Option<u64>>,
        counters: Arc<Counters>,
        stop: CancellationToken,
    ) -> Tally {
        let mut watching = true;
        loop {
            let target = *expected.borrow_and_update();
            if target.is_some_and(|t| tally.distinct >= t) {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                changed = expected.changed(), if watching => {
                    watching = changed.is_ok();
                }
                received = self.rx.recv() => {
                    let Some(r) = received else { break };
                    if tally.add(&r.verdict, r.read_ms) == Added::New {
                        counters.verdicted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        let reread = self.reread.load(Ordering::Relaxed);
        if reread > 0 {
            tracing::info!(
                reread,
                "verdicts the Kafka client delivered again at an offset already read were skipped (not duplicates)"
            );
        }
        tally
    }
}

/// `vigil.verdicts`, read by partition assignment from the run's start.
struct KafkaReader {
    consumer: Arc<StreamConsumer>,
    topic: String,
    /// Whether partitions are assigned (false while the topic is missing).
    assigned: bool,
}

impl KafkaReader {
    async fn position(args: &KafkaArgs) -> anyhow::Result<Self> {
        let topic = args.topics().verdicts;
        let group = format!("vigil-loadgen-{}-{}", std::process::id(), now_ms());
        let consumer: StreamConsumer =
            vigil_service::kafka::consumer_config(args, "vigil-loadgen", &group)
                .create()
                .context("creating the verdict consumer")?;
        let mut reader = Self {
            consumer: Arc::new(consumer),
            topic,
            assigned: false,
        };
        // Only the end offsets at this moment: later verdicts are this run's.
        reader.assign(false).await.with_context(|| {
            format!("positioning on {} at {}", reader.topic, args.kafka_brokers)
        })?;
        if !reader.assigned {
            tracing::warn!(
                topic = %reader.topic,
                "the verdicts topic does not exist yet; reading it from the beginning once it does"
            );
        }
        Ok(reader)
    }

    /// Assigns every partition of the topic, at its end offset or (for a
    /// topic that appeared after the start) at the beginning.
    async fn assign(&mut self, from_beginning: bool) -> anyhow::Result<()> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        let list =
            tokio::task::spawn_blocking(move || -> anyhow::Result<Option<TopicPartitionList>> {
                let metadata = consumer
                    .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                    .context("fetching metadata")?;
                let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                    return Ok(None);
                };
                if t.error().is_some() || t.partitions().is_empty() {
                    return Ok(None);
                }
                let mut list = TopicPartitionList::new();
                for p in t.partitions() {
                    let offset = if from_beginning {
                        Offset::Beginning
                    } else {
                        let (_, high) = consumer
                            .fetch_watermarks(&topic, p.id(), METADATA_TIMEOUT)
                            .with_context(|| format!("end offset of partition {}", p.id()))?;
                        Offset::Offset(high)
                    };
                    list.add_partition_offset(&topic, p.id(), offset)?;
                }
                Ok(Some(list))
            })
            .await
            .context("metadata task")??;
        if let Some(list) = list {
            self.consumer
                .assign(&list)
                .context("assigning partitions")?;
            self.assigned = true;
            tracing::debug!(topic = %self.topic, partitions = list.count(), "reading verdicts");
        }
        Ok(())
    }

    async fn run(
        mut self,
        tx: mpsc::Sender<Received>,
        undecodable: Arc<AtomicU64>,
        reread: Arc<AtomicU64>,
        stop: CancellationToken,
    ) {
        let mut look = tokio::time::interval(TOPIC_POLL);
        let mut positions = Positions::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = look.tick(), if !self.assigned => {
                    if let Err(e) = self.assign(true).await {
                        tracing::warn!(error = %format!("{e:#}"), "looking for the verdicts topic");
                    }
                }
                message = self.consumer.recv(), if self.assigned => match message {
                    Ok(m) => {
                        if !positions.advance(m.partition(), m.offset()) {
                            if reread.fetch_add(1, Ordering::Relaxed) == 0 {
                                tracing::debug!(partition = m.partition(), offset = m.offset(), "offset delivered again; skipped");
                            }
                            continue;
                        }
                        let read_ms = now_ms();
                        match Verdict::decode(m.payload().unwrap_or_default()) {
                            Ok(verdict) => {
                                if tx.send(Received { verdict, read_ms }).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                if undecodable.fetch_add(1, Ordering::Relaxed) == 0 {
                                    tracing::warn!(error = %e, partition = m.partition(), offset = m.offset(), "not a verdict (first of its kind; counted)");
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading verdicts"),
                },
            }
        }
    }
}

/// Subscribes to every device's edge verdicts and waits for the SUBACK.
async fn subscribe_edge(
    args: &MqttArgs,
    options: MqttOptions,
    tx: mpsc::Sender<Received>,
    undecodable: Arc<AtomicU64>,
    stop: &CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let filter = args.topics().all_devices(DeviceChannel::Verdicts);
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    client
        .subscribe(filter.clone(), QoS::AtLeastOnce)
        .await
        .context("queueing the edge verdict subscription")?;
    let subscribed = async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("subscribing to {filter} at {}: {e}", args.mqtt_url),
        Err(_) => bail!(
            "subscribing to {filter} at {}: no SUBACK within {SUBSCRIBE_TIMEOUT:?}",
            args.mqtt_url
        ),
    }
    let stop = stop.clone();
    Ok(tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                event = event_loop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let read_ms = now_ms();
                    match Verdict::decode(&p.payload) {
                        Ok(verdict) => {
                            if tx.send(Received { verdict, read_ms }).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => {
                            undecodable.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                    // A fresh session after a reconnect has no subscription.
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(error = %e, "resubscribing to edge verdicts");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "edge verdict subscription lost; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::Positions;

    #[test]
    fn an_offset_delivered_again_is_not_passed_on() {
        let mut p = Positions::default();
        assert!(p.advance(0, 10));
        assert!(p.advance(1, 3));
        assert!(p.advance(0, 11));
        // Again, and an earlier one: both skipped; other partitions unaffected.
        assert!(!p.advance(0, 11));
        assert!(!p.advance(0, 5));
        assert!(p.advance(1, 4));
        assert!(p.advance(0, 12));
    }
}
