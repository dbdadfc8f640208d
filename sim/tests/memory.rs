//! Memory stays O(devices): live heap does not grow with simulated time and
//! grows linearly with fleet size. Measured with a counting allocator, so
//! this is its own test binary.

#![allow(unsafe_code)] // a GlobalAlloc wrapper cannot be written without it

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use vigil_fleet_sim::{AnomalyConfig, AnomalyKind, Fleet, FleetConfig};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The two tests share the counter; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// SAFETY: forwards to the system allocator unchanged, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn config(devices: usize) -> FleetConfig {
    FleetConfig {
        devices,
        day_ms: 200_000,
        jitter_ms: 100,
        anomalies: AnomalyConfig::only(&AnomalyKind::ALL, 20.0),
        ..FleetConfig::default()
    }
}

#[test]
fn live_heap_does_not_grow_with_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut fleet = Fleet::new(config(500)).expect("valid config");
    // Warm up so every device has entered and left episodes.
    let mut checksum = 0u64;
    for r in fleet.by_ref().take(200_000) {
        checksum = checksum.wrapping_add(r.telemetry.seq);
    }
    let before = live();
    for r in fleet.by_ref().take(600_000) {
        checksum = checksum.wrapping_add(r.telemetry.seq);
    }
    let after = live();
    assert!(checksum > 0);
    // A device may hold one pending episode (a few hundred bytes) at either
    // moment; allow that for every device, nothing proportional to records.
    let slack = 500 * 256;
    assert!(
        (after - before).abs() < slack,
        "live heap went from {before} to {after} bytes over 600k records"
    );
}

#[test]
fn live_heap_scales_with_devices() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = live();
    let small = Fleet::new(config(1_000)).expect("valid config");
    let small_bytes = live() - base;
    let large = Fleet::new(config(10_000)).expect("valid config");
    let large_bytes = live() - base - small_bytes;
    drop((small, large));
    let per_device = large_bytes / 10_000;
    assert!(per_device < 1_024, "{per_device} bytes per device");
    let ratio = large_bytes as f64 / small_bytes as f64;
    assert!(
        (8.0..12.0).contains(&ratio),
        "10x devices took {ratio}x memory"
    );
}
