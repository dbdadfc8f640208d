//! The MQTT side of the agent: drains the queue to the broker, receives
//! model releases and cloud commands, and publishes the retained status.
//!
//! # Delivery
//!
//! Records are read from the on-disk queue in order and their messages
//! published at QoS 1. A record is removed from the queue only when the
//! broker acknowledged every message in it, and the queue's head only moves
//! over a contiguous acknowledged prefix, so nothing is removed out of
//! order. At most `--max-inflight` records are unacknowledged at once, and
//! a token bucket holds the average to `--drain-rate` messages per second,
//! so a backlog after an outage drains steadily instead of flooding the
//! broker when a whole fleet reconnects.
//!
//! The queue, not the MQTT client, is the source of truth for what is
//! unacknowledged: when the connection drops, the client's own retransmit
//! list is cleared and, once connected again, sending restarts at the
//! queue's head. A message whose PUBACK was lost is therefore sent twice:
//! at-least-once, harmless because every message carries `(device_id,
//! seq)`.
//!
//! PUBACKs name packet ids, which the client assigns in the order requests
//! are handed to it; this task is the only one that hands it requests, so
//! `Outgoing::Publish(pkid)` events map one to one onto the FIFO of what
//! was sent.
//!
//! # Refusals
//!
//! The connection is MQTT 5, so a PUBACK carries a reason code. Only
//! `Success` counts as delivered. "No matching subscribers" (0x10: the
//! broker dropped the message because nothing subscribed, e.g. Mosquitto
//! after a restart, until the ingest replicas' shared subscription is
//! back) and every error code (≥ 0x80) leave the record in the queue
//! ([`refusal`] says which are worth a quick retry). After a refusal no
//! new record is sent; once every message out has been answered and the
//! resend backoff (1 s doubling up to `--reconnect-max-ms`; the maximum at
//! once for "not authorized" and the other policy refusals) has passed,
//! sending starts again at the queue's head, so the queue's order is kept.
//! Records after the refused one that were delivered meanwhile are sent
//! again (at-least-once). Refusals are counted per reason in
//! `status.json` (`uplink_refused`).
//!
//! # Connection
//!
//! A persistent MQTT 5 session (clean start off, a session expiry of
//! `--session-expiry-secs`, client id stable per device) keeps cloud
//! commands sent while the device was offline. Failed connects back off
//! exponentially with jitter up to `--reconnect-max-ms`. The last will is
//! the retained status with `state: offline`.

mod pace;
pub mod refusal;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_base::mqtt::{ClientSettings, MqttConfigError};
use vigil_model::VerifiedModel;
use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{CommandOutcome, CommandResult, DeviceState, Message, MqttTopics};

use crate::action::{self, Trigger};
use crate::commands::CommandGate;
use crate::config::{ConfigError, RunArgs};
use crate::models::ModelStore;
use crate::queue::{Position, Queue, ReadRecord, Reader};
use crate::record::{UplinkRecord, MAX_MESSAGES};
use crate::sampler::lock;
use crate::status::{self, Stats};
use pace::{Backoff, Bucket, FIRST_RECONNECT, FIRST_RESEND};
use refusal::Answer;

/// Largest MQTT packet accepted (a release is at most 64 KiB).
const MAX_PACKET: u32 = 256 * 1024;
/// How long a clean stop waits for outstanding acknowledgements.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What the uplink needs to know.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// This device.
    pub device_id: String,
    /// Model name.
    pub model: String,
    /// Topic names.
    pub topics: MqttTopics,
    /// Client options (broker, credentials, TLS, session).
    pub options: MqttOptions,
    /// Most unacknowledged records.
    pub max_inflight: usize,
    /// Messages per second.
    pub drain_rate: u32,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Status refresh period.
    pub status_interval: Duration,
    /// `status.json`.
    pub status_path: PathBuf,
}

