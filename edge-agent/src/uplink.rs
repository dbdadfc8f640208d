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
//! # Connection
//!
//! A persistent MQTT session (clean session off, client id stable per
//! device) keeps cloud commands sent while the device was offline. Failed
//! connects back off exponentially with jitter up to
//! `--reconnect-max-ms`. The last will is the retained status with
//! `state: offline`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing,
    Publish, QoS,
};
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

/// Largest MQTT packet accepted or sent (a release is at most 64 KiB).
const MAX_PACKET: usize = 256 * 1024;
/// First reconnect delay; doubles per failure up to the configured maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
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

/// Builds the MQTT client options from the command line: the broker,
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
    let mut options = MqttOptions::new(args.client_id(), connection.host, connection.port);
    options.set_keep_alive(connection.keep_alive);
    options.set_clean_session(false);
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let inflight = usize::from(args.max_inflight) * MAX_MESSAGES + 8;
    options.set_inflight(u16::try_from(inflight).unwrap_or(u16::MAX));
    if let Some((username, password)) = connection.credentials {
        options.set_credentials(username, password);
    }
    if let Some(transport) = connection.tls {
        options.set_transport(transport);
    }
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

/// A record whose messages are out, not all acknowledged.
#[derive(Debug)]
struct InFlight {
    position: Position,
    next: Position,
    unacked: usize,
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
}

/// Token bucket for the drain rate.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate.max(1));
        let burst = (rate / 4.0).max(MAX_MESSAGES as f64);
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes `n` tokens, or says how long until there are enough.
    fn take(&mut self, n: usize) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - self.tokens) / self.rate))
        }
    }
}

/// Exponential backoff with jitter (so a fleet that lost the broker at the
/// same moment does not come back in lockstep).
#[derive(Debug)]
struct Backoff {
    failures: u32,
    max: Duration,
    state: u64,
}

impl Backoff {
    fn new(max: Duration, seed: &str) -> Backoff {
        let mut state = 0xcbf2_9ce4_8422_2325u64;
        for b in seed.bytes() {
            state = (state ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        state ^= crate::now_ms();
        Backoff {
            failures: 0,
            max,
            state: state | 1,
        }
    }

    fn next(&mut self) -> Duration {
        let exp = FIRST_BACKOFF.saturating_mul(1u32 << self.failures.min(16));
        let base = exp.min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let half = base / 2;
        let jitter = half.mul_f64((self.state >> 11) as f64 / (1u64 << 53) as f64);
        half + jitter
    }

    fn reset(&mut self) {
        self.failures = 0;
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
        let mut backoff = Backoff::new(self.cfg.reconnect_max, &self.cfg.device_id);
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
                        eventloop.mqtt_options.set_last_will(self.last_will());
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
            Event::Incoming(Incoming::ConnAck(ack)) => {
                backoff.reset();
                *offline_logged = false;
                self.stats.connected.store(true, Ordering::Relaxed);
                let backlog = lock(&self.queue).len();
                tracing::info!(
                    backlog,
                    session_present = ack.session_present,
                    "connected to the broker; draining the queue"
                );
                let reader = lock(&self.queue).reader();
                let mut c = Connection {
                    reader,
                    held: None,
                    in_flight: VecDeque::new(),
                    unassigned: VecDeque::new(),
                    by_pkid: HashMap::new(),
                };
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
            Event::Incoming(Incoming::PubAck(ack)) => self.acked(connection.as_mut(), ack.pkid),
            Event::Incoming(Incoming::Publish(publish)) => {
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
    /// how long to wait for rate tokens, if that is what stops it.
    fn fill(
        &mut self,
        c: &mut Connection,
        client: &AsyncClient,
        bucket: &mut Bucket,
    ) -> Option<Duration> {
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
            });
            self.complete(c);
        }
        None
    }

    fn acked(&mut self, connection: Option<&mut Connection>, pkid: u16) {
        let Some(c) = connection else {
            return;
        };
        let Some(sent) = c.by_pkid.remove(&pkid) else {
            return;
        };
        Stats::bump(&self.stats.uplink_acked);
        self.stats
            .last_uplink_ts
            .store(crate::now_ms(), Ordering::Relaxed);
        if let Sent::Record(position) = sent {
            if let Some(f) = c.in_flight.iter_mut().find(|f| f.position == position) {
                f.unacked = f.unacked.saturating_sub(1);
            }
            self.complete(c);
        }
    }

    /// Removes the acknowledged prefix of the window from the queue.
    fn complete(&mut self, c: &mut Connection) {
        let mut next = None;
        while c.in_flight.front().is_some_and(|f| f.unacked == 0) {
            next = c.in_flight.pop_front().map(|f| f.next);
        }
        if let Some(next) = next {
            if let Err(e) = lock(&self.queue).ack(next) {
                tracing::error!(error = %e, "removing delivered records from the queue failed");
            }
        }
    }

    fn incoming(&mut self, publish: Publish, client: &AsyncClient, c: Option<&mut Connection>) {
        if publish.topic == self.model_topic {
            if publish.payload.is_empty() {
                tracing::info!(topic = %publish.topic, "retained release was cleared on the broker; keeping the current model");
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
        } else if publish.topic == self.commands_topic {
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

    fn last_will(&self) -> LastWill {
        let q = lock(&self.queue);
        let status = status::device_status(
            &self.cfg.device_id,
            &self.cfg.model,
            &self.stats,
            &q,
            DeviceState::Offline,
        );
        LastWill::new(
            self.status_topic.clone(),
            status.encode().unwrap_or_default(),
            QoS::AtLeastOnce,
            true,
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
            let offline = self.last_will();
            if let Some(c) = connection.as_mut() {
                if client
                    .try_publish(offline.topic, QoS::AtLeastOnce, true, offline.message)
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
                    Ok(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                        self.acked(connection.as_mut(), ack.pkid)
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(4), "dev-1");
        let delays: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(delays[0] >= Duration::from_millis(250) && delays[0] <= FIRST_BACKOFF);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)));
        assert!(delays[7] >= Duration::from_secs(2), "{delays:?}");
        b.reset();
        assert!(b.next() <= FIRST_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_the_rate() {
        let mut bucket = Bucket::new(100);
        let mut sent = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match bucket.take(2) {
                Ok(()) => sent += 2,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
        // 10 s at 100/s plus the initial burst of 25.
        assert!((1000..=1030).contains(&sent), "{sent}");
    }
}
