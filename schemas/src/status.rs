//! DeviceStatus: what an edge agent reports about itself, retained on
//! `vigil/devices/{id}/status` and compacted in `vigil.device-status`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::rules::{check_device_id, ValidationError};

/// Whether the agent is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Connected and reporting.
    Online,
    /// Set by the broker as the agent's last will, or by a clean stop.
    Offline,
}

/// An edge agent's self-report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceStatus {
    /// Message schema version; always 1.
    pub schema: u32,
    /// The reporting device.
    pub device_id: String,
    /// When the report was made, ms since the Unix epoch.
    pub ts: u64,
    /// Online or offline.
    pub state: DeviceState,
    /// Agent build version.
    #[serde(default)]
    pub agent_version: String,
    /// Model the agent scores with.
    #[serde(default)]
    pub model: String,
    /// Version of that model the agent runs; null before the first release.
    #[serde(default)]
    pub model_version: Option<u64>,
    /// Records waiting in the store-and-forward queue.
    #[serde(default)]
    pub buffered_records: u64,
    /// Bytes used by the store-and-forward queue.
    #[serde(default)]
    pub buffered_bytes: u64,
    /// Records dropped because the queue was full, since the agent started
    /// keeping its queue.
    #[serde(default)]
    pub dropped_records: u64,
    /// Last time the broker acknowledged an uplink message, ms since the
    /// Unix epoch.
    #[serde(default)]
    pub last_uplink_ts: Option<u64>,
}

impl Message for DeviceStatus {
    const KIND: &'static str = "device status";

    fn schema(&self) -> u32 {
        self.schema
    }

    fn check(&self) -> Result<(), ValidationError> {
        check_device_id(&self.device_id)
    }
}
