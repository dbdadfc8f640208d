//! Consumer lag and DLQ retention, measured from the log itself.
//!
//! Lag is what an operator looks at first when verdicts fall behind: for
//! each configured group (`vigil-score`, `vigil-audit` by default), the
//! records between its committed offset and the end of each partition of
//! each Vigil topic it has committed offsets for. The poller asks the
//! group coordinator for committed offsets (OffsetFetch) without joining
//! the group, so it never disturbs the consumers it watches. librdkafka's
//! calls are synchronous: each measurement runs on a blocking thread.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use vigil_service::config::KafkaArgs;
use vigil_service::{kafka, now_ms, Shutdown};

use crate::metrics::ApiMetrics;
use crate::state::{GroupLag, LogFacts, Shared, TopicLag};

/// How long one broker request of a measurement may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Clients of the measurements, kept across rounds.
struct Probe {
    /// For metadata and watermarks (its group is never joined).
    admin: BaseConsumer,
    /// One per watched group, to read that group's committed offsets.
    groups: Vec<(String, BaseConsumer)>,
    /// Every Vigil topic.
    topics: Vec<String>,
    /// vigil.dlq.
    dlq: String,
}

fn consumer(args: &KafkaArgs, group: &str) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
    let mut config = kafka::client_config(args, "vigil-api-lag");
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (k, v) in &args.kafka_options {
        config.set(k, v);
    }
    config.create()
}

impl Probe {
    fn new(args: &KafkaArgs, groups: &[String]) -> Result<Self, rdkafka::error::KafkaError> {
        let t = args.topics();
        Ok(Self {
            admin: consumer(args, "vigil-api-unjoined")?,
            groups: groups
                .iter()
                .filter(|g| !g.trim().is_empty())
                .map(|g| Ok((g.trim().to_owned(), consumer(args, g.trim())?)))
                .collect::<Result<_, rdkafka::error::KafkaError>>()?,
            topics: vec![
                t.telemetry,
                t.verdicts,
                t.anomalies,
                t.models,
                t.device_status,
                t.incidents,
                t.dlq.clone(),
            ],
            dlq: t.dlq,
        })
    }

    /// One measurement. Blocking.
    fn measure(&self) -> Result<LogFacts, String> {
        let metadata = self
            .admin
            .fetch_metadata(None, Timeout::After(REQUEST_TIMEOUT))
            .map_err(|e| format!("reading cluster metadata: {e}"))?;
        // (topic, partition) → (low, high) watermarks.
        let mut marks: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        for topic in metadata.topics() {
            if !self.topics.iter().any(|t| t == topic.name()) {
                continue;
            }
            for p in topic.partitions() {
                let wm = self
                    .admin
                    .fetch_watermarks(topic.name(), p.id(), Timeout::After(REQUEST_TIMEOUT))
                    .map_err(|e| format!("reading the end of {}/{}: {e}", topic.name(), p.id()))?;
                marks.insert((topic.name().to_owned(), p.id()), wm);
            }
        }
        let dlq_retained = marks
            .iter()
            .filter(|((t, _), _)| *t == self.dlq)
            .map(|(_, (low, high))| u64::try_from(high - low).unwrap_or(0))
            .sum();
        let mut all = TopicPartitionList::new();
        for (topic, partition) in marks.keys() {
            all.add_partition(topic, *partition);
        }
        let groups = self
            .groups
            .iter()
            .map(|(group, consumer)| group_lag(group, consumer, &all, &marks))
            .collect();
        Ok(LogFacts {
            measured_ms: now_ms(),
            groups,
            dlq_retained: Some(dlq_retained),
        })
    }
}

fn group_lag(
    group: &str,
    consumer: &BaseConsumer,
    all: &TopicPartitionList,
    marks: &BTreeMap<(String, i32), (i64, i64)>,
) -> GroupLag {
    let members = consumer
        .fetch_group_list(Some(group), Timeout::After(REQUEST_TIMEOUT))
        .ok()
        .and_then(|list| list.groups().first().map(|g| g.members().len() as u64));
    let committed = match consumer.committed_offsets(all.clone(), Timeout::After(REQUEST_TIMEOUT)) {
        Ok(c) => c,
        Err(e) => {
            return GroupLag {
                group: group.to_owned(),
                topics: Vec::new(),
                total: 0,
                members,
                error: Some(format!("reading committed offsets: {e}")),
            }
        }
    };
    let mut per_topic: BTreeMap<String, TopicLag> = BTreeMap::new();
    for el in committed.elements() {
        let Offset::Offset(at) = el.offset() else {
            // Nothing committed on this partition: the group does not read it.
            continue;
        };
        let Some((_, high)) = marks.get(&(el.topic().to_owned(), el.partition())) else {
            continue;
        };
        let entry = per_topic
            .entry(el.topic().to_owned())
            .or_insert_with(|| TopicLag {
                topic: el.topic().to_owned(),
                lag: 0,
                partitions: 0,
            });
        entry.lag += u64::try_from(high - at).unwrap_or(0);
        entry.partitions += 1;
    }
    let topics: Vec<TopicLag> = per_topic.into_values().collect();
    GroupLag {
        group: group.to_owned(),
        total: topics.iter().map(|t| t.lag).sum(),
        topics,
        members,
        error: None,
    }
}

/// Measures every `interval` until shutdown, storing the results in
/// `state`.
pub fn spawn(
    args: KafkaArgs,
    groups: Vec<String>,
    interval: Duration,
    state: Shared,
    metrics: ApiMetrics,
    shutdown: &Shutdown,
) {
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut probe: Option<Probe> = None;
        loop {
            let current = probe.take();
            let (args2, groups2) = (args.clone(), groups.clone());
            let round = tokio::task::spawn_blocking(move || {
                let probe = match current {
                    Some(p) => p,
                    None => match Probe::new(&args2, &groups2) {
                        Ok(p) => p,
                        Err(e) => return (None, Err(format!("creating kafka clients: {e}"))),
                    },
                };
                let facts = probe.measure();
                (Some(probe), facts)
            })
            .await;
            match round {
                Ok((kept, facts)) => {
                    probe = kept;
                    match facts {
                        Ok(facts) => state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .set_log_facts(facts),
                        Err(e) => {
                            metrics.lag_errors.inc();
                            tracing::warn!(error = %e, "cannot measure consumer lag");
                        }
                    }
                }
                Err(e) => {
                    metrics.lag_errors.inc();
                    tracing::warn!(error = %e, "consumer-lag measurement panicked");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
}