/// Builds the MQTT 5 client options from the command line: the broker,
/// credentials, keep-alive and TLS as every Vigil client reads them
/// (`vigil_base::mqtt`), plus the agent's persistent session, packet size
/// and in-flight window.
pub fn mqtt_options(args: &RunArgs) -> Result<MqttOptions, ConfigError> {
    let connection = ClientSettings::from_args(&args.mqtt).map_err(|e| match e {
        MqttConfigError::Url { why, .. } => ConfigError {
            option: "--mqtt-url / VIGIL_MQTT_URL",
            why,
        },
        MqttConfigError::CaFile { path, source } => ConfigError {
            option: "--mqtt-ca-file / VIGIL_MQTT_CA_FILE",
            why: format!("reading {}: {source}", path.display()),
        },
        MqttConfigError::CredentialsFile { path, why } => ConfigError {
            option: "--mqtt-credentials-file / VIGIL_MQTT_CREDENTIALS_FILE",
            why: format!("{}: {why}", path.display()),
        },
        MqttConfigError::ClientCert { option, why } => ConfigError { option, why },
    })?;
    let mut options = connection.v5_options(args.client_id());
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(args.session_expiry_secs))
        .set_max_packet_size(Some(MAX_PACKET));
    // The broker's receive maximum (CONNACK) lowers this further.
    let inflight = usize::from(args.max_inflight) * MAX_MESSAGES + 8;
    options.set_outgoing_inflight_upper_limit(u16::try_from(inflight).unwrap_or(u16::MAX));
    Ok(options)
}

/// A message handed to the client, waiting for its packet id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Part of the queue record at this position.
    Record(Position),
    /// The retained status.
    Status,
    /// A command result (at most once: not queued on disk).
    CommandResult,
}

/// A record whose messages are out, not all answered.
#[derive(Debug)]
struct InFlight {
    position: Position,
    next: Position,
    /// Messages not answered yet.
    unacked: usize,
    /// The broker did not take one of them: the record stays queued.
    refused: bool,
}

/// Per-connection delivery state; dropped with the connection.
#[derive(Debug)]
struct Connection {
    reader: Reader,
    /// A record read but not yet sent (waiting for rate tokens).
    held: Option<ReadRecord>,
    in_flight: VecDeque<InFlight>,
    /// Handed to the client, packet id not yet known (FIFO).
    unassigned: VecDeque<Sent>,
    by_pkid: HashMap<u16, Sent>,
    /// Set when the broker refused a record: nothing new is sent; once
    /// every record out has been answered and this time has come,
    /// sending starts again at the queue's head.
    resend_at: Option<Instant>,
}

impl Connection {
    fn new(reader: Reader) -> Connection {
        Connection {
            reader,
            held: None,
            in_flight: VecDeque::new(),
            unassigned: VecDeque::new(),
            by_pkid: HashMap::new(),
            resend_at: None,
        }
    }

    /// Every record out has been answered (acknowledged or refused).
    fn all_answered(&self) -> bool {
        self.in_flight.iter().all(|f| f.unacked == 0)
    }
}

/// The uplink's link to the action runner: cloud commands go out on
/// `triggers`, their results come back on `results`.
#[derive(Debug)]
pub struct ActionLink {
    /// Where cloud commands are handed to the action runner.
    pub triggers: mpsc::Sender<Trigger>,
    /// Results of those commands, to publish.
    pub results: mpsc::Receiver<CommandResult>,
    /// What every command passes before it is handed on.
    pub gate: CommandGate,
}

/// The uplink task.
#[derive(Debug)]
pub struct Uplink {
    cfg: UplinkConfig,
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    store: ModelStore,
    models: watch::Sender<Option<Arc<VerifiedModel>>>,
    actions: mpsc::Sender<Trigger>,
    results: mpsc::Receiver<CommandResult>,
    gate: CommandGate,
    model_topic: String,
    commands_topic: String,
    status_topic: String,
    results_topic: String,
    /// Wait before resending refused records; reset by a delivery.
    resend: Backoff,
}

