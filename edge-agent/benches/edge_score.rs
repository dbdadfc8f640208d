//! Per-sample cost of the agent's hot path on one device, with a release
//! trained on simulated data (6 metrics, PCA):
//! - `score`: `Scorer::score` alone (features + detector), the budget item
//!   (≤ 5 µs per sample on x86-64);
//! - `score_encode`: plus the telemetry and verdict JSON and the queue
//!   record, i.e. all the CPU work a sample costs;
//! - `score_encode_append`: plus the append to the on-disk queue (a write
//!   to the page cache, no fsync).
//!
//! `cargo bench -p vigil-edge --bench edge_score`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use vigil_edge::queue::{Queue, QueueLimits};
use vigil_edge::record::UplinkRecord;
use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_model::{sign, verify, Scorer, SigningKey};
use vigil_schemas::{Message, ScoredAt, Telemetry};
use vigil_training::{fit, TrainConfig};

fn fleet(devices: usize, ticks: u64, seed: u64, clean: bool) -> Vec<Telemetry> {
    let cfg = if clean {
        FleetConfig::clean(devices, seed)
    } else {
        FleetConfig {
            devices,
            seed,
            ..FleetConfig::default()
        }
    };
    Fleet::new(FleetConfig {
        day_ms: 600_000,
        ..cfg
    })
    .expect("fleet")
    .generate(ticks)
    .into_telemetry()
}

fn scorer() -> Scorer {
    let trained = fit(
        &fleet(12, 500, 1, true),
        &TrainConfig {
            min_records: 1_000,
            ..TrainConfig::default()
        },
        |_| {},
    )
    .expect("fit");
    let key = SigningKey::from_bytes(&[7; 32]);
    let model = verify(
        &sign(&trained.payload, &key).expect("sign"),
        &key.verifying_key(),
    )
    .expect("verify");
    let mut scorer = Scorer::new("default", 4);
    scorer.install(Arc::new(model)).expect("install");
    scorer
}

/// One device's stream, re-sequenced so every pass is fresh state-wise.
fn samples() -> Vec<Telemetry> {
    fleet(1, 20_000, 2, false)
}

fn bench(c: &mut Criterion) {
    let records = samples();
    let mut group = c.benchmark_group("edge");

    let mut s = scorer();
    let mut i = 0usize;
    let mut seq = 0u64;
    let mut next = move || {
        let mut r = records[i % records.len()].clone();
        i += 1;
        seq += 1;
        r.seq = seq;
        r
    };
    // Pre-build the records outside the timed part.
    let batch: Vec<Telemetry> = (0..200_000).map(|_| next()).collect();

    let mut k = 0usize;
    group.bench_function("score", |b| {
        b.iter(|| {
            let r = &batch[k % batch.len()];
            k += 1;
            black_box(s.score(r, None, r.ts, ScoredAt::Edge))
        })
    });

    let mut s = scorer();
    let mut k = 0usize;
    group.bench_function("score_encode", |b| {
        b.iter(|| {
            let r = &batch[k % batch.len()];
            k += 1;
            let v = s.score(r, None, r.ts, ScoredAt::Edge);
            let record = UplinkRecord {
                seq: r.seq,
                messages: vec![
                    (
                        "vigil/devices/dev-00000/telemetry".into(),
                        r.encode().expect("encode"),
                    ),
                    (
                        "vigil/devices/dev-00000/verdicts".into(),
                        v.encode().expect("encode"),
                    ),
                ],
            };
            black_box(record.encode())
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut queue, _) = Queue::open(
        dir.path(),
        QueueLimits::new(64 * 1024 * 1024).expect("limits"),
    )
    .expect("open");
    let mut s = scorer();
    let mut k = 0usize;
    group.bench_function("score_encode_append", |b| {
        b.iter(|| {
            let r = &batch[k % batch.len()];
            k += 1;
            let v = s.score(r, None, r.ts, ScoredAt::Edge);
            let record = UplinkRecord {
                seq: r.seq,
                messages: vec![
                    (
                        "vigil/devices/dev-00000/telemetry".into(),
                        r.encode().expect("encode"),
                    ),
                    (
                        "vigil/devices/dev-00000/verdicts".into(),
                        v.encode().expect("encode"),
                    ),
                ],
            };
            black_box(queue.append(&record.encode()).expect("append"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
