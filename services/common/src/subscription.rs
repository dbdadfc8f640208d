//! A persistent MQTT 5 shared subscription whose messages are acknowledged
//! only when the service is done with them (at-least-once).
//!
//! `vigil ingest` (telemetry) and `vigil push` (device statuses) both move
//! MQTT messages into Kafka this way:
//!
//! ```text
//! broker ──PUBLISH──► event-loop task ──bounded channel──► service pipeline
//!    ▲                     │ (polls: keep-alives, PUBACKs)        │
//!    └──────PUBACK─────────┘◄──────── Subscription::ack ──────────┘
//! ```
//!
//! The session is persistent (`clean_start = false`, a session expiry), so
//! what the service has not acknowledged when it crashes or disconnects is
//! redelivered. Acknowledgements are manual: the pipeline acks a message
//! once Kafka confirmed its record, in arrival order as MQTT requires.
//!
//! # Bounded, without dropping anything
//!
//! The service holds at most `window` messages in its pipeline, `window` in
//! the channel and `window` in the event-loop task's overflow. `window` is
//! also the MQTT 5 *receive maximum* announced to the broker, which should
//! keep the broker from sending more. Brokers do not reliably honour it:
//! Mosquitto 2.0.11, once PUBACKs resume after a stall, sends its whole
//! queue (measured: 4,991 unacknowledged against a receive maximum of 500).
//! So the bound is enforced here as well: when the overflow is full, the
//! task stops reading the connection until the pipeline has taken half of
//! it. TCP flow control then holds the broker back; nothing is dropped
//! and nothing is refused.
//!
//! PUBACKs complicate the pause: rumqttc writes them only while its event
//! loop is polled, and polling also reads. Its loop takes one request (one
//! PUBACK) per turn but reads up to ten packets per turn, so under a flood
//! PUBACKs queue up. The task therefore counts PUBACKs requested and not
//! yet written and keeps polling while there are any, paused or not: the
//! messages read meanwhile go to the overflow beyond its bound, which is
//! then at most about ten per queued PUBACK, and the request channel has
//! room for a PUBACK for every message held. Without this the pipeline
//! could wait on a full request channel while the task waits on the
//! pipeline: a deadlock, seen in the Kafka-outage test.
//!
//! A long pause can outlast the keep-alive; the broker then closes the
//! connection, the client reconnects to the same session, and the broker
//! redelivers what was not acknowledged: duplicates in Kafka, never a loss.
//!
//! # Adopting a departed client's session
//!
//! With [`SubscriptionConfig::adopt`] set, the subscription connects as a
//! client that is gone (a removed replica) to empty its persistent session
//! instead of joining the group: on CONNACK it unsubscribes the group's
//! filter (the broker stops routing the group's messages to that session),
//! subscribes to a marker topic of its own and, once that is acknowledged,
//! publishes one QoS 1 marker there. The broker queues a client's messages
//! in order, so when the marker comes back everything the session held
//! before it has been forwarded; the channel is then closed, and
//! [`Subscription::finish`] tells whether the session was emptied. A
//! connection loss ends an adoption (no reconnect): someone else took the
//! client id, or the broker went away; the session keeps what was not
//! acknowledged.
//!
//! An earlier design dropped messages beyond the bound without a PUBACK
//! and reconnected to have them redelivered. Against Mosquitto 2.0.11 that
//! stalled: after a few such reconnects part of the session's queue was
//! never sent again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ClientError, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{mqtt, Readiness};

/// What to subscribe to and how much to hold.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// The topic filter, normally `$share/<group>/...`.
    pub filter: String,
    /// Messages held at most in each stage (see the module docs); also the
    /// receive maximum announced to the broker.
    pub window: u16,
    /// How long the broker keeps the session after a disconnect.
    pub session_expiry_secs: u32,
    /// Biggest packet accepted from the broker.
    pub max_packet_bytes: u32,
    /// Names the subscription in logs ("telemetry", "status").
    pub label: &'static str,
    /// Empty a departed client's session instead of joining the group
    /// (see the module docs); `None` for a service's own subscription.
    pub adopt: Option<Adoption>,
}

