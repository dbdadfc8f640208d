//! Signing and verification: every way a release can be wrong is refused
//! with its own reason code.

mod common;

use vigil_model::{
    check_newer, decode_and_verify, key_id, sign, verify, KeyRing, ReleaseError, SigningKey,
    VerifiedModel,
};
use vigil_schemas::{Message, ModelRelease};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn signed() -> ModelRelease {
    sign(&common::payload(3), &key(7)).expect("sign")
}

fn reason(r: Result<VerifiedModel, ReleaseError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => {
            // Messages are lowercase and specific.
            let text = e.to_string();
            assert!(
                !text.is_empty() && !text.starts_with(char::is_uppercase),
                "{text}"
            );
            e.reason()
        }
    }
}

fn reencode(release: &ModelRelease) -> Vec<u8> {
    release.encode().expect("encode")
}

#[test]
fn a_signed_release_verifies_and_round_trips_through_bytes() {
    let release = signed();
    let vk = key(7).verifying_key();
    let verified = decode_and_verify(&reencode(&release), &vk).expect("valid release");
    assert_eq!(verified.version(), 3);
    assert_eq!(verified.name(), "default");
    assert_eq!(verified.model().payload(), &common::payload(3));
    assert_eq!(verified.release(), &release);
}

#[test]
fn tampered_truncated_foreign_and_mismatched_releases_are_refused() {
    let release = signed();
    let vk = key(7).verifying_key();

    // Payload changed after signing, checksum left alone.
    let mut t = release.clone();
    let text = t
        .payload
        .get()
        .replace("\"threshold\":0.5", "\"threshold\":0.9");
    assert_ne!(text, t.payload.get());
    t.payload = serde_json::value::RawValue::from_string(text).expect("json");
    assert_eq!(reason(verify(&t, &vk)), "bad_checksum");

    // Payload and checksum changed: the signature catches it.
    t.payload_sha256 = vigil_model::release::sha256_hex(t.payload.get().as_bytes());
    assert_eq!(reason(verify(&t, &vk)), "bad_signature");

    // Signature garbled.
    let mut t = release.clone();
    t.signature = "AAAA".into();
    assert_eq!(reason(verify(&t, &vk)), "bad_signature");

    // Signed by another key (key id differs).
    let other = sign(&common::payload(3), &key(8)).expect("sign");
    assert_eq!(reason(verify(&other, &vk)), "unknown_key");
    // Another key claiming our key id.
    let mut t = other.clone();
    t.key_id = release.key_id.clone();
    assert_eq!(reason(verify(&t, &vk)), "bad_signature");

    // Truncated bytes.
    let bytes = reencode(&release);
    assert_eq!(
        reason(decode_and_verify(&bytes[..bytes.len() / 2], &vk)),
        "malformed"
    );

    // Unknown envelope schema.
    let mut t = release.clone();
    t.schema = 2;
    assert_eq!(reason(verify(&t, &vk)), "unknown_schema");
    let text = String::from_utf8(reencode(&release)).expect("utf8");
    let bumped = text.replacen("\"schema\":1", "\"schema\":2", 1);
    assert_eq!(
        reason(decode_and_verify(bumped.as_bytes(), &vk)),
        "unknown_schema"
    );

    // Envelope relabelled to another version or model.
    let mut t = release.clone();
    t.version = 4;
    assert_eq!(reason(verify(&t, &vk)), "mismatched_envelope");
    let mut t = release.clone();
    t.model = "other".into();
    assert_eq!(reason(verify(&t, &vk)), "mismatched_envelope");

    // Oversized input is refused before parsing.
    let huge = vec![b' '; 70 * 1024];
    assert_eq!(reason(decode_and_verify(&huge, &vk)), "too_large");
}

