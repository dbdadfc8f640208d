//! Test-side clients of the real brokers: publish over MQTT and wait for
//! every PUBACK; read a Kafka topic until a condition holds; scrape a
//! service's `/metrics`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

/// A record read from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition it was read from.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Key bytes as UTF-8 (lossy).
    pub key: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Publishes every `(topic, payload)` at QoS 1 from one connection with
/// client id `client_id`, and returns once the broker acknowledged all of
/// them (or errors after `timeout`).
pub async fn publish_all(
    mqtt_port: u16,
    client_id: &str,
    messages: Vec<(String, Vec<u8>)>,
    timeout: Duration,
) -> Result<()> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", mqtt_port);
    options.set_outgoing_inflight_upper_limit(1000);
    options.set_max_packet_size(Some(4 * 1024 * 1024));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let total = messages.len();
    let sender = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .context("queueing a publish")?;
        }
        Ok::<_, anyhow::Error>(client)
    });
    let mut acked = 0usize;
    let deadline = Instant::now() + timeout;
    while acked < total {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, eventloop.poll()).await {
            Err(_) => bail!("only {acked} of {total} publishes acknowledged within {timeout:?}"),
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("mqtt publisher connection failed after {acked} acks: {e}"),
        }
    }
    let client = sender.await.context("publisher task")??;
    let _ = client.disconnect().await;
    Ok(())
}

/// Reads `topic` from the beginning (all partitions, no committed offsets)
/// until `done` says the records so far are enough, or `timeout` passes.
/// Returns the records in the order read (per-partition order preserved).
pub async fn read_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Result<Vec<Record>> {
    let group = format!("testkit-{}-{}", std::process::id(), unique());
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .context("creating the test consumer")?;
    consumer.subscribe(&[topic]).context("subscribing")?;
    let mut records = Vec::new();
    // Offsets must follow each other within a partition; a jump means the
    // broker skipped records for this reader. Kept for the error message.
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut gaps: Vec<String> = Vec::new();
    let deadline = Instant::now() + timeout;
    while !done(&records) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let held: Vec<String> = next_offset
                .keys()
                .filter_map(|&p| {
                    let (low, high) = consumer
                        .fetch_watermarks(topic, p, Duration::from_secs(5))
                        .ok()?;
                    Some(format!("partition {p}: offsets {low}..{high}"))
                })
                .collect();
            bail!(
                "condition on {topic} not met within {timeout:?} ({} records read; \
                 broker holds {}; offset gaps while reading: {})",
                records.len(),
                held.join(", "),
                if gaps.is_empty() {
                    "none".to_owned()
                } else {
                    gaps.join(", ")
                }
            );
        }
        match tokio::time::timeout(remaining.min(Duration::from_secs(1)), consumer.recv()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                // Topic not created yet and similar transient states.
                if Instant::now() > deadline {
                    bail!("reading {topic}: {e}");
                }
            }
            Ok(Ok(m)) => {
                let expected = next_offset.insert(m.partition(), m.offset() + 1);
                if let Some(expected) = expected.filter(|&e| e != m.offset()) {
                    gaps.push(format!(
                        "partition {}: expected offset {expected}, got {}",
                        m.partition(),
                        m.offset()
                    ));
                }
                records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
    }
    Ok(records)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The offsets consumer group `group` has committed on `topic`, summed
/// over its partitions (partitions without a commit count 0).
pub async fn committed_offsets(brokers: &str, group: &str, topic: &str) -> Result<i64> {
    let (brokers, group, topic) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the offsets reader")?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .context("reading the topic's metadata")?;
        let mut partitions = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                partitions.add_partition(&topic, p.id());
            }
        }
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .with_context(|| format!("reading group {group}'s committed offsets"))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum())
    })
    .await
    .context("offsets reader panicked")?
}

/// Value of the first sample of `metric` (name plus optional `{labels}`
/// prefix match) on a service's `/metrics`, or None when absent.
pub async fn scrape(http_addr: &str, metric: &str) -> Result<Option<f64>> {
    let text = reqwest::get(format!("http://{http_addr}/metrics"))
        .await
        .with_context(|| format!("scraping {http_addr}"))?
        .text()
        .await?;
    Ok(text.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        line.rsplit(' ').next()?.parse().ok()
    }))
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes
/// (for conditions only observable by asking, like a metric value).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        if Instant::now() > deadline {
            bail!("{what}: not reached within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Distinct keys of `records` (helper for "all arrived" conditions).
pub fn distinct<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashSet<T> {
    items.into_iter().collect()
}
