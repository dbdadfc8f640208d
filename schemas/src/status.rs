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

impl DeviceStatus {
    /// The model version this report stands for, given the one the device
    /// reported `before`: an offline report without a version (the
    /// broker's last will, fixed when the agent connected, often before
    /// its first model) does not say the model is gone, so the earlier
    /// version stands. Any other report says what it says.
    pub fn model_version_after(&self, before: Option<u64>) -> Option<u64> {
        match (self.state, self.model_version) {
            (DeviceState::Offline, None) => before,
            (_, version) => version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: DeviceState, model_version: Option<u64>) -> DeviceStatus {
        DeviceStatus {
            schema: 1,
            device_id: "d".to_owned(),
            ts: 0,
            state,
            agent_version: String::new(),
            model: "default".to_owned(),
            model_version,
            buffered_records: 0,
            buffered_bytes: 0,
            dropped_records: 0,
            last_uplink_ts: None,
        }
    }

    #[test]
    fn an_offline_will_without_a_version_keeps_the_one_before() {
        let will = status(DeviceState::Offline, None);
        assert_eq!(will.model_version_after(Some(5)), Some(5));
        assert_eq!(will.model_version_after(None), None);
        // A report that names a version, or an online one without, stands.
        let stop = status(DeviceState::Offline, Some(4));
        assert_eq!(stop.model_version_after(Some(5)), Some(4));
        let fresh = status(DeviceState::Online, None);
        assert_eq!(fresh.model_version_after(Some(5)), None);
    }
}
