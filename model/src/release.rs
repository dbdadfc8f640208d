//! Signing and verifying model releases.
//!
//! The trainer serialises a [`ReleasePayload`] once, signs exactly those
//! bytes (ed25519) and records their sha256; the bytes travel untouched
//! inside [`ModelRelease::payload`]. A verifier (cloud scorer, edge agent,
//! `vigil models verify`) checks, in this order: size, envelope schema, key
//! id (the key ring must hold it, not retired: [`VerifyKeys`]), checksum, signature, payload format, payload shape, envelope/payload
//! agreement, payload validity. Only then is the payload compiled into a
//! [`VerifiedModel`]. Every failure is a [`ReleaseError`] with a stable
//! [`ReleaseError::reason`] code for metrics and `vigil.dlq`.
//!
//! Version ordering is the caller's decision (a scorer refuses older or equal
//! versions, an operator tool may list them); [`check_newer`] is the rule.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use vigil_schemas::release::MAX_RELEASE_BYTES;
use vigil_schemas::{DecodeError, Message, ModelRelease, ReleaseHeader, SCHEMA_VERSION};

use crate::keyring::{KeyRing, KeyStatus};
use crate::keys::key_id;
use crate::model::{Model, ModelError};
use crate::payload::{ReleasePayload, PAYLOAD_FORMAT};

/// A release whose signature, checksum and contents were checked.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    release: ModelRelease,
    model: Model,
}

impl VerifiedModel {
    /// The release as published (re-publish or export it unchanged).
    pub fn release(&self) -> &ModelRelease {
        &self.release
    }

    /// The compiled model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The signed header (provenance, validation metrics, threshold).
    pub fn header(&self) -> &ReleaseHeader {
        &self.model.payload().header
    }

    /// Model name.
    pub fn name(&self) -> &str {
        &self.release.model
    }

    /// Model version.
    pub fn version(&self) -> u64 {
        self.release.version
    }
}

/// Why a release was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("release is {size} bytes; at most {MAX_RELEASE_BYTES} allowed")]
    TooLarge { size: usize },
    #[error("release envelope: {0}")]
    Decode(#[source] DecodeError),
    #[error("unknown release schema {found}; this build reads {expected}")]
    UnknownSchema { found: u32, expected: u32 },
    #[error("release payload format {found} is unknown; this build reads {PAYLOAD_FORMAT}")]
    UnknownFormat { found: String },
    #[error("release signed by key {found}, which is not a configured verify key ({expected})")]
    UnknownKey { found: String, expected: String },
    #[error("release signed by key {key_id}, which is retired")]
    RetiredKey { key_id: String },
    #[error("release payload sha256 is {actual}; the envelope says {claimed}")]
    BadChecksum { claimed: String, actual: String },
    #[error("release signature does not verify with key {key_id}: {why}")]
    BadSignature { key_id: String, why: String },
    #[error("release payload is malformed: {0}")]
    Malformed(String),
    #[error(
        "release envelope names {envelope_model} v{envelope_version} but the signed payload is {payload_model} v{payload_version}"
    )]
    MismatchedEnvelope {
        envelope_model: String,
        envelope_version: u64,
        payload_model: String,
        payload_version: u64,
    },
    #[error("release payload is invalid: {0}")]
    Invalid(#[from] ModelError),
    #[error("release {model} v{candidate} is not newer than the current v{current}")]
    NotNewer {
        model: String,
        current: u64,
        candidate: u64,
    },
    #[error("encoding release payload: {0}")]
    Encode(String),
}

