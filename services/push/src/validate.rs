//! What the status, verdict and command-result bridges accept. Pure
//! functions, no I/O.

use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{CommandResult, DeviceStatus, Message, MqttTopics, ScoredAt, Verdict};
pub use vigil_service::dlq::Rejection;

use crate::known::{Known, Lookup};

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

/// Decodes and checks one edge verdict received on `topic`: the message's
/// own rules (schema version, device id, score, alarm), the device in the
/// topic is the payload's, and the verdict says it was scored at the edge
/// (a device cannot pass a decision off as the cloud's). Whether it names
/// a published release is [`check_release`]'s.
pub fn validate_verdict(
    topics: &MqttTopics,
    topic: &str,
    payload: &[u8],
    max_bytes: usize,
) -> Result<Verdict, Rejection> {
    let Some(topic_device) = topics.device_id_of(topic, DeviceChannel::Verdicts) else {
        return Err(Rejection::new(
            "bad_topic",
            format!("topic {topic:?} is not a device verdicts topic"),
        ));
    };
    let verdict = Verdict::decode_limited(payload, max_bytes).map_err(|e| Rejection {
        reason: e.reason(),
        detail: format!("{topic}: {e}"),
    })?;
    if verdict.device_id != topic_device {
        return Err(Rejection::new(
            "device_mismatch",
            format!(
                "payload device_id {:?} differs from topic device {topic_device:?}",
                verdict.device_id
            ),
        ));
    }
    if verdict.scored_at != ScoredAt::Edge {
        return Err(Rejection::new(
            "not_edge_scored",
            format!(
                "a verdict on {topic} must say scored_at \"edge\", not {:?}",
                verdict.scored_at.as_str()
            ),
        ));
    }
    Ok(verdict)
}

/// Decodes and checks one command result received on `topic`: the
/// message's own rules (schema version, device id) and the device in the
/// topic is the payload's (a device cannot report for another).
pub fn validate_result(
    topics: &MqttTopics,
    topic: &str,
    payload: &[u8],
    max_bytes: usize,
) -> Result<CommandResult, Rejection> {
    let Some(topic_device) = topics.device_id_of(topic, DeviceChannel::CommandResults) else {
        return Err(Rejection::new(
            "bad_topic",
            format!("topic {topic:?} is not a device command-results topic"),
        ));
    };
    let result = CommandResult::decode_limited(payload, max_bytes).map_err(|e| Rejection {
        reason: e.reason(),
        detail: format!("{topic}: {e}"),
    })?;
    if result.device_id != topic_device {
        return Err(Rejection::new(
            "device_mismatch",
            format!(
                "payload device_id {:?} differs from topic device {topic_device:?}",
                result.device_id
            ),
        ));
    }
    Ok(result)
}

/// Whether `verdict`'s model and version name a release the model log
/// holds and verified, as far as `known` read it. An unscored verdict (no
/// model yet, `model_version: null`) names no release and passes when its
/// model is one push follows. `Ok(false)`: not known yet, the model's log
/// was not read to its end.
pub fn check_release(verdict: &Verdict, known: &Known) -> Result<bool, Rejection> {
    let name = &verdict.model;
    let Some(version) = verdict.model_version else {
        return if known.follows(name) {
            Ok(true)
        } else {
            Err(unknown_model(name))
        };
    };
    match known.lookup(name, version) {
        Lookup::Published => Ok(true),
        Lookup::NotRead => Ok(false),
        Lookup::UnknownModel => Err(unknown_model(name)),
        Lookup::Refused(reason) => Err(Rejection::new(
            "refused_model_version",
            format!("model {name:?} version {version} is on the model log but was refused ({reason}); no device should score with it"),
        )),
        Lookup::Unknown { newest } => Err(Rejection::new(
            "unknown_model_version",
            format!(
                "model {name:?} version {version} was never published (newest published: {})",
                newest.map_or_else(|| "none".to_owned(), |v| v.to_string())
            ),
        )),
    }
}