/// The marker an adoption publishes to itself to learn that the session's
/// queue is empty.
#[derive(Debug, Clone)]
pub struct Adoption {
    /// A topic only this adoption subscribes to.
    pub marker_topic: String,
    /// The marker's payload: unique to this attempt, so a marker left in
    /// the session by an earlier, interrupted attempt is not taken for it.
    pub marker: Vec<u8>,
}

/// How a subscription's event-loop task ended (what an adoption reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionEnd {
    /// Messages forwarded to the service (the marker not counted).
    pub forwarded: u64,
    /// An adoption's marker came back: everything queued before it was
    /// forwarded.
    pub drained: bool,
    /// Messages that arrived after the marker (not forwarded, not
    /// acknowledged: they stay in the session).
    pub late: u64,
    /// Why the task stopped early, if it did.
    pub error: Option<String>,
}

/// The service's metrics this subscription reports to.
#[derive(Debug, Clone)]
pub struct SubscriptionMetrics {
    /// Connection losses (not counting a requested disconnect).
    pub disconnects: IntCounter,
    /// Times reading from the broker was paused because the service held
    /// as many messages as it may.
    pub pauses: IntCounter,
    /// 1 while reading is paused.
    pub paused: IntGauge,
}

/// A running subscription: its messages, and the client to acknowledge
/// them with.
#[derive(Debug)]
pub struct Subscription {
    client: AsyncClient,
    acks_queued: Arc<AckCount>,
    messages: Option<mpsc::Receiver<Publish>>,
    task: JoinHandle<SubscriptionEnd>,
    stop: CancellationToken,
}

impl Subscription {
    /// Connects with `options` (from [`mqtt::options`]) made persistent and
    /// manually acknowledged, subscribes to `config.filter` at QoS 1 on
    /// every connect, and starts forwarding messages.
    pub fn start(
        mut options: MqttOptions,
        config: SubscriptionConfig,
        readiness: Readiness,
        metrics: SubscriptionMetrics,
    ) -> Self {
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(config.session_expiry_secs))
            .set_manual_acks(true)
            .set_receive_maximum(Some(config.window))
            .set_max_packet_size(Some(config.max_packet_bytes));
        let window = usize::from(config.window.max(1));
        // Room for a PUBACK for every message held in the three stages,
        // plus the subscribe and disconnect requests.
        let (client, eventloop) = AsyncClient::new(options, window * 3 + 16);
        let (tx, rx) = mpsc::channel(window);
        let stop = CancellationToken::new();
        let acks_queued = Arc::new(AckCount::default());
        let task = tokio::spawn(
            Driver {
                eventloop,
                client: client.clone(),
                acks_queued: acks_queued.clone(),
                tx: Some(tx),
                readiness,
                metrics,
                stop: stop.clone(),
            }
            .run(config),
        );
        Self {
            client,
            acks_queued,
            messages: Some(rx),
            task,
            stop,
        }
    }

    /// The messages, in arrival order. Taken once.
    pub fn messages(&mut self) -> mpsc::Receiver<Publish> {
        self.messages
            .take()
            .expect("Subscription::messages taken twice")
    }

    /// A handle that acknowledges messages.
    pub fn acker(&self) -> Acker {
        Acker {
            client: self.client.clone(),
            queued: self.acks_queued.clone(),
        }
    }

    /// Disconnects cleanly: the PUBACKs already queued leave before the
    /// DISCONNECT. Waits up to five seconds for that, then stops.
    pub async fn close(self) {
        let _ = self.finish().await;
    }

    /// As [`Subscription::close`], and says how the event-loop task ended.
    pub async fn finish(self) -> SubscriptionEnd {
        if let Err(e) = self.client.disconnect().await {
            tracing::debug!(error = %e, "mqtt disconnect request not sent");
        }
        let stop = self.stop.clone();
        let mut task = self.task;
        let ended = match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(ended) => ended,
            Err(_) => {
                stop.cancel();
                task.await
            }
        };
        ended.unwrap_or_else(|e| SubscriptionEnd {
            error: Some(format!("subscription task failed: {e}")),
            ..SubscriptionEnd::default()
        })
    }
}

