//! Carrying out actions: commands to devices over MQTT and webhook
//! deliveries over HTTP, each reported back as an [`Outcome`].
//!
//! - **Commands** go to `vigil/devices/{id}/commands` at QoS 1 on a
//!   clean-session connection: `sent` once the broker's PUBACK arrives,
//!   `failed` when the connection drops before it or it does not arrive
//!   within `--command-timeout`. Nothing is retransmitted after a
//!   reconnect: a command goes out at most once (its `command_id`, the
//!   action id, lets a device drop a repeat anyway). The command JSON is
//!   [`command_payload`]; what is published is that JSON signed for the
//!   device ([`crate::signing`]: a `SignedCommand` with an expiry and a
//!   sequence number). Without a signing key a command is `failed`, not
//!   sent unsigned.
//! - **Webhooks** are POSTed with a JSON body (or an Alertmanager alert
//!   list) and an `Idempotency-Key` header (the action id). A connection
//!   error, a timeout, 408, 429 and 5xx are retried with doubling pauses
//!   (the webhook's `retries` and `backoff`, at most 30 s apart); another
//!   4xx is not. A delivery that never succeeds is written to `vigil.dlq`
//!   (reason `webhook_undeliverable`, the detail says why, the original is
//!   the body) before it is reported `dead_lettered`. At most
//!   `--max-concurrent-webhooks` deliveries run at once; the rest wait.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use vigil_schemas::topics::{DeviceChannel, MqttTopics};
use vigil_schemas::{ActionStatus, Incident, IncidentState};
use vigil_service::dlq::Rejection;
use vigil_service::kafka::{self, RetryPolicy, VigilContext};
use vigil_service::{Readiness, Shutdown};

use crate::engine::{Job, JobKind, Outcome};
use crate::metrics::ActionsMetrics;
use crate::rules::{CommandAction, WebhookAction, WebhookFormat};
use crate::signing::CommandSigner;

/// Name of this role in DLQ records.
pub const SERVICE: &str = "actions";
/// Longest pause between two webhook attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Commands waiting for the MQTT connection.
const COMMAND_QUEUE: usize = 1024;

/// What the dispatcher needs.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// MQTT topic names.
    pub topics: MqttTopics,
    /// A command not acknowledged within this long is `failed`.
    pub command_timeout: Duration,
    /// Webhook deliveries in progress at once.
    pub max_concurrent_webhooks: usize,
    /// `vigil.dlq`.
    pub dlq_topic: Arc<str>,
    /// Signs every command; `None`: commands fail (nothing goes out
    /// unsigned).
    pub signer: Option<CommandSigner>,
}

/// Hands jobs to the right sender.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    commands: mpsc::Sender<Job>,
    webhooks: Arc<Webhooks>,
    outcomes: mpsc::Sender<Outcome>,
    metrics: ActionsMetrics,
    shutdown: Shutdown,
}

struct Webhooks {
    http: reqwest::Client,
    permits: Semaphore,
    producer: FutureProducer<VigilContext>,
    dlq_topic: Arc<str>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Starts the MQTT command sender (on `mqtt`) and returns the
    /// dispatcher; outcomes go to `outcomes`.
    pub fn start(
        config: DispatchConfig,
        mqtt: MqttOptions,
        producer: FutureProducer<VigilContext>,
        outcomes: mpsc::Sender<Outcome>,
        readiness: Readiness,
        metrics: ActionsMetrics,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let (client, eventloop) = AsyncClient::new(mqtt, COMMAND_QUEUE);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let sender = CommandSender {
            client,
            topics: config.topics.clone(),
            timeout: config.command_timeout,
            signer: config.signer,
            unassigned: VecDeque::new(),
            in_flight: HashMap::new(),
            outcomes: outcomes.clone(),
            readiness,
            metrics: metrics.clone(),
        };
        shutdown.spawn(sender.run(eventloop, rx, shutdown.clone()));
        let http = reqwest::Client::builder()
            .user_agent(concat!("vigil-actions/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Dispatcher {
            commands: tx,
            webhooks: Arc::new(Webhooks {
                http,
                permits: Semaphore::new(config.max_concurrent_webhooks.max(1)),
                producer,
                dlq_topic: config.dlq_topic,
            }),
            outcomes,
            metrics,
            shutdown: shutdown.clone(),
        })
    }

