//! Reading a topic from its first offsets up to the end it had when the
//! reading started, without a consumer group: the model feed, the rollout
//! view, the dashboard, the trainer's replay and the release log all read
//! this way.
//!
//! The steps are always the same: the topic's metadata, its partitions,
//! their watermarks, an assignment from the beginning ([`assign_from_start`]),
//! then an [`EndOffsets`] that tells when every partition has reached the
//! end it had at the start (also across compaction gaps, by the consumer's
//! position). [`Follow`] keeps reading past that point and says when it is
//! reached; [`read_to_end`] stops there and returns the records.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, DefaultConsumerContext, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaArgs;
use crate::kafka::{
    apply_operator_options, client_config, set_all, CONSUMER_DEFAULTS, CONTROL_CONSUMER_DEFAULTS,
};

/// Why a topic could not be looked up or assigned.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The broker does not know the topic, or it has no partitions yet.
    #[error("topic {topic} does not exist or has no partitions yet")]
    Missing { topic: String },
    /// A request to the broker failed.
    #[error("{doing}: {source}")]
    Kafka {
        /// What was asked, with the topic (and partition).
        doing: String,
        #[source]
        source: KafkaError,
    },
}

fn kafka_err(doing: impl FnOnce() -> String) -> impl FnOnce(KafkaError) -> TopicError {
    move |source| TopicError::Kafka {
        doing: doing(),
        source,
    }
}

/// A consumer configuration for reading without a consumer group: nothing
/// joins a group and nothing is committed, and no end-of-partition events;
/// the data path's [`CONSUMER_DEFAULTS`]. The operator's `--kafka-option`s
/// are applied after these settings.
pub fn unjoined_config(args: &KafkaArgs, client_id: &str) -> ClientConfig {
    unjoined_config_with(args, client_id, CONSUMER_DEFAULTS)
}

/// [`unjoined_config`] for a follower of a rarely written topic (model
/// releases, device statuses): [`CONTROL_CONSUMER_DEFAULTS`] instead.
pub fn control_config(args: &KafkaArgs, client_id: &str) -> ClientConfig {
    unjoined_config_with(args, client_id, CONTROL_CONSUMER_DEFAULTS)
}

fn unjoined_config_with(
    args: &KafkaArgs,
    client_id: &str,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut config = client_config(args, client_id);
    config
        // librdkafka wants a group id even for assign(); nothing joins it
        // and nothing is committed.
        .set("group.id", format!("{client_id}-unjoined"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    set_all(&mut config, defaults);
    // The operator's options win, as everywhere.
    apply_operator_options(&mut config, args);
    config
}

/// The partition ids of `topic`. Blocking (a metadata request).
pub fn partitions<C, K>(
    consumer: &K,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, TopicError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(kafka_err(|| format!("reading metadata of {topic}")))?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(TopicError::Missing {
            topic: topic.to_owned(),
        });
    }
    Ok(ids)
}

/// One partition's low and high watermarks: the first offset it holds and
/// the offset its next record will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Partition id.
    pub partition: i32,
    /// First offset present.
    pub low: i64,
    /// One past the last offset present.
    pub high: i64,
}

impl Watermarks {
    /// Whether the partition holds no record.
    pub fn is_empty(&self) -> bool {
        self.high <= self.low
    }
}

/// The watermarks of every partition of `topic`. Blocking.
pub fn watermarks<C, K>(
    consumer: &K,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Watermarks>, TopicError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    partitions(consumer, topic, timeout)?
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Timeout::After(timeout))
                .map_err(kafka_err(|| {
                    format!("reading the end of {topic}/{partition}")
                }))?;
            Ok(Watermarks {
                partition,
                low,
                high,
            })
        })
        .collect()
}

/// Assigns every partition of `topic` to `consumer` from its first offset
/// and returns the ends to read up to. Blocking.
pub fn assign_from_start<C, K>(
    consumer: &K,
    topic: &str,
    timeout: Duration,
) -> Result<EndOffsets, TopicError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    let marks = watermarks(consumer, topic, timeout)?;
    let mut assignment = TopicPartitionList::new();
    for m in &marks {
        assignment
            .add_partition_offset(topic, m.partition, Offset::Beginning)
            .map_err(kafka_err(|| format!("assigning {topic}/{}", m.partition)))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka_err(|| format!("assigning {topic}")))?;
    Ok(EndOffsets::new(&marks))
}

/// The end offset each non-empty partition had when reading started, and
/// which of them are still to be reached.
#[derive(Debug, Clone, Default)]
pub struct EndOffsets {
    ends: HashMap<i32, i64>,
}

