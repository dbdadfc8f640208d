//! Signed cloud commands: signing ([`sign_command`], `vigil actions`),
//! verifying ([`verify_command`], `vigil-edge`) and the command key pair
//! ([`command_keygen`]). The envelope and its payload are
//! `vigil_schemas::SignedCommand` and `CommandClaims` (see there for the
//! format).
//!
//! The command key is an ed25519 key pair of the same file format as the
//! release key (`keys`), under its own file names, so a deployment keeps
//! the two apart: the private half only in `vigil actions`, the public
//! half on devices. The signature covers a context string plus the exact
//! payload bytes, so a release signature never passes as a command's.
//!
//! [`verify_command`] checks, in order, and refuses with a stable reason
//! code ([`CommandRefusal::reason`]): size and JSON (`malformed`), the
//! envelope's presence (`unsigned`: the old bare command JSON, or anything
//! without a signature), its schema (`malformed`), the key id
//! (`foreign_key`), the signature (`bad_signature`), the payload
//! (`malformed`), the device (`wrong_device`), the deadline (`expired`)
//! and the sequence against the highest accepted so far (`replayed`).

use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::value::RawValue;
use vigil_schemas::{CommandClaims, SignedCommand, SIGNED_COMMAND_CONTEXT};

use crate::keys::{key_id, keygen, GeneratedKeys, KeyError};

/// File name of the command signing key (for `vigil actions`, mode 0600).
pub const COMMAND_SIGNING_KEY_FILE: &str = "command-signing.key";
/// File name of the command verify key (for `vigil-edge`).
pub const COMMAND_VERIFY_KEY_FILE: &str = "command-verify.pub";
/// Largest signed command accepted or made.
pub const MAX_SIGNED_COMMAND_BYTES: usize = 64 * 1024;

/// Makes a command key pair in `dir`: `command-signing.key` (0600) and
/// `command-verify.pub`. Refuses to overwrite either.
pub fn command_keygen(dir: &Path) -> Result<GeneratedKeys, KeyError> {
    let signing = dir.join(COMMAND_SIGNING_KEY_FILE);
    let verify = dir.join(COMMAND_VERIFY_KEY_FILE);
    for path in [&signing, &verify] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    // The key files are made by `keygen` in a fresh directory beside the
    // target (same file system) and renamed into place.
    let scratch = dir.join(format!(".command-keygen-{}", std::process::id()));
    let io = |path: &Path, source| KeyError::Io {
        action: "moving",
        path: path.to_owned(),
        source,
    };
    let made = keygen(&scratch)?;
    let moved = std::fs::rename(&made.signing_key, &signing)
        .map_err(|e| io(&made.signing_key, e))
        .and_then(|()| std::fs::rename(&made.verify_key, &verify).map_err(|e| io(&verify, e)));
    let _ = std::fs::remove_dir_all(&scratch);
    moved?;
    Ok(GeneratedKeys {
        signing_key: signing,
        verify_key: verify,
        key_id: made.key_id,
    })
}

/// Why a command could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum CommandSignError {
    #[error("the command body is not a JSON object: {0}")]
    Body(String),
    #[error("the signed command is {size} bytes, more than {MAX_SIGNED_COMMAND_BYTES}")]
    TooLarge { size: usize },
}

/// Signs command `body` (a JSON object) for `device_id`, valid until
/// `expires_ts` (ms since the epoch), with sequence number `seq`; returns
/// the envelope's bytes, ready to publish.
pub fn sign_command(
    key: &SigningKey,
    device_id: &str,
    seq: u64,
    issued_ts: u64,
    expires_ts: u64,
    body: &[u8],
) -> Result<Vec<u8>, CommandSignError> {
    let body_text = std::str::from_utf8(body).map_err(|e| CommandSignError::Body(e.to_string()))?;
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body_text)
        .map_err(|e| CommandSignError::Body(e.to_string()))?;
    let body = RawValue::from_string(body_text.to_owned())
        .map_err(|e| CommandSignError::Body(e.to_string()))?;
    let claims = CommandClaims {
        device_id: device_id.to_owned(),
        seq,
        expires_ts,
        issued_ts,
        body,
    };
    let text = serde_json::to_string(&claims).map_err(|e| CommandSignError::Body(e.to_string()))?;
    let signature = key.sign(&signed_bytes(text.as_bytes()));
    let envelope = SignedCommand {
        schema: 1,
        key_id: key_id(&key.verifying_key()),
        signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        payload: RawValue::from_string(text).map_err(|e| CommandSignError::Body(e.to_string()))?,
    };
    let bytes = serde_json::to_vec(&envelope).map_err(|e| CommandSignError::Body(e.to_string()))?;
    if bytes.len() > MAX_SIGNED_COMMAND_BYTES {
        return Err(CommandSignError::TooLarge { size: bytes.len() });
    }
    Ok(bytes)
}

