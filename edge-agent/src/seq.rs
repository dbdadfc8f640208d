//! Sequence numbers that survive power loss: a durable high-water mark,
//! reserved in blocks.
//!
//! The queue is fsynced every `--queue-fsync-ms`, but the uplink sends a
//! record as soon as it is appended. A power cut can therefore lose the
//! queue's tail *after* its records reached the cloud; if the agent then
//! resumed from the last record on disk it would stamp new samples with
//! sequence numbers the cloud already holds, and `(device_id, seq)` would
//! name two records. Instead, before a sequence number is used, a block of
//! them is reserved in `{state_dir}/seq.json` (write, fsync, rename,
//! directory fsync): `{"reserved_through": N, "boot_id": "…"}`. Whatever a
//! power cut loses, no number above the last durable reservation was ever
//! used, so after a *reboot* the agent resumes above it and skips the rest
//! of the block (at most `--seq-block` numbers, logged).
//!
//! A crash of the process alone (`kill -9`, a panic) loses nothing the
//! kernel holds, so the last queued record is exact: when the boot id
//! (`/proc/sys/kernel/random/boot_id`) is the one recorded with the
//! reservation, the agent resumes right after that record, with no gap. A
//! clean stop records the last number used as the reservation, so the next
//! start (rebooted or not) continues without a gap as well. Without a boot
//! id (no /proc) every unclean restart counts as a reboot: gaps, never
//! reuse.
//!
//! Cost: one small durable file replacement per block (two fsyncs and a
//! rename), on the sampling path: see the crate README ("Sequence numbers
//! and power loss") for the measured µs per sample and flash writes per
//! minute, and why this was chosen over fsyncing each record before it is
//! sent.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The reservation file, in the state directory.
pub const SEQ_FILE: &str = "seq.json";
/// Where Linux says which boot this is.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// Largest sequence number the agent uses: the wire contract's bound
/// (the stores keep `seq` as a signed 64-bit integer).
pub const MAX_SEQ: u64 = i64::MAX as u64;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    reserved_through: u64,
    #[serde(default)]
    boot_id: Option<String>,
}

/// Where the sampler resumes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The last sequence number taken before this run (the next sample
    /// gets one more).
    pub last_seq: u64,
    /// Numbers skipped because the previous run may have used (and sent)
    /// them before a reboot lost its queue's tail.
    pub skipped: u64,
}

/// The reservation: the numbers up to `reserved_through` may be used
/// without writing anything.
#[derive(Debug)]
pub struct SeqReservation {
    path: PathBuf,
    block: u64,
    boot_id: Option<String>,
    reserved_through: u64,
}

/// This boot's id, if the system has one.
pub fn read_boot_id(path: &Path) -> Option<String> {
    let text = crate::fsutil::read_limited(path, 256).ok()?;
    let id = String::from_utf8_lossy(&text).trim().to_owned();
    (!id.is_empty()).then_some(id)
}

