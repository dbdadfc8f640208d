//! The process's heaps: figures for `/metrics` and the demo, and the
//! allocator settings every Vigil binary starts with.
//!
//! A Vigil process has two heaps:
//! - **Rust**: jemalloc, the global allocator of `vigil` and `vigil-demo`
//!   (`tikv-jemallocator`). `allocated` is what the program holds;
//!   `resident` adds jemalloc's metadata and the freed pages it has not
//!   yet given back.
//! - **C**: glibc malloc, used by librdkafka and SQLite (C code does not go
//!   through Rust's allocator). `in_use` is what they hold; `from_system`
//!   what glibc took from the kernel for it, over every arena.
//!
//! [`tune_allocators`] is called first thing in `main`. Measured in the
//! demo (BENCHMARKS.md, "Demo: resident memory"): without jemalloc's
//! background threads, the pages a periodic training freed stayed resident
//! (jemalloc purges an arena's freed pages only when that arena is used
//! again), so RSS rose by ~25-50 MiB at each training while the Rust heap
//! in use stayed flat.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts};

/// Heap figures, bytes; zero where the allocator is not in the process or
/// cannot say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Heaps {
    pub rust_allocated: u64,
    pub rust_resident: u64,
    pub c_in_use: u64,
    pub c_from_system: u64,
}

/// Reads both heaps' figures now.
pub fn heaps() -> Heaps {
    let (rust_allocated, rust_resident) = jemalloc_stats();
    let (c_in_use, c_from_system) = glibc_stats();
    Heaps {
        rust_allocated,
        rust_resident,
        c_in_use,
        c_from_system,
    }
}

/// Most glibc malloc arenas (librdkafka's and SQLite's allocations): each
/// thread that allocates under contention may otherwise get an arena of
/// its own (up to 8 per core), whose freed memory other threads do not
/// reuse.
const GLIBC_ARENA_MAX: i32 = 2;

/// Allocator settings for a long-running process; call before spawning
/// threads. Turns on jemalloc's background threads, which return freed
/// pages to the system after its decay time even when the arena that
/// freed them is idle, and caps glibc's arenas. A setting that cannot be
/// applied is logged, not fatal.
pub fn tune_allocators() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background threads unavailable; freed memory is returned only when its arena is used again");
    }
    glibc_arena_max(GLIBC_ARENA_MAX);
}

fn jemalloc_stats() -> (u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot, refreshed by advancing the epoch.
    if epoch::advance().is_err() {
        return (0, 0);
    }
    let bytes = |r: Result<usize, tikv_jemalloc_ctl::Error>| r.map_or(0, |b| b as u64);
    (
        bytes(stats::allocated::read()),
        bytes(stats::resident::read()),
    )
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // FFI into glibc; libc has no safe wrappers for these
mod glibc {
    pub fn stats() -> (u64, u64) {
        // SAFETY: mallinfo2 takes no arguments and reads the allocator's
        // own bookkeeping under its locks.
        let info = unsafe { libc::mallinfo2() };
        (
            (info.uordblks + info.hblkhd) as u64,
            (info.arena + info.hblkhd) as u64,
        )
    }

    pub fn arena_max(n: i32) {
        // SAFETY: mallopt only changes a tuning parameter; M_ARENA_MAX with
        // a positive value is documented as always valid.
        if unsafe { libc::mallopt(libc::M_ARENA_MAX, n) } != 1 {
            tracing::warn!(arenas = n, "glibc refused M_ARENA_MAX");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use glibc::{arena_max as glibc_arena_max, stats as glibc_stats};

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_stats() -> (u64, u64) {
    (0, 0)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_arena_max(_: i32) {}

/// `vigil_heap_bytes{heap, kind}`: [`heaps`] at every scrape.
#[derive(Debug)]
pub struct HeapCollector {
    gauge: GaugeVec,
}

impl HeapCollector {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            gauge: GaugeVec::new(
                Opts::new(
                    "vigil_heap_bytes",
                    "Heap bytes by allocator (heap=rust: jemalloc, heap=c: glibc malloc of librdkafka and SQLite) and kind (allocated/in use, resident/from system)",
                ),
                &["heap", "kind"],
            )?,
        })
    }
}

impl Collector for HeapCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let h = heaps();
        for (heap, kind, v) in [
            ("rust", "allocated", h.rust_allocated),
            ("rust", "resident", h.rust_resident),
            ("c", "in_use", h.c_in_use),
            ("c", "from_system", h.c_from_system),
        ] {
            self.gauge.with_label_values(&[heap, kind]).set(v as f64);
        }
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)] // malloc/free through FFI, to hold C heap
    fn the_c_heap_is_seen() {
        // SAFETY: a plain malloc/free pair of a valid size.
        let p = unsafe { libc::malloc(4 << 20) };
        assert!(!p.is_null());
        let h = heaps();
        unsafe { libc::free(p) };
        #[cfg(target_env = "gnu")]
        assert!(
            h.c_in_use >= 4 << 20 && h.c_from_system >= h.c_in_use,
            "the 4 MiB malloc'd above shows: {h:?}"
        );
    }

    #[test]
    fn the_collector_exports_four_gauges() {
        let registry = prometheus::Registry::new();
        let collector = HeapCollector::new().expect("gauges");
        registry.register(Box::new(collector)).expect("registers");
        let text = crate::metrics::render(&registry).expect("renders");
        for kind in ["allocated", "resident", "in_use", "from_system"] {
            assert!(
                text.contains(&format!("kind=\"{kind}\"")),
                "{kind} missing from:\n{text}"
            );
        }
    }
}