impl ReleaseError {
    /// Short, stable code for metrics labels and DLQ records.
    pub fn reason(&self) -> &'static str {
        match self {
            ReleaseError::TooLarge { .. } => "too_large",
            ReleaseError::Decode(DecodeError::TooLarge { .. }) => "too_large",
            ReleaseError::Decode(DecodeError::UnknownSchema { .. })
            | ReleaseError::UnknownSchema { .. }
            | ReleaseError::UnknownFormat { .. } => "unknown_schema",
            ReleaseError::Decode(_) | ReleaseError::Malformed(_) => "malformed",
            ReleaseError::UnknownKey { .. } => "unknown_key",
            ReleaseError::RetiredKey { .. } => "retired_key",
            ReleaseError::BadChecksum { .. } => "bad_checksum",
            ReleaseError::BadSignature { .. } => "bad_signature",
            ReleaseError::MismatchedEnvelope { .. } => "mismatched_envelope",
            ReleaseError::Invalid(_) => "invalid_payload",
            ReleaseError::NotNewer { .. } => "older_version",
            ReleaseError::Encode(_) => "encode_failed",
        }
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serialises, signs and wraps `payload`. Fails if the payload does not
/// compile (the trainer never publishes what a scorer would refuse) or the
/// release would exceed [`MAX_RELEASE_BYTES`].
pub fn sign(payload: &ReleasePayload, key: &SigningKey) -> Result<ModelRelease, ReleaseError> {
    Model::from_payload(payload.clone())?;
    let text = serde_json::to_string(payload).map_err(|e| ReleaseError::Encode(e.to_string()))?;
    let signature = key.sign(text.as_bytes());
    let release = ModelRelease {
        schema: SCHEMA_VERSION,
        model: payload.header.model.clone(),
        version: payload.header.version,
        key_id: key_id(&key.verifying_key()),
        payload_sha256: sha256_hex(text.as_bytes()),
        signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        payload: RawValue::from_string(text).map_err(|e| ReleaseError::Encode(e.to_string()))?,
    };
    let size = encoded_len(&release)?;
    if size > MAX_RELEASE_BYTES {
        return Err(ReleaseError::TooLarge { size });
    }
    Ok(release)
}

fn encoded_len(release: &ModelRelease) -> Result<usize, ReleaseError> {
    release
        .encode()
        .map(|b| b.len())
        .map_err(|e| ReleaseError::Encode(e.to_string()))
}

/// The keys a release may be verified with: one [`VerifyingKey`] or a
/// [`KeyRing`].
pub trait VerifyKeys {
    /// The key that must have signed a release carrying `key_id`, or why
    /// no key may ([`ReleaseError::UnknownKey`], [`ReleaseError::RetiredKey`]).
    fn key_for(&self, key_id: &str) -> Result<&VerifyingKey, ReleaseError>;
}

impl VerifyKeys for VerifyingKey {
    fn key_for(&self, id: &str) -> Result<&VerifyingKey, ReleaseError> {
        let expected = key_id(self);
        if id == expected {
            Ok(self)
        } else {
            Err(ReleaseError::UnknownKey {
                found: id.to_owned(),
                expected,
            })
        }
    }
}

impl VerifyKeys for KeyRing {
    fn key_for(&self, id: &str) -> Result<&VerifyingKey, ReleaseError> {
        match self.status(id) {
            KeyStatus::Active(key) => Ok(key),
            KeyStatus::Retired => Err(ReleaseError::RetiredKey {
                key_id: id.to_owned(),
            }),
            KeyStatus::Unknown => Err(ReleaseError::UnknownKey {
                found: id.to_owned(),
                expected: self.summary(),
            }),
        }
    }
}

/// Decodes release bytes (as read from `vigil.models`, MQTT or a file) and
/// verifies them with `keys`. Oversized input is refused before parsing.
pub fn decode_and_verify<K: VerifyKeys + ?Sized>(
    bytes: &[u8],
    keys: &K,
) -> Result<VerifiedModel, ReleaseError> {
    let release =
        ModelRelease::decode_limited(bytes, MAX_RELEASE_BYTES).map_err(ReleaseError::Decode)?;
    verify(&release, keys)
}

/// Only the format field, to tell "newer payload" from "garbage".
#[derive(Deserialize)]
struct FormatProbe {
    format: Option<serde_json::Value>,
}

/// Verifies a decoded release with the key `keys` holds for its key id (see
/// the module docs for the order of checks) and compiles its payload.
pub fn verify<K: VerifyKeys + ?Sized>(
    release: &ModelRelease,
    keys: &K,
) -> Result<VerifiedModel, ReleaseError> {
    let size = encoded_len(release)?;
    if size > MAX_RELEASE_BYTES {
        return Err(ReleaseError::TooLarge { size });
    }
    if release.schema != SCHEMA_VERSION {
        return Err(ReleaseError::UnknownSchema {
            found: release.schema,
            expected: SCHEMA_VERSION,
        });
    }
    let key = keys.key_for(&release.key_id)?;
    let expected = release.key_id.clone();
    let bytes = release.payload.get().as_bytes();
    let actual = sha256_hex(bytes);
    if actual != release.payload_sha256 {
        return Err(ReleaseError::BadChecksum {
            claimed: release.payload_sha256.clone(),
            actual,
        });
    }
    let bad_signature = |why: String| ReleaseError::BadSignature {
        key_id: expected.clone(),
        why,
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&release.signature)
        .map_err(|e| bad_signature(format!("signature is not base64: {e}")))?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|v: Vec<u8>| bad_signature(format!("signature is {} bytes, not 64", v.len())))?;
    key.verify_strict(bytes, &Signature::from_bytes(&raw))
        .map_err(|e| bad_signature(e.to_string()))?;

    match serde_json::from_slice::<FormatProbe>(bytes) {
        Ok(FormatProbe { format: Some(f) }) if f.as_u64() != Some(u64::from(PAYLOAD_FORMAT)) => {
            return Err(ReleaseError::UnknownFormat {
                found: f.to_string(),
            })
        }
        Ok(_) => {}
        Err(e) => return Err(ReleaseError::Malformed(e.to_string())),
    }
    let payload: ReleasePayload =
        serde_json::from_slice(bytes).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
    if payload.header.model != release.model || payload.header.version != release.version {
        return Err(ReleaseError::MismatchedEnvelope {
            envelope_model: release.model.clone(),
            envelope_version: release.version,
            payload_model: payload.header.model.clone(),
            payload_version: payload.header.version,
        });
    }
    let model = Model::from_payload(payload)?;
    Ok(VerifiedModel {
        release: release.clone(),
        model,
    })
}

/// The version rule: a release replaces the current one only when its
/// version is strictly greater.
pub fn check_newer(model: &str, current: Option<u64>, candidate: u64) -> Result<(), ReleaseError> {
    match current {
        Some(current) if candidate <= current => Err(ReleaseError::NotNewer {
            model: model.to_owned(),
            current,
            candidate,
        }),
        _ => Ok(()),
    }
}
