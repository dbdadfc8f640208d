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
/// than the configured skew in the future nor before the configured floor
/// ([`TelemetryLimits::min_ts_ms`], 2000-01-01 by default: a device with no
/// clock sends 0 or seconds). `seq` and `ts` above `i64::MAX` are refused
/// by the message's own rules (reason `out_of_range`): the stores could not
/// hold them, and a `seq` of `u64::MAX` would freeze the device's state.
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
    if telemetry.ts < limits.min_ts_ms {
        return Err(Rejection {
            reason: "timestamp_too_old",
            detail: format!(
                "ts {} is before the earliest accepted event time {} (ms since the Unix epoch)",
                telemetry.ts, limits.min_ts_ms
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
    fn seq_and_timestamps_out_of_range_are_rejected() {
        let record = |seq: &str, ts: &str| {
            format!(r#"{{"schema":1,"device_id":"d","seq":{seq},"ts":{ts},"metrics":{{"t":1}}}}"#)
        };
        let topic = "vigil/devices/d/telemetry";
        let floor = TelemetryLimits::default().min_ts_ms;
        for (seq, ts, reason) in [
            ("9223372036854775808", NOW.to_string(), "out_of_range"),
            ("18446744073709551615", NOW.to_string(), "out_of_range"),
            ("-1", NOW.to_string(), "invalid_shape"),
            ("1", "0".to_owned(), "timestamp_too_old"),
            ("1", (floor - 1).to_string(), "timestamp_too_old"),
            ("1", NOW.to_string(), "accepted"),
            ("1", floor.to_string(), "accepted"),
            ("9223372036854775807", NOW.to_string(), "accepted"),
        ] {
            let payload = record(seq, &ts);
            match check(topic, &payload) {
                Ok(_) => assert_eq!(reason, "accepted", "{payload}"),
                Err(r) => assert_eq!(r.reason, reason, "{payload}: {}", r.detail),
            }
        }
        // The floor is configurable.
        let limits = TelemetryLimits {
            min_ts_ms: 0,
            ..TelemetryLimits::default()
        };
        let old = record("1", "5");
        validate(&MqttTopics::default(), topic, old.as_bytes(), NOW, &limits)
            .expect("no floor configured");
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