fn signed_bytes(payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNED_COMMAND_CONTEXT.len() + payload.len());
    message.extend_from_slice(SIGNED_COMMAND_CONTEXT);
    message.extend_from_slice(payload);
    message
}

/// Why a device refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("not a signed command (no signature envelope)")]
    Unsigned,
    #[error("malformed signed command: {0}")]
    Malformed(String),
    #[error("signed with key {found}; this device trusts command key {expected}")]
    ForeignKey { found: String, expected: String },
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("addressed to device {found:?}, not {expected:?}")]
    WrongDevice { found: String, expected: String },
    #[error("expired at {expires_ts} (now {now_ms}, ms since the epoch)")]
    Expired { expires_ts: u64, now_ms: u64 },
    #[error("sequence {seq} is not above {highest}, the highest accepted")]
    Replayed { seq: u64, highest: u64 },
}

impl CommandRefusal {
    /// Every reason code, in check order.
    pub const REASONS: [&'static str; 7] = [
        "malformed",
        "unsigned",
        "foreign_key",
        "bad_signature",
        "wrong_device",
        "expired",
        "replayed",
    ];

    /// Short, stable reason code for logs and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            CommandRefusal::Unsigned => "unsigned",
            CommandRefusal::Malformed(_) => "malformed",
            CommandRefusal::ForeignKey { .. } => "foreign_key",
            CommandRefusal::BadSignature(_) => "bad_signature",
            CommandRefusal::WrongDevice { .. } => "wrong_device",
            CommandRefusal::Expired { .. } => "expired",
            CommandRefusal::Replayed { .. } => "replayed",
        }
    }
}

/// A command that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCommand {
    /// Its sequence number (the device's new high-water mark).
    pub seq: u64,
    /// Its deadline, ms since the epoch.
    pub expires_ts: u64,
    /// The command JSON object, exactly as signed.
    pub body: Vec<u8>,
}

