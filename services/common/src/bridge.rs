//! The Kafka side of an MQTT → Kafka bridge: a window of deliveries in
//! arrival order, each message acknowledged once Kafka confirmed it.
//!
//! `vigil ingest` (telemetry) and `vigil push` (device statuses) differ
//! only in how a message is validated and where its record goes; that part
//! is a [`Forward`]. What they share lives here:
//!
//! - [`run_window`] takes messages from a [`Subscription`]
//!   in arrival order, starts each message's delivery at once (so Kafka sees
//!   a device's records in the order they arrived) and keeps at most
//!   `window` deliveries in flight. The oldest delivery is awaited first,
//!   so PUBACKs leave in arrival order, as MQTT requires. A record Kafka
//!   refuses for good is sent to the DLQ instead, and acknowledged once that
//!   landed. A DLQ record Kafka refuses for good (the DLQ topic missing or
//!   not writable, a size limit below the DLQ cap) is never acknowledged:
//!   the message stays with the broker (redelivered to the next session),
//!   the refusal is logged as an error and counted
//!   ([`Counters::dlq_refused`]), so nothing is lost silently; if it keeps
//!   happening the bridge's window fills and it stops, loudly. On shutdown the deliveries in flight are awaited (bounded by a
//!   timeout) and acknowledged; what is left the broker redelivers.
//! - [`serve`]: the above over a subscription, then its close and the
//!   producer's flush.
//! - [`reliable_producer`]: the idempotent `acks=all` producer that retries
//!   without a message timeout, with its connection watched for `/readyz`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use futures::stream::FuturesOrdered;
use futures::StreamExt as _;
use prometheus::{IntCounter, IntGauge};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer as _};
use rumqttc::v5::mqttbytes::v5::Publish;
use tokio::sync::mpsc;

use crate::config::KafkaArgs;
use crate::dlq::{self, Rejection};
use crate::kafka::{self, ProducerTuning, VigilContext};
use crate::subscription::{Acker, Subscription};
use crate::{Readiness, Shutdown};

/// How often the producer's connection is probed for `/readyz`.
const KAFKA_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long the producer may take to flush at the end.
const PRODUCER_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a message's record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The service's own topic.
    Record,
    /// The dead-letter topic.
    Dlq,
}

/// A message's delivery: resolves with the message, where its record went
/// and Kafka's answer.
pub type Delivery =
    Pin<Box<dyn Future<Output = (Publish, Destination, Result<(), KafkaError>)> + Send>>;

/// A delivery that is already complete: for a message with nothing to
/// write (say, a DLQ record that could not be encoded).
pub fn settled(publish: Publish, dest: Destination) -> Delivery {
    Box::pin(async move { (publish, dest, Ok(())) })
}

/// The metrics a bridge keeps up to date.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Records Kafka confirmed on the service's own topic.
    pub confirmed: IntCounter,
    /// DLQ records Kafka confirmed.
    pub dlq_confirmed: IntCounter,
    /// DLQ records Kafka refused for good (their messages are not
    /// acknowledged).
    pub dlq_refused: IntCounter,
    /// Deliveries in flight.
    pub in_flight: IntGauge,
}

/// One service's handling of its messages.
pub trait Forward {
    /// Name of the service in DLQ records and logs.
    const SERVICE: &'static str;
    /// Validates `publish` and hands its record (or its DLQ record, through
    /// [`Forward::reject`]) to Kafka now.
    fn start(&self, publish: Publish) -> Delivery;
    /// Counts a rejection for `reason` in the service's metrics.
    fn count_rejection(&self, reason: &'static str);
    /// Hands the DLQ record `payload`, keyed `key`, to Kafka now; its
    /// delivery settles `publish`.
    fn send_dlq(&self, publish: Publish, key: String, payload: Vec<u8>) -> Delivery;
    /// The bridge's counters.
    fn counters(&self) -> &Counters;

    /// Counts the rejection of `publish` and hands the DLQ record saying so
    /// to Kafka (see [`dlq`]); one that cannot be encoded is logged and the
    /// message acknowledged without it.
    fn reject(&self, publish: Publish, rejection: Rejection) -> Delivery {
        self.count_rejection(rejection.reason);
        let topic = String::from_utf8_lossy(&publish.topic);
        tracing::warn!(service = Self::SERVICE, %topic, reason = rejection.reason,
            detail = %rejection.detail, "rejected a message; sent to the dlq");
        let source = dlq::mqtt_source(&topic);
        match rejection.into_dlq(Self::SERVICE, source, &publish.payload) {
            Some(record) => self.send_dlq(publish, record.key, record.payload),
            None => settled(publish, Destination::Dlq),
        }
    }
}

/// Runs `forward` over what `subscription` receives (see [`run_window`]),
/// then closes the subscription (the PUBACKs of what was delivered are
/// queued ahead of its DISCONNECT, so they leave first) and flushes
/// `producer`.
pub async fn serve<F: Forward>(
    forward: &F,
    mut subscription: Subscription,
    producer: FutureProducer<VigilContext>,
    window: usize,
    shutdown: &Shutdown,
    drain_timeout: Duration,
) {
    let messages = subscription.messages();
    run_window(
        forward,
        &subscription.acker(),
        messages,
        window,
        shutdown,
        drain_timeout,
    )
    .await;
    subscription.close().await;
    let _ = tokio::task::spawn_blocking(move || producer.flush(PRODUCER_FLUSH_TIMEOUT)).await;
}

/// Runs `forward` over `messages` with at most `window` deliveries in
/// flight until `shutdown` or the end of `messages`, then waits up to
/// `drain_timeout` for those in flight. Returns how many messages it left
/// unacknowledged (in flight at the timeout, or withheld because Kafka
/// refused their DLQ record).
pub async fn run_window<F: Forward>(
    forward: &F,
    acker: &Acker,
    mut messages: mpsc::Receiver<Publish>,
    window: usize,
    shutdown: &Shutdown,
    drain_timeout: Duration,
) -> u64 {
    let window = window.max(1);
    let withheld_before = forward.counters().dlq_refused.get();
    let mut left = 0;
    let mut pending: FuturesOrdered<Delivery> = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some((publish, dest, result)) = pending.next(), if !pending.is_empty() => {
                finish(forward, acker, publish, dest, result, &mut pending).await;
            }
            received = messages.recv(), if pending.len() < window => match received {
                Some(publish) => {
                    pending.push_back(forward.start(publish));
                    forward.counters().in_flight.set(gauge(pending.len()));
                }
                None => break,
            },
        }
    }
    tracing::info!(in_flight = pending.len(), "draining in-flight deliveries");
    let deadline = tokio::time::sleep(drain_timeout);
    tokio::pin!(deadline);
    while !pending.is_empty() {
        tokio::select! {
            Some((publish, dest, result)) = pending.next() => {
                finish(forward, acker, publish, dest, result, &mut pending).await;
            }
            _ = &mut deadline => {
                tracing::warn!(
                    unacknowledged = pending.len(),
                    "shutdown timeout: leaving messages unacknowledged; the broker redelivers them"
                );
                left = pending.len() as u64;
                break;
            }
        }
    }
    left + forward
        .counters()
        .dlq_refused
        .get()
        .saturating_sub(withheld_before)
}

