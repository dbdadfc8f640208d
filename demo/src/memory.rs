//! Where the demo's memory is: resident set of this process and of the
//! broker children, split by allocator, so a long run shows which part
//! grows (BENCHMARKS.md, "Demo: resident memory").
//!
//! The heaps are [`vigil_service::memory`]'s (the Rust heap: jemalloc;
//! the C heap: glibc malloc of librdkafka and SQLite); the rest of the RSS
//! is code, thread stacks and mapped files.

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
        let heaps = vigil_service::memory::heaps();
        let child = |pid: Option<u32>| pid.and_then(|p| rss_of(&p.to_string())).unwrap_or(0);
        Self {
            rss: rss_of("self").unwrap_or(0),
            rust_allocated: heaps.rust_allocated / 1024,
            rust_resident: heaps.rust_resident / 1024,
            c_in_use: heaps.c_in_use / 1024,
            c_from_system: heaps.c_from_system / 1024,
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
    fn a_sample_sees_this_process_and_its_children() {
        let s = Sample::take(None, Some(std::process::id()));
        assert!(s.rss > 0, "{s:?}");
        assert_eq!(s.kafka, 0, "no pid, no figure");
        assert!(s.mqtt > 0, "a pid that exists is read: {s:?}");
        let row = s.csv_row(7);
        assert_eq!(row.split(',').count(), CSV_HEADER.split(',').count());
        assert!(row.starts_with("7,"));
    }
}
