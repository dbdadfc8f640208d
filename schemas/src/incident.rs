//! Incident: the lifecycle of a run of alarms on one device, as the
//! actions role (`vigil actions`) opens, updates and resolves it
//! (`vigil.incidents`, keyed by device id).
//!
//! Every event carries the whole incident as it stands after the event,
//! so the newest event of an incident is its state (the actions role
//! rebuilds itself from the topic at start-up). `revision` numbers an
//! incident's events from 0 (`opened`); `(incident_id, revision)`
//! identifies an event, and no revision is emitted twice.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::command::{CommandOutcome, CommandResult};
use crate::rules::{check_device_id, ValidationError};
use crate::verdict::{Contribution, ScoredAt};

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// First alarm of a run.
    #[default]
    Opened,
    /// The alarm closed or reopened, the severity rose, or an action was
    /// taken or finished.
    Updated,
    /// No alarm for the quiet period after the last one closed (or the
    /// incident had to be dropped; see `reason`).
    Resolved,
}

/// How serious an incident is, from its score and its duration.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Barely over the threshold, short.
    #[default]
    Low,
    /// Clearly over the threshold, or lasting minutes.
    Medium,
    /// Far over the threshold, or lasting long.
    High,
    /// Lasting an hour or more.
    Critical,
}

impl Severity {
    /// `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A model version that scored records of the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModelRef {
    /// Model name.
    pub model: String,
    /// Its version (null for unscored records).
    pub version: Option<u64>,
}

/// What an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A command to the device on `vigil/devices/{id}/commands`.
    Command,
    /// An HTTP POST to a webhook.
    Webhook,
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Decided and recorded; being sent.
    Pending,
    /// Command: the MQTT broker acknowledged it (QoS 1).
    Sent,
    /// Webhook: the endpoint answered 2xx.
    Delivered,
    /// Gave up (command not acknowledged; webhook refused for good).
    Failed,
    /// Webhook: every attempt failed; the delivery is on the DLQ.
    DeadLettered,
    /// Not sent: a suppression (maintenance window, muted device) matched.
    Suppressed,
    /// Not sent: the rule acted on this device within its cooldown.
    Cooldown,
    /// Not sent: the global action rate limit was reached.
    RateLimited,
    /// Recorded as pending when the role stopped without recording an
    /// outcome; not sent again (at most once).
    Interrupted,
    /// Command: the device ran it and reported success (`result`).
    Succeeded,
    /// Command: the device declined to run it (`result` says why).
    Refused,
    /// Command: sent, but no result came back from the device within its
    /// result timeout.
    TimedOut,
}

impl ActionStatus {
    /// The status as written on the wire (`pending`, `sent`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Sent => "sent",
            ActionStatus::Delivered => "delivered",
            ActionStatus::Failed => "failed",
            ActionStatus::DeadLettered => "dead_lettered",
            ActionStatus::Suppressed => "suppressed",
            ActionStatus::Cooldown => "cooldown",
            ActionStatus::RateLimited => "rate_limited",
            ActionStatus::Interrupted => "interrupted",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Refused => "refused",
            ActionStatus::TimedOut => "timed_out",
        }
    }

    /// Whether the action went out (or was on its way).
    pub fn went_out(self) -> bool {
        matches!(
            self,
            ActionStatus::Pending
                | ActionStatus::Sent
                | ActionStatus::Delivered
                | ActionStatus::Failed
                | ActionStatus::DeadLettered
                | ActionStatus::Interrupted
                | ActionStatus::Succeeded
                | ActionStatus::Refused
                | ActionStatus::TimedOut
        )
    }

    /// The status a command takes when the device reports `outcome`.
    pub fn of_result(outcome: CommandOutcome) -> Self {
        match outcome {
            CommandOutcome::Ok => ActionStatus::Succeeded,
            CommandOutcome::Failed => ActionStatus::Failed,
            CommandOutcome::Refused => ActionStatus::Refused,
        }
    }
}

/// What the device reported for a command (from its
/// [`CommandResult`] on `vigil/devices/{id}/command-results`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActionResult {
    /// Ok, failed or refused.
    pub status: CommandOutcome,
    /// The handler's exit status, when it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// How long the handler ran, ms.
    pub duration_ms: u64,
    /// When the device finished it, ms since the Unix epoch (device clock).
    pub ts: u64,
    /// Why it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&CommandResult> for ActionResult {
    fn from(r: &CommandResult) -> Self {
        ActionResult {
            status: r.status,
            exit_status: r.exit_status,
            duration_ms: r.duration_ms,
            ts: r.ts,
            detail: r.detail.clone(),
        }
    }
}

/// One action a rule took on the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActionRecord {
    /// Stable id: `{incident_id}/{rule}/{index}`; sent with the action
    /// (command id, webhook `Idempotency-Key`) so a receiver can tell
    /// repeats.
    pub id: String,
    /// The rule that fired.
    pub rule: String,
    /// Command or webhook.
    pub kind: ActionKind,
    /// Command name, or the webhook's name.
    pub target: String,
    /// Where it stands.
    pub status: ActionStatus,
    /// Delivery attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// When the status was set, ms since the Unix epoch.
    pub ts: u64,
    /// Why it failed, was suppressed, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Command: wall-clock time (ms since the Unix epoch) by which the
    /// device's result is expected; without one by then the command is
    /// `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_due: Option<u64>,
    /// Command: what the device reported, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ActionResult>,
}

