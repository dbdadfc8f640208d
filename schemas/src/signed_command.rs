//! SignedCommand: the envelope every cloud → device command travels in on
//! `vigil/devices/{id}/commands` (QoS 1), and [`CommandClaims`], what it
//! signs.
//!
//! ```json
//! {"schema":1,"key_id":"3f1c…","signature":"<base64 ed25519>",
//!  "payload":{"device_id":"pump-1","seq":1764930000123456,
//!             "expires_ts":1764930300123,"issued_ts":1764930000123,
//!             "body":{"command":"throttle","command_id":"pump-1:10/cool/0",…}}}
//! ```
//!
//! Like a model release, the envelope carries the signed payload as the
//! exact bytes that were signed (`serde_json::value::RawValue`): a verifier
//! checks the signature over those bytes without re-serialising anything.
//! The signature is ed25519 over [`SIGNED_COMMAND_CONTEXT`] followed by the
//! payload bytes, made with the command key — a key separate from the
//! model-release key; the context string means a signature made for
//! anything else (a release) never verifies as a command even under the
//! same key. `key_id` names the public key (16 hex digits of its sha256),
//! so a device can say "signed by another key".
//!
//! The payload binds the command to one device (`device_id`), a deadline
//! (`expires_ts`, ms since the Unix epoch, absolute) and an order (`seq`,
//! strictly increasing per sender; a device refuses a `seq` not above the
//! highest it accepted). `body` is the command itself — the JSON object a
//! device's command handler receives on stdin, with its `"command"` name.
//! Signing and verifying live in `vigil-model` (`command_sig`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codec::Message;
use crate::rules::{check_device_id, ValidationError};

/// The bytes a command signature starts with, before the payload bytes.
pub const SIGNED_COMMAND_CONTEXT: &[u8] = b"vigil-signed-command/1\n";

/// A signed cloud command, as published on `vigil/devices/{id}/commands`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SignedCommand {
    /// Envelope schema version; always 1.
    pub schema: u32,
    /// Identifies the public key that verifies `signature` (16 hex digits
    /// of the sha256 of the 32 key bytes).
    pub key_id: String,
    /// Base64 (standard, padded) ed25519 signature of
    /// `"vigil-signed-command/1\n"` followed by the payload bytes exactly
    /// as they appear.
    pub signature: String,
    /// The signed payload: a [`CommandClaims`] object.
    #[schemars(with = "CommandClaims")]
    pub payload: Box<RawValue>,
}

impl PartialEq for SignedCommand {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
            && self.key_id == other.key_id
            && self.signature == other.signature
            && self.payload.get() == other.payload.get()
    }
}

impl Message for SignedCommand {
    const KIND: &'static str = "signed command";

    fn schema(&self) -> u32 {
        self.schema
    }

    fn check(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

/// What a command signature covers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CommandClaims {
    /// The one device that may run it.
    pub device_id: String,
    /// Strictly increasing per sender (`vigil actions` uses microseconds
    /// since the Unix epoch, bumped past the last one it used).
    pub seq: u64,
    /// The device refuses it after this time, ms since the Unix epoch.
    pub expires_ts: u64,
    /// When it was signed, ms since the Unix epoch (informational).
    pub issued_ts: u64,
    /// The command: a JSON object with a `"command"` string, handed to
    /// the device's command handler on stdin.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub body: Box<RawValue>,
}

impl CommandClaims {
    /// Checks the device id's form.
    pub fn check(&self) -> Result<(), ValidationError> {
        check_device_id(&self.device_id)
    }
}
