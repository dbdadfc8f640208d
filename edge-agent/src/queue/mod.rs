//! The store-and-forward queue: an on-disk FIFO of uplink records, bounded
//! in bytes, that survives `kill -9` and detects torn writes after a power
//! loss.
//!
//! Every sample's uplink messages are appended here first and published from
//! here, online or not, so the queue is the single source of truth for what
//! the cloud has not yet acknowledged: a record is removed ([`Queue::ack`])
//! only after the broker's PUBACK for every message in it, and records are
//! read back in the order they were written.
//!
//! # Layout
//!
//! A directory of segment files `{first:020}.seg`, named by the number of
//! their first record, plus a small `state` file:
//!
//! ```text
//! segment = MAGIC ("VIGILQ1\n") record*
//! record  = len: u32 LE | crc32: u32 LE | payload: len bytes
//! ```
//!
//! The CRC (crc32fast, IEEE polynomial) covers the length bytes and the
//! payload, so a torn length, a torn payload and a zero-filled tail (what a
//! file system may leave after a power loss) are all detected. On open each
//! segment is scanned; at the first bad record the rest of that segment is
//! cut off with a warning and counted in [`Queue::corrupt`], and everything
//! else is delivered.
//!
//! The `state` file records the head (the oldest unacknowledged record) and
//! the counters; it is replaced atomically (write, fsync, rename). Acks only
//! mark it dirty and [`Queue::sync`] writes it, so after a crash a few
//! acknowledged records may be sent again: at-least-once, harmless because
//! every message carries `(device_id, seq)`. Drops are written before the
//! dropped segment is deleted, so the drop counter is exact across crashes.
//!
//! # Bounds
//!
//! The sum of the segment files never exceeds `max_bytes`. When an append
//! would exceed it, whole segments are dropped from the oldest end, and
//! every unacknowledged record in them is counted in [`Queue::dropped`].
//! Segments are `max_bytes / 8` (4 KiB to 4 MiB), so one drop discards at
//! most an eighth of the buffer. The newest segment is never dropped nor
//! deleted: it always holds the last record appended, which is how the agent
//! recovers its sequence number after a crash ([`Queue::last_record`]).
//!
//! # Durability
//!
//! Appends go to the page cache (a `kill -9` loses nothing that was
//! appended); [`Queue::sync`] fsyncs the newest segment and is called on a
//! timer and at shutdown, so a power loss loses at most that interval, and a
//! record torn by it is detected and skipped.
//!
//! Crates such as `queue-file` and `yaque` were considered: neither
//! checksums records nor bounds the queue in bytes with a drop-oldest
//! counter, which is the part that matters here.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod segment;

use segment::{
    create_segment, read_record, remove_file, scan_segment, segment_file_name, segment_path,
    RecordError, Segment,
};
pub use segment::{MAGIC, RECORD_HEADER};
use segment::{MAGIC_LEN, SEGMENT_SUFFIX};

const STATE_FILE: &str = "state";
/// Largest record number a segment name or the saved head may hold
/// (`i64::MAX`: 290 million years of records at 1 kHz), so that record
/// numbers never overflow; larger ones are damage.
const MAX_RECORD_NUMBER: u64 = i64::MAX as u64;
/// Smallest accepted `max_bytes`.
pub const MIN_MAX_BYTES: u64 = 64 * 1024;
const MIN_SEGMENT: u64 = 4 * 1024;
const MAX_SEGMENT: u64 = 4 * 1024 * 1024;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("record of {size} bytes does not fit a queue segment of {segment} bytes")]
    TooLarge { size: u64, segment: u64 },
    #[error("an empty record cannot be queued")]
    Empty,
    #[error("queue limit of {max} bytes is below the minimum of {MIN_MAX_BYTES}")]
    LimitTooSmall { max: u64 },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Size limits of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most bytes all segment files may use together.
    pub max_bytes: u64,
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
}

impl QueueLimits {
    /// Limits for a queue of `max_bytes`, with segments of an eighth of it
    /// (4 KiB to 4 MiB).
    pub fn new(max_bytes: u64) -> Result<Self, QueueError> {
        if max_bytes < MIN_MAX_BYTES {
            return Err(QueueError::LimitTooSmall { max: max_bytes });
        }
        Ok(QueueLimits {
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(MIN_SEGMENT, MAX_SEGMENT),
        })
    }

