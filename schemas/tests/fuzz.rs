//! Fuzzing the wire contract's decoders (issue 17): every message type that
//! arrives from outside — telemetry, verdicts, model release envelopes,
//! device statuses, command results, incidents, DLQ records — is decoded
//! from arbitrary bytes, JSON token soup, byte-level and structured
//! mutations of a valid message (`fuzz_support`).
//!
//! Properties: decoding never panics; an error has a known, specific
//! reason (bytes that are not JSON are `malformed_json` or
//! `non_finite_metric`, never a shape error; JSON is never
//! `malformed_json`; a `schema` other than 1 is `unknown_schema`); an
//! accepted message passes its own checks and survives encode → decode
//! unchanged; the size limit is exact.
//!
//! `VIGIL_FUZZ_CASES` sets the cases per property (default 256); see
//! RELIABILITY.md, "Fuzzing".

mod fuzz_support;

use std::fmt::Debug;

use fuzz_support::{config, inputs, Input};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use vigil_schemas::{
    CommandResult, DeviceStatus, DlqRecord, Incident, Message, ModelRelease, Telemetry, Verdict,
};

/// Every reason a decode error may carry.
const REASONS: &[&str] = &[
    "payload_too_large",
    "malformed_json",
    "unknown_schema",
    "invalid_shape",
    "non_finite_metric",
    "invalid_device_id",
    "invalid_metrics",
    "invalid_name",
    "invalid_tags",
    "out_of_range",
];

/// The properties every decoder must have, for one input.
fn check<M: Message + PartialEq + Debug>(input: &Input) -> Result<(), TestCaseError> {
    let bytes = input.bytes();
    // Not JSON even to a reader that only skips values (no nesting limit,
    // no check of string escapes); and the tree, when the bytes are JSON a
    // Value holds. Between the two (nesting past 128, a lone surrogate
    // escape) either reason is right.
    let not_json = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err();
    let tree = serde_json::from_slice::<Value>(&bytes).ok();
    match M::decode(&bytes) {
        Ok(message) => {
            prop_assert_eq!(message.schema(), 1);
            if let Some(tree) = &tree {
                prop_assert!(tree.is_object(), "accepted a non-object: {}", tree);
            }
            prop_assert!(message.check().is_ok(), "accepted but fails its check");
            let again = message
                .encode()
                .map_err(|e| TestCaseError::fail(format!("re-encoding: {e}")))?;
            let back = M::decode(&again)
                .map_err(|e| TestCaseError::fail(format!("re-decoding {again:?}: {e}")))?;
            prop_assert_eq!(back, message);
        }
        Err(e) => {
            let reason = e.reason();
            prop_assert!(REASONS.contains(&reason), "unknown reason {reason}");
            prop_assert!(!e.to_string().is_empty());
            if not_json {
                prop_assert!(
                    matches!(reason, "malformed_json" | "non_finite_metric"),
                    "bytes that are not JSON refused as {reason}: {e}"
                );
            }
            if tree.is_some() {
                prop_assert_ne!(
                    reason,
                    "malformed_json",
                    "JSON refused as malformed: {} ({})",
                    e,
                    String::from_utf8_lossy(&bytes)
                );
            }
            // Built from a tree, the object has no repeated keys, so its
            // `schema` is the one the decoder sees.
            let schema = tree.as_ref().and_then(|v| v.get("schema"));
            if let (Input::Json(_), Some(schema)) = (input, schema) {
                // (null reads as an absent field: a shape error)
                if !schema.is_null() && schema.as_u64() != Some(1) {
                    prop_assert_eq!(reason, "unknown_schema", "schema {} refused: {}", schema, e);
                }
            }
        }
    }
    // The size limit is checked before anything else, exactly.
    let limit = bytes.len().saturating_sub(1);
    if !bytes.is_empty() {
        match M::decode_limited(&bytes, limit) {
            Err(vigil_schemas::DecodeError::TooLarge { size, limit: l }) => {
                prop_assert_eq!((size, l), (bytes.len(), limit));
            }
            other => prop_assert!(false, "over the limit but {:?}", other.map(|_| ())),
        }
    }
    Ok(())
}

fn seed<M: Message>(json: &str) -> Vec<u8> {
    M::decode(json.as_bytes())
        .unwrap_or_else(|e| panic!("seed {json} does not decode: {e}"))
        .encode()
        .expect("encodes")
}

const TELEMETRY: &str = r#"{"schema":1,"device_id":"pump-0042","seq":17,"ts":1795446981908,
  "metrics":{"temperature_c":61.5,"vibration_rms":0.25,"rpm":1480},"tags":{"site":"a"},"ingest_ts":1795446981910}"#;
const VERDICT: &str = r#"{"schema":1,"device_id":"pump-0042","seq":17,"event_ts":1795446981908,
  "ingest_ts":1795446981910,"scored_ts":1795446981912,"model":"default","model_version":3,
  "score":0.93,"threshold":0.8,"anomaly":true,
  "contributions":[{"metric":"vibration_rms","share":0.7}],"scored_at":"edge",
  "alarm":{"id":"pump-0042@17","state":"opened","opened_seq":17,"opened_ts":1795446981908}}"#;
