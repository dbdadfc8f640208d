//! Fuzzing the edge agent's decoders of outside bytes (issue 17): queue
//! records, the queue's segment scan and state file (what a power cut or a
//! bad flash leaves on disk), samples as JSON lines (the stdin source),
//! cloud commands, and model releases — the
//! envelope, and the signed payload (mutated, then signed again, so the
//! mutations reach the payload's parser and the model compiler).
//!
//! Properties: nothing panics; every error is the specific one; valid
//! input round-trips; the queue opens over any directory contents, hands
//! out only records that were really written, and keeps working.
//!
//! `VIGIL_FUZZ_CASES` sets the cases per property (default 256; the disk
//! and release properties run a quarter of them); see RELIABILITY.md,
//! "Fuzzing". The generators are `schemas/tests/fuzz_support`.

#[path = "../../schemas/tests/fuzz_support/mod.rs"]
mod fuzz_support;

mod common;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use fuzz_support::{
    byte_mutations, config, inputs, json_mutations, mutate_bytes, mutate_json, Input,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use vigil_edge::action::{command_result, parse_command, CommandError, MAX_COMMAND_BYTES};
use vigil_edge::queue::{Queue, QueueLimits, MAGIC};
use vigil_edge::record::{RecordError, UplinkRecord, MAX_MESSAGES};
use vigil_model::{decode_and_verify, Scorer, SigningKey, VerifyingKey};
use vigil_schemas::{CommandOutcome, CommandResult, Message, ScoredAt, Telemetry};

fn fail(what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

// ---- queue records ---------------------------------------------------------

fn uplink_record() -> impl Strategy<Value = UplinkRecord> {
    (
        any::<u64>(),
        prop::collection::vec(
            (
                "[a-z0-9/+#-]{0,40}",
                prop::collection::vec(any::<u8>(), 0..200),
            ),
            0..=MAX_MESSAGES,
        ),
    )
        .prop_map(|(seq, messages)| UplinkRecord { seq, messages })
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn uplink_records_round_trip(record in uplink_record()) {
        prop_assert_eq!(UplinkRecord::decode(&record.encode()), Ok(record));
    }

    #[test]
    fn uplink_record_decoder(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (uplink_record(), byte_mutations()).prop_map(|(r, m)| mutate_bytes(&r.encode(), &m)),
    ]) {
        match UplinkRecord::decode(&bytes) {
            // The layout has one encoding per record: what decodes is it.
            Ok(record) => prop_assert_eq!(record.encode(), bytes),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                match bytes.first() {
                    None => prop_assert_eq!(e, RecordError::Short(0)),
                    Some(&v) if v != 1 => prop_assert_eq!(e, RecordError::Version(v)),
                    Some(_) if bytes.len() >= 10 && usize::from(bytes[9]) > MAX_MESSAGES => {
                        prop_assert_eq!(e, RecordError::TooMany(usize::from(bytes[9])))
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

// ---- the queue's segment scan and state file -------------------------------

/// A segment file: `MAGIC`, then framed records (length, CRC, payload).
fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for p in payloads {
        let len = (p.len() as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(p);
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Segment names: small, and at the top of the u64 range.
fn segment_first() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..64,
        1 => Just(u64::MAX),
        1 => (1u64..8).prop_map(|d| u64::MAX - d),
        1 => any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    payloads: Vec<Vec<u8>>,
    /// Applied to the framed bytes; None: random bytes instead.
    damage: Option<Vec<(prop::sample::Index, fuzz_support::ByteOp)>>,
    random: Vec<u8>,
}

fn segment() -> impl Strategy<Value = Segment> {
    (
        segment_first(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 0..8),
        prop_oneof![
            2 => Just(Some(Vec::new())),
            3 => byte_mutations().prop_map(Some),
            1 => Just(None),
        ],
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(first, payloads, damage, random)| Segment {
            first,
            payloads,
            damage,
            random,
        })
}

fn position() -> impl Strategy<Value = Value> {
    (segment_first(), prop_oneof![0u64..16, Just(u64::MAX)], prop_oneof![0u64..200, Just(u64::MAX)])
        .prop_map(|(segment, index, offset)| serde_json::json!({"segment": segment, "index": index, "offset": offset}))
}

/// The `state` file: absent, garbage, or JSON with any head and counters.
fn state_file() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        3 => (prop::option::of(position()), any::<u64>(), any::<u64>()).prop_map(|(head, dropped, corrupt)| {
            Some(serde_json::to_vec(&serde_json::json!({"head": head, "dropped": dropped, "corrupt": corrupt})).unwrap_or_default())
        }),
    ]
}

proptest! {
    #![proptest_config(config(4))]

    #[test]
    fn the_queue_opens_over_any_directory(segments in prop::collection::vec(segment(), 0..4), state in state_file()) {
        let dir = tempfile::tempdir().map_err(|e| fail("tempdir", e))?;
        let mut written = HashSet::new();
        for s in &segments {
            let bytes = match &s.damage {
                Some(m) => mutate_bytes(&framed(&s.payloads), m),
                None => s.random.clone(),
            };
            written.extend(s.payloads.iter().cloned());
            std::fs::write(dir.path().join(format!("{:020}.seg", s.first)), bytes).map_err(|e| fail("write", e))?;
        }
        if let Some(state) = &state {
            std::fs::write(dir.path().join("state"), state).map_err(|e| fail("write", e))?;
        }
        let limits = QueueLimits::new(1 << 20).map_err(|e| fail("limits", e))?;
        let (mut queue, report) = Queue::open(dir.path(), limits).map_err(|e| fail("open", e))?;
        prop_assert_eq!(report.records, queue.len());

        // Only records that were written come out (the CRC sees damage),
        // as many as the queue says it holds.
        let mut reader = queue.reader();
        let mut read = 0u64;
        while let Some(r) = queue.read(&mut reader).map_err(|e| fail("read", e))? {
            prop_assert!(written.contains(&r.payload), "read a record never written: {:?}", r.payload);
            read += 1;
            prop_assert!(read <= 64, "the reader does not stop");
        }
        prop_assert_eq!(read, queue.len());

        // It keeps working: an append is read back next, an ack of
        // everything empties it, and a reopen agrees.
        let appended = queue.append(b"after-open").map_err(|e| fail("append", e))?;
        let r = queue.read(&mut reader).map_err(|e| fail("read", e))?;
        let r = r.ok_or_else(|| fail("read", "the appended record is missing"))?;
        prop_assert_eq!(&r.payload, b"after-open");
        prop_assert_eq!(r.position, appended.position);
        queue.ack(r.next).map_err(|e| fail("ack", e))?;
        prop_assert!(queue.is_empty());
        queue.sync().map_err(|e| fail("sync", e))?;
        drop(queue);
        let (queue, _) = Queue::open(dir.path(), limits).map_err(|e| fail("reopen", e))?;
        prop_assert!(queue.is_empty(), "{} records after everything was acknowledged", queue.len());
        let last = queue.last_record().map_err(|e| fail("last record", e))?;
        prop_assert_eq!(last.as_deref(), Some(&b"after-open"[..]));
    }
}

// ---- samples as JSON lines (the stdin source) ------------------------------

const SAMPLE_LINE: &str =
    r#"{"metrics":{"temperature_c":61.5,"rpm":1480},"ts":1795446981908,"tags":{"site":"a"}}"#;

proptest! {
    #![proptest_config(config(4))]

    /// Any stream of lines: the source never panics, skips what is not a
    /// sample, returns one sample per good line, and ends.
    #[test]
    fn line_source_reads_any_stream(lines in prop::collection::vec(
        prop_oneof![
            3 => inputs(SAMPLE_LINE.as_bytes().to_vec()).prop_map(|i| i.bytes()),
            1 => Just(SAMPLE_LINE.as_bytes().to_vec()),
            1 => Just(vec![b'x'; vigil_edge::sources::MAX_LINE_BYTES + 1]),
        ],
        0..12,
    )) {
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend(line.iter().copied().filter(|b| *b != b'\n'));
            stream.push(b'\n');
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| fail("runtime", e))?;
        let samples = runtime.block_on(async {
            let mut source = vigil_edge::sources::LineSource::new(&stream[..], "fuzz");
            let mut samples = Vec::new();
            while let Some(sample) = source.next().await? {
                samples.push(sample);
            }
            Ok::<_, vigil_edge::sources::SourceError>(samples)
        }).map_err(|e| fail("read", e))?;
        prop_assert!(samples.len() <= lines.len());
        let good = lines.iter().filter(|l| l.as_slice() == SAMPLE_LINE.as_bytes()).count();
        prop_assert!(samples.len() >= good, "{} samples for {} good lines", samples.len(), good);
        for s in &samples {
            prop_assert!(s.metrics.values().all(|v| v.is_finite()));
        }
    }
}

// ---- cloud commands ----------------------------------------------------------

const COMMAND: &str = r#"{"command":"throttle","command_id":"pump-0042:17/cool/0","incident_id":"pump-0042:17","args":{"rpm":900}}"#;

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn command_decoder(input in prop_oneof![
        8 => inputs(COMMAND.as_bytes().to_vec()),
        1 => (MAX_COMMAND_BYTES - 8..MAX_COMMAND_BYTES + 8).prop_map(|n| {
            let mut b = br#"{"command":"x","pad":""#.to_vec();
            b.resize(n.saturating_sub(2), b'a');
            b.extend_from_slice(b"\"}");
            Input::Bytes(b)
        }),
    ]) {
        let bytes = input.bytes();
        let tree = serde_json::from_slice::<Value>(&bytes).ok();
        let named = tree.as_ref().and_then(|t| t.get("command")).and_then(Value::as_str);
        match parse_command(&bytes) {
            Ok(name) => {
                prop_assert!(bytes.len() <= MAX_COMMAND_BYTES);
                prop_assert!(!name.is_empty() && !name.chars().any(char::is_control));
                if tree.is_some() {
                    prop_assert_eq!(Some(name.as_str()), named);
                }
            }
            Err(CommandError::TooLarge(n)) => {
                prop_assert_eq!(n, bytes.len());
                prop_assert!(n > MAX_COMMAND_BYTES);
            }
            Err(CommandError::BadName(name)) => {
                prop_assert!(name.is_empty() || name.chars().any(char::is_control));
            }
            Err(e @ CommandError::NotACommand(_)) => {
                prop_assert!(bytes.len() <= MAX_COMMAND_BYTES);
                // A tree (no repeated keys) with a "command" string is a
                // command.
                if let Input::Json(_) = input {
                    prop_assert!(named.is_none(), "refused {}: {}", String::from_utf8_lossy(&bytes), e);
                }
            }
        }
        // Whatever the payload, its result is a publishable message.
        let result = command_result("pump-0042", "x", &bytes, CommandOutcome::Refused, None, None);
        let encoded = result.encode().map_err(|e| fail("encode", e))?;
        prop_assert_eq!(CommandResult::decode(&encoded).map_err(|e| fail("decode", e))?, result);
    }
}

// ---- model releases ------------------------------------------------------------

struct Fixture {
    signing: SigningKey,
    verify: VerifyingKey,
    release: Vec<u8>,
    payload: Value,
    samples: Vec<Telemetry>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let release = common::release(&signing, 3, 1);
        let payload = serde_json::from_str(release.payload.get()).expect("payload is JSON");
        let samples = common::clean_fleet(2, 20, 5);
        Fixture {
            verify: signing.verifying_key(),
            release: common::bytes(&release),
            signing,
            payload,
            samples,
        }
    })
}

/// A release envelope around `payload` (any JSON), signed with `key`;
/// written as text, so payloads nested past serde_json's limit go out too.
fn signed(payload: &Value, key: &SigningKey) -> Vec<u8> {
    let text = serde_json::to_string(payload).unwrap_or_default();
    let header = payload.get("header");
    let field = |name: &str, default: Value| {
        header
            .and_then(|h| h.get(name))
            .cloned()
            .unwrap_or(default)
            .to_string()
    };
    format!(
        r#"{{"schema":1,"model":{},"version":{},"key_id":"{}","payload_sha256":"{}","signature":"{}","payload":{}}}"#,
        field("model", Value::from("default")),
        field("version", Value::from(3)),
        vigil_model::key_id(&key.verifying_key()),
        vigil_model::release::sha256_hex(text.as_bytes()),
        base64::engine::general_purpose::STANDARD.encode(key.sign(text.as_bytes()).to_bytes()),
        text,
    )
    .into_bytes()
}

const RELEASE_REASONS: &[&str] = &[
    "too_large",
    "unknown_schema",
    "malformed",
    "unknown_key",
    "bad_checksum",
    "bad_signature",
    "mismatched_envelope",
    "invalid_payload",
];

/// Verifies `bytes`; an accepted release must score samples sanely.
fn check_release(bytes: &[u8]) -> Result<Option<&'static str>, TestCaseError> {
    let f = fixture();
    match decode_and_verify(bytes, &f.verify) {
        Ok(model) => {
            let mut scorer = Scorer::new(model.name().to_owned(), 16);
            scorer
                .install(Arc::new(model))
                .map_err(|e| fail("install", e))?;
            for sample in &f.samples {
                let v = scorer.score(sample, None, 0, ScoredAt::Edge);
                prop_assert!(
                    (0.0..=1.0).contains(&v.score),
                    "score {} out of [0, 1]",
                    v.score
                );
                v.encode().map_err(|e| fail("verdict encode", e))?;
            }
            Ok(None)
        }
        Err(e) => {
            prop_assert!(
                RELEASE_REASONS.contains(&e.reason()),
                "unknown reason {}",
                e.reason()
            );
            prop_assert!(!e.to_string().is_empty());
            Ok(Some(e.reason()))
        }
    }
}