    /// Largest payload one record may carry.
    pub fn max_record(&self) -> u64 {
        self.segment_bytes - MAGIC_LEN - RECORD_HEADER
    }
}

/// Where a record starts (or, for "after" positions, where the next one
/// would): segment, index of the record within it, byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// First record number of the segment (its file name).
    pub segment: u64,
    /// Index of the record within the segment.
    pub index: u64,
    /// Byte offset in the segment file.
    pub offset: u64,
}

impl Position {
    fn start(segment: u64) -> Self {
        Position {
            segment,
            index: 0,
            offset: MAGIC_LEN,
        }
    }

    /// A queue-wide record number (dense within a segment).
    pub fn record(&self) -> u64 {
        self.segment.saturating_add(self.index)
    }

    fn key(&self) -> (u64, u64) {
        (self.segment, self.offset)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    head: Option<Position>,
    dropped: u64,
    corrupt: u64,
}

/// What [`Queue::open`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Unacknowledged records found.
    pub records: u64,
    /// Damaged regions cut off (torn tails, bad checksums, bad segment
    /// files), each logged.
    pub corrupt_regions: u64,
    /// Bytes cut off with them.
    pub corrupt_bytes: u64,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Where the record was written.
    pub position: Position,
    /// Unacknowledged records dropped (oldest first) to make room for it.
    pub dropped: u64,
}

/// A read position for sending; see [`Queue::read`].
#[derive(Debug)]
pub struct Reader {
    pos: Position,
    file: Option<(u64, File)>,
}

/// A record read for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Where it is.
    pub position: Position,
    /// Where the next one starts: pass this to [`Queue::ack`] once the record
    /// was delivered.
    pub next: Position,
    /// The payload as appended.
    pub payload: Vec<u8>,
}