    /// Starts `job`; its outcome arrives later.
    pub async fn dispatch(&self, job: Job) {
        match &job.kind {
            JobKind::Command(_) => {
                if let Err(
                    mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job),
                ) = self.commands.try_send(job)
                {
                    let outcome = outcome(
                        &job,
                        ActionStatus::Failed,
                        0,
                        Some("command queue full".into()),
                    );
                    self.report(outcome).await;
                }
            }
            JobKind::Webhook(hook) => {
                let hook = hook.clone();
                let webhooks = self.webhooks.clone();
                let outcomes = self.outcomes.clone();
                let metrics = self.metrics.clone();
                let stop = self.shutdown.clone();
                self.shutdown.spawn(async move {
                    let delivery = async {
                        let Ok(_permit) = webhooks.permits.acquire().await else {
                            return None;
                        };
                        Some(webhooks.deliver(&job, &hook, &metrics).await)
                    };
                    // Stopping mid-delivery records nothing: the action is
                    // found pending at the next start and marked interrupted.
                    let result = tokio::select! {
                        _ = stop.cancelled() => None,
                        r = delivery => r,
                    };
                    if let Some(o) = result {
                        metrics
                            .actions
                            .with_label_values(&["webhook", o.status.as_str()])
                            .inc();
                        let _ = outcomes.send(o).await;
                    }
                });
            }
        }
    }

    async fn report(&self, o: Outcome) {
        self.metrics
            .actions
            .with_label_values(&["command", o.status.as_str()])
            .inc();
        let _ = self.outcomes.send(o).await;
    }
}

fn outcome(job: &Job, status: ActionStatus, attempts: u32, detail: Option<String>) -> Outcome {
    Outcome {
        device_id: job.incident.device_id.clone(),
        incident_id: job.incident.incident_id.clone(),
        action_id: job.action_id.clone(),
        status,
        attempts,
        detail,
    }
}

/// The JSON a device receives for `command`: what the edge agent reads
/// (`command`, a string) plus the command id, parameters and the incident
/// it answers. This is the `body` of the signed command that is published
/// (and what the device's handler gets on stdin).
pub fn command_payload(job: &Job, command: &CommandAction) -> Vec<u8> {
    let params: serde_json::Map<String, serde_json::Value> = command
        .params
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
        .collect();
    json!({
        "schema": 1,
        "command": command.name,
        "command_id": job.action_id,
        "params": params,
        "device_id": job.incident.device_id,
        "incident_id": job.incident.incident_id,
        "rule": job.rule,
        "severity": job.incident.severity,
        "ts": vigil_service::now_ms(),
    })
    .to_string()
    .into_bytes()
}

struct Sent {
    job: Job,
    deadline: Instant,
    /// Its outcome was reported already (timed out).
    reported: bool,
}

struct CommandSender {
    client: AsyncClient,
    topics: MqttTopics,
    timeout: Duration,
    signer: Option<CommandSigner>,
    /// Handed to the client, packet id not known yet (FIFO: this task is
    /// the only publisher on the client).
    unassigned: VecDeque<Sent>,
    in_flight: HashMap<u16, Sent>,
    outcomes: mpsc::Sender<Outcome>,
    readiness: Readiness,
    metrics: ActionsMetrics,
}

