//! What keeping `seq` safe from power loss costs per sample, measured on
//! the disk holding `VIGIL_SEQ_COST_DIR` (default: the system temp dir):
//!
//! - the reservation the agent uses (`vigil_edge::seq`), with the default
//!   block of 1,000 and with a block of 1 (a durable write per sample);
//! - the alternative, durable-before-send: an fsync of the queue after
//!   every appended record (what sending only synced records costs when
//!   the latency must stay per-sample).
//!
//! `cargo run --release -p vigil-edge --example seq_cost [SAMPLES]`
//! prints µs per sample and durable writes per minute at 1 and 10 samples
//! per second; the numbers are in the crate README.

use std::time::Instant;

use vigil_edge::queue::{Queue, QueueLimits};
use vigil_edge::seq::SeqReservation;

fn main() -> anyhow::Result<()> {
    let samples: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let base = std::env::var_os("VIGIL_SEQ_COST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let record = vec![b'x'; 600]; // a sample's telemetry and verdict, roughly

    for block in [1000_u64, 1] {
        let dir = tempfile::tempdir_in(&base)?;
        let n = if block == 1 {
            samples.min(2_000)
        } else {
            samples
        };
        let (mut seqs, _) = SeqReservation::open(dir.path(), block, 0, Some("bench".to_owned()))?;
        let started = Instant::now();
        for seq in 1..=n {
            seqs.take(seq)?;
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        report(
            &format!("reservation, block {block}"),
            us,
            1.0 / block as f64,
        );
    }

    let dir = tempfile::tempdir_in(&base)?;
    let (mut queue, _) = Queue::open(dir.path(), QueueLimits::new(64 << 20)?)?;
    let n = samples.min(2_000);
    let started = Instant::now();
    for _ in 0..n {
        queue.append(&record)?;
        queue.sync()?;
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    report("durable-before-send (fsync per record)", us, 1.0);

    let dir = tempfile::tempdir_in(&base)?;
    let (mut queue, _) = Queue::open(dir.path(), QueueLimits::new(64 << 20)?)?;
    let started = Instant::now();
    for _ in 0..samples {
        queue.append(&record)?;
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / samples as f64;
    report("queue append alone (for scale)", us, 0.0);
    Ok(())
}

fn report(what: &str, us_per_sample: f64, writes_per_sample: f64) {
    println!(
        "{what}: {us_per_sample:.2} µs/sample; durable writes/min at 1 Hz {:.2}, at 10 Hz {:.1}",
        writes_per_sample * 60.0,
        writes_per_sample * 600.0
    );
}
