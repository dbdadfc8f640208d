//! Small file helpers the agent's persistent state shares: atomic durable
//! replacement (the accepted model, the queue's state) and bounded reads of
//! files that must be small (releases, keys).

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably: a temporary file in
/// the same directory, fsync, rename over `path`, fsync of the directory.
/// After a power loss the file is either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, true)
}

/// Like [`write_atomic`] without the fsyncs: atomic against crashes of the
/// process, not against power loss. For files that are rewritten often and
/// only informational (the status file).
pub fn write_replace_fast(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, false)
}

fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// Reads at most `limit` bytes of `path`; a longer file is an error of
/// kind `InvalidData` that says so (instead of reading a huge file into
/// memory).
pub fn read_limited(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn limited_reads_refuse_large_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        fs::write(&path, vec![b'x'; 11]).expect("write");
        assert_eq!(read_limited(&path, 11).expect("fits").len(), 11);
        let err = read_limited(&path, 10).expect_err("too large");
        assert!(err.to_string().contains("larger than 10"), "{err}");
    }
}
