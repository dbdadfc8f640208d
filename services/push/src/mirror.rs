//! Mirrors the newest verified release of each model from `vigil.models`
//! to the retained MQTT topic `vigil/models/{model}`, where edge agents
//! pick it up.
//!
//! The model log is read from the beginning at every start
//! ([`vigil_releases::feed::follow`]) and every release goes through the
//! shared accept rule ([`vigil_releases::Lineage`]: verifies with the
//! configured key, and is newer than the one before). Rejected releases are
//! logged with their reason and counted; they never reach MQTT.
//!
//! What goes on the broker is decided by comparing the live release with
//! what is *retained* there, never by replaying history:
//!
//! - Nothing is published before the log has been read up to its end at
//!   start-up, so a restart publishes only the newest release, not every
//!   release in order.
//! - The mirror subscribes to its own retained topics (retain-as-published,
//!   on a connection of its own with a clean session) and verifies what the
//!   broker holds. It publishes only when the broker holds no release, an
//!   invalid one, or an older verified one. A newer verified release on the
//!   broker (another replica ahead of this one, or a model log that lost
//!   data) is left alone: the retained release never moves backwards. A
//!   retained release that is the live one is not sent again, so a restart
//!   does not push the same release to the whole fleet; devices would
//!   ignore it anyway.
//! - Publishing is QoS 1 with the retain flag, and the release counts as
//!   mirrored when the broker's PUBACK arrives. A connection lost before
//!   that is simply decided again after reconnecting.
//! - After subscribing, the mirror waits `--retained-settle-ms` for the
//!   broker's retained messages before it decides anything.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PubAckReason, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vigil_model::{KeyRing, VerifiedModel};
use vigil_releases::feed::{self, FeedEvent};
use vigil_releases::Offer;
use vigil_schemas::release::MAX_RELEASE_BYTES;
use vigil_schemas::Message as _;
use vigil_service::config::{KafkaArgs, MqttArgs};
use vigil_service::{mqtt, Readiness, Shutdown};

use crate::api::{lock, SharedRollout};
use crate::known::KnownReleases;
use crate::metrics::PushMetrics;

/// Name of the models connection in `/readyz`.
pub const MQTT_DEPENDENCY: &str = "mqtt_models";
/// Name of the model log in `/readyz` (true once read up to its end).
pub const MODELS_DEPENDENCY: &str = "models";
/// Pause after a lost connection, and before retrying a refused publish.
const RETRY: Duration = Duration::from_secs(1);
/// Longest pause between attempts to start following the model log.
const MAX_FEED_BACKOFF: Duration = Duration::from_secs(5);

/// What the mirror needs.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Broker connection options.
    pub mqtt: MqttArgs,
    /// Model log.
    pub kafka: KafkaArgs,
    /// Models to mirror.
    pub models: Vec<String>,
    /// Keys every release must verify with (the key its key id names).
    pub key: KeyRing,
    /// How long to wait for retained messages after subscribing.
    pub settle: Duration,
    /// Where accepted releases are kept across restarts.
    pub release_dir: Option<std::path::PathBuf>,
    /// Where the versions read from the log are recorded for the verdict
    /// bridge.
    pub known: KnownReleases,
}

/// One model's mirror state.
#[derive(Debug)]
struct ModelMirror {
    topic: String,
    /// Newest verified release in the log.
    live: Option<Arc<VerifiedModel>>,
    /// The log was read up to its end at start-up.
    caught_up: bool,
    /// Verified version retained on the broker as last seen on this
    /// connection (None: nothing valid retained).
    retained: Option<u64>,
    /// The version published and not yet acknowledged.
    in_flight: Option<u64>,
    /// Do not publish before this (after a refused publish).
    hold_until: Option<Instant>,
    /// Retained version newer than the log's already reported.
    ahead_reported: Option<u64>,
}