const STATUS: &str = r#"{"schema":1,"device_id":"pump-0042","ts":1795446981908,"state":"online",
  "agent_version":"0.1.0","model":"default","model_version":3,"buffered_records":12,
  "buffered_bytes":4096,"dropped_records":0,"last_uplink_ts":1795446981000}"#;
const COMMAND_RESULT: &str = r#"{"schema":1,"device_id":"pump-0042","command":"throttle",
  "command_id":"pump-0042:17/cool/0","incident_id":"pump-0042:17","status":"failed",
  "exit_status":3,"duration_ms":12,"ts":1795446981908,"detail":"exited with 3"}"#;
const RELEASE: &str = r#"{"schema":1,"model":"default","version":3,"key_id":"ab12cd34",
  "payload_sha256":"00","signature":"AAAA",
  "payload":{"format":1,"header":{"model":"default","version":3},"detector":{"k":[1,2,3]}}}"#;
const INCIDENT: &str = r#"{"schema":1,"incident_id":"pump-0042:17","device_id":"pump-0042",
  "state":"opened","ts":9,"opened_ts":1,"first_seq":17,"last_seq":19,"anomalies":3,
  "max_score":0.9,"model":"default","model_version":2,"revision":1,"reason":"alarm_opened",
  "alarms":["pump-0042@17"],"top_metrics":[{"metric":"rpm","share":0.5}]}"#;
const DLQ: &str = r#"{"schema":1,"service":"ingest","source":"mqtt:vigil/devices/x/telemetry",
  "reason":"malformed_json","detail":"why","ts":7,"original":"eyJ4Ijox"}"#;

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn telemetry_decoder(input in inputs(seed::<Telemetry>(TELEMETRY))) {
        check::<Telemetry>(&input)?;
    }

    #[test]
    fn verdict_decoder(input in inputs(seed::<Verdict>(VERDICT))) {
        check::<Verdict>(&input)?;
    }

    #[test]
    fn device_status_decoder(input in inputs(seed::<DeviceStatus>(STATUS))) {
        check::<DeviceStatus>(&input)?;
    }

    #[test]
    fn command_result_decoder(input in inputs(seed::<CommandResult>(COMMAND_RESULT))) {
        check::<CommandResult>(&input)?;
    }

    #[test]
    fn model_release_envelope_decoder(input in inputs(seed::<ModelRelease>(RELEASE))) {
        check::<ModelRelease>(&input)?;
    }

    #[test]
    fn incident_decoder(input in inputs(seed::<Incident>(INCIDENT))) {
        check::<Incident>(&input)?;
    }

    #[test]
    fn dlq_record_decoder(input in inputs(seed::<DlqRecord>(DLQ))) {
        check::<DlqRecord>(&input)?;
    }
}

/// The seeds are the valid messages the mutations start from: each must
/// decode (a seed that did not would leave the mutations testing only the
/// error paths).
#[test]
fn every_seed_is_a_valid_message() {
    assert!(!seed::<Telemetry>(TELEMETRY).is_empty());
    assert!(!seed::<Verdict>(VERDICT).is_empty());
    assert!(!seed::<DeviceStatus>(STATUS).is_empty());
    assert!(!seed::<CommandResult>(COMMAND_RESULT).is_empty());
    assert!(!seed::<ModelRelease>(RELEASE).is_empty());
    assert!(!seed::<Incident>(INCIDENT).is_empty());
    assert!(!seed::<DlqRecord>(DLQ).is_empty());
}

/// Found by the properties above (each once refused with an unspecific
/// reason); kept as plain regression tests.
#[test]
fn fuzz_findings_are_refused_with_the_specific_reason() {
    let reason = |b: &[u8]| Telemetry::decode(b).map(|_| ()).map_err(|e| e.reason());
    // Not JSON, but serde met a string where an object belongs first:
    // once `invalid_shape`.
    assert_eq!(reason(br#""schema"{"#), Err("malformed_json"));
    assert_eq!(reason(br#"[1,"#), Err("malformed_json"));
    // A derived struct reads an array too: once accepted.
    let array = br#"[1,"pump-0042",1795446981908,"online"]"#;
    let decoded = DeviceStatus::decode(array);
    assert_eq!(
        decoded.map(|_| ()).map_err(|e| e.reason()),
        Err("invalid_shape")
    );
    assert!(
        serde_json::from_slice::<DeviceStatus>(array).is_ok(),
        "serde alone takes it"
    );
    // Valid JSON with a null where an enum belongs: serde calls it a
    // syntax error ("expected value"), once `malformed_json`.
    let status = STATUS.replace(r#""state":"online""#, r#""state":null"#);
    assert_eq!(
        DeviceStatus::decode(status.as_bytes())
            .map(|_| ())
            .map_err(|e| e.reason()),
        Err("invalid_shape")
    );
    let verdict = VERDICT.replace(r#""scored_at":"edge""#, r#""scored_at":null"#);
    assert_eq!(
        Verdict::decode(verdict.as_bytes())
            .map(|_| ())
            .map_err(|e| e.reason()),
        Err("invalid_shape")
    );
    // Still specific: a NaN literal, a number past f64.
    assert_eq!(
        reason(TELEMETRY.replace("61.5", "NaN").as_bytes()),
        Err("non_finite_metric")
    );
    assert_eq!(
        reason(TELEMETRY.replace("61.5", "1e999").as_bytes()),
        Err("non_finite_metric")
    );
}
