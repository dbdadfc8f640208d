//! Delivery tracking for the scoring loop, without a future per record.
//!
//! Every consumed record gets a slot in the [`Ledger`] that counts its
//! produced records (verdict, anomaly, DLQ record) not yet confirmed. Each
//! produce carries its slot number and sink ([`Sink::tag`]) as librdkafka's
//! per-message opaque;
//! the producer's delivery callback ([`ProduceContext`]) appends the
//! outcome to [`Deliveries`] and wakes the loop, which settles a whole
//! batch of outcomes at once. Per partition the ledger keeps slots in
//! consumed order, so the offset it reports as confirmed is always one
//! below which every record of that partition is confirmed: the
//! at-least-once rule, with one watermark per partition instead of one
//! boxed future per record in a global order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message as _};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use slab::Slab;
use tokio::sync::Notify;
use vigil_service::kafka::VigilContext;

/// Where a produced record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Verdicts,
    Anomalies,
    Dlq,
}

impl Sink {
    /// The tag a produce carries through librdkafka (its opaque): the
    /// ledger slot of its record and the sink, so a record's verdict and
    /// anomaly can be told apart.
    pub fn tag(self, slot: usize) -> usize {
        (slot << 2) | self as usize
    }
}

/// The ledger slot a produce's tag names.
pub fn slot_of(tag: usize) -> usize {
    tag >> 2
}

/// Whether a produce's tag names a DLQ record.
pub fn is_dlq(tag: usize) -> bool {
    tag & 3 == Sink::Dlq as usize
}

/// A produce that failed and must be sent again (with copies of what was
/// sent, since librdkafka frees its own).
#[derive(Debug)]
pub struct Failed {
    /// The produce's tag ([`Sink::tag`]).
    pub tag: usize,
    pub topic: String,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub error: KafkaError,
}

impl Failed {
    /// The failure of the produce tagged `tag`.
    pub fn new(tag: usize, topic: &str, key: &[u8], payload: &[u8], error: KafkaError) -> Self {
        Self {
            tag,
            topic: topic.to_owned(),
            key: key.to_vec(),
            payload: payload.to_vec(),
            error,
        }
    }
}

/// Outcomes reported by the producer's delivery callback, waiting for the
/// loop. Bounded by the ledger: at most one outcome per produce in flight.
#[derive(Debug, Default)]
pub struct Deliveries {
    delivered: Mutex<Outcomes>,
    wake: Notify,
}

/// One batch of outcomes.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Tags of confirmed produces.
    pub delivered: Vec<usize>,
    /// Produces to send again.
    pub failed: Vec<Failed>,
}

impl Outcomes {
    fn is_empty(&self) -> bool {
        self.delivered.is_empty() && self.failed.is_empty()
    }
}

impl Deliveries {
    /// Reports a confirmed produce.
    pub fn delivered(&self, tag: usize) {
        self.push(|o| o.delivered.push(tag));
    }

    /// Reports a failed produce.
    pub fn failed(&self, failed: Failed) {
        self.push(|o| o.failed.push(failed));
    }

    fn push(&self, add: impl FnOnce(&mut Outcomes)) {
        let mut outcomes = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        // Wake only on the first outcome of a batch: the loop takes the
        // whole batch when it wakes (Notify keeps the permit if it is busy).
        let wake = outcomes.is_empty();
        add(&mut outcomes);
        drop(outcomes);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Resolves when outcomes are waiting.
    pub async fn ready(&self) {
        self.wake.notified().await;
    }

    /// Takes every waiting outcome, leaving `spare` (emptied) in its place
    /// so the vectors' capacity is reused.
    pub fn take(&self, spare: &mut Outcomes) {
        spare.delivered.clear();
        spare.failed.clear();
        let mut outcomes = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *outcomes, spare);
    }
}

/// Where the scoring loop hands the records it produces: librdkafka's
/// producer in the service, a fake in tests. The outcome of each record
/// comes back through [`Deliveries`], tagged with `tag`.
pub trait Produce {
    /// Enqueues one record now; an error means it was not taken.
    fn produce(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        tag: usize,
    ) -> Result<(), KafkaError>;
}

impl Produce for ThreadedProducer<ProduceContext> {
    fn produce(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        tag: usize,
    ) -> Result<(), KafkaError> {
        let record = BaseRecord::with_opaque_to(topic, tag)
            .key(key)
            .payload(payload);
        self.send(record).map_err(|(e, _)| e)
    }
}

/// Context of the verdict producer: logs and readiness as every Vigil
/// client, plus delivery outcomes into [`Deliveries`].
#[derive(Debug, Clone)]
pub struct ProduceContext {
    base: VigilContext,
    deliveries: Arc<Deliveries>,
}

impl ProduceContext {
    pub fn new(base: VigilContext, deliveries: Arc<Deliveries>) -> Self {
        Self { base, deliveries }
    }
}

impl ClientContext for ProduceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason);
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        match result {
            Ok(_) => self.deliveries.delivered(tag),
            Err((error, message)) => {
                let failed = Failed::new(
                    tag,
                    message.topic(),
                    message.key().unwrap_or_default(),
                    message.payload().unwrap_or_default(),
                    error.clone(),
                );
                self.deliveries.failed(failed);
            }
        }
    }
}

/// A consumed record whose produced records are not all confirmed.
#[derive(Debug)]
struct Slot {
    partition: i32,
    offset: i64,
    /// Produces not yet confirmed.
    outstanding: u32,
}

