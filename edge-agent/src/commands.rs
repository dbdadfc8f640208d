//! The gate every cloud command passes before it runs: signature, device,
//! deadline and replay checks ([`vigil_model::verify_command`]) with the
//! configured command verify key (`--command-verify-key`), and the durable
//! high-water mark of accepted sequence numbers.
//!
//! Without a command verify key every command is refused (reason
//! `no_key`): an agent that cannot tell the cloud's commands from anyone
//! else's runs none. A refused command never reaches the handler; it is
//! logged with its reason and counted per reason in `status.json`
//! (`commands_refused`).
//!
//! Replays: the highest accepted `seq` is kept in
//! `{state_dir}/commands.json` (`{"highest_seq": N}`), written durably
//! (write, fsync, rename, directory fsync) *before* the command is handed
//! to the handler, so neither a restart nor a power cut reopens a command
//! that already ran. A command that arrives after a newer one is refused
//! as `replayed` too: the cloud signs in order, so that only happens to a
//! command that was overtaken (it is not run late).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use vigil_model::{verify_command, CommandRefusal, VerifiedCommand, VerifyingKey};

use crate::fsutil;

/// The high-water-mark file, in the state directory.
pub const COMMANDS_FILE: &str = "commands.json";
/// Reason code of a command refused because no key is configured.
pub const NO_KEY: &str = "no_key";

#[derive(Debug, Default, Serialize, Deserialize)]
struct HighWater {
    highest_seq: Option<u64>,
}

/// Refused commands, per reason (serialised as an object in
/// `status.json`).
#[derive(Debug, Default, Serialize)]
pub struct RefusalCounts {
    pub no_key: AtomicU64,
    pub malformed: AtomicU64,
    pub unsigned: AtomicU64,
    pub foreign_key: AtomicU64,
    pub bad_signature: AtomicU64,
    pub wrong_device: AtomicU64,
    pub expired: AtomicU64,
    pub replayed: AtomicU64,
    /// The high-water mark could not be persisted (the command is not
    /// run: running it could not be made replay-proof).
    pub persist_failed: AtomicU64,
}

impl RefusalCounts {
    /// The counter of `reason`, if it is one.
    fn counter(&self, reason: &str) -> Option<&AtomicU64> {
        Some(match reason {
            NO_KEY => &self.no_key,
            "malformed" => &self.malformed,
            "unsigned" => &self.unsigned,
            "foreign_key" => &self.foreign_key,
            "bad_signature" => &self.bad_signature,
            "wrong_device" => &self.wrong_device,
            "expired" => &self.expired,
            "replayed" => &self.replayed,
            "persist_failed" => &self.persist_failed,
            _ => return None,
        })
    }

    /// Adds one to the counter of `reason` (an unknown reason counts as
    /// `persist_failed`).
    pub fn count(&self, reason: &str) {
        self.counter(reason)
            .unwrap_or(&self.persist_failed)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The count of `reason` (0 for an unknown one).
    pub fn get(&self, reason: &str) -> u64 {
        self.counter(reason)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Why the gate refused a command.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("no command verify key is configured (--command-verify-key / VIGIL_EDGE_COMMAND_VERIFY_KEY); commands are refused")]
    NoKey,
    #[error(transparent)]
    Refused(#[from] CommandRefusal),
    #[error("persisting the command high-water mark to {path}: {source}")]
    Persist {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GateError {
    /// Short, stable reason code for logs and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            GateError::NoKey => NO_KEY,
            GateError::Refused(r) => r.reason(),
            GateError::Persist { .. } => "persist_failed",
        }
    }
}

/// Verifies commands and keeps the replay high-water mark.
#[derive(Debug)]
pub struct CommandGate {
    key: Option<VerifyingKey>,
    device_id: String,
    path: PathBuf,
    highest: Option<u64>,
}

impl CommandGate {
    /// Opens the gate of `device_id` with its high-water mark in
    /// `state_dir`. A high-water-mark file that cannot be read is an error
    /// (starting from none would reopen every old command).
    pub fn open(
        state_dir: &Path,
        device_id: &str,
        key: Option<VerifyingKey>,
    ) -> std::io::Result<CommandGate> {
        let path = state_dir.join(COMMANDS_FILE);
        let highest = match fsutil::read_limited(&path, 4096) {
            Ok(bytes) => {
                serde_json::from_slice::<HighWater>(&bytes)
                    .map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: {e}", path.display()),
                        )
                    })?
                    .highest_seq
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(CommandGate {
            key,
            device_id: device_id.to_owned(),
            path,
            highest,
        })
    }

    /// The highest sequence number accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Checks `bytes` at `now_ms`; on success the new high-water mark is
    /// durable before the command is returned.
    pub fn admit(&mut self, bytes: &[u8], now_ms: u64) -> Result<VerifiedCommand, GateError> {
        let key = self.key.as_ref().ok_or(GateError::NoKey)?;
        let command = verify_command(bytes, key, &self.device_id, now_ms, self.highest)?;
        let mark = HighWater {
            highest_seq: Some(command.seq),
        };
        let text = serde_json::to_vec(&mark).unwrap_or_default();
        fsutil::write_atomic(&self.path, &text).map_err(|source| GateError::Persist {
            path: self.path.clone(),
            source,
        })?;
        self.highest = Some(command.seq);
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{sign_command, SigningKey};

    const BODY: &[u8] = br#"{"command":"reboot"}"#;

    #[test]
    fn the_high_water_mark_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_bytes(&[9; 32]);
        let cmd = |seq| sign_command(&key, "d1", seq, 0, 10_000, BODY).expect("signs");
        let mut gate =
            CommandGate::open(dir.path(), "d1", Some(key.verifying_key())).expect("opens");
        assert_eq!(gate.admit(&cmd(5), 1_000).expect("valid").body, BODY);
        assert_eq!(
            gate.admit(&cmd(5), 1_000).map_err(|e| e.reason()).err(),
            Some("replayed")
        );
        drop(gate);
        let mut gate =
            CommandGate::open(dir.path(), "d1", Some(key.verifying_key())).expect("reopens");
        assert_eq!(gate.highest(), Some(5));
        assert_eq!(
            gate.admit(&cmd(4), 1_000).map_err(|e| e.reason()).err(),
            Some("replayed")
        );
        assert!(gate.admit(&cmd(6), 1_000).is_ok());
        let mut keyless = CommandGate::open(dir.path(), "d1", None).expect("opens");
        assert_eq!(
            keyless.admit(&cmd(7), 1_000).map_err(|e| e.reason()).err(),
            Some(NO_KEY)
        );
        std::fs::write(dir.path().join(COMMANDS_FILE), "garbage").expect("write");
        assert!(CommandGate::open(dir.path(), "d1", None).is_err());
    }

    #[test]
    fn counts_are_kept_per_reason() {
        let counts = RefusalCounts::default();
        for reason in CommandRefusal::REASONS
            .iter()
            .chain(&[NO_KEY, "persist_failed"])
        {
            counts.count(reason);
            assert_eq!(counts.get(reason), 1, "{reason}");
        }
        let json = serde_json::to_value(&counts).expect("json");
        assert_eq!(json["replayed"], 1);
    }
}
