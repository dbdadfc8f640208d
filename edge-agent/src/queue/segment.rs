//! One segment file of the queue: its on-disk record format (see the
//! parent module's "Layout"), creating, scanning and cutting a segment, and
//! reading one checked record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::{io_err, OpenReport, Position, QueueError};

/// First bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"VIGILQ1\n";
pub(super) const MAGIC_LEN: u64 = MAGIC.len() as u64;
/// Bytes before every record's payload (length and checksum).
pub const RECORD_HEADER: u64 = 8;
pub(super) const SEGMENT_SUFFIX: &str = ".seg";

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) first: u64,
    pub(super) path: PathBuf,
    /// File length.
    pub(super) bytes: u64,
    /// Records in the file.
    pub(super) records: u64,
    /// Offset of the last record, if any.
    pub(super) last_offset: Option<u64>,
}

pub(super) fn segment_file_name(first: u64) -> String {
    format!("{first:020}{SEGMENT_SUFFIX}")
}

pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment_file_name(first))
}

pub(super) fn create_segment(dir: &Path, first: u64) -> Result<Segment, QueueError> {
    let path = segment_path(dir, first);
    let mut file = File::create(&path).map_err(io_err("creating queue segment", &path))?;
    file.write_all(MAGIC)
        .map_err(io_err("writing queue segment", &path))?;
    Ok(Segment {
        first,
        path,
        bytes: MAGIC_LEN,
        records: 0,
        last_offset: None,
    })
}

pub(super) fn remove_file(path: &Path) -> Result<(), QueueError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing queue segment", path)(e)),
    }
}

pub(super) enum RecordError {
    Io(io::Error),
    Bad(&'static str),
}

/// Reads and checks the record at `offset` of a file of `file_len` bytes.
pub(super) fn read_record(file: &File, offset: u64, file_len: u64) -> Result<Vec<u8>, RecordError> {
    if file_len < offset + RECORD_HEADER {
        return Err(RecordError::Bad("record header cut short"));
    }
    let mut header = [0u8; RECORD_HEADER as usize];
    file.read_exact_at(&mut header, offset)
        .map_err(RecordError::Io)?;
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let len = u64::from(u32::from_le_bytes(len_bytes));
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Err(RecordError::Bad("zero-length record (zero-filled tail)"));
    }
    if offset + RECORD_HEADER + len > file_len {
        return Err(RecordError::Bad("record payload cut short"));
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, offset + RECORD_HEADER)
        .map_err(RecordError::Io)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Err(RecordError::Bad("checksum mismatch"));
    }
    Ok(payload)
}

/// Scans one segment: counts its records, finds the offset of record
/// `want` (the saved head), and cuts the file at the first damaged record.
/// Returns None when the file is not a segment at all (it is removed).
pub(super) fn scan_segment(
    path: &Path,
    first: u64,
    want: Option<u64>,
    is_last: bool,
    report: &mut OpenReport,
) -> Result<Option<(Segment, Option<Position>)>, QueueError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening queue segment", path))?;
    let len = file
        .metadata()
        .map_err(io_err("reading metadata of", path))?
        .len();
    let mut magic = [0u8; MAGIC.len()];
    if len < MAGIC_LEN || file.read_exact_at(&mut magic, 0).is_err() || &magic != MAGIC {
        if is_last && len < MAGIC_LEN {
            // Created but never fully written (crash right after a roll).
            tracing::warn!(segment = %path.display(), bytes = len, "queue segment header is torn; rewriting it");
        } else {
            tracing::warn!(segment = %path.display(), bytes = len, "file is not a vigil queue segment; removing it");
        }
        report.corrupt_regions += 1;
        report.corrupt_bytes += len;
        remove_file(path)?;
        return Ok(None);
    }
    let mut offset = MAGIC_LEN;
    let mut records = 0;
    let mut last_offset = None;
    let mut head = None;
    loop {
        if want == Some(records) {
            head = Some(Position {
                segment: first,
                index: records,
                offset,
            });
        }
        if offset == len {
            break;
        }
        match read_record(&file, offset, len) {
            Ok(payload) => {
                last_offset = Some(offset);
                offset += RECORD_HEADER + payload.len() as u64;
                records += 1;
            }
            Err(RecordError::Io(e)) => return Err(io_err("reading queue segment", path)(e)),
            Err(RecordError::Bad(why)) => {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    skipped_bytes = len - offset,
                    records_before = records,
                    why,
                    "damaged queue record (torn write?): cutting the segment here and keeping every record before it"
                );
                report.corrupt_regions += 1;
                report.corrupt_bytes += len - offset;
                file.set_len(offset)
                    .map_err(io_err("truncating queue segment", path))?;
                file.sync_all()
                    .map_err(io_err("syncing queue segment", path))?;
                if want.is_some_and(|w| w > records) {
                    head = Some(Position {
                        segment: first,
                        index: records,
                        offset,
                    });
                }
                break;
            }
        }
    }
    Ok(Some((
        Segment {
            first,
            path: path.to_owned(),
            bytes: offset,
            records,
            last_offset,
        },
        head,
    )))
}
