//! Incident: the lifecycle of a run of anomalies on one device, as the
//! actions role opens, updates and resolves it (`vigil.incidents`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::rules::{check_device_id, ValidationError};

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// First anomaly of a run.
    Opened,
    /// More anomalies joined the run, or an action was taken.
    Updated,
    /// No anomaly for the quiet period.
    Resolved,
}

/// One lifecycle event of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    /// Message schema version; always 1.
    pub schema: u32,
    /// Stable id: `{device_id}:{first_seq}`.
    pub incident_id: String,
    /// The affected device.
    pub device_id: String,
    /// Opened, updated or resolved.
    pub state: IncidentState,
    /// When the event was emitted, ms since the Unix epoch.
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
    /// Corrective action taken, if any (command name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
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