impl CommandSender {
    async fn run(
        mut self,
        mut eventloop: EventLoop,
        mut jobs: mpsc::Receiver<Job>,
        stop: Shutdown,
    ) {
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut check = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                job = jobs.recv() => match job {
                    Some(job) => self.publish(job).await,
                    None => break,
                },
                _ = check.tick() => self.expire().await,
                _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
                event = eventloop.poll(), if retry_at.is_none() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!("mqtt (commands) connected");
                        self.readiness.set(vigil_service::mqtt::DEPENDENCY, true);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(sent) = self.unassigned.pop_front() {
                            self.in_flight.insert(pkid, sent);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(sent) = self.in_flight.remove(&ack.pkid) {
                            let (status, detail) = match ack.reason {
                                PubAckReason::Success => (ActionStatus::Sent, None),
                                PubAckReason::NoMatchingSubscribers => (
                                    ActionStatus::Sent,
                                    Some("the broker had no subscriber for the device's commands".into()),
                                ),
                                other => (ActionStatus::Failed, Some(format!("the broker refused it: {other:?}"))),
                            };
                            self.finish(sent, status, detail).await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "mqtt (commands) connection lost; reconnecting");
                        self.readiness.set(vigil_service::mqtt::DEPENDENCY, false);
                        // At most once: what was in flight is not sent again.
                        eventloop.pending.clear();
                        let lost: Vec<Sent> = self.in_flight.drain().map(|(_, s)| s).collect();
                        for sent in lost {
                            self.finish(sent, ActionStatus::Failed,
                                Some(format!("mqtt connection lost before the broker acknowledged it ({e})"))).await;
                        }
                        retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    }
                },
            }
        }
        self.readiness.set(vigil_service::mqtt::DEPENDENCY, false);
        vigil_service::mqtt::disconnect_cleanly(
            &self.client,
            &mut eventloop,
            Duration::from_secs(2),
        )
        .await;
    }

    async fn publish(&mut self, job: Job) {
        let JobKind::Command(command) = &job.kind else {
            return;
        };
        let topic = self
            .topics
            .device(&job.incident.device_id, DeviceChannel::Commands);
        let body = command_payload(&job, command);
        let signed = match self.signer.as_mut() {
            Some(signer) => signer
                .sign(&job.incident.device_id, &body)
                .map_err(|e| format!("signing the command failed: {e}")),
            None => {
                Err("no --command-signing-key is configured; commands are not sent unsigned".into())
            }
        };
        let payload = match signed {
            Ok(payload) => payload,
            Err(why) => {
                let o = outcome(&job, ActionStatus::Failed, 0, Some(why));
                self.report(o).await;
                return;
            }
        };
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => self.unassigned.push_back(Sent {
                job,
                deadline: Instant::now() + self.timeout,
                reported: false,
            }),
            Err(e) => {
                let o = outcome(
                    &job,
                    ActionStatus::Failed,
                    1,
                    Some(format!("cannot queue the publish: {e}")),
                );
                self.report(o).await;
            }
        }
    }

    async fn expire(&mut self) {
        let now = Instant::now();
        let why = format!("not acknowledged by the broker within {:?}", self.timeout);
        let mut late = Vec::new();
        for sent in self
            .unassigned
            .iter_mut()
            .filter(|s| !s.reported && s.deadline <= now)
        {
            sent.reported = true;
            late.push(outcome(
                &sent.job,
                ActionStatus::Failed,
                1,
                Some(why.clone()),
            ));
        }
        let expired: Vec<u16> = self
            .in_flight
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for pkid in expired {
            if let Some(sent) = self.in_flight.remove(&pkid) {
                if !sent.reported {
                    late.push(outcome(
                        &sent.job,
                        ActionStatus::Failed,
                        1,
                        Some(why.clone()),
                    ));
                }
            }
        }
        for o in late {
            self.report(o).await;
        }
    }

    async fn finish(&mut self, sent: Sent, status: ActionStatus, detail: Option<String>) {
        if !sent.reported {
            self.report(outcome(&sent.job, status, 1, detail)).await;
        }
    }

    async fn report(&self, o: Outcome) {
        self.metrics
            .actions
            .with_label_values(&["command", o.status.as_str()])
            .inc();
        let _ = self.outcomes.send(o).await;
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Webhooks {
    /// Delivers `job` to `hook`: retried, dead-lettered when it never
    /// succeeds.
    async fn deliver(&self, job: &Job, hook: &WebhookAction, metrics: &ActionsMetrics) -> Outcome {
        let body = webhook_body(job, hook);
        let mut pause = hook.backoff;
        let mut attempts = 0u32;
        let last_error = loop {
            attempts += 1;
            let mut request = self
                .http
                .post(&hook.url)
                .timeout(hook.timeout)
                .header("content-type", "application/json")
                .header("idempotency-key", &job.action_id);
            for (k, v) in &hook.headers {
                request = request.header(k, v);
            }
            let (error, retriable) = match request.body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => {
                    metrics.webhook_attempts.with_label_values(&["ok"]).inc();
                    return outcome(job, ActionStatus::Delivered, attempts, None);
                }
                Ok(r) => {
                    let s = r.status();
                    let retriable = s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429;
                    (format!("HTTP {s}"), retriable)
                }
                Err(e) if e.is_timeout() => (format!("no answer within {:?}", hook.timeout), true),
                Err(e) => (format!("request failed: {e}"), true),
            };
            metrics
                .webhook_attempts
                .with_label_values(&["failed"])
                .inc();
            tracing::debug!(webhook = %hook.name, attempt = attempts, error, "webhook attempt failed");
            if !retriable {
                break format!("{error} (not retried)");
            }
            if attempts > hook.retries {
                break format!("{attempts} attempts failed; the last: {error}");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        };
        let detail = format!("webhook {} to {}: {last_error}", hook.name, hook.url);
        tracing::warn!(action = %job.action_id, detail, "webhook delivery failed; writing it to the dlq");
        let source = format!("webhook:{}", hook.name);
        if let Some(dlq) =
            Rejection::new("webhook_undeliverable", detail.clone()).into_dlq(SERVICE, source, &body)
        {
            let sent = kafka::send_retrying(
                &self.producer,
                self.dlq_topic.clone(),
                dlq.key,
                dlq.payload.into(),
                RetryPolicy::UntilDelivered,
                metrics.kafka_retries.clone(),
            )
            .await;
            if let Err(e) = sent {
                return outcome(
                    job,
                    ActionStatus::Failed,
                    attempts,
                    Some(format!("{detail}; and the dlq write failed: {e}")),
                );
            }
        }
        outcome(job, ActionStatus::DeadLettered, attempts, Some(detail))
    }
}

/// A webhook's body: the incident as JSON, or one Alertmanager alert.
pub fn webhook_body(job: &Job, hook: &WebhookAction) -> Vec<u8> {
    let i = &job.incident;
    let value = match hook.format {
        WebhookFormat::Json => json!({
            "schema": 1,
            "rule": job.rule,
            "webhook": hook.name,
            "action_id": job.action_id,
            "incident": i,
        }),
        WebhookFormat::Alertmanager => alertmanager_alerts(job, i),
    };
    value.to_string().into_bytes()
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `POST /api/v2/alerts` of Alertmanager: a list of alerts with labels,
/// annotations and times; a resolved incident carries `endsAt`.
fn alertmanager_alerts(job: &Job, i: &Incident) -> serde_json::Value {
    let metrics: Vec<&str> = i.top_metrics.iter().map(|c| c.metric.as_str()).collect();
    let mut alert = json!({
        "labels": {
            "alertname": job.rule,
            "device_id": i.device_id,
            "incident_id": i.incident_id,
            "severity": i.severity,
            "model": i.model,
            "service": "vigil",
        },
        "annotations": {
            "summary": format!("{} on {}: {} anomalous records, max score {:.3}",
                i.incident_id, i.device_id, i.anomalies, i.max_score),
            "top_metrics": metrics.join(", "),
            "action_id": job.action_id,
        },
        "startsAt": rfc3339(i.opened_ts),
    });
    if i.state == IncidentState::Resolved {
        alert["endsAt"] = json!(rfc3339(i.ts));
    }
    json!([alert])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;

    fn job(kind: JobKind, state: IncidentState) -> Job {
        Job {
            action_id: "d:1/r/0".into(),
            rule: "r".into(),
            incident: Incident {
                incident_id: "d:1".into(),
                device_id: "d".into(),
                state,
                opened_ts: 1_767_225_600_000,
                ts: 1_767_225_660_000,
                ..Incident::default()
            },
            kind,
        }
    }

    #[test]
    fn commands_carry_what_the_edge_agent_reads() {
        let rules = Rules::parse(
            "[[rule]]\nname = \"r\"\n[[rule.command]]\nname = \"throttle\"\nparams = { level = 2 }\n",
        )
        .expect("valid");
        let command = rules.rules[0].commands[0].clone();
        let j = job(JobKind::Command(command.clone()), IncidentState::Opened);
        let v: serde_json::Value =
            serde_json::from_slice(&command_payload(&j, &command)).expect("json");
        assert_eq!(v["command"], "throttle");
        assert_eq!(v["command_id"], "d:1/r/0");
        assert_eq!(v["params"]["level"], 2);
        assert_eq!(v["incident_id"], "d:1");
    }

    #[test]
    fn alertmanager_bodies_are_alert_lists() {
        let rules = Rules::parse(
            "[[rule]]\nname = \"r\"\n[[rule.webhook]]\nname = \"am\"\nurl = \"http://127.0.0.1:1/\"\nformat = \"alertmanager\"\n",
        )
        .expect("valid");
        let hook = rules.rules[0].webhooks[0].clone();
        let open = job(JobKind::Webhook(hook.clone()), IncidentState::Opened);
        let v: serde_json::Value =
            serde_json::from_slice(&webhook_body(&open, &hook)).expect("json");
        assert_eq!(v[0]["labels"]["alertname"], "r");
        assert_eq!(v[0]["startsAt"], "2026-01-01T00:00:00.000Z");
        assert!(v[0].get("endsAt").is_none());
        let resolved = job(JobKind::Webhook(hook.clone()), IncidentState::Resolved);
        let v: serde_json::Value =
            serde_json::from_slice(&webhook_body(&resolved, &hook)).expect("json");
        assert_eq!(v[0]["endsAt"], "2026-01-01T00:01:00.000Z");
    }
}