/// Starts following the model log of every configured model and the task
/// that mirrors it.
pub async fn start(
    cfg: MirrorConfig,
    view: SharedRollout,
    readiness: Readiness,
    metrics: PushMetrics,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let (tx, events) = mpsc::channel(64);
    for model in &cfg.models {
        let kept = cfg
            .release_dir
            .as_deref()
            .map(|dir| vigil_releases::kept::KeptRelease::in_dir(dir, model));
        let mut feed_events = follow(&cfg.kafka, model, cfg.key.clone(), kept, shutdown).await?;
        let tx = tx.clone();
        let model = model.clone();
        shutdown.spawn(async move {
            while let Some(event) = feed_events.recv().await {
                if tx.send((model.clone(), event)).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let mut options = mqtt::options(&cfg.mqtt, "push")?;
    let client_id = format!("{}-models", options.client_id());
    options.set_client_id(client_id);
    options.set_clean_start(true).set_max_packet_size(Some(
        u32::try_from(MAX_RELEASE_BYTES * 4).unwrap_or(u32::MAX),
    ));
    let (client, eventloop) = AsyncClient::new(options, 64);
    let topics = cfg.mqtt.topics();
    let models = cfg
        .models
        .iter()
        .map(|m| {
            (
                m.clone(),
                ModelMirror {
                    topic: topics.model(m),
                    live: None,
                    caught_up: false,
                    retained: None,
                    in_flight: None,
                    hold_until: None,
                    ahead_reported: None,
                },
            )
        })
        .collect();
    let mirror = Mirror {
        client,
        key: cfg.key,
        settle: cfg.settle,
        known: cfg.known,
        models,
        settled: false,
        connected: false,
        unassigned: VecDeque::new(),
        by_pkid: HashMap::new(),
        view,
        readiness,
        metrics,
    };
    let stop = shutdown.clone();
    shutdown.spawn(mirror.run(eventloop, events, stop));
    Ok(())
}

/// Starts following `model`'s releases, retrying while Kafka is not there.
async fn follow(
    kafka: &KafkaArgs,
    model: &str,
    key: KeyRing,
    kept: Option<vigil_releases::kept::KeptRelease>,
    shutdown: &Shutdown,
) -> anyhow::Result<mpsc::Receiver<FeedEvent>> {
    let mut backoff = Duration::from_millis(500);
    let client_id = format!("vigil-push-models-{model}");
    loop {
        match feed::follow(
            kafka,
            model,
            key.clone(),
            &client_id,
            kept.clone(),
            shutdown,
        )
        .await
        {
            Ok(events) => return Ok(events),
            Err(e) => tracing::warn!(model, error = %format!("{e:#}"),
                "cannot follow the model log yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down while starting"),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_FEED_BACKOFF);
    }
}

struct Mirror {
    client: AsyncClient,
    key: KeyRing,
    settle: Duration,
    known: KnownReleases,
    models: HashMap<String, ModelMirror>,
    /// The broker had time to send its retained messages on this
    /// connection.
    settled: bool,
    connected: bool,
    /// Releases handed to the client, packet id not yet known (FIFO: this
    /// task is the only one publishing on this client).
    unassigned: VecDeque<(String, u64)>,
    by_pkid: HashMap<u16, (String, u64)>,
    view: SharedRollout,
    readiness: Readiness,
    metrics: PushMetrics,
}

impl Mirror {
    async fn run(
        mut self,
        mut eventloop: EventLoop,
        mut events: mpsc::Receiver<(String, FeedEvent)>,
        stop: Shutdown,
    ) {
        let mut settle_at: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;
        let mut wake_at: Option<Instant> = None;
        let mut feeds_open = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                event = events.recv(), if feeds_open => match event {
                    Some((model, event)) => self.feed_event(&model, event),
                    None => feeds_open = false,
                },
                _ = sleep_until(settle_at), if settle_at.is_some() => {
                    settle_at = None;
                    self.settled = true;
                    tracing::debug!("retained releases settled");
                }
                _ = sleep_until(wake_at), if wake_at.is_some() => wake_at = None,
                _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
                event = eventloop.poll(), if retry_at.is_none() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!("mqtt (models) connected");
                        self.connected = true;
                        self.readiness.set(MQTT_DEPENDENCY, true);
                        let filters = self.models.values().map(|m| Filter {
                            path: m.topic.clone(),
                            qos: QoS::AtLeastOnce,
                            // Tells retained releases from live traffic.
                            preserve_retain: true,
                            ..Filter::default()
                        });
                        if let Err(e) = self.client.try_subscribe_many(filters) {
                            tracing::error!(error = %e, "cannot request the model subscriptions");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        settle_at = Some(Instant::now() + self.settle);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => self.observe(&publish),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(sent) = self.unassigned.pop_front() {
                            self.by_pkid.insert(pkid, sent);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some((model, version)) = self.by_pkid.remove(&ack.pkid) {
                            let ok = matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
                            self.acknowledged(&model, version, ok, &ack.reason);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if self.connected {
                            self.metrics.mqtt_disconnects.with_label_values(&["models"]).inc();
                            tracing::warn!(error = %e, "mqtt (models) connection lost; reconnecting");
                        } else {
                            tracing::debug!(error = %e, "mqtt (models) still unreachable");
                        }
                        self.readiness.set(MQTT_DEPENDENCY, false);
                        self.disconnected();
                        // Decided again after reconnecting, against what is
                        // retained then: no blind retransmission.
                        eventloop.pending.clear();
                        settle_at = None;
                        retry_at = Some(Instant::now() + RETRY);
                    }
                },
            }
            wake_at = self.reconcile().or(wake_at);
        }
        self.readiness.set(MQTT_DEPENDENCY, false);
        // Send what is queued, then leave.
        vigil_service::mqtt::disconnect_cleanly(
            &self.client,
            &mut eventloop,
            Duration::from_secs(2),
        )
        .await;
    }

    fn feed_event(&mut self, model: &str, event: FeedEvent) {
        let Some(m) = self.models.get_mut(model) else {
            return;
        };
        match event {
            FeedEvent::CaughtUp => {
                m.caught_up = true;
                self.known.read_to_end(model);
                tracing::info!(model, live = ?m.live.as_ref().map(|l| l.version()), "model log read");
                if self.models.values().all(|m| m.caught_up) {
                    self.readiness.set(MODELS_DEPENDENCY, true);
                }
            }
            FeedEvent::Offer {
                partition,
                offset,
                published_ms,
                offer,
                claimed,
            } => match offer {
                Offer::Accepted(release) => {
                    let version = release.version();
                    self.known.accept(model, version);
                    tracing::info!(model, version, partition, offset, "release verified");
                    self.metrics
                        .live_version
                        .with_label_values(&[model])
                        .set(i64::try_from(version).unwrap_or(i64::MAX));
                    lock(&self.view).set_live(model, version, published_ms);
                    m.live = Some(release);
                }
                Offer::OtherModel => {}
                Offer::Rejected(e) => {
                    if let Some((name, version)) = &claimed {
                        self.known.refuse(name, *version, e.reason());
                    }
                    self.metrics
                        .releases_rejected
                        .with_label_values(&[e.reason()])
                        .inc();
                    tracing::warn!(model, partition, offset, reason = e.reason(), error = %e,
                        "release rejected; not mirrored");
                }
            },
        }
    }

    /// A message on a model topic: if it is the retained one, learn what
    /// the broker holds.
    fn observe(&mut self, publish: &Publish) {
        if !publish.retain {
            return;
        }
        let topic = String::from_utf8_lossy(&publish.topic);
        let Some((model, m)) = self.models.iter_mut().find(|(_, m)| m.topic == topic) else {
            return;
        };
        let retained = if publish.payload.is_empty() {
            tracing::info!(model, "no release retained on the broker");
            None
        } else {
            match vigil_model::decode_and_verify(&publish.payload, &self.key) {
                Ok(found) if found.name() == model => Some(found.version()),
                Ok(found) => {
                    tracing::warn!(
                        model,
                        found = found.name(),
                        "retained release is for another model; it will be replaced"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(model, reason = e.reason(), error = %e,
                        "retained release does not verify; it will be replaced");
                    None
                }
            }
        };
        m.retained = retained;
        self.metrics
            .retained_version
            .with_label_values(&[model])
            .set(i64::try_from(retained.unwrap_or(0)).unwrap_or(i64::MAX));
        lock(&self.view).set_retained(model, retained);
    }

    fn acknowledged(&mut self, model: &str, version: u64, ok: bool, reason: &PubAckReason) {
        let Some(m) = self.models.get_mut(model) else {
            return;
        };
        m.in_flight = None;
        if ok {
            m.retained = Some(version);
            self.metrics
                .releases_mirrored
                .with_label_values(&[model])
                .inc();
            self.metrics
                .retained_version
                .with_label_values(&[model])
                .set(i64::try_from(version).unwrap_or(i64::MAX));
            lock(&self.view).set_retained(model, Some(version));
            tracing::info!(model, version, topic = %m.topic, "release mirrored (retained, acknowledged)");
        } else {
            m.hold_until = Some(Instant::now() + RETRY);
            tracing::error!(model, version, topic = %m.topic, ?reason, "broker refused the release; retrying");
        }
    }

    fn disconnected(&mut self) {
        self.connected = false;
        self.settled = false;
        self.unassigned.clear();
        self.by_pkid.clear();
        for m in self.models.values_mut() {
            m.in_flight = None;
            m.retained = None;
        }
    }

    /// Publishes every live release the broker does not hold yet. Returns
    /// when it next needs waking (a held-back model).
    fn reconcile(&mut self) -> Option<Instant> {
        if !self.connected || !self.settled {
            return None;
        }
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        for (model, m) in &mut self.models {
            let Some(live) = m.live.clone() else { continue };
            if !m.caught_up || m.in_flight.is_some() {
                continue;
            }
            if let Some(until) = m.hold_until {
                if until > now {
                    wake = Some(wake.map_or(until, |w| w.min(until)));
                    continue;
                }
                m.hold_until = None;
            }
            let version = live.version();
            match m.retained {
                Some(r) if r == version => continue,
                Some(r) if r > version => {
                    if m.ahead_reported != Some(r) {
                        m.ahead_reported = Some(r);
                        tracing::warn!(model, retained = r, live = version,
                            "the broker retains a newer verified release than the model log's; leaving it");
                    }
                    continue;
                }
                _ => {}
            }
            let bytes = match live.release().encode() {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(model, version, error = %e, "cannot encode the release");
                    m.hold_until = Some(now + RETRY);
                    continue;
                }
            };
            match self
                .client
                .try_publish(m.topic.clone(), QoS::AtLeastOnce, true, bytes)
            {
                Ok(()) => {
                    tracing::info!(model, version, retained = ?m.retained, topic = %m.topic, "publishing the live release");
                    m.in_flight = Some(version);
                    self.unassigned.push_back((model.clone(), version));
                }
                Err(e) => {
                    tracing::warn!(model, error = %e, "cannot queue the release; retrying");
                    m.hold_until = Some(now + RETRY);
                }
            }
        }
        wake
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