fn unknown_model(name: &str) -> Rejection {
    Rejection::new(
        "unknown_model",
        format!("model {name:?} is not one of the models vigil push follows (--model)"),
    )
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

    fn verdict(device: &str, version: &str, scored_at: &str) -> String {
        format!(
            r#"{{"schema":1,"device_id":"{device}","seq":4,"event_ts":1795446981908,"scored_ts":1795446981910,"model":"default","model_version":{version},"score":0.2,"threshold":0.8,"anomaly":false,"scored_at":"{scored_at}"}}"#
        )
    }

    fn check_verdict(topic: &str, payload: &str) -> Result<Verdict, Rejection> {
        validate_verdict(&MqttTopics::default(), topic, payload.as_bytes(), 64 * 1024)
    }

    #[test]
    fn accepts_an_edge_verdict() {
        let v = check_verdict(
            "vigil/devices/pump-1/verdicts",
            &verdict("pump-1", "3", "edge"),
        )
        .expect("valid");
        assert_eq!((v.seq, v.model_version), (4, Some(3)));
    }

    #[test]
    fn rejects_verdicts_with_specific_reasons() {
        let t = "vigil/devices/pump-1/verdicts";
        for (topic, payload, reason) in [
            (t, verdict("pump-2", "3", "edge"), "device_mismatch"),
            (t, verdict("pump-1", "3", "cloud"), "not_edge_scored"),
            (t, r#"{"schema":1,"#.to_owned(), "malformed_json"),
            (
                t,
                verdict("pump-1", "3", "edge").replace(r#""schema":1"#, r#""schema":4"#),
                "unknown_schema",
            ),
            (
                "vigil/devices/pump-1/status",
                verdict("pump-1", "3", "edge"),
                "bad_topic",
            ),
        ] {
            let r = check_verdict(topic, &payload).expect_err(&payload);
            assert_eq!(r.reason, reason, "{payload}: {}", r.detail);
        }
    }

    #[test]
    fn command_results_are_checked_like_the_other_device_messages() {
        let body = |device: &str| {
            format!(
                r#"{{"schema":1,"device_id":"{device}","command":"throttle","command_id":"pump-1:4/cool/0","status":"ok","exit_status":0,"duration_ms":12,"ts":5}}"#
            )
        };
        let check = |topic: &str, payload: &str| {
            validate_result(&MqttTopics::default(), topic, payload.as_bytes(), 16 * 1024)
        };
        let t = "vigil/devices/pump-1/command-results";
        let r = check(t, &body("pump-1")).expect("valid");
        assert_eq!(r.command_id.as_deref(), Some("pump-1:4/cool/0"));
        for (topic, payload, reason) in [
            (t, body("pump-2"), "device_mismatch"),
            (t, r#"{"schema":1,"#.to_owned(), "malformed_json"),
            (
                t,
                body("pump-1").replace(r#""schema":1"#, r#""schema":9"#),
                "unknown_schema",
            ),
            ("vigil/devices/pump-1/verdicts", body("pump-1"), "bad_topic"),
        ] {
            let r = check(topic, &payload).expect_err(&payload);
            assert_eq!(r.reason, reason, "{payload}: {}", r.detail);
        }
    }

    #[test]
    fn a_verdict_must_name_a_published_release() {
        let scored =
            check_verdict("vigil/devices/d/verdicts", &verdict("d", "3", "edge")).expect("valid");
        let unscored = check_verdict("vigil/devices/d/verdicts", &verdict("d", "null", "edge"))
            .expect("valid");
        let mut known = Known::new(&["default".to_owned()]);
        assert_eq!(
            check_release(&scored, &known),
            Ok(false),
            "log not read yet"
        );
        known.read_to_end("default");
        let reason = |k: &Known| check_release(&scored, k).map_err(|r| r.reason);
        assert_eq!(reason(&known), Err("unknown_model_version"));
        known.refuse("default", 3, "bad_signature");
        assert_eq!(reason(&known), Err("refused_model_version"));
        known.accept("default", 3);
        assert_eq!(check_release(&scored, &known), Ok(true));
        assert_eq!(check_release(&unscored, &known), Ok(true));
        let other = Known::new(&["other".to_owned()]);
        assert_eq!(reason(&other), Err("unknown_model"));
        assert_eq!(
            check_release(&unscored, &other).map_err(|r| r.reason),
            Err("unknown_model")
        );
    }
}
