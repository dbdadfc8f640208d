//! The telemetry consumer's librdkafka context: tracks assignments (so the
//! loop knows which partitions need their state rebuilt) and exports
//! consumer lag from librdkafka's statistics.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntGaugeVec;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use vigil_service::kafka::VigilContext;

/// Partitions assigned since their state was last rebuilt. Written by
/// librdkafka's rebalance callbacks, read by the loop before every record:
/// a flag spares it the lock while nothing is fresh.
#[derive(Debug, Clone, Default)]
pub struct Fresh(Arc<FreshSet>);

#[derive(Debug, Default)]
struct FreshSet {
    any: AtomicBool,
    partitions: Mutex<HashSet<i32>>,
}

impl Fresh {
    fn with<R>(&self, f: impl FnOnce(&mut HashSet<i32>) -> R) -> R {
        let mut set = self.0.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut set);
        self.0.any.store(!set.is_empty(), Ordering::Release);
        r
    }

    /// Marks `partitions` as needing a state rebuild.
    fn add(&self, partitions: impl IntoIterator<Item = i32>) {
        self.with(|set| set.extend(partitions));
    }

    /// Forgets `partition` (revoked).
    fn remove(&self, partition: i32) {
        self.with(|set| set.remove(&partition));
    }

    /// Whether `partition` needs a state rebuild; clears its mark.
    pub fn take(&self, partition: i32) -> bool {
        if !self.0.any.load(Ordering::Acquire) {
            return false;
        }
        self.with(|set| set.remove(&partition))
    }
}

/// Context of the telemetry consumer.
#[derive(Debug, Clone)]
pub struct ScoreContext {
    base: VigilContext,
    topic: String,
    fresh: Fresh,
    lag: IntGaugeVec,
}

impl ScoreContext {
    /// A context for consuming `topic`.
    pub fn new(base: VigilContext, topic: String, fresh: Fresh, lag: IntGaugeVec) -> Self {
        ScoreContext {
            base,
            topic,
            fresh,
            lag,
        }
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for ScoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (id, p) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; a lag of
            // -1 means "not known yet".
            if *id >= 0 && p.consumer_lag >= 0 {
                self.lag
                    .with_label_values(&[&id.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for ScoreContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = self.partitions(tpl);
            tracing::info!(?revoked, "partitions revoked");
            for p in revoked {
                self.fresh.remove(p);
                let _ = self.lag.remove_label_values(&[&p.to_string()]);
            }
        }
        let _ = consumer;
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = self.partitions(tpl);
                tracing::info!(?assigned, "partitions assigned");
                self.fresh.add(assigned);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::trace!(?offsets, "offsets committed"),
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "offset commit failed"),
        }
    }
}
