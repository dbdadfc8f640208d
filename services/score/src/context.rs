//! The telemetry consumer's librdkafka context: tracks assignments (so the
//! loop knows which partitions need their state rebuilt) and exports
//! consumer lag from librdkafka's statistics.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::IntGaugeVec;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use vigil_service::kafka::VigilContext;

/// Partitions assigned since their state was last rebuilt.
pub type Fresh = Arc<Mutex<HashSet<i32>>>;

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
            let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
            for p in revoked {
                fresh.remove(&p);
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
                let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
                fresh.extend(assigned);
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
