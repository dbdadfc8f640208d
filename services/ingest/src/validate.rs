//! What ingest accepts. Pure functions: no I/O, benchmarked in
//! `benches/validate.rs`.

use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{Message, MqttTopics, Telemetry, TelemetryLimits};
pub use vigil_service::dlq::Rejection;

/// Decodes and checks one MQTT message received on `topic` at `now_ms`.
///
/// Beyond the message's own rules: the device id in the topic must equal the
/// payload's (a device cannot publish for another; the broker's ACL binds a
/// device's credentials to its topic), and the event time may not lie more
/// than the configured skew in the future.
pub fn validate(
    topics: &MqttTopics,
    topic: &str,
    payload: &[u8],
    now_ms: u64,
    limits: &TelemetryLimits,
) -> Result<Telemetry, Rejection> {
    let Some(topic_device) = topics.device_id_of(topic, DeviceChannel::Telemetry) else {
        return Err(Rejection {
            reason: "bad_topic",
            detail: format!("topic {topic:?} is not a device telemetry topic"),
        });
    };
    let telemetry = Telemetry::decode_limited(payload, limits.max_payload_bytes)?;
    if telemetry.device_id != topic_device {
        return Err(Rejection {
            reason: "device_mismatch",
            detail: format!(
                "payload device_id {:?} differs from topic device {topic_device:?}",
                telemetry.device_id
            ),
        });
    }
    if telemetry.ts > now_ms.saturating_add(limits.max_future_skew_ms) {
        return Err(Rejection {
            reason: "timestamp_in_future",
            detail: format!(
                "ts {} is {} ms ahead of ingest's clock; at most {} ms allowed",
                telemetry.ts,
                telemetry.ts - now_ms,
                limits.max_future_skew_ms
            ),
        });
    }
    Ok(telemetry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_446_981_908;

    fn check(topic: &str, payload: &str) -> Result<Telemetry, Rejection> {
        validate(
            &MqttTopics::default(),
            topic,
            payload.as_bytes(),
            NOW,
            &TelemetryLimits::default(),
        )
    }

    #[test]
    fn accepts_a_valid_record() {
        let t = check(
            "vigil/devices/pump-1/telemetry",
            r#"{"schema":1,"device_id":"pump-1","seq":3,"ts":1795446981000,"metrics":{"t":1.5}}"#,
        )
        .expect("valid");
        assert_eq!(t.seq, 3);
    }

    #[test]
    fn rejects_with_specific_reasons() {
        let cases = [
            (
                "vigil/devices/pump-1/telemetry",
                r#"{"schema":1,"#,
                "malformed_json",
            ),
            (
                "vigil/devices/pump-1/telemetry",
                r#"{"schema":9,"device_id":"pump-1","seq":3,"ts":1,"metrics":{"t":1}}"#,
                "unknown_schema",
            ),
            (
                "vigil/devices/pump-1/telemetry",
                r#"{"schema":1,"device_id":"pump-2","seq":3,"ts":1,"metrics":{"t":1}}"#,
                "device_mismatch",
            ),
            (
                "vigil/devices/pump-1/telemetry",
                r#"{"schema":1,"device_id":"pump-1","seq":3,"ts":1,"metrics":{"t":NaN}}"#,
                "non_finite_metric",
            ),
            (
                "vigil/devices/pump-1/telemetry",
                r#"{"schema":1,"device_id":"pump-1","seq":3,"ts":99999999999999,"metrics":{"t":1}}"#,
                "timestamp_in_future",
            ),
            (
                "vigil/other/pump-1",
                r#"{"schema":1,"device_id":"pump-1","seq":3,"ts":1,"metrics":{"t":1}}"#,
                "bad_topic",
            ),
        ];
        for (topic, payload, reason) in cases {
            let r = check(topic, payload).expect_err(payload);
            assert_eq!(r.reason, reason, "{payload}: {}", r.detail);
        }
    }

    #[test]
    fn oversized_payload_is_rejected() {
        let big = format!(
            r#"{{"schema":1,"device_id":"d","seq":1,"ts":1,"metrics":{{"t":1}},"pad":"{}"}}"#,
            "x".repeat(70_000)
        );
        let r = check("vigil/devices/d/telemetry", &big).expect_err("too large");
        assert_eq!(r.reason, "payload_too_large");
    }
}
