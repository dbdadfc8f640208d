//! MQTT publishing: one rumqttc client per connection, each carrying the
//! devices of its [`Plan`] in intended-time order.
//!
//! A connection is two tasks: the *sender* walks the plan, sleeps until the
//! next message is due, stamps nothing new (the record's `ts` is already its
//! intended send time) and hands the message to the client; the *event loop*
//! drives the socket and counts PUBACKs (QoS 1) or writes (QoS 0). When the
//! client's bounded request queue is full the sender waits, so it falls
//! behind its schedule rather than buffering without bound; the lateness is
//! recorded as the send lag and, because `ts` stays the intended time, is
//! part of every measured latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{Message, MqttTopics};

use super::progress::Counters;
use super::seqset::SeqSet;
use super::source::{Plan, Truth};

/// Publish requests queued in one client before the sender waits.
const REQUEST_QUEUE: usize = 4096;
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause before the event loop reconnects after an error.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Messages sent between two looks at the clock and the shutdown signal.
const CLOCK_EVERY: u32 = 64;
/// How long the event loop may take to send DISCONNECT and stop.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-connection state the sender and the event loop share.
#[derive(Debug, Default)]
struct Shared {
    /// Publishes the broker has answered (QoS 1) or that were written
    /// (QoS 0).
    acked: AtomicU64,
    /// Publishes the broker refused (a PUBACK with an error reason).
    rejected: AtomicU64,
    /// Publishes acknowledged with "no matching subscribers" (the
    /// broker dropped them: nothing subscribed to the topic then).
    unrouted: AtomicU64,
    /// Connection errors.
    errors: AtomicU64,
    /// Set by the sender when done: the number of publishes to wait for.
    target: AtomicU64,
    /// Woken when `acked` reaches `target`.
    all_acked: Notify,
}

/// What one connection did.
#[derive(Debug)]
pub struct Outcome {
    /// Messages handed to the client.
    pub sent: u64,
    /// Slots left empty by silent devices.
    pub silent_slots: u64,
    /// Of those, acknowledged (QoS 1) or written (QoS 0).
    pub acked: u64,
    /// PUBACKs with an error reason.
    pub rejected: u64,
    /// PUBACKs saying "no matching subscribers".
    pub unrouted: u64,
    /// Connection errors (each followed by a reconnect).
    pub errors: u64,
    /// Sent seqs by device index.
    pub sent_seqs: HashMap<u32, SeqSet>,
    /// Ground truth of episodes that started in this connection's records.
    pub truth: Vec<Truth>,
    /// How late each message was handed over, µs after its intended time.
    pub lag_us: Histogram<u64>,
    /// When the last message was handed over.
    pub finished: Instant,
}

/// How every connection publishes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub qos: QoS,
    pub inflight: u16,
    pub ack_timeout: Duration,
    pub topics: MqttTopics,
    /// Per device index, the seqs it may send.
    pub seq_range: Arc<Vec<(u64, u64)>>,
}

/// An open MQTT connection, ready to send a plan.
#[derive(Debug)]
pub struct Connection {
    client: AsyncClient,
    shared: Arc<Shared>,
    event_loop: JoinHandle<()>,
}

impl Connection {
    /// Connects with `options` (client id already unique) and waits for
    /// the broker's CONNACK.
    pub async fn open(
        mut options: MqttOptions,
        settings: &Settings,
        counters: Arc<Counters>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        options
            .set_outgoing_inflight_upper_limit(settings.inflight)
            .set_clean_start(true);
        let what = format!(
            "mqtt connection {} to {}:{}",
            options.client_id(),
            options.broker_address().0,
            options.broker_address().1
        );
        let (client, event_loop) = AsyncClient::new(options, REQUEST_QUEUE);
        let shared = Arc::new(Shared {
            target: AtomicU64::new(u64::MAX),
            ..Shared::default()
        });
        let (connected_tx, connected_rx) = oneshot::channel();
        let event_loop = tokio::spawn(drive(
            event_loop,
            Arc::clone(&shared),
            counters,
            settings.qos,
            connected_tx,
            stop,
        ));
        match tokio::time::timeout(CONNECT_TIMEOUT, connected_rx).await {
            Ok(Ok(Ok(()))) => Ok(Self {
                client,
                shared,
                event_loop,
            }),
            Ok(Ok(Err(e))) => {
                event_loop.abort();
                bail!("{what}: {e}")
            }
            Ok(Err(_)) => bail!("{what}: event loop ended before connecting"),
            Err(_) => {
                event_loop.abort();
                bail!("{what}: no CONNACK within {CONNECT_TIMEOUT:?}")
            }
        }
    }

