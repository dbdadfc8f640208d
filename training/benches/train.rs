//! Training throughput: `fit` on 1,000,000 simulated records (500 devices ×
//! 2,000 ticks, six metrics), timed end to end (grouping, priors, feature
//! extraction, PCA, calibration, holdout evaluation). Data generation is
//! not timed. One run per repetition; prints each and the median.
//!
//! `cargo bench -p vigil-training --bench train [-- REPS]`

use std::time::Instant;

use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_training::{fit, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // cargo bench passes `--bench`; a bare number sets the repetitions.
    let reps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let cfg = FleetConfig {
        day_ms: 1_440_000,
        ..FleetConfig::clean(500, 11)
    };
    let records: Vec<_> = Fleet::new(cfg)?.generate(2_000).into_telemetry();
    println!("training on {} records", records.len());
    let mut times = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let trained = fit(&records, &TrainConfig::default(), |_| {})?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "fit: {secs:.2} s (holdout false-alarm rate {:.5})",
            trained.holdout.false_alarm_rate
        );
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    println!("median: {:.2} s", times[times.len() / 2]);
    Ok(())
}