#[test]
fn a_key_ring_verifies_each_release_with_the_key_it_names() {
    let (old, new, stranger) = (key(7), key(8), key(9));
    let by_old = sign(&common::payload(3), &old).expect("sign");
    let by_new = sign(&common::payload(4), &new).expect("sign");
    let by_stranger = sign(&common::payload(5), &stranger).expect("sign");
    let mut ring = KeyRing::new([old.verifying_key(), new.verifying_key()]);

    // During rotation both keys verify: the new key's release is accepted,
    // the old key's releases still verify.
    assert_eq!(verify(&by_new, &ring).expect("new key").version(), 4);
    assert_eq!(verify(&by_old, &ring).expect("old key").version(), 3);
    assert_eq!(
        decode_and_verify(&reencode(&by_new), &ring)
            .expect("bytes")
            .version(),
        4
    );
    // A key the ring does not hold.
    let e = verify(&by_stranger, &ring).expect_err("unknown");
    assert_eq!(e.reason(), "unknown_key");
    assert!(
        e.to_string().contains(&key_id(&stranger.verifying_key())),
        "{e}"
    );
    // A release claiming the new key's id, signed by another key.
    let mut forged = by_stranger.clone();
    forged.key_id = by_new.key_id.clone();
    assert_eq!(reason(verify(&forged, &ring)), "bad_signature");

    // Retiring the old key: its releases are refused with their own reason.
    ring.retire(&key_id(&old.verifying_key()));
    let e = verify(&by_old, &ring).expect_err("retired");
    assert_eq!(e.reason(), "retired_key");
    assert_eq!(
        e.to_string(),
        format!(
            "release signed by key {}, which is retired",
            key_id(&old.verifying_key())
        )
    );
    assert_eq!(reason(verify(&by_new, &ring)), "ok");
    // Retiring an id the ring never held refuses it as retired, not unknown.
    ring.retire(&key_id(&stranger.verifying_key()));
    assert_eq!(reason(verify(&by_stranger, &ring)), "retired_key");
}

#[test]
fn unknown_payload_format_and_invalid_payload_are_refused() {
    let vk = key(7).verifying_key();
    let mut p = common::payload(1);
    p.format = vigil_model::PAYLOAD_FORMAT + 1;
    // sign() refuses nothing about the format itself; build the release by
    // hand-signing through a valid payload then editing is impossible, so
    // sign the raw bytes the way the trainer would.
    let text = serde_json::to_string(&p).expect("json");
    let release = raw_release(&text, &key(7));
    assert_eq!(reason(verify(&release, &vk)), "unknown_schema");
    // Format 1 (three features per metric) predates the `level` feature;
    // format 3 the novelty's training ranges (a format-3 scorer would not
    // apply them); format 5 the metrics' periods (no seasonal channel).
    for old in [1, 3, 5] {
        p.format = old;
        let text = serde_json::to_string(&p).expect("json");
        let release = raw_release(&text, &key(7));
        assert_eq!(reason(verify(&release, &vk)), "unknown_schema");
    }
    // Training ranges for another number of metrics than the spec's.
    let mut p = common::payload(1);
    if let Some(r) = p.novelty.as_mut().and_then(|n| n.training_ranges.as_mut()) {
        r.pop();
    }
    let text = serde_json::to_string(&p).expect("json");
    let release = raw_release(&text, &key(7));
    assert_eq!(reason(verify(&release, &vk)), "invalid_payload");
    // Periods for another number of metrics, or too many phase slots.
    for change in [
        |n: &mut vigil_model::combine::NoveltyPolicy| n.seasons = Some(vec![0]),
        |n: &mut vigil_model::combine::NoveltyPolicy| n.config.season_slots = 257,
    ] {
        let mut p = common::payload(1);
        change(p.novelty.as_mut().expect("a novelty policy"));
        let text = serde_json::to_string(&p).expect("json");
        let release = raw_release(&text, &key(7));
        assert_eq!(reason(verify(&release, &vk)), "invalid_payload");
    }

    let mut p = common::payload(1);
    p.header.threshold = 1.5;
    assert_eq!(
        sign(&p, &key(7)).expect_err("invalid").reason(),
        "invalid_payload"
    );
    let text = serde_json::to_string(&p).expect("json");
    let release = raw_release(&text, &key(7));
    assert_eq!(reason(verify(&release, &vk)), "invalid_payload");

    let text = format!(
        r#"{{"format":{},"model":"default"}}"#,
        vigil_model::PAYLOAD_FORMAT
    );
    let release = raw_release(&text, &key(7));
    assert_eq!(reason(verify(&release, &vk)), "malformed");
}

fn raw_release(text: &str, key: &SigningKey) -> ModelRelease {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    ModelRelease {
        schema: 1,
        model: "default".into(),
        version: 1,
        key_id: vigil_model::key_id(&key.verifying_key()),
        payload_sha256: vigil_model::release::sha256_hex(text.as_bytes()),
        signature: base64::engine::general_purpose::STANDARD
            .encode(key.sign(text.as_bytes()).to_bytes()),
        payload: serde_json::value::RawValue::from_string(text.to_owned()).expect("json"),
    }
}

#[test]
fn version_helper_rejects_older_and_equal() {
    assert!(check_newer("m", None, 1).is_ok());
    assert!(check_newer("m", Some(1), 2).is_ok());
    assert_eq!(
        check_newer("m", Some(2), 2)
            .expect_err("must fail")
            .reason(),
        "older_version"
    );
    assert_eq!(
        check_newer("m", Some(3), 2)
            .expect_err("must fail")
            .reason(),
        "older_version"
    );
}