impl EndOffsets {
    /// The ends of the non-empty partitions among `marks`.
    pub fn new(marks: &[Watermarks]) -> Self {
        EndOffsets {
            ends: marks
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| (m.partition, m.high))
                .collect(),
        }
    }

    /// Whether every partition has been read up to its end.
    pub fn reached(&self) -> bool {
        self.ends.is_empty()
    }

    /// Partitions still short of their end.
    pub fn missing(&self) -> usize {
        self.ends.len()
    }

    /// Notes a record read at `offset` of `partition`.
    pub fn read(&mut self, partition: i32, offset: i64) {
        if self
            .ends
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            self.ends.remove(&partition);
        }
    }

    /// Notes where the consumer stands: compaction and control records can
    /// leave a partition's last offsets empty, so no record reaches the end
    /// but the position does. Call it when no record arrives for a while.
    pub fn check_position<C, K>(&mut self, consumer: &K)
    where
        C: ConsumerContext,
        K: Consumer<C>,
    {
        if self.ends.is_empty() {
            return;
        }
        let Ok(position) = consumer.position() else {
            return;
        };
        for el in position.elements() {
            if let (Offset::Offset(at), Some(end)) = (el.offset(), self.ends.get(&el.partition())) {
                if at >= *end {
                    self.ends.remove(&el.partition());
                }
            }
        }
    }
}

/// What [`Follow::next`] saw.
#[derive(Debug)]
pub enum Next<'a> {
    /// A record (its partition's end offset is already accounted for).
    Record(BorrowedMessage<'a>),
    /// Every partition has reached the end it had at the start; reported
    /// once, before any later record.
    CaughtUp,
    /// A Kafka error; following goes on.
    Failed(KafkaError),
}

/// Follows a consumer assigned by [`assign_from_start`]: records in log
/// order, and once the moment the start-up ends have been read.
pub struct Follow<C: ConsumerContext + 'static = DefaultConsumerContext> {
    consumer: StreamConsumer<C>,
    ends: EndOffsets,
    caught_up: bool,
    idle_check: Duration,
}

impl<C: ConsumerContext + 'static> std::fmt::Debug for Follow<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("ends", &self.ends)
            .field("caught_up", &self.caught_up)
            .finish_non_exhaustive()
    }
}

impl<C: ConsumerContext + 'static> Follow<C> {
    /// Follows `consumer` up to `ends` and on; while short of the ends the
    /// position is checked after each `idle_check` without a record.
    pub fn new(consumer: StreamConsumer<C>, ends: EndOffsets, idle_check: Duration) -> Self {
        Follow {
            consumer,
            ends,
            caught_up: false,
            idle_check,
        }
    }

    /// The next record, the catch-up, or an error. Cancel-safe.
    pub async fn next(&mut self) -> Next<'_> {
        let Follow {
            consumer,
            ends,
            caught_up,
            idle_check,
        } = self;
        loop {
            if !*caught_up && ends.reached() {
                *caught_up = true;
                return Next::CaughtUp;
            }
            if *caught_up {
                return match consumer.recv().await {
                    Ok(m) => Next::Record(m),
                    Err(e) => Next::Failed(e),
                };
            }
            match tokio::time::timeout(*idle_check, consumer.recv()).await {
                Ok(Ok(m)) => {
                    ends.read(m.partition(), m.offset());
                    return Next::Record(m);
                }
                Ok(Err(e)) => return Next::Failed(e),
                Err(_idle) => ends.check_position(consumer),
            }
        }
    }
}

/// One record read by [`read_to_end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Broker or producer timestamp, ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value (None for a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// Error from [`read_to_end`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading kafka topic {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading kafka topic {topic}: not finished after {timeout:?} ({missing} partitions short of their end)")]
    Timeout {
        topic: String,
        timeout: Duration,
        missing: usize,
    },
}

/// Reads every record of `topic` from the beginning up to the end it had
/// when the call started, without a consumer group (nothing is committed).
/// Blocking: call it from `spawn_blocking` in async code. A topic that does
/// not exist reads as empty. `max_records` bounds what is held in memory:
/// the call stops after that many records (oldest first).
pub fn read_to_end(
    args: &KafkaArgs,
    topic: &str,
    client_id: &str,
    timeout: Duration,
    max_records: usize,
) -> Result<Vec<LogRecord>, ReadError> {
    let err = |source| ReadError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let deadline = std::time::Instant::now() + timeout;
    let consumer: BaseConsumer = unjoined_config(args, client_id).create().map_err(err)?;
    let mut ends = match assign_from_start(&consumer, topic, timeout) {
        Ok(ends) => ends,
        // Unknown topic (or not yet created): nothing to read.
        Err(TopicError::Missing { .. }) => return Ok(Vec::new()),
        Err(TopicError::Kafka { source, .. }) => return Err(err(source)),
    };
    let mut records = Vec::new();
    while !ends.reached() && records.len() < max_records {
        if std::time::Instant::now() > deadline {
            return Err(ReadError::Timeout {
                topic: topic.to_owned(),
                timeout,
                missing: ends.missing(),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                ends.read(m.partition(), m.offset());
                records.push(LogRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
            }
            Some(Err(e)) => return Err(err(e)),
            None => ends.check_position(&consumer),
        }
    }
    Ok(records)
}
