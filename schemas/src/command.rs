//! CommandResult: what a device did with a cloud command, published by
//! `vigil-edge` on `vigil/devices/{id}/command-results` (QoS 1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::Message;
use crate::rules::{check_device_id, ValidationError};

/// How a command ended on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The handler ran and exited 0.
    Ok,
    /// The handler exited non-zero, could not start, or was killed at its
    /// timeout.
    Failed,
    /// The device did not run it (no handler configured, its queue full).
    Refused,
}

impl CommandOutcome {
    /// `ok`, `failed` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Ok => "ok",
            CommandOutcome::Failed => "failed",
            CommandOutcome::Refused => "refused",
        }
    }
}

/// The result of one cloud command on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandResult {
    /// Message schema version; always 1.
    pub schema: u32,
    /// The device that ran it.
    pub device_id: String,
    /// The command's name.
    pub command: String,
    /// The command's id as sent (`command_id`), if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The incident it answered, if the command said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Ok, failed or refused.
    pub status: CommandOutcome,
    /// The handler's exit status, when it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// How long the handler ran, ms.
    pub duration_ms: u64,
    /// When it finished, ms since the Unix epoch.
    pub ts: u64,
    /// Why it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Message for CommandResult {
    const KIND: &'static str = "command result";

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
    fn results_round_trip() {
        let r = CommandResult {
            schema: 1,
            device_id: "pump-1".into(),
            command: "throttle".into(),
            command_id: Some("pump-1:10/cool/0".into()),
            incident_id: Some("pump-1:10".into()),
            status: CommandOutcome::Failed,
            exit_status: Some(3),
            duration_ms: 12,
            ts: 5,
            detail: Some("exited with 3".into()),
        };
        let bytes = r.encode().expect("encodes");
        assert_eq!(CommandResult::decode(&bytes).expect("decodes"), r);
        assert!(String::from_utf8_lossy(&bytes).contains(r#""status":"failed""#));
    }
}