impl SeqReservation {
    /// Opens the reservation in `state_dir`, given the seq of the last
    /// record in the queue (0: none) and this boot's id; says where to
    /// resume. An unreadable file is an error: guessing could reuse
    /// numbers.
    pub fn open(
        state_dir: &Path,
        block: u64,
        last_queued: u64,
        boot_id: Option<String>,
    ) -> io::Result<(SeqReservation, Resume)> {
        let path = state_dir.join(SEQ_FILE);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice::<Saved>(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {e}; remove it only if no record of this device can be in the cloud",
                        path.display()
                    ),
                )
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let resume = match &saved {
            None => Resume {
                last_seq: last_queued,
                skipped: 0,
            },
            // Same boot: the page cache survived, the queue's last record
            // is the last number used.
            Some(s) if boot_id.is_some() && s.boot_id == boot_id => Resume {
                last_seq: last_queued,
                skipped: 0,
            },
            Some(s) => Resume {
                last_seq: last_queued.max(s.reserved_through),
                skipped: s.reserved_through.saturating_sub(last_queued),
            },
        };
        let reservation = SeqReservation {
            path,
            block: block.max(1),
            boot_id,
            // Nothing is reserved for this run yet: the first number used
            // writes a block.
            reserved_through: resume.last_seq,
        };
        Ok((reservation, resume))
    }

    /// Makes sure `seq` may be used: when it is past the reservation,
    /// reserves `seq ..= seq + block - 1` durably first. An error means
    /// the number must not be used.
    pub fn take(&mut self, seq: u64) -> io::Result<()> {
        if seq <= self.reserved_through {
            return Ok(());
        }
        if seq > MAX_SEQ {
            return Err(io::Error::other(format!(
                "sequence numbers are exhausted (at most {MAX_SEQ})"
            )));
        }
        let through = seq.saturating_add(self.block - 1).min(MAX_SEQ);
        self.save(through)?;
        self.reserved_through = through;
        Ok(())
    }

    /// A clean stop: records `last_used` as the reservation, so the next
    /// start continues right after it.
    pub fn close(&mut self, last_used: u64) -> io::Result<()> {
        self.save(last_used)?;
        self.reserved_through = last_used;
        Ok(())
    }

    /// The highest number reserved.
    pub fn reserved_through(&self) -> u64 {
        self.reserved_through
    }

    fn save(&self, through: u64) -> io::Result<()> {
        let saved = Saved {
            reserved_through: through,
            boot_id: self.boot_id.clone(),
        };
        let bytes = serde_json::to_vec(&saved).map_err(io::Error::other)?;
        crate::fsutil::write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(id: &str) -> Option<String> {
        Some(id.to_owned())
    }

    #[test]
    fn a_new_device_starts_at_one_and_reserves_a_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, resume) = SeqReservation::open(dir.path(), 100, 0, boot("a")).expect("opens");
        assert_eq!(
            resume,
            Resume {
                last_seq: 0,
                skipped: 0
            }
        );
        r.take(1).expect("reserves");
        assert_eq!(r.reserved_through(), 100);
        let saved: Saved =
            serde_json::from_slice(&std::fs::read(dir.path().join(SEQ_FILE)).expect("file"))
                .expect("json");
        assert_eq!(saved.reserved_through, 100);
        // Inside the block nothing is written.
        std::fs::remove_file(dir.path().join(SEQ_FILE)).expect("remove");
        r.take(100).expect("inside");
        assert!(!dir.path().join(SEQ_FILE).exists());
        r.take(101).expect("next block");
        assert_eq!(r.reserved_through(), 200);
    }

    #[test]
    fn after_a_reboot_the_rest_of_the_block_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, _) = SeqReservation::open(dir.path(), 100, 0, boot("a")).expect("opens");
        for seq in 1..=130 {
            r.take(seq).expect("reserves");
        }
        // The power cut lost the queue's tail: its last record is 90.
        let (_, resume) = SeqReservation::open(dir.path(), 100, 90, boot("b")).expect("opens");
        assert_eq!(
            resume,
            Resume {
                last_seq: 200,
                skipped: 110
            }
        );
        // Unknown boot ids count as a reboot.
        let (_, resume) = SeqReservation::open(dir.path(), 100, 130, None).expect("opens");
        assert_eq!(
            resume,
            Resume {
                last_seq: 200,
                skipped: 70
            }
        );
    }

    #[test]
    fn a_crash_without_reboot_and_a_clean_stop_leave_no_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, _) = SeqReservation::open(dir.path(), 100, 0, boot("a")).expect("opens");
        for seq in 1..=130 {
            r.take(seq).expect("reserves");
        }
        // kill -9: same boot, the queue holds 130.
        let (mut r, resume) = SeqReservation::open(dir.path(), 100, 130, boot("a")).expect("opens");
        assert_eq!(
            resume,
            Resume {
                last_seq: 130,
                skipped: 0
            }
        );
        r.take(131).expect("reserves");
        r.close(131).expect("closes");
        // A clean stop, then a reboot: continues at 132.
        let (_, resume) = SeqReservation::open(dir.path(), 100, 131, boot("b")).expect("opens");
        assert_eq!(
            resume,
            Resume {
                last_seq: 131,
                skipped: 0
            }
        );
    }

    #[test]
    fn a_damaged_reservation_stops_the_start_and_the_bound_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(SEQ_FILE), b"{not json").expect("write");
        let err = SeqReservation::open(dir.path(), 100, 5, boot("a")).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        std::fs::remove_file(dir.path().join(SEQ_FILE)).expect("remove");
        let (mut r, _) =
            SeqReservation::open(dir.path(), 100, MAX_SEQ - 1, boot("a")).expect("opens");
        r.take(MAX_SEQ).expect("the last number");
        assert_eq!(r.reserved_through(), MAX_SEQ);
        assert!(r.take(MAX_SEQ + 1).is_err());
    }
}
