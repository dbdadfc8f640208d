//! What the status bridge accepts. Pure functions, no I/O.

use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{DeviceStatus, Message, MqttTopics};
pub use vigil_service::dlq::Rejection;

/// What to write to `vigil.device-status` for one MQTT status message.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A valid status: the record, keyed by its device.
    Status(DeviceStatus),
    /// An empty payload: the device's retained status was cleared on the
    /// broker (a decommissioned device). It becomes a tombstone for the
    /// device's key, so compaction forgets the device and the rollout view
    /// drops it.
    Cleared {
        /// The device named by the topic.
        device_id: String,
    },
}

/// Decodes and checks one status message received on `topic`.
///
/// Beyond the message's own rules (schema version, device id), the device
/// id in the topic must equal the payload's: a device cannot report for
/// another (the broker's ACL binds a device's credentials to its topics).
pub fn validate(
    topics: &MqttTopics,
    topic: &str,
    payload: &[u8],
    max_bytes: usize,
) -> Result<Accepted, Rejection> {
    let Some(topic_device) = topics.device_id_of(topic, DeviceChannel::Status) else {
        return Err(Rejection {
            reason: "bad_topic",
            detail: format!("topic {topic:?} is not a device status topic"),
        });
    };
    if payload.is_empty() {
        return Ok(Accepted::Cleared {
            device_id: topic_device.to_owned(),
        });
    }
    let status = DeviceStatus::decode_limited(payload, max_bytes).map_err(|e| Rejection {
        reason: e.reason(),
        detail: format!("{topic}: {e}"),
    })?;
    if status.device_id != topic_device {
        return Err(Rejection {
            reason: "device_mismatch",
            detail: format!(
                "payload device_id {:?} differs from topic device {topic_device:?}",
                status.device_id
            ),
        });
    }
    Ok(Accepted::Status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(topic: &str, payload: &str) -> Result<Accepted, Rejection> {
        validate(&MqttTopics::default(), topic, payload.as_bytes(), 16 * 1024)
    }

    #[test]
    fn accepts_an_agent_status() {
        let got = check(
            "vigil/devices/pump-1/status",
            r#"{"schema":1,"device_id":"pump-1","ts":5,"state":"online","model":"default","model_version":2}"#,
        )
        .expect("valid");
        let Accepted::Status(s) = got else {
            panic!("not a status: {got:?}")
        };
        assert_eq!(s.model_version, Some(2));
    }

    #[test]
    fn an_empty_payload_clears_the_device() {
        assert_eq!(
            check("vigil/devices/pump-1/status", ""),
            Ok(Accepted::Cleared {
                device_id: "pump-1".into()
            })
        );
    }

    #[test]
    fn rejects_with_specific_reasons() {
        let cases = [
            (
                "vigil/devices/pump-1/status",
                r#"{"schema":1,"#,
                "malformed_json",
            ),
            (
                "vigil/devices/pump-1/status",
                r#"{"schema":7,"device_id":"pump-1","ts":5,"state":"online"}"#,
                "unknown_schema",
            ),
            (
                "vigil/devices/pump-1/status",
                r#"{"schema":1,"device_id":"pump-2","ts":5,"state":"online"}"#,
                "device_mismatch",
            ),
            (
                "vigil/devices/pump-1/telemetry",
                r#"{"schema":1,"device_id":"pump-1","ts":5,"state":"online"}"#,
                "bad_topic",
            ),
        ];
        for (topic, payload, reason) in cases {
            let r = check(topic, payload).expect_err(payload);
            assert_eq!(r.reason, reason, "{payload}: {}", r.detail);
        }
        let big = format!(
            r#"{{"schema":1,"device_id":"d","ts":5,"state":"online","pad":"{}"}}"#,
            "x".repeat(20_000)
        );
        let r = check("vigil/devices/d/status", &big).expect_err("too large");
        assert_eq!(r.reason, "payload_too_large");
    }
}