impl Uplink {
    /// An uplink over `queue`, taking releases into `store` and handing
    /// accepted ones to the sampler through `models`.
    pub fn new(
        cfg: UplinkConfig,
        queue: Arc<Mutex<Queue>>,
        wake: Arc<Notify>,
        stats: Arc<Stats>,
        store: ModelStore,
        models: watch::Sender<Option<Arc<VerifiedModel>>>,
        actions: ActionLink,
    ) -> Uplink {
        let ActionLink {
            triggers: actions,
            results,
            gate,
        } = actions;
        let model_topic = cfg.topics.model(&cfg.model);
        let commands_topic = cfg.topics.device(&cfg.device_id, DeviceChannel::Commands);
        let status_topic = cfg.topics.device(&cfg.device_id, DeviceChannel::Status);
        let results_topic = cfg
            .topics
            .device(&cfg.device_id, DeviceChannel::CommandResults);
        let resend = Backoff::new(FIRST_RESEND, cfg.reconnect_max, &cfg.device_id);
        Uplink {
            cfg,
            queue,
            wake,
            stats,
            store,
            models,
            actions,
            results,
            gate,
            model_topic,
            commands_topic,
            status_topic,
            results_topic,
            resend,
        }
    }

    /// Runs until `shutdown`, then publishes the offline status, waits
    /// briefly for outstanding acknowledgements and disconnects.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let capacity = self.cfg.max_inflight * MAX_MESSAGES + 32;
        let mut options = self.cfg.options.clone();
        options.set_last_will(self.last_will());
        let (client, mut eventloop) = AsyncClient::new(options, capacity);
        let mut connection: Option<Connection> = None;
        let mut backoff =
            Backoff::new(FIRST_RECONNECT, self.cfg.reconnect_max, &self.cfg.device_id);
        let mut bucket = Bucket::new(self.cfg.drain_rate);
        let mut retry_at: Option<Instant> = None;
        let mut offline_logged = false;
        let mut status_timer = tokio::time::interval(self.cfg.status_interval);
        status_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let mut token_wait = None;
            let mut window_open = false;
            if let Some(c) = connection.as_mut() {
                token_wait = self.fill(c, &client, &mut bucket);
                window_open = c.in_flight.len() < self.cfg.max_inflight && token_wait.is_none();
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
                event = eventloop.poll(), if retry_at.is_none() => match event {
                    Ok(event) => self.handle(event, &mut connection, &client, &mut backoff, &mut offline_logged),
                    Err(e) => {
                        self.disconnected(&e, &mut connection, &mut offline_logged);
                        // The queue is the source of truth: forget the
                        // client's own retransmissions.
                        eventloop.pending.clear();
                        eventloop.options.set_last_will(self.last_will());
                        retry_at = Some(Instant::now() + backoff.next());
                    }
                },
                _ = self.wake.notified(), if window_open => {}
                _ = sleep_for(token_wait), if token_wait.is_some() => {}
                _ = status_timer.tick() => self.report(&client, connection.as_mut()),
                Some(result) = self.results.recv() => self.publish_result(&client, connection.as_mut(), &result),
            }
        }
        self.stop(&client, &mut eventloop, connection).await;
    }

    fn handle(
        &mut self,
        event: Event,
        connection: &mut Option<Connection>,
        client: &AsyncClient,
        backoff: &mut Backoff,
        offline_logged: &mut bool,
    ) {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                backoff.reset();
                *offline_logged = false;
                self.stats.connected.store(true, Ordering::Relaxed);
                let backlog = lock(&self.queue).len();
                tracing::info!(
                    backlog,
                    session_present = ack.session_present,
                    "connected to the broker; draining the queue"
                );
                let mut c = Connection::new(lock(&self.queue).reader());
                for topic in [&self.model_topic, &self.commands_topic] {
                    if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        tracing::error!(topic = %topic, error = %e, "subscribing failed");
                    }
                }
                self.report(client, Some(&mut c));
                *connection = Some(c);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(c) = connection.as_mut() {
                    if let Some(sent) = c.unassigned.pop_front() {
                        c.by_pkid.insert(pkid, sent);
                    }
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                self.acked(connection.as_mut(), ack.pkid, ack.reason)
            }
            Event::Incoming(Packet::Publish(publish)) => {
                self.incoming(publish, client, connection.as_mut())
            }
            _ => {}
        }
    }

    fn disconnected(
        &mut self,
        error: &ConnectionError,
        connection: &mut Option<Connection>,
        offline_logged: &mut bool,
    ) {
        self.stats.connected.store(false, Ordering::Relaxed);
        let backlog = lock(&self.queue).len();
        if connection.take().is_some() {
            tracing::warn!(error = %error, backlog, "lost the broker; buffering to disk and reconnecting");
            *offline_logged = true;
        } else if !*offline_logged {
            tracing::warn!(error = %error, backlog, "broker unreachable; buffering to disk and retrying");
            *offline_logged = true;
        } else {
            tracing::debug!(error = %error, backlog, "broker still unreachable");
        }
    }

    /// Sends queued records while the window and the rate allow. Returns
    /// how long to wait for rate tokens or for the resend after a
    /// refusal, if that is what stops it.
    fn fill(
        &mut self,
        c: &mut Connection,
        client: &AsyncClient,
        bucket: &mut Bucket,
    ) -> Option<Duration> {
        if let Some(at) = c.resend_at {
            if !c.all_answered() {
                // Answers arrive as events; each one runs this again.
                return None;
            }
            let now = Instant::now();
            if now < at {
                return Some(at - now);
            }
            // Start again at the head: the refused record first, then
            // everything after it, in queue order.
            c.resend_at = None;
            c.held = None;
            c.in_flight.clear();
            c.reader = lock(&self.queue).reader();
            tracing::info!(
                backlog = lock(&self.queue).len(),
                "resending refused records from the queue's head"
            );
        }
        while c.in_flight.len() < self.cfg.max_inflight {
            let record = match c.held.take() {
                Some(r) => r,
                None => match lock(&self.queue).read(&mut c.reader) {
                    Ok(Some(r)) => r,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the uplink queue failed; retrying");
                        return Some(Duration::from_secs(1));
                    }
                },
            };
            let messages = match UplinkRecord::decode(&record.payload) {
                Ok(r) => r.messages,
                Err(e) => {
                    tracing::error!(error = %e, record = record.position.record(), "queue record cannot be decoded; skipping it");
                    Vec::new()
                }
            };
            if let Err(wait) = bucket.take(messages.len()) {
                c.held = Some(record);
                return Some(wait);
            }
            let unacked = messages.len();
            for (topic, payload) in messages {
                match client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                    Ok(()) => c.unassigned.push_back(Sent::Record(record.position)),
                    // The channel holds a full window, so this only fails
                    // when the event loop is gone. The record then never
                    // completes here and is sent again after reconnecting.
                    Err(e) => {
                        tracing::error!(error = %e, "handing a message to the mqtt client failed")
                    }
                }
            }
            c.in_flight.push_back(InFlight {
                position: record.position,
                next: record.next,
                unacked,
                refused: false,
            });
            self.complete(c);
        }
        None
    }

    fn acked(&mut self, connection: Option<&mut Connection>, pkid: u16, reason: PubAckReason) {
        let Some(c) = connection else {
            return;
        };
        let Some(sent) = c.by_pkid.remove(&pkid) else {
            return;
        };
        let answer = refusal::answer(reason);
        let position = match sent {
            Sent::Record(position) => position,
            // The status is retained (kept even when nobody listens now)
            // and a result is sent at most once: neither is sent again.
            Sent::Status | Sent::CommandResult => {
                if matches!(
                    reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                ) {
                    self.delivered();
                } else {
                    tracing::warn!(
                        reason = refusal::reason_name(reason),
                        "the broker refused a status or command result"
                    );
                }
                return;
            }
        };
        if answer == Answer::Delivered {
            self.delivered();
        } else {
            self.stats.uplink_refused.count(reason);
        }
        if let Some(f) = c.in_flight.iter_mut().find(|f| f.position == position) {
            f.unacked = f.unacked.saturating_sub(1);
            f.refused |= answer != Answer::Delivered;
        }
        if answer != Answer::Delivered && c.resend_at.is_none() {
            let wait = match answer {
                Answer::Refused => self.resend.longest(),
                _ => self.resend.next(),
            };
            c.resend_at = Some(Instant::now() + wait);
            let backlog = lock(&self.queue).len();
            let reason = refusal::reason_name(reason);
            let record = position.record();
            if answer == Answer::Refused {
                tracing::error!(reason, record, backlog, ?wait,
                    "the broker refused an uplink record; keeping it queued (check the broker's ACL for this device)");
            } else {
                tracing::warn!(
                    reason,
                    record,
                    backlog,
                    ?wait,
                    "the broker did not take an uplink record; keeping it queued and resending"
                );
            }
        }
        self.complete(c);
    }

    fn delivered(&self) {
        Stats::bump(&self.stats.uplink_acked);
        self.stats
            .last_uplink_ts
            .store(crate::now_ms(), Ordering::Relaxed);
    }

    /// Removes the delivered prefix of the window from the queue (it stops
    /// at the first refused record).
    fn complete(&mut self, c: &mut Connection) {
        let mut next = None;
        while c
            .in_flight
            .front()
            .is_some_and(|f| f.unacked == 0 && !f.refused)
        {
            next = c.in_flight.pop_front().map(|f| f.next);
        }
        if let Some(next) = next {
            if c.resend_at.is_none() {
                self.resend.reset();
            }
            if let Err(e) = lock(&self.queue).ack(next) {
                tracing::error!(error = %e, "removing delivered records from the queue failed");
            }
        }
    }

    fn incoming(&mut self, publish: Publish, client: &AsyncClient, c: Option<&mut Connection>) {
        if publish.topic == self.model_topic.as_bytes() {
            if publish.payload.is_empty() {
                tracing::info!(topic = %self.model_topic, "retained release was cleared on the broker; keeping the current model");
                return;
            }
            match self.store.offer(&publish.payload) {
                Ok(model) => {
                    let version = model.version();
                    tracing::info!(model = model.name(), version, path = %self.store.path().display(),
                        "release verified and persisted; hot-swapping");
                    Stats::bump(&self.stats.models_accepted);
                    self.stats.model_version.store(version, Ordering::Relaxed);
                    self.models.send_replace(Some(model));
                    self.report(client, c);
                }
                Err(e) if e.is_current_again() => {
                    tracing::debug!("current release delivered again");
                }
                Err(e) => {
                    Stats::bump(&self.stats.models_rejected);
                    let current = self.store.current().map(|m| m.version());
                    tracing::warn!(reason = e.reason(), error = %e, ?current,
                        "release rejected; keeping the current model");
                }
            }
        } else if publish.topic == self.commands_topic.as_bytes() {
            Stats::bump(&self.stats.commands);
            // Nothing reaches the handler unverified: the gate checks the
            // signature, device, deadline and sequence, and makes the new
            // high-water mark durable first.
            let body = match self.gate.admit(&publish.payload, crate::now_ms()) {
                Ok(verified) => {
                    tracing::debug!(seq = verified.seq, "cloud command verified");
                    verified.body
                }
                Err(e) => {
                    self.stats.commands_refused.count(e.reason());
                    tracing::warn!(reason = e.reason(), error = %e, "cloud command refused; not run");
                    return;
                }
            };
            match action::parse_command(&body) {
                Ok(name) if name == "status" => self.report(client, c),
                Ok(name) => {
                    tracing::info!(command = %name, "cloud command received");
                    let trigger = Trigger::Command {
                        name,
                        payload: body,
                    };
                    if let Err(e) = self.actions.try_send(trigger) {
                        tracing::warn!("action queue full; cloud command dropped");
                        if let Trigger::Command { name, payload } = e.into_inner() {
                            let refused = action::command_result(
                                &self.cfg.device_id,
                                &name,
                                &payload,
                                CommandOutcome::Refused,
                                None,
                                Some("the device's action queue is full".into()),
                            );
                            self.publish_result(client, c, &refused);
                        }
                    }
                }
                Err(e) => tracing::warn!(reason = e.reason(), error = %e, "cloud command ignored"),
            }
        }
    }

    /// The retained status saying `offline`.
    fn offline_status(&self) -> Vec<u8> {
        let q = lock(&self.queue);
        let status = status::device_status(
            &self.cfg.device_id,
            &self.cfg.model,
            &self.stats,
            &q,
            DeviceState::Offline,
        );
        status.encode().unwrap_or_default()
    }

    fn last_will(&self) -> LastWill {
        LastWill::new(
            self.status_topic.clone(),
            self.offline_status(),
            QoS::AtLeastOnce,
            true,
            None,
        )
    }

    /// Publishes a command result when connected (QoS 1); a result made
    /// while offline is dropped with a warning (results are not queued on
    /// disk; the cloud marks a command without a result by its timeout).
    fn publish_result(
        &mut self,
        client: &AsyncClient,
        c: Option<&mut Connection>,
        result: &CommandResult,
    ) {
        let Some(c) = c else {
            tracing::warn!(command = %result.command, "offline; the command's result is not published");
            return;
        };
        match result.encode() {
            Ok(bytes) => {
                match client.try_publish(self.results_topic.clone(), QoS::AtLeastOnce, false, bytes)
                {
                    Ok(()) => {
                        c.unassigned.push_back(Sent::CommandResult);
                        tracing::info!(command = %result.command, status = result.status.as_str(),
                        "command result published");
                    }
                    Err(e) => tracing::warn!(error = %e, "publishing a command result failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "encoding a command result failed"),
        }
    }

    /// Writes status.json and, when connected, publishes the retained
    /// status.
    fn report(&mut self, client: &AsyncClient, c: Option<&mut Connection>) {
        let state = if c.is_some() {
            DeviceState::Online
        } else {
            DeviceState::Offline
        };
        let status = {
            let q = lock(&self.queue);
            let status =
                status::device_status(&self.cfg.device_id, &self.cfg.model, &self.stats, &q, state);
            status::write_report(&self.cfg.status_path, &status, &self.stats, &q);
            status
        };
        let Some(c) = c else {
            return;
        };
        match status.encode() {
            Ok(bytes) => {
                match client.try_publish(self.status_topic.clone(), QoS::AtLeastOnce, true, bytes) {
                    Ok(()) => c.unassigned.push_back(Sent::Status),
                    Err(e) => tracing::warn!(error = %e, "publishing the status failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "encoding the status failed"),
        }
    }

    async fn stop(
        &mut self,
        client: &AsyncClient,
        eventloop: &mut EventLoop,
        mut connection: Option<Connection>,
    ) {
        self.report(client, connection.as_mut());
        if connection.is_some() {
            let offline = self.offline_status();
            if let Some(c) = connection.as_mut() {
                if client
                    .try_publish(self.status_topic.clone(), QoS::AtLeastOnce, true, offline)
                    .is_ok()
                {
                    c.unassigned.push_back(Sent::Status);
                }
            }
            // Let outstanding acknowledgements arrive, so the next start
            // does not send those records again.
            let deadline = Instant::now() + STOP_GRACE;
            while connection
                .as_ref()
                .is_some_and(|c| !c.by_pkid.is_empty() || !c.unassigned.is_empty())
            {
                match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        if let Some(c) = connection.as_mut() {
                            if let Some(sent) = c.unassigned.pop_front() {
                                c.by_pkid.insert(pkid, sent);
                            }
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        self.acked(connection.as_mut(), ack.pkid, ack.reason)
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            // Not a single poll: it may return on an incoming packet with
            // the DISCONNECT unwritten, and the broker then publishes the
            // will over the offline status just sent (session 33).
            vigil_base::mqtt::disconnect_cleanly(client, eventloop, Duration::from_millis(500))
                .await;
        }
        self.stats.connected.store(false, Ordering::Relaxed);
        tracing::info!(backlog = lock(&self.queue).len(), "uplink stopped");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