/// Verifies `bytes` (as received) for `device_id` at `now_ms`, given the
/// highest sequence number accepted so far (`None`: none yet). See the
/// module docs for the order of checks.
pub fn verify_command(
    bytes: &[u8],
    key: &VerifyingKey,
    device_id: &str,
    now_ms: u64,
    highest: Option<u64>,
) -> Result<VerifiedCommand, CommandRefusal> {
    if bytes.len() > MAX_SIGNED_COMMAND_BYTES {
        return Err(CommandRefusal::Malformed(format!(
            "{} bytes, more than {MAX_SIGNED_COMMAND_BYTES}",
            bytes.len()
        )));
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| CommandRefusal::Malformed(format!("not a JSON object: {e}")))?;
    if !object.contains_key("signature") || !object.contains_key("payload") {
        return Err(CommandRefusal::Unsigned);
    }
    drop(object);
    let envelope: SignedCommand =
        serde_json::from_slice(bytes).map_err(|e| CommandRefusal::Malformed(e.to_string()))?;
    if envelope.schema != 1 {
        return Err(CommandRefusal::Malformed(format!(
            "envelope schema {} (this device reads 1)",
            envelope.schema
        )));
    }
    let expected = key_id(key);
    if envelope.key_id != expected {
        return Err(CommandRefusal::ForeignKey {
            found: envelope.key_id,
            expected,
        });
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&envelope.signature)
        .map_err(|e| CommandRefusal::BadSignature(format!("not base64: {e}")))?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|v: Vec<u8>| CommandRefusal::BadSignature(format!("{} bytes, not 64", v.len())))?;
    let payload = envelope.payload.get().as_bytes();
    key.verify_strict(&signed_bytes(payload), &Signature::from_bytes(&raw))
        .map_err(|e| CommandRefusal::BadSignature(e.to_string()))?;
    let claims: CommandClaims =
        serde_json::from_slice(payload).map_err(|e| CommandRefusal::Malformed(e.to_string()))?;
    if claims.device_id != device_id {
        return Err(CommandRefusal::WrongDevice {
            found: claims.device_id,
            expected: device_id.to_owned(),
        });
    }
    if now_ms > claims.expires_ts {
        return Err(CommandRefusal::Expired {
            expires_ts: claims.expires_ts,
            now_ms,
        });
    }
    if let Some(highest) = highest.filter(|h| claims.seq <= *h) {
        return Err(CommandRefusal::Replayed {
            seq: claims.seq,
            highest,
        });
    }
    Ok(VerifiedCommand {
        seq: claims.seq,
        expires_ts: claims.expires_ts,
        body: claims.body.get().as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"command":"throttle","command_id":"d:1/r/0","params":{"level":2}}"#;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn signed(seq: u64, expires: u64) -> Vec<u8> {
        sign_command(&key(1), "pump-1", seq, 1_000, expires, BODY).expect("signs")
    }

    fn check(bytes: &[u8], highest: Option<u64>) -> Result<VerifiedCommand, &'static str> {
        verify_command(bytes, &key(1).verifying_key(), "pump-1", 5_000, highest)
            .map_err(|e| e.reason())
    }

    #[test]
    fn a_signed_command_verifies_and_yields_its_body() {
        let ok = check(&signed(7, 9_000), Some(6)).expect("valid");
        assert_eq!(ok.seq, 7);
        assert_eq!(ok.expires_ts, 9_000);
        assert_eq!(ok.body, BODY);
        assert!(check(&signed(1, 9_000), None).is_ok(), "first command");
    }

    #[test]
    fn each_refusal_has_its_reason() {
        assert_eq!(check(BODY, None), Err("unsigned"), "the old bare format");
        assert_eq!(check(b"not json", None), Err("malformed"));
        assert_eq!(
            check(br#"{"signature":"x","payload":7}"#, None),
            Err("malformed")
        );
        let foreign = sign_command(&key(2), "pump-1", 7, 1_000, 9_000, BODY).expect("signs");
        assert_eq!(check(&foreign, None), Err("foreign_key"));
        let other = sign_command(&key(1), "pump-2", 7, 1_000, 9_000, BODY).expect("signs");
        assert_eq!(check(&other, None), Err("wrong_device"));
        assert_eq!(check(&signed(7, 4_999), None), Err("expired"));
        assert!(
            check(&signed(7, 5_000), None).is_ok(),
            "valid up to its deadline"
        );
        assert_eq!(check(&signed(7, 9_000), Some(7)), Err("replayed"));
        assert_eq!(check(&signed(7, 9_000), Some(8)), Err("replayed"));
        // A foreign signature under this key's id.
        let mut forged: serde_json::Value = serde_json::from_slice(&foreign).expect("json");
        forged["key_id"] = key_id(&key(1).verifying_key()).into();
        let forged = serde_json::to_vec(&forged).expect("json");
        assert_eq!(check(&forged, None), Err("bad_signature"));
        let mut big = BODY.to_vec();
        big.resize(MAX_SIGNED_COMMAND_BYTES + 1, b' ');
        assert_eq!(check(&big, None), Err("malformed"));
    }

    #[test]
    fn a_flipped_byte_anywhere_in_the_payload_is_refused() {
        let bytes = signed(7, 9_000);
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        let start = text.find("\"payload\":").expect("payload") + "\"payload\":".len();
        for i in start..bytes.len() - 1 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            let got = check(&flipped, None);
            assert!(got.is_err(), "flipping byte {i} was accepted");
        }
        // A changed deadline, even when still valid JSON, breaks the signature.
        let longer = text.replace("\"expires_ts\":9000", "\"expires_ts\":99000");
        assert_ne!(longer, text);
        assert_eq!(check(longer.as_bytes(), None), Err("bad_signature"));
    }

    #[test]
    fn a_release_signature_is_not_a_command_signature() {
        // The same key signing the bare payload (as releases are signed)
        // does not verify: the context string differs.
        let bytes = signed(7, 9_000);
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let payload = serde_json::to_string(&v["payload"]).expect("json");
        let bare = key(1).sign(payload.as_bytes());
        v["signature"] = base64::engine::general_purpose::STANDARD
            .encode(bare.to_bytes())
            .into();
        let bytes = serde_json::to_vec(&v).expect("json");
        assert_eq!(check(&bytes, None), Err("bad_signature"));
    }

    #[test]
    fn command_keygen_writes_its_own_file_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = command_keygen(dir.path()).expect("keygen");
        assert!(made.signing_key.ends_with(COMMAND_SIGNING_KEY_FILE));
        assert!(made.verify_key.ends_with(COMMAND_VERIFY_KEY_FILE));
        let secret = crate::keys::load_signing_key(&made.signing_key).expect("load");
        let public = crate::keys::load_verify_key(&made.verify_key).expect("load");
        assert_eq!(secret.verifying_key(), public);
        let entries: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(entries.len(), 2, "no scratch directory left behind");
        assert!(matches!(
            command_keygen(dir.path()),
            Err(KeyError::Exists { .. })
        ));
        // Beside a release key pair in the same directory.
        crate::keys::keygen(dir.path()).expect("release keys beside it");
    }
}
