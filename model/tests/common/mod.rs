//! Shared test fixtures: a plausible (hand-made, not fitted) payload.

#![allow(dead_code)]

use std::collections::BTreeMap;

use vigil_model::combine::NoveltyPolicy;
use vigil_model::novelty::ChannelRange;
use vigil_model::{Detector, FeatureSpec, MetricNovelty, ReleasePayload, PAYLOAD_FORMAT};
use vigil_schemas::{ReleaseHeader, Telemetry, TrainingWindow, ValidationMetrics};

pub const METRICS: [&str; 8] = [
    "current_a",
    "flow_lpm",
    "humidity_pct",
    "pressure_kpa",
    "rpm",
    "temperature_c",
    "vibration_rms",
    "voltage_v",
];

pub fn payload(version: u64) -> ReleasePayload {
    let features = FeatureSpec::with_defaults(METRICS.iter().map(|s| s.to_string()));
    let dim = features.dim();
    // Four deterministic, orthonormal-ish directions: unit vectors on
    // alternating features. Good enough to exercise every code path.
    let components: Vec<Vec<f64>> = (0..4)
        .map(|k| {
            (0..dim)
                .map(|i| if i % 4 == k { 0.5 } else { 0.0 })
                .collect::<Vec<f64>>()
        })
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.into_iter().map(|v| v / norm).collect()
        })
        .collect();
    ReleasePayload {
        alarm: Default::default(),
        header: ReleaseHeader {
            model: "default".into(),
            version,
            created_ts: 1_795_446_981_908,
            training: TrainingWindow {
                from_ts: 1,
                to_ts: 2,
                records: 3,
                devices: 1,
                source: "test".into(),
            },
            validation: ValidationMetrics {
                estimated_false_alarm_rate: None,
                expected_false_alarm_rate: None,
                holdout_records: 1,
                false_alarm_rate: 0.001,
                detection_rate: None,
                mean_detection_delay: None,
            },
            threshold: 0.5,
        },
        format: PAYLOAD_FORMAT,
        features,
        // Ranges as a trainer would learn them from `stream`'s devices
        // (each metric between 10 + j and 40 + j, ±0.5).
        novelty: Some(NoveltyPolicy {
            training_ranges: Some(
                (0..METRICS.len())
                    .map(|j| {
                        let range = ChannelRange {
                            low: 9.5 + j as f64,
                            width: 31.0,
                        };
                        MetricNovelty {
                            value: range,
                            smooth: range,
                        }
                    })
                    .collect(),
            ),
            ..NoveltyPolicy::default()
        }),
        detector: Detector::Pca {
            center: vec![0.01; dim],
            scale: (0..dim).map(|i| 1.0 + i as f64 / 10.0).collect(),
            components,
            variances: vec![3.0, 2.0, 1.5, 1.1],
            residual_variance: 0.7,
            raw_scale: 60.0,
        },
    }
}

/// A deterministic pseudo-random stream (xorshift), several devices
/// interleaved, with an occasional spike and a stuck stretch.
pub fn stream(devices: usize, per_device: u64, seed: u64) -> Vec<Telemetry> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut out = Vec::new();
    for seq in 1..=per_device {
        for d in 0..devices {
            let mut metrics = BTreeMap::new();
            for (j, name) in METRICS.iter().enumerate() {
                let base = 10.0 * (d + 1) as f64 + j as f64;
                let mut v = base + next();
                if seq % 97 == (d as u64 * 7) % 97 && j == d % 8 {
                    v += 25.0;
                }
                if (200..230).contains(&seq) && d == 0 && j == 3 {
                    v = 42.0;
                }
                // Now and then a metric is missing.
                if (seq + j as u64) % 41 == 0 {
                    continue;
                }
                metrics.insert(name.to_string(), v);
            }
            out.push(Telemetry::new(
                format!("dev-{d}"),
                seq,
                1_000 * seq,
                metrics,
            ));
        }
    }
    out
}