    /// Sends `plan` on its schedule from `start`, waits for the broker's
    /// acknowledgements and disconnects.
    pub async fn send(
        self,
        mut plan: Plan,
        start: Instant,
        settings: Settings,
        counters: Arc<Counters>,
        stop: CancellationToken,
    ) -> anyhow::Result<Outcome> {
        let mut sent = 0u64;
        let mut sent_seqs: HashMap<u32, SeqSet> = HashMap::new();
        let mut truth = Vec::new();
        let mut lag_us = Histogram::<u64>::new_with_max(3_600_000_000, 3)
            .context("creating the send-lag histogram")?;
        let mut now = Instant::now();
        let mut since_clock = 0u32;
        for item in plan.by_ref() {
            let due = start + item.offset;
            since_clock += 1;
            if since_clock >= CLOCK_EVERY || due > now {
                since_clock = 0;
                if stop.is_cancelled() {
                    break;
                }
                now = Instant::now();
                if due > now {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        _ = stop.cancelled() => break,
                    }
                    now = Instant::now();
                }
            }
            lag_us.saturating_record(now.saturating_duration_since(due).as_micros() as u64);
            let topic = settings
                .topics
                .device(&item.telemetry.device_id, DeviceChannel::Telemetry);
            let payload = item
                .telemetry
                .encode()
                .context("encoding simulated telemetry")?;
            if self
                .client
                .publish(topic, settings.qos, false, payload)
                .await
                .is_err()
            {
                // The event loop is gone: nothing more can be sent.
                break;
            }
            sent += 1;
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let (lo, hi) = settings
                .seq_range
                .get(item.device as usize)
                .copied()
                .unwrap_or((0, u64::MAX));
            sent_seqs
                .entry(item.device)
                .or_insert_with(|| SeqSet::new(lo, hi))
                .insert(item.telemetry.seq);
            if let Some(t) = item.truth {
                truth.push(t);
            }
        }
        let finished = Instant::now();
        self.wait_for_acks(sent, settings.ack_timeout).await;
        let _ = self.client.disconnect().await;
        let mut event_loop = self.event_loop;
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut event_loop)
            .await
            .is_err()
        {
            event_loop.abort();
        }
        let shared = &self.shared;
        Ok(Outcome {
            sent,
            silent_slots: plan.silent_slots(),
            acked: shared.acked.load(Ordering::SeqCst),
            rejected: shared.rejected.load(Ordering::SeqCst),
            unrouted: shared.unrouted.load(Ordering::SeqCst),
            errors: shared.errors.load(Ordering::SeqCst),
            sent_seqs,
            truth,
            lag_us,
            finished,
        })
    }

    async fn wait_for_acks(&self, sent: u64, timeout: Duration) {
        self.shared.target.store(sent, Ordering::SeqCst);
        if self.shared.acked.load(Ordering::SeqCst) >= sent {
            return;
        }
        if tokio::time::timeout(timeout, self.shared.all_acked.notified())
            .await
            .is_err()
        {
            tracing::warn!(
                sent,
                acked = self.shared.acked.load(Ordering::SeqCst),
                "not every publish was acknowledged within the ack timeout"
            );
        }
    }
}

/// The event loop: keeps the connection up and counts acknowledgements.
async fn drive(
    mut event_loop: EventLoop,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    qos: QoS,
    connected: oneshot::Sender<Result<(), String>>,
    stop: CancellationToken,
) {
    let mut connected = Some(connected);
    let ack = |shared: &Shared| {
        let acked = shared.acked.fetch_add(1, Ordering::SeqCst) + 1;
        counters.acked.fetch_add(1, Ordering::Relaxed);
        if acked >= shared.target.load(Ordering::SeqCst) {
            shared.all_acked.notify_one();
        }
    };
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(puback))) => {
                match puback.reason {
                    PubAckReason::Success => {}
                    // Accepted, and dropped: nothing was subscribed. Vigil
                    // always subscribes, so this is a broker that lost its
                    // subscriptions (RELIABILITY.md, "Mosquitto restart").
                    PubAckReason::NoMatchingSubscribers => {
                        shared.unrouted.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        shared.rejected.fetch_add(1, Ordering::Relaxed);
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                ack(&shared);
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => ack(&shared),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            // The client is gone: nothing more will be sent.
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
                shared.errors.fetch_add(1, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!(error = %e, "mqtt connection lost; reconnecting");
                // Back off before reconnecting instead of spinning on a
                // broker that refuses us.
                tokio::select! {
                    _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}