/// Acknowledges messages of a [`Subscription`].
#[derive(Debug, Clone)]
pub struct Acker {
    client: AsyncClient,
    /// PUBACKs requested and not yet written by the event loop.
    queued: Arc<AckCount>,
}

impl Acker {
    /// Sends the PUBACK for `publish`. The request channel has room for
    /// every message the service holds, so this does not wait; waiting is
    /// only the fallback. A failure is logged: the broker redelivers.
    pub async fn ack(&self, publish: &Publish) {
        // Counted before it is queued, so the event-loop task keeps polling
        // (and writing PUBACKs) even while reads are paused.
        self.queued.add();
        let acked = match self.client.try_ack(publish) {
            Err(ClientError::TryRequest(_)) => self.client.ack(publish).await,
            other => other,
        };
        if let Err(e) = acked {
            self.queued.sent();
            tracing::warn!(error = %e, "cannot send puback; the broker will redeliver");
        }
    }
}

/// PUBACKs requested and not yet written to the connection.
#[derive(Debug, Default)]
struct AckCount {
    count: AtomicUsize,
    /// Wakes the event-loop task when a PUBACK is queued.
    queued: Notify,
}

impl AckCount {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.queued.notify_one();
    }

    fn sent(&self) {
        let _ = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }
}

/// The event-loop task: polls the event loop and forwards PUBLISHes to
/// `tx`; see the module docs for how it stays bounded.
struct Driver {
    eventloop: EventLoop,
    client: AsyncClient,
    acks_queued: Arc<AckCount>,
    /// Dropped once an adoption's marker came back and the overflow is
    /// empty: the service sees the end of its messages.
    tx: Option<mpsc::Sender<Publish>>,
    readiness: Readiness,
    metrics: SubscriptionMetrics,
    stop: CancellationToken,
}