/// Records in flight, in consumed order per partition.
#[derive(Debug, Default)]
pub struct Ledger {
    slots: Slab<Slot>,
    order: HashMap<i32, VecDeque<usize>>,
    /// Highest offset per partition below which everything is confirmed,
    /// since the last [`Ledger::take_confirmed`].
    confirmed: HashMap<i32, i64>,
}

impl Ledger {
    /// Records in flight.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Starts tracking a consumed record; returns its slot.
    pub fn open(&mut self, partition: i32, offset: i64) -> usize {
        let slot = self.slots.insert(Slot {
            partition,
            offset,
            outstanding: 0,
        });
        self.order.entry(partition).or_default().push_back(slot);
        slot
    }

    /// One more produce for `slot` is on its way.
    pub fn sending(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.outstanding += 1;
        }
    }

    /// Offset of the consumed record in `slot`.
    pub fn offset(&self, slot: usize) -> Option<i64> {
        self.slots.get(slot).map(|s| s.offset)
    }

    /// One produce of `slot` is confirmed. Returns how many records became
    /// fully confirmed at the front of their partition.
    pub fn delivered(&mut self, slot: usize) -> u64 {
        let Some(s) = self.slots.get_mut(slot) else {
            return 0;
        };
        s.outstanding = s.outstanding.saturating_sub(1);
        let partition = s.partition;
        self.advance(partition)
    }

    /// Every produce of `slot` has been started: a record that needed none
    /// (or whose produces are all confirmed already) may be complete now.
    /// Returns how many records became fully confirmed.
    pub fn sealed(&mut self, slot: usize) -> u64 {
        match self.slots.get(slot) {
            Some(s) if s.outstanding == 0 => {
                let partition = s.partition;
                self.advance(partition)
            }
            _ => 0,
        }
    }

    /// Pops the confirmed records at the front of `partition`'s queue and
    /// raises its watermark to the last of them.
    fn advance(&mut self, partition: i32) -> u64 {
        let Some(queue) = self.order.get_mut(&partition) else {
            return 0;
        };
        let mut done = 0;
        while let Some(&front) = queue.front() {
            if self.slots[front].outstanding > 0 {
                break;
            }
            queue.pop_front();
            let slot = self.slots.remove(front);
            self.confirmed.insert(partition, slot.offset);
            done += 1;
        }
        if queue.is_empty() {
            self.order.remove(&partition);
        }
        done
    }

    /// The confirmed watermark (highest offset) of each partition that
    /// moved since the last call.
    pub fn take_confirmed(&mut self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.confirmed.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_oldest_record_of_its_partition() {
        let mut ledger = Ledger::default();
        let a = ledger.open(0, 10);
        ledger.sending(a);
        ledger.sending(a); // verdict + anomaly
        assert_eq!(ledger.sealed(a), 0);
        let b = ledger.open(0, 11);
        ledger.sending(b);
        assert_eq!(ledger.sealed(b), 0);
        let c = ledger.open(1, 5);
        ledger.sending(c);
        assert_eq!(ledger.sealed(c), 0);

        // A later record of partition 0 and the other partition confirm
        // first: only partition 1 moves.
        assert_eq!(ledger.delivered(b), 0);
        assert_eq!(ledger.delivered(c), 1);
        assert_eq!(ledger.take_confirmed().collect::<Vec<_>>(), vec![(1, 5)]);
        // Half of a's produces: still nothing for partition 0.
        assert_eq!(ledger.delivered(a), 0);
        assert_eq!(ledger.take_confirmed().count(), 0);
        // The rest: a and b both complete, watermark at b.
        assert_eq!(ledger.delivered(a), 2);
        assert_eq!(ledger.take_confirmed().collect::<Vec<_>>(), vec![(0, 11)]);
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_record_without_produces_completes_when_sealed_in_order() {
        let mut ledger = Ledger::default();
        let a = ledger.open(3, 1);
        ledger.sending(a);
        ledger.sealed(a);
        let b = ledger.open(3, 2);
        // b produced nothing, but a is still in flight.
        assert_eq!(ledger.sealed(b), 0);
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.delivered(a), 2);
        assert_eq!(ledger.take_confirmed().collect::<Vec<_>>(), vec![(3, 2)]);
    }

    #[test]
    fn tags_name_the_slot_and_the_sink() {
        let tags = [Sink::Verdicts, Sink::Anomalies, Sink::Dlq].map(|s| s.tag(7));
        assert!(tags.iter().all(|&t| slot_of(t) == 7));
        assert_ne!(tags[0], tags[1]);
        assert_ne!(tags[1], tags[2]);
        let mut ledger = Ledger::default();
        let a = ledger.open(0, 42);
        assert_eq!(ledger.offset(a), Some(42));
    }

    #[tokio::test]
    async fn deliveries_wake_once_per_batch_and_keep_every_outcome() {
        let deliveries = Deliveries::default();
        deliveries.push(|o| o.delivered.push(1));
        deliveries.push(|o| o.delivered.push(2));
        deliveries.ready().await;
        let mut batch = Outcomes::default();
        deliveries.take(&mut batch);
        assert_eq!(batch.delivered, vec![1, 2]);
        deliveries.take(&mut batch);
        assert!(batch.is_empty());
        // A push after the take wakes again.
        deliveries.push(|o| o.delivered.push(3));
        deliveries.ready().await;
        deliveries.take(&mut batch);
        assert_eq!(batch.delivered, vec![3]);
    }
}