/// What becomes of a message once its delivery completed.
#[derive(Debug)]
enum Settle {
    /// Kafka holds its record (or its DLQ record): acknowledge it.
    Ack,
    /// Kafka refused its record for good: send this rejection to the DLQ.
    Redirect(Rejection),
    /// Kafka refused its DLQ record for good: do not acknowledge it (the
    /// broker keeps it), say so loudly.
    Withhold(KafkaError),
}

/// The decision [`finish`] carries out (pure, unit-tested).
fn settle(dest: Destination, result: Result<(), KafkaError>) -> Settle {
    match (dest, result) {
        (_, Ok(())) => Settle::Ack,
        (Destination::Record, Err(e)) => Settle::Redirect(Rejection::new(
            "kafka_refused",
            format!("kafka refused the record: {e}"),
        )),
        (Destination::Dlq, Err(e)) => Settle::Withhold(e),
    }
}

/// Acknowledges a delivered message, sends a record Kafka refused for good
/// to the DLQ (acknowledging once that delivery completes), or leaves a
/// message whose DLQ record Kafka refused unacknowledged.
async fn finish<F: Forward>(
    forward: &F,
    acker: &Acker,
    publish: Publish,
    dest: Destination,
    result: Result<(), KafkaError>,
    pending: &mut FuturesOrdered<Delivery>,
) {
    let counters = forward.counters();
    match settle(dest, result) {
        Settle::Ack => {
            match dest {
                Destination::Record => counters.confirmed.inc(),
                Destination::Dlq => counters.dlq_confirmed.inc(),
            }
            acker.ack(&publish).await;
        }
        Settle::Redirect(rejection) => {
            pending.push_back(forward.reject(publish, rejection));
            return;
        }
        Settle::Withhold(e) => {
            counters.dlq_refused.inc();
            let topic = String::from_utf8_lossy(&publish.topic);
            tracing::error!(service = F::SERVICE, error = %e, %topic, bytes = publish.payload.len(),
                "kafka refused a dlq record for good; the message is left unacknowledged with the broker");
        }
    }
    counters.in_flight.set(gauge(pending.len()));
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The producer of a bridge: idempotent, `acks=all`, retrying without a
/// message timeout (a record is either confirmed or the service is still
/// trying), with room in librdkafka's queue for every message in flight
/// plus its possible DLQ record. Its connection state feeds `/readyz`.
pub fn reliable_producer(
    args: &KafkaArgs,
    client_id: &str,
    compression: &str,
    linger_ms: u64,
    window: usize,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> anyhow::Result<FutureProducer<VigilContext>> {
    let tuning = ProducerTuning {
        compression: compression.to_owned(),
        linger_ms,
        max_queued_messages: window * 2 + 1024,
        message_timeout_ms: 0,
    };
    let producer: FutureProducer<VigilContext> = kafka::producer_config(args, client_id, &tuning)
        .create_with_context(VigilContext::new(readiness.clone()))
        .context("creating the kafka producer")?;
    kafka::watch_connection(
        producer.clone(),
        readiness.clone(),
        KAFKA_PROBE_INTERVAL,
        shutdown,
    );
    Ok(producer)
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn refused() -> Result<(), KafkaError> {
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ))
    }

    #[test]
    fn delivered_messages_are_acknowledged() {
        assert!(matches!(settle(Destination::Record, Ok(())), Settle::Ack));
        assert!(matches!(settle(Destination::Dlq, Ok(())), Settle::Ack));
    }

    #[test]
    fn a_refused_record_goes_to_the_dlq() {
        match settle(Destination::Record, refused()) {
            Settle::Redirect(r) => {
                assert_eq!(r.reason, "kafka_refused");
                assert!(r.detail.contains("uthorization"), "{}", r.detail);
            }
            other => panic!("expected a redirect, got {other:?}"),
        }
    }

    #[test]
    fn a_refused_dlq_record_is_never_acknowledged() {
        assert!(matches!(
            settle(Destination::Dlq, refused()),
            Settle::Withhold(_)
        ));
    }
}