impl ActionRecord {
    /// Whether this is a command still waiting for the device's result:
    /// on its way or sent, with a due time and no result yet.
    pub fn awaits_result(&self) -> bool {
        self.kind == ActionKind::Command
            && self.result.is_none()
            && self.result_due.is_some()
            && matches!(self.status, ActionStatus::Pending | ActionStatus::Sent)
    }
}

/// One lifecycle event of an incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    /// Message schema version; always 1.
    pub schema: u32,
    /// Stable id: `{device_id}:{first_seq}`, from the first alarm
    /// (`{device_id}@{first_seq}`).
    pub incident_id: String,
    /// The affected device.
    pub device_id: String,
    /// Opened, updated or resolved.
    pub state: IncidentState,
    /// When the event was emitted, ms since the Unix epoch (strictly
    /// increasing over an incident's events).
    pub ts: u64,
    /// Event time of the first anomalous record.
    pub opened_ts: u64,
    /// seq of the first anomalous record.
    pub first_seq: u64,
    /// seq of the latest anomalous record.
    pub last_seq: u64,
    /// Anomalous records so far.
    pub anomalies: u64,
    /// Highest score so far.
    pub max_score: f64,
    /// Model name and version of the latest anomalous verdict.
    pub model: String,
    /// Version of that model.
    pub model_version: Option<u64>,
    /// Name of the latest action taken, if any (command name or webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The event's number within the incident: 0 for `opened`, one more
    /// for each later event.
    #[serde(default)]
    pub revision: u32,
    /// What this event records: `alarm_opened`, `alarm_closed`,
    /// `alarm_reopened`, `severity`, `action`, `recovered`, `quiet`
    /// (resolved after the quiet period), `capacity` (resolved to make
    /// room), `superseded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Severity from score and duration.
    #[serde(default)]
    pub severity: Severity,
    /// Event time of the latest anomalous record.
    #[serde(default)]
    pub last_ts: u64,
    /// Ids of the alarms (`{device_id}@{opened_seq}`) the incident holds,
    /// oldest first (at most 16; older ones are dropped).
    #[serde(default)]
    pub alarms: Vec<String>,
    /// seq of the record that closed the latest alarm, while no alarm is
    /// open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_seq: Option<u64>,
    /// Event time of that record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ts: Option<u64>,
    /// Wall-clock time (ms) after which the incident resolves if no alarm
    /// opens, while no alarm is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_after: Option<u64>,
    /// When the incident resolved: the `ts` of its first `resolved` event
    /// (later `resolved` events, recording outcomes of its actions, keep
    /// it). Absent while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ts: Option<u64>,
    /// Metrics that contributed most over the incident (mean share over
    /// its anomalous records), largest first.
    #[serde(default)]
    pub top_metrics: Vec<Contribution>,
    /// Every model version that scored an anomalous record of it.
    #[serde(default)]
    pub models: Vec<ModelRef>,
    /// Where its records were scored (cloud, edge or both).
    #[serde(default)]
    pub scored_at: Vec<ScoredAt>,
    /// Every action taken on it, oldest first.
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
}

impl Incident {
    /// The id of the incident whose first alarm opened at `first_seq` on
    /// `device_id`.
    pub fn id_for(device_id: &str, first_seq: u64) -> String {
        format!("{device_id}:{first_seq}")
    }

    /// Duration so far in event time, ms.
    pub fn duration_ms(&self) -> u64 {
        self.last_ts
            .max(self.closed_ts.unwrap_or(0))
            .saturating_sub(self.opened_ts)
    }

    /// Highest seq applied to the incident (anomalous or closing record).
    pub fn seen_seq(&self) -> u64 {
        self.last_seq.max(self.closed_seq.unwrap_or(0))
    }
}

impl Message for Incident {
    const KIND: &'static str = "incident";

    fn schema(&self) -> u32 {
        self.schema
    }

    fn check(&self) -> Result<(), ValidationError> {
        check_device_id(&self.device_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_without_the_newer_fields_still_decode() {
        let i = Incident::decode(
            br#"{"schema":1,"incident_id":"d:5","device_id":"d","state":"opened","ts":9,
 "opened_ts":1,"first_seq":5,"last_seq":5,"anomalies":1,"max_score":0.9,"model":"m",
 "model_version":2}"#,
        )
        .expect("decodes");
        assert_eq!(i.revision, 0);
        assert_eq!(i.severity, Severity::Low);
        assert!(i.actions.is_empty());
        assert_eq!(i.seen_seq(), 5);
    }

    #[test]
    fn severities_order_and_statuses_say_what_went_out() {
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
        assert!(ActionStatus::Delivered.went_out());
        assert!(!ActionStatus::Suppressed.went_out());
        assert_eq!(ActionStatus::DeadLettered.as_str(), "dead_lettered");
    }
}
