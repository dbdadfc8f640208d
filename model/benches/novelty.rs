//! The novelty detector's cost per record with 8 metrics: one
//! `NoveltyState::observe` per metric (two channels × three resolutions
//! each), 10,000 devices in round robin so their state comes from memory,
//! not cache (`BENCH_DEVICES=100` for the cache-hot figure). Each device
//! first learns 2,000 records of a daily rhythm, as after training.
//!
//! `cargo bench -p vigil-model --bench novelty`
//!
//! Measured on the 2-core development machine (x86-64): see BENCHMARKS.md
//! (session 15, the compact state: about 1.8 µs per record with 10,000
//! devices, 1.2 µs with 100; before it 8.9 µs and 2.1 µs).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};

const METRICS: usize = 8;

fn value(device: usize, metric: usize, t: usize) -> f64 {
    let phase = ((t + device * 7 + metric * 13) % 288) as f64 / 288.0;
    let wave = 10.0 + 5.0 * (1.0 - (2.0 * phase - 1.0).abs());
    let jitter = ((t * 31 + device * 17 + metric * 5) % 97) as f64 / 97.0;
    wave + jitter
}

fn bench(c: &mut Criterion) {
    let devices: usize = std::env::var("BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let config = NoveltyConfig::default();
    let training: Vec<f64> = (0..2_000).map(|t| value(0, 0, t)).collect();
    let fit = MetricNovelty::fit(&config, &training);
    let mut states: Vec<Vec<NoveltyState>> = (0..devices)
        .map(|d| {
            (0..METRICS)
                .map(|m| {
                    let mut s = NoveltyState::new(&config);
                    for t in 0..2_000 {
                        s.observe(&config, &fit, value(d, m, t));
                    }
                    s
                })
                .collect()
        })
        .collect();
    let mut t = 2_000;
    let mut next = 0;
    c.bench_function("novelty: one record of 8 metrics", |b| {
        b.iter(|| {
            let device = &mut states[next];
            let mut most = 1.0f64;
            for (m, state) in device.iter_mut().enumerate() {
                most = most.min(state.observe(&config, &fit, value(next, m, t)));
            }
            next += 1;
            if next == devices {
                next = 0;
                t += 1;
            }
            black_box(novelty_score(&config, most))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
