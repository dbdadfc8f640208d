//! Feature extraction + scoring per record with 8 metrics, through the same
//! `Scorer::score` the services call (device lookup, features, PCA with 8
//! components over 25 features, verdict construction). 10,000 devices in
//! round robin, so device state and records mostly come from memory, not
//! cache; `BENCH_DEVICES=100` shows the cache-hot figure.
//!
//! `cargo bench -p vigil-model --bench score`
//!
//! Measured on the 2-core development machine (x86-64): median 0.64 µs per
//! record with 10,000 devices, 0.58 µs with 100.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use vigil_model::{
    sign, verify, Detector, FeatureSpec, ReleasePayload, Scorer, SigningKey, PAYLOAD_FORMAT,
};
use vigil_schemas::{ReleaseHeader, ScoredAt, Telemetry, TrainingWindow, ValidationMetrics};

const METRICS: [&str; 8] = [
    "current_a",
    "flow_lpm",
    "humidity_pct",
    "pressure_kpa",
    "rpm",
    "temperature_c",
    "vibration_rms",
    "voltage_v",
];

fn payload() -> ReleasePayload {
    let features = FeatureSpec::with_defaults(METRICS.iter().map(|s| s.to_string()));
    let dim = features.dim();
    // Eight dense components: as expensive as a fitted model on this fleet.
    let components = (0..8)
        .map(|k| {
            let row: Vec<f64> = (0..dim)
                .map(|i| ((i * 7 + k * 3) % 11) as f64 - 5.0)
                .collect();
            let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.into_iter().map(|v| v / n).collect()
        })
        .collect();
    ReleasePayload {
        // A trained release's policy: the device's own level is on, and
        // a small release's sustain (the most work per record).
        alarm: vigil_model::AlarmPolicy {
            baseline_raw: 10.0,
            sustain_ratio: vigil_model::alarm::UNCALIBRATED_SUSTAIN_RATIO,
            ..Default::default()
        },
        header: ReleaseHeader {
            model: "default".into(),
            version: 1,
            created_ts: 0,
            training: TrainingWindow {
                from_ts: 0,
                to_ts: 0,
                records: 0,
                devices: 0,
                source: "bench".into(),
            },
            validation: ValidationMetrics {
                estimated_false_alarm_rate: None,
                expected_false_alarm_rate: None,
                holdout_records: 0,
                false_alarm_rate: 0.0,
                detection_rate: None,
                mean_detection_delay: None,
            },
            threshold: 0.5,
        },
        format: PAYLOAD_FORMAT,
        features,
        // A trained release's novelty: ranges from the training rows, so
        // every record is scored by it from a device's first one.
        novelty: Some(vigil_model::combine::NoveltyPolicy {
            training_ranges: Some(
                (0..METRICS.len())
                    .map(|j| {
                        let range = vigil_model::novelty::ChannelRange {
                            low: 49.5 + j as f64,
                            width: 3.0,
                        };
                        vigil_model::MetricNovelty {
                            value: range,
                            smooth: range,
                        }
                    })
                    .collect(),
            ),
            // Every metric with a period (the seasonal channel's cost too;
            // the records' `ts` run over two thirds of it). `NO_SEASONS=1`:
            // none, as the demo's releases.
            seasons: std::env::var_os("NO_SEASONS")
                .is_none()
                .then(|| vec![60_000; METRICS.len()]),
            ..Default::default()
        }),
        detector: Detector::Pca {
            center: vec![0.0; dim],
            scale: vec![1.0; dim],
            components,
            variances: vec![2.0; 8],
            residual_variance: 0.5,
            raw_scale: 50.0,
        },
    }
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[3; 32]);
    let release = sign(&payload(), &key).expect("sign");
    let model = Arc::new(verify(&release, &key.verifying_key()).expect("verify"));
    let devices: u64 = std::env::var("BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut scorer = Scorer::new("default", devices as usize);
    scorer.install(model).expect("install");
    // 10,000 devices, records round-robin, values varying per record.
    let records: Vec<Telemetry> = (0..devices * 4)
        .map(|i| {
            let metrics: BTreeMap<String, f64> = METRICS
                .iter()
                .enumerate()
                .map(|(j, m)| {
                    (
                        m.to_string(),
                        50.0 + j as f64 + ((i * 31 + j as u64 * 17) % 13) as f64 * 0.1,
                    )
                })
                .collect();
            Telemetry::new(
                format!("pump-{:05}", i % devices),
                1 + i / devices,
                i,
                metrics,
            )
        })
        .collect();
    for r in &records {
        scorer.score(r, None, 0, ScoredAt::Cloud);
    }
    // Each device has 4 records in the ring; every lap moves their seq on
    // by 4, so every scored record is new and advances state.
    let n = records.len();
    let mut owned = records;
    let mut i = 0usize;
    c.bench_function("features+score, 8 metrics, 10k devices", |b| {
        b.iter(|| {
            let r = &mut owned[i];
            r.seq += 4;
            let v = scorer.score(black_box(&*r), Some(1), 2, ScoredAt::Cloud);
            i = (i + 1) % n;
            black_box(v)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