/// The on-disk queue. Not thread-safe by itself: the agent keeps it behind a
/// mutex and every operation is short.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    limits: QueueLimits,
    /// Oldest first; never empty; the last one is written to.
    segments: VecDeque<Segment>,
    writer: File,
    /// The oldest unacknowledged record (or the end, when empty).
    head: Position,
    dropped: u64,
    corrupt: u64,
    state_dirty: bool,
    unsynced: bool,
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, checking every record and
    /// cutting off damaged tails (each logged with a warning).
    pub fn open(dir: &Path, limits: QueueLimits) -> Result<(Queue, OpenReport), QueueError> {
        fs::create_dir_all(dir).map_err(io_err("creating queue directory", dir))?;
        let state_path = dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(s)
                    if s.head.is_some_and(|h| {
                        h.segment > MAX_RECORD_NUMBER || h.index > MAX_RECORD_NUMBER
                    }) =>
                {
                    tracing::warn!(path = %state_path.display(), head = ?s.head,
                        "queue state file names a head out of range; starting from the oldest record (some may be sent twice)");
                    State { head: None, ..s }
                }
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(path = %state_path.display(), error = %e,
                        "queue state file is unreadable; starting from the oldest record (some may be sent twice) and counters from zero");
                    State::default()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io_err("reading", &state_path)(e)),
        };

        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
            let entry = entry.map_err(io_err("listing", dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
                // Only the names this queue writes: 20 digits (`+1.seg`
                // or `1.seg` would parse to a segment whose file has
                // another name), and a record number that leaves room to
                // count on (found by fuzzing: a segment named u64::MAX
                // overflowed the next record number).
                match stem.parse::<u64>() {
                    Ok(first)
                        if first <= MAX_RECORD_NUMBER
                            && name.as_ref() == segment_file_name(first).as_str() =>
                    {
                        firsts.push(first)
                    }
                    _ => {
                        tracing::warn!(file = %name, "ignoring a file that is not a queue segment")
                    }
                }
            }
        }
        firsts.sort_unstable();

        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        let mut head = None;
        for (i, first) in firsts.iter().copied().enumerate() {
            let path = segment_path(dir, first);
            let is_last = i + 1 == firsts.len();
            let want = state.head.filter(|h| h.segment == first).map(|h| h.index);
            match scan_segment(&path, first, want, is_last, &mut report)? {
                Some((segment, head_pos)) => {
                    if let Some(p) = head_pos {
                        head = Some(p);
                    }
                    segments.push_back(segment);
                }
                None => continue,
            }
        }

        let next_first = match (segments.back(), state.head) {
            (Some(s), _) => s.first + s.records,
            (None, Some(h)) => h.record(),
            (None, None) => 0,
        };
        if segments.is_empty() {
            segments.push_back(create_segment(dir, next_first)?);
        }
        // Segments before the head's are fully acknowledged (deleted late by
        // a crash): remove them now.
        let head = match (head, state.head) {
            (Some(h), _) => h,
            (None, Some(h)) if segments.iter().any(|s| s.first > h.segment) => {
                // The head's segment is gone: everything older was consumed or
                // dropped; start at the next segment.
                Position::start(
                    segments
                        .iter()
                        .find(|s| s.first > h.segment)
                        .map_or(next_first, |s| s.first),
                )
            }
            (None, Some(_)) => {
                // The head lies past every record left (its records were cut
                // off as damaged): start after the last one.
                segments
                    .back()
                    .map_or(Position::start(next_first), |s| Position {
                        segment: s.first,
                        index: s.records,
                        offset: s.bytes,
                    })
            }
            (None, None) => Position::start(segments.front().map_or(next_first, |s| s.first)),
        };
        while segments.len() > 1 && segments.front().is_some_and(|s| s.first < head.segment) {
            if let Some(old) = segments.pop_front() {
                remove_file(&old.path)?;
            }
        }

        let active = segments.back().map(|s| s.path.clone()).unwrap_or_default();
        let writer = OpenOptions::new()
            .append(true)
            .open(&active)
            .map_err(io_err("opening queue segment", &active))?;
        let mut queue = Queue {
            dir: dir.to_owned(),
            limits,
            segments,
            writer,
            head,
            dropped: state.dropped,
            corrupt: state.corrupt + report.corrupt_regions,
            state_dirty: report.corrupt_regions > 0,
            unsynced: false,
        };
        queue.head = queue.normalize(queue.head);
        report.records = queue.len();
        if queue.state_dirty {
            queue.save_state()?;
        }
        Ok((queue, report))
    }

    /// Appends one record, dropping the oldest segments first when the
    /// queue would exceed its byte limit.
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended, QueueError> {
        if payload.is_empty() {
            return Err(QueueError::Empty);
        }
        let size = RECORD_HEADER + payload.len() as u64;
        if payload.len() as u64 > self.limits.max_record() {
            return Err(QueueError::TooLarge {
                size,
                segment: self.limits.segment_bytes,
            });
        }
        if self.active().bytes + size > self.limits.segment_bytes {
            self.roll()?;
        }
        let mut dropped = 0;
        while self.total_bytes() + size > self.limits.max_bytes && self.segments.len() > 1 {
            dropped += self.drop_oldest()?;
        }

        let mut buf = Vec::with_capacity(size as usize);
        let len = (payload.len() as u32).to_le_bytes();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len);
        hasher.update(payload);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&hasher.finalize().to_le_bytes());
        buf.extend_from_slice(payload);

        let active = self.segments.back().map(|s| (s.path.clone(), s.bytes));
        let (path, before) = active.unwrap_or_default();
        if let Err(e) = self.writer.write_all(&buf) {
            // Leave no partial record behind: it would hide the records
            // appended after it.
            let _ = self.writer.set_len(before);
            return Err(io_err("appending to queue segment", &path)(e));
        }
        self.unsynced = true;
        let segment = self.active_mut();
        let position = Position {
            segment: segment.first,
            index: segment.records,
            offset: segment.bytes,
        };
        segment.records += 1;
        segment.bytes += size;
        segment.last_offset = Some(position.offset);
        Ok(Appended { position, dropped })
    }

    /// A reader positioned at the oldest unacknowledged record.
    pub fn reader(&self) -> Reader {
        Reader {
            pos: self.head,
            file: None,
        }
    }

    /// The next record at or after `reader`'s position, or None when the
    /// reader has caught up. A reader left behind by drops or acks skips
    /// to the head. A record whose checksum fails now (the disk changed
    /// under the queue) is logged, counted, and the rest of its segment
    /// skipped.
    pub fn read(&mut self, reader: &mut Reader) -> Result<Option<ReadRecord>, QueueError> {
        loop {
            if reader.pos.key() < self.head.key() {
                reader.pos = self.head;
            }
            let Some(seg_i) = self
                .segments
                .iter()
                .position(|s| s.first == reader.pos.segment)
            else {
                // The reader's segment is gone (dropped or acknowledged).
                if reader.pos == self.head {
                    return Ok(None);
                }
                reader.pos = self.head;
                continue;
            };
            let (seg_first, seg_bytes, seg_path, is_active) = {
                let s = &self.segments[seg_i];
                (
                    s.first,
                    s.bytes,
                    s.path.clone(),
                    seg_i + 1 == self.segments.len(),
                )
            };
            if reader.pos.offset >= seg_bytes {
                if is_active {
                    return Ok(None);
                }
                reader.pos = Position::start(self.segments[seg_i + 1].first);
                continue;
            }
            if reader.file.as_ref().is_none_or(|(f, _)| *f != seg_first) {
                let file =
                    File::open(&seg_path).map_err(io_err("opening queue segment", &seg_path))?;
                reader.file = Some((seg_first, file));
            }
            let Some((_, file)) = reader.file.as_ref() else {
                continue;
            };
            match read_record(file, reader.pos.offset, seg_bytes) {
                Ok(payload) => {
                    let position = reader.pos;
                    let next = Position {
                        segment: seg_first,
                        index: position.index + 1,
                        offset: position.offset + RECORD_HEADER + payload.len() as u64,
                    };
                    reader.pos = next;
                    return Ok(Some(ReadRecord {
                        position,
                        next: self.normalize(next),
                        payload,
                    }));
                }
                Err(RecordError::Io(e)) => {
                    return Err(io_err("reading queue segment", &seg_path)(e))
                }
                Err(RecordError::Bad(why)) => {
                    tracing::warn!(segment = %seg_path.display(), offset = reader.pos.offset, why,
                        "queue record failed its check on read; skipping the rest of the segment");
                    self.corrupt += 1;
                    self.state_dirty = true;
                    let end = Position {
                        segment: seg_first,
                        index: self.segments[seg_i].records,
                        offset: seg_bytes,
                    };
                    if self.head.key() < end.key() && self.head.segment == seg_first {
                        self.head = self.normalize(end);
                    }
                    reader.pos = end;
                    if is_active {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Removes every record before `next` (a [`ReadRecord::next`]): they
    /// were delivered. Acks behind the head are ignored.
    pub fn ack(&mut self, next: Position) -> Result<(), QueueError> {
        let next = self.normalize(next);
        if next.key() <= self.head.key() {
            return Ok(());
        }
        self.head = next;
        self.state_dirty = true;
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.first < next.segment)
        {
            if let Some(old) = self.segments.pop_front() {
                remove_file(&old.path)?;
            }
        }
        Ok(())
    }

    /// Makes appended records durable (fsync of the segment being written)
    /// and saves the head and counters if they changed. The data fsync runs
    /// on a duplicate of the file handle, so a caller may release its lock
    /// first: see [`Queue::sync_state`].
    pub fn sync(&mut self) -> Result<(), QueueError> {
        if let Some(file) = self.sync_state()? {
            file.sync_data()
                .map_err(io_err("syncing queue segment", &self.dir))?;
        }
        Ok(())
    }

    /// Saves the state if dirty and returns a duplicate handle of the
    /// segment being written when it has unsynced appends (the caller
    /// fsyncs it, possibly without holding the queue's lock).
    pub fn sync_state(&mut self) -> Result<Option<File>, QueueError> {
        if self.state_dirty {
            self.save_state()?;
        }
        if !self.unsynced {
            return Ok(None);
        }
        self.unsynced = false;
        let path = self.active().path.clone();
        self.writer
            .try_clone()
            .map(Some)
            .map_err(io_err("duplicating queue segment handle", &path))
    }

    /// Unacknowledged records.
    pub fn len(&self) -> u64 {
        let mut n = 0;
        for s in &self.segments {
            if s.first == self.head.segment {
                n += s.records.saturating_sub(self.head.index);
            } else if s.first > self.head.segment {
                n += s.records;
            }
        }
        n
    }

    /// Whether every record was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of unacknowledged records, headers included.
    pub fn bytes(&self) -> u64 {
        let mut n = 0;
        for s in &self.segments {
            if s.first == self.head.segment {
                n += s.bytes.saturating_sub(self.head.offset);
            } else if s.first > self.head.segment {
                n += s.bytes - MAGIC_LEN;
            }
        }
        n
    }

    /// Bytes the segment files use on disk (what `max_bytes` bounds).
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Unacknowledged records dropped because the queue was full, over the
    /// queue's lifetime.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Damaged regions skipped (torn tails, failed checksums), over the
    /// queue's lifetime.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// The limits the queue was opened with.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// The payload of the last record ever appended that is still on disk
    /// (acknowledged or not), if any.
    pub fn last_record(&self) -> Result<Option<Vec<u8>>, QueueError> {
        for s in self.segments.iter().rev() {
            if let Some(offset) = s.last_offset {
                let file = File::open(&s.path).map_err(io_err("opening queue segment", &s.path))?;
                return match read_record(&file, offset, s.bytes) {
                    Ok(p) => Ok(Some(p)),
                    Err(RecordError::Io(e)) => Err(io_err("reading queue segment", &s.path)(e)),
                    Err(RecordError::Bad(_)) => Ok(None),
                };
            }
        }
        Ok(None)
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty (open creates one, drops keep the last).
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Moves a position at the end of a finished segment to the start of
    /// the next one.
    fn normalize(&self, mut pos: Position) -> Position {
        while let Some(i) = self.segments.iter().position(|s| s.first == pos.segment) {
            let s = &self.segments[i];
            if pos.offset >= s.bytes && i + 1 < self.segments.len() {
                pos = Position::start(self.segments[i + 1].first);
            } else {
                break;
            }
        }
        pos
    }

    fn roll(&mut self) -> Result<(), QueueError> {
        let (first, path) = {
            let a = self.active();
            (a.first + a.records, a.path.clone())
        };
        // The finished segment is complete: make it durable now.
        self.writer
            .sync_data()
            .map_err(io_err("syncing queue segment", &path))?;
        let segment = create_segment(&self.dir, first)?;
        self.writer = OpenOptions::new()
            .append(true)
            .open(&segment.path)
            .map_err(io_err("opening queue segment", &segment.path))?;
        self.unsynced = false;
        // A fully acknowledged previous segment stays until an ack moves
        // past it: until this segment holds a record, it holds the last one.
        self.segments.push_back(segment);
        Ok(())
    }

    /// Drops the oldest segment; returns how many unacknowledged records
    /// went with it. The counter is saved before the file is deleted.
    fn drop_oldest(&mut self) -> Result<u64, QueueError> {
        let Some(oldest) = self.segments.front() else {
            return Ok(0);
        };
        let lost = if oldest.first == self.head.segment {
            oldest.records.saturating_sub(self.head.index)
        } else if oldest.first > self.head.segment {
            oldest.records
        } else {
            0
        };
        let path = oldest.path.clone();
        let next = self.segments[1].first;
        self.dropped += lost;
        if self.head.segment < next {
            self.head = Position::start(next);
        }
        self.save_state()?;
        self.segments.pop_front();
        remove_file(&path)?;
        Ok(lost)
    }

    fn save_state(&mut self) -> Result<(), QueueError> {
        let state = State {
            head: Some(self.head),
            dropped: self.dropped,
            corrupt: self.corrupt,
        };
        let bytes = serde_json::to_vec(&state).unwrap_or_default();
        let path = self.dir.join(STATE_FILE);
        crate::fsutil::write_atomic(&path, &bytes).map_err(io_err("saving queue state", &path))?;
        self.state_dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