impl Driver {
    async fn run(self, config: SubscriptionConfig) -> SubscriptionEnd {
        let Self {
            mut eventloop,
            client,
            acks_queued,
            mut tx,
            readiness,
            metrics,
            stop,
        } = self;
        let limit = usize::from(config.window.max(1));
        let label = config.label;
        let filter = config.filter;
        let adopt = config.adopt;
        // An adoption leaves the service's readiness alone.
        let ready = |up: bool| {
            if adopt.is_none() {
                readiness.set(mqtt::DEPENDENCY, up);
            }
        };
        let mut end = SubscriptionEnd::default();
        let mut overflow: VecDeque<Publish> = VecDeque::new();
        // Reading pauses when the overflow is full and resumes once it is down
        // to half, so a saturated pipeline does not flip the state per message.
        let mut paused = false;
        // Connected (CONNACK seen); ready only once subscribed as well.
        let mut connected = false;
        loop {
            if end.drained && overflow.is_empty() && tx.is_some() {
                // Everything the adopted session held is with the service.
                tx = None;
            }
            if !paused && overflow.len() >= limit {
                paused = true;
                tracing::debug!(
                    subscription = label,
                    "pipeline saturated; pausing reads from the broker"
                );
                metrics.pauses.inc();
                metrics.paused.set(1);
            } else if paused && overflow.len() <= limit / 2 {
                paused = false;
                tracing::debug!(
                    subscription = label,
                    "pipeline has room; reading from the broker again"
                );
                metrics.paused.set(0);
            }
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                permit = reserve(tx.as_ref()), if !overflow.is_empty() => {
                    match (permit, overflow.pop_front()) {
                        (Ok(permit), Some(publish)) => permit.send(publish),
                        (Err(_), _) => break,
                        (Ok(_), None) => {}
                    }
                    continue;
                }
                // PUBACKs are written only while the event loop is polled, so
                // it is polled while any are queued, paused or not.
                event = eventloop.poll(), if !paused || acks_queued.any() => event,
                () = acks_queued.queued.notified(), if paused => continue,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Some(adoption) = &adopt {
                        if publish.topic == adoption.marker_topic.as_bytes() {
                            // Not the service's: acknowledged here.
                            acks_queued.add();
                            if let Err(e) = client.try_ack(&publish) {
                                acks_queued.sent();
                                tracing::debug!(error = %e, "cannot acknowledge the marker");
                            }
                            if publish.payload == adoption.marker.as_slice() {
                                end.drained = true;
                                tracing::info!(
                                    subscription = label,
                                    messages = end.forwarded,
                                    "adopted session emptied"
                                );
                            }
                            continue;
                        }
                        if end.drained {
                            // Cannot happen once unsubscribed; left with
                            // the broker, and the adoption is not complete.
                            end.late += 1;
                            continue;
                        }
                    }
                    end.forwarded += 1;
                    let Some(sender) = tx.as_ref() else { break };
                    if !overflow.is_empty() {
                        overflow.push_back(publish);
                        continue;
                    }
                    match sender.try_send(publish) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(publish)) => {
                            overflow.push_back(publish)
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(
                        subscription = label,
                        session_present = ack.session_present,
                        "mqtt connected"
                    );
                    connected = true;
                    let requested = match &adopt {
                        // Ready once the subscription is acknowledged: until
                        // then the broker drops what is published to it.
                        None => client.try_subscribe(filter.clone(), QoS::AtLeastOnce),
                        // Leave the group, then listen for the marker.
                        Some(adoption) => match client.try_unsubscribe(filter.clone()) {
                            Ok(()) => client
                                .try_subscribe(adoption.marker_topic.clone(), QoS::AtLeastOnce),
                            Err(e) => Err(e),
                        },
                    };
                    if let Err(e) = requested {
                        tracing::error!(error = %e, %filter, "cannot request the subscription");
                        if adopt.is_some() {
                            end.error = Some(format!("cannot leave the group: {e}"));
                            break;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused: Vec<_> = ack
                        .return_codes
                        .iter()
                        .filter(|code| !matches!(code, SubscribeReasonCode::Success(_)))
                        .collect();
                    match (&adopt, refused.is_empty()) {
                        (None, true) => {
                            tracing::info!(%filter, "subscribed");
                            ready(true);
                        }
                        (None, false) => {
                            tracing::error!(%filter, ?refused, "broker refused the subscription");
                            ready(false);
                        }
                        (Some(adoption), true) => {
                            let marker = adoption.marker.clone();
                            let topic = adoption.marker_topic.clone();
                            if let Err(e) =
                                client.try_publish(topic, QoS::AtLeastOnce, false, marker)
                            {
                                end.error = Some(format!("cannot publish the marker: {e}"));
                                break;
                            }
                        }
                        (Some(adoption), false) => {
                            end.error = Some(format!(
                                "the broker refused the marker topic {} ({refused:?}); \
                                 does this user's ACL allow it?",
                                adoption.marker_topic
                            ));
                            break;
                        }
                    }
                }
                Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                    acks_queued.sent();
                }
                // The only PUBLISH a subscription sends is an adoption's
                // marker: if the broker did not route it back, it never
                // comes and the session cannot be known to be empty.
                Ok(Event::Incoming(Packet::PubAck(ack)))
                    if adopt.is_some() && ack.reason != PubAckReason::Success =>
                {
                    end.error = Some(format!(
                        "the broker did not deliver the marker ({:?}); does this user's ACL allow \
                         publishing to it?",
                        ack.reason
                    ));
                    break;
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    if std::mem::take(&mut connected) {
                        metrics.disconnects.inc();
                    }
                    ready(false);
                    if adopt.is_some() {
                        end.error = Some(format!(
                            "connection lost while adopting the session (another client \
                             took the client id, or the broker went away): {e}"
                        ));
                        break;
                    }
                    tracing::warn!(subscription = label, error = %e, "mqtt connection lost; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        metrics.paused.set(0);
        ready(false);
        end
    }
}

/// A permit on `tx`, or never if the channel was closed here.
async fn reserve(
    tx: Option<&mpsc::Sender<Publish>>,
) -> Result<mpsc::Permit<'_, Publish>, mpsc::error::SendError<()>> {
    match tx {
        Some(tx) => tx.reserve().await,
        None => std::future::pending().await,
    }
}
