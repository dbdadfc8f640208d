//! Command signing: every command `vigil actions` publishes is a
//! `vigil_schemas::SignedCommand` made with the command signing key
//! (`--command-signing-key`, `vigil commands keygen` makes the pair),
//! bound to the device, valid for `--command-ttl`, with a sequence number
//! the device requires to grow (`vigil_model::command_sig`).
//!
//! # Sequence numbers
//!
//! `seq` is the wall clock in **microseconds** since the Unix epoch,
//! bumped to one above the last number used whenever the clock has not
//! moved on. Without any state on disk it is strictly increasing within a
//! run and, across a restart, starts above everything the previous run
//! used: that run could only have run ahead of the clock by issuing more
//! than a million commands per second. So no counter file is needed (the
//! role stays stateless, like its Kubernetes deployment). The cost: a
//! clock stepped back by more than the restart takes is a clock whose
//! commands devices refuse as `replayed` until it has caught up (NTP
//! slews rather than steps in normal operation); a counter file would
//! avoid that, but lose its guarantee with the volume it lives on.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use vigil_model::command_sig::CommandSignError;
use vigil_model::{key_id, sign_command, SigningKey};
use vigil_service::key_file::{check_key_file, KeyFileRule};

/// Signs commands for devices (one sender uses it; a clone continues
/// the same sequence independently, still above the clock).
#[derive(Clone)]
pub struct CommandSigner {
    key: SigningKey,
    ttl: Duration,
    last_seq: u64,
}

impl std::fmt::Debug for CommandSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSigner")
            .field("key_id", &key_id(&self.key.verifying_key()))
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CommandSigner {
    /// A signer with `key`, its commands valid for `ttl`.
    pub fn new(key: SigningKey, ttl: Duration) -> Self {
        CommandSigner {
            key,
            ttl,
            last_seq: 0,
        }
    }

    /// Loads the private key at `path`, refusing a file its group or
    /// others may read unless `allow_shared`.
    pub fn load(path: &Path, ttl: Duration, allow_shared: bool) -> anyhow::Result<Self> {
        check_key_file(
            path,
            KeyFileRule::with_override(
                "command signing key file",
                "--allow-shared-key-file / VIGIL_ALLOW_SHARED_KEY_FILE=true",
            )
            .group_may_read(allow_shared),
        )?;
        let key = vigil_model::load_signing_key(path)
            .with_context(|| format!("loading --command-signing-key {}", path.display()))?;
        Ok(Self::new(key, ttl))
    }

    /// The key id devices see.
    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    /// The next sequence number: the clock in µs, or one above the last.
    pub fn next_seq(&mut self) -> u64 {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.last_seq = now_us.max(self.last_seq.saturating_add(1));
        self.last_seq
    }

    /// Signs command `body` (JSON object) for `device_id`.
    pub fn sign(&mut self, device_id: &str, body: &[u8]) -> Result<Vec<u8>, CommandSignError> {
        let seq = self.next_seq();
        let now = vigil_service::now_ms();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        sign_command(
            &self.key,
            device_id,
            seq,
            now,
            now.saturating_add(ttl_ms),
            body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_grow_and_restart_above_the_last_run() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut first = CommandSigner::new(key.clone(), Duration::from_secs(60));
        let seqs: Vec<u64> = (0..1000).map(|_| first.next_seq()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        // A burst runs ahead of the clock by at most one µs per command,
        // so a restarted role (a new signer) starts above the last run
        // once the restart took longer than that lead.
        let mut second = CommandSigner::new(key.clone(), Duration::from_secs(60));
        let restarted = second.next_seq();
        let last = seqs[seqs.len() - 1];
        assert!(
            restarted + 1000 > last,
            "lead over the clock {} µs",
            last - restarted
        );
        std::thread::sleep(Duration::from_millis(2));
        let after_restart = CommandSigner::new(key.clone(), Duration::from_secs(60)).next_seq();
        assert!(after_restart > last);

        let bytes = second.sign("pump-1", br#"{"command":"x"}"#).expect("signs");
        let now = vigil_service::now_ms();
        let ok = vigil_model::verify_command(&bytes, &key.verifying_key(), "pump-1", now, None)
            .expect("verifies");
        assert!(ok.expires_ts >= now + 59_000 && ok.expires_ts <= now + 60_000);
    }
}
