//! Where the demo's memory is: resident set of this process and of the
//! broker children, split by allocator, so a long run shows which part
//! grows (BENCHMARKS.md, "Demo: resident memory").
//!
//! - **Rust heap**: jemalloc, the global allocator of `vigil-demo` (and of
//!   `vigil`): bytes the program holds (`allocated`) and pages jemalloc
//!   keeps resident (`resident`, includes its metadata and dirty pages not
//!   yet returned).
//! - **C heap**: glibc malloc, used by librdkafka and SQLite (C libraries
//!   do not go through Rust's allocator): bytes in use and bytes taken
//!   from the system (`mallinfo2`, every arena).
//! - The rest of the RSS is code, thread stacks and mapped files.

use std::path::Path;

/// One sample, KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// VmRSS of this process.
    pub rss: u64,
    /// jemalloc: bytes allocated by the program.
    pub rust_allocated: u64,
    /// jemalloc: resident pages it holds.
    pub rust_resident: u64,
    /// glibc malloc: bytes in use (all arenas, mmapped chunks included).
    pub c_in_use: u64,
    /// glibc malloc: bytes obtained from the system.
    pub c_from_system: u64,
    /// VmRSS of the Kafka broker child (0 when not running).
    pub kafka: u64,
    /// VmRSS of the MQTT broker child (0 when not running).
    pub mqtt: u64,
}

/// CSV header of [`Sample::csv_row`].
pub const CSV_HEADER: &str =
    "seconds,rss_kib,rust_allocated_kib,rust_resident_kib,c_in_use_kib,c_from_system_kib,kafka_kib,mqtt_kib";

impl Sample {
    /// Takes a sample; `kafka` and `mqtt` are the broker children's pids.
    pub fn take(kafka: Option<u32>, mqtt: Option<u32>) -> Self {
        let (rust_allocated, rust_resident) = jemalloc();
        let (c_in_use, c_from_system) = glibc();
        let child = |pid: Option<u32>| pid.and_then(|p| rss_of(&p.to_string())).unwrap_or(0);
        Self {
            rss: rss_of("self").unwrap_or(0),
            rust_allocated,
            rust_resident,
            c_in_use,
            c_from_system,
            kafka: child(kafka),
            mqtt: child(mqtt),
        }
    }

    /// One CSV line (no newline) for a sample taken `seconds` into the run.
    pub fn csv_row(&self, seconds: u64) -> String {
        format!(
            "{seconds},{},{},{},{},{},{},{}",
            self.rss,
            self.rust_allocated,
            self.rust_resident,
            self.c_in_use,
            self.c_from_system,
            self.kafka,
            self.mqtt
        )
    }

    /// Short form for the status line, MiB.
    pub fn brief(&self) -> String {
        let mib = |kib: u64| kib / 1024;
        format!(
            "mem {} MiB (rust {}/{}, c {}/{})",
            mib(self.rss),
            mib(self.rust_allocated),
            mib(self.rust_resident),
            mib(self.c_in_use),
            mib(self.c_from_system)
        )
    }
}

/// Appends samples to a CSV file (`--memory-log`).
#[derive(Debug)]
pub struct Log {
    file: std::fs::File,
}

impl Log {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use std::io::Write as _;
        let mut file = std::fs::File::create(path)
            .with_context(|| format!("creating --memory-log {}", path.display()))?;
        writeln!(file, "{CSV_HEADER}")
            .with_context(|| format!("writing --memory-log {}", path.display()))?;
        Ok(Self { file })
    }

    /// Appends one row; a failed write is logged, not fatal (the demo
    /// goes on without its memory log).
    pub fn append(&mut self, seconds: u64, sample: &Sample) {
        use std::io::Write as _;
        if let Err(e) = writeln!(self.file, "{}", sample.csv_row(seconds)) {
            tracing::warn!(error = %e, "could not append to --memory-log");
        }
    }
}

/// jemalloc's (allocated, resident), KiB; zeros when its statistics cannot
/// be read.
fn jemalloc() -> (u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot refreshed by advancing the epoch.
    if epoch::advance().is_err() {
        return (0, 0);
    }
    let kib = |r: Result<usize, tikv_jemalloc_ctl::Error>| r.map_or(0, |b| b as u64 / 1024);
    (kib(stats::allocated::read()), kib(stats::resident::read()))
}

/// glibc malloc's (in use, from the system), KiB, over every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // an FFI call; libc has no safe wrapper
fn glibc() -> (u64, u64) {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's
    // own bookkeeping under its locks.
    let info = unsafe { libc::mallinfo2() };
    let kib = |b: usize| b as u64 / 1024;
    (
        kib(info.uordblks + info.hblkhd),
        kib(info.arena + info.hblkhd),
    )
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc() -> (u64, u64) {
    (0, 0)
}

/// VmRSS (KiB) of `/proc/<pid>`.
pub fn rss_of(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)] // malloc/free through FFI, to hold C heap
    fn a_sample_sees_this_process_and_the_c_heap() {
        // Hold some C heap so the figure cannot be zero by accident.
        // SAFETY: a plain malloc/free pair of a valid size.
        let p = unsafe { libc::malloc(4 << 20) };
        assert!(!p.is_null());
        let s = Sample::take(None, Some(std::process::id()));
        unsafe { libc::free(p) };
        assert!(s.rss > 0, "{s:?}");
        assert_eq!(s.kafka, 0, "no pid, no figure");
        assert!(s.mqtt > 0, "a pid that exists is read: {s:?}");
        #[cfg(target_env = "gnu")]
        assert!(
            s.c_in_use >= 4096 && s.c_from_system >= s.c_in_use,
            "the 4 MiB malloc'd above shows: {s:?}"
        );
        let row = s.csv_row(7);
        assert_eq!(row.split(',').count(), CSV_HEADER.split(',').count());
        assert!(row.starts_with("7,"));
    }
}