proptest! {
    #![proptest_config(config(4))]

    /// The envelope and payload as bytes: any change to the signed bytes
    /// must be refused by the checksum or signature.
    #[test]
    fn release_decoder(input in inputs(fixture().release.clone())) {
        let bytes = input.bytes();
        check_release(&bytes)?;
    }

    /// The payload mutated and signed again with the trusted key (a buggy
    /// or compromised trainer): the payload parser and the model compiler
    /// refuse it with a reason, or the model scores sanely.
    #[test]
    fn signed_payload_decoder(mutations in json_mutations()) {
        let f = fixture();
        let payload = mutate_json(&f.payload, &mutations);
        let bytes = signed(&payload, &f.signing);
        if let Some(reason) = check_release(&bytes)? {
            // Signed with the trusted key: never a checksum, key or
            // signature problem.
            prop_assert!(!matches!(reason, "bad_checksum" | "bad_signature" | "unknown_key"), "{}", reason);
        }
    }
}

/// The fixture's release itself verifies, re-signed unchanged too (so the
/// mutations start from a valid release).
#[test]
fn the_unmutated_release_verifies() {
    let f = fixture();
    assert!(decode_and_verify(&f.release, &f.verify).is_ok());
    let again = signed(&f.payload, &f.signing);
    if let Err(e) = decode_and_verify(&again, &f.verify) {
        panic!("re-signed payload refused: {e}");
    }
}
