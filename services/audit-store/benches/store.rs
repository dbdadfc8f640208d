//! Embedded audit store (SQLite) benchmarks, in a temporary directory:
//!
//! 1. **Write path**: verdict JSON from 1,000 devices decoded and written in
//!    sink-sized batches (`VIGIL_BENCH_BATCH`, default 20,000 — the sink's
//!    default — per fsynced transaction), as `vigil audit` does after
//!    reading them from Kafka; also the write alone.
//! 2. **10 M fixture**: 1,000 devices × 10,000 verdicts over 10 days (1,000
//!    per device-day), bulk-loaded in 100,000-row transactions.
//! 3. **Point lookup**: `record(device_id, seq)` at random, p50/p99.
//! 4. **Device-day range**: one device's whole day (1,000 rows, one page of
//!    the maximum size), newest first, at random, p50/p99; and a 100-row
//!    page.
//!
//! `cargo bench -p vigil-audit-store --bench store` (release). Environment:
//! `VIGIL_BENCH_VERDICTS` (fixture size, default 10000000),
//! `VIGIL_BENCH_DIR` (where the temporary directory goes, default $TMPDIR).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_audit_store::sqlite::SqliteStore;
use vigil_audit_store::{RangeQuery, WriteBatch};
use vigil_schemas::{Contribution, Message, ScoredAt, Verdict};

/// 2026-11-23T00:00:00Z.
const T0: u64 = 1_795_392_000_000;
const DAY: u64 = 86_400_000;
const DEVICES: u64 = 1000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Verdict `i` of a fleet of [`DEVICES`]: device `i % DEVICES`, its
/// `i / DEVICES`-th record, `per_day` records a device-day; one in 50
/// anomalous with contributions.
fn verdict(i: u64, per_day: u64) -> Verdict {
    let device = i % DEVICES;
    let seq = i / DEVICES;
    let anomaly = i.is_multiple_of(50);
    Verdict {
        alarm: None,
        schema: 1,
        device_id: format!("pump-{device:05}"),
        seq,
        event_ts: T0 + seq * (DAY / per_day) + device,
        ingest_ts: Some(T0 + seq * (DAY / per_day) + device + 3),
        scored_ts: T0 + seq * (DAY / per_day) + device + 5,
        model: "default".into(),
        model_version: Some(1 + seq / 5000),
        score: (i % 1000) as f64 / 1000.0,
        threshold: 0.8,
        anomaly,
        contributions: if anomaly {
            vec![
                Contribution {
                    metric: "temperature_c".into(),
                    share: 0.7,
                },
                Contribution {
                    metric: "vibration_rms".into(),
                    share: 0.2,
                },
            ]
        } else {
            Vec::new()
        },
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// A small deterministic generator (no dependency needed for "random").
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let total = env_or("VIGIL_BENCH_VERDICTS", 10_000_000).max(DEVICES * 10);
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base)?;

    // 1. Write path: decode + write, 5,000-verdict transactions.
    {
        let store = SqliteStore::open(&dir.path().join("write.db"))?;
        let n: u64 = 500_000;
        let bsz = env_or("VIGIL_BENCH_BATCH", 20_000) as usize;
        let encoded: Vec<Vec<u8>> = (0..n)
            .map(|i| verdict(i, 1000).encode())
            .collect::<Result<_, _>>()?;
        let started = Instant::now();
        let mut write_time = Duration::ZERO;
        for chunk in encoded.chunks(bsz) {
            let verdicts = chunk
                .iter()
                .map(|b| Verdict::decode(b))
                .collect::<Result<Vec<_>, _>>()?;
            let batch = WriteBatch {
                verdicts,
                ..WriteBatch::default()
            };
            let t = Instant::now();
            store.write_blocking(&batch)?;
            write_time += t.elapsed();
        }
        let elapsed = started.elapsed();
        println!(
            "write path: {n} verdicts decoded + written in {bsz}-verdict fsynced transactions: {:.0} verdicts/s (write alone {:.0} verdicts/s)",
            n as f64 / elapsed.as_secs_f64(),
            n as f64 / write_time.as_secs_f64()
        );
        // Replaying the same batches (what a restart after a crash does).
        let started = Instant::now();
        for chunk in encoded.chunks(5000).take(20) {
            let verdicts = chunk
                .iter()
                .map(|b| Verdict::decode(b))
                .collect::<Result<Vec<_>, _>>()?;
            store.write_blocking(&WriteBatch {
                verdicts,
                ..WriteBatch::default()
            })?;
        }
        println!(
            "replay of 100,000 already-stored verdicts: {:.0} verdicts/s",
            100_000.0 / started.elapsed().as_secs_f64()
        );
    }

    // 2. The fixture.
    let per_day = (total / DEVICES / 10).max(1);
    let store = Arc::new(SqliteStore::open(&dir.path().join("audit.db"))?);
    let started = Instant::now();
    let loaded = store.bulk_load((0..total).map(|i| verdict(i, per_day)))?;
    let load = started.elapsed();
    let size: u64 = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "fixture: {loaded} verdicts ({DEVICES} devices, {per_day} per device-day) loaded in {:.1} s ({:.0}/s), {:.2} GiB on disk",
        load.as_secs_f64(),
        loaded as f64 / load.as_secs_f64(),
        size as f64 / (1u64 << 30) as f64
    );
    let per_device = total / DEVICES;
    let mut rng = Lcg(42);

    // 3. Point lookups.
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let device = rng.next(DEVICES);
        let seq = rng.next(per_device);
        let id = format!("pump-{device:05}");
        let t = Instant::now();
        let rows = store.record_blocking(&id, seq)?;
        samples.push(t.elapsed());
        assert_eq!(rows.len(), 1, "{id}/{seq}");
    }
    report("point lookup record(device_id, seq)", samples);

    // 4. Device-day ranges.
    let days = (per_device / per_day).max(1);
    for limit in [per_day.min(1000) as usize, 100] {
        let mut samples = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let device = rng.next(DEVICES);
            let day = rng.next(days);
            let q = RangeQuery {
                device_id: format!("pump-{device:05}"),
                from_ms: T0 + day * DAY,
                to_ms: T0 + (day + 1) * DAY,
                limit,
                after: None,
            };
            let t = Instant::now();
            let page = store.range_blocking("verdicts", &q)?;
            samples.push(t.elapsed());
            assert_eq!(page.items.len(), limit.min(per_day as usize));
        }
        report(&format!("device-day range, limit {limit}"), samples);
    }
    Ok(())
}
