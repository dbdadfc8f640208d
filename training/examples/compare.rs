//! Compares detector methods on a labelled simulated fleet and prints the
//! tables in `EVALUATION.md`.
//!
//! `cargo run --release -p vigil-training --example compare -- [devices] [ticks] [severity]`
//! (`COMPARE_ALL=1` adds PCA variants with other windows and variance levels;
//! `COMPARE_SEEDS=TRAIN,TEST` runs other fleets: 3,4 and 5,6 are the tuning
//! fleets, 1,2 the report fleet)
//!
//! Each method is counted twice: records while the device is in alarm (the
//! product's verdicts) and each record's own decision (judged score at or
//! above the threshold, the measure of the figures before alarms existed).
//!
//! Trains on a clean fleet (seed 1 by default), evaluates on a different
//! fleet with every anomaly kind injected (seed 2: none of its devices' baselines were
//! seen in training, so every device also goes through a cold start).

use std::time::Instant;

use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_training::{
    evaluate_with, fit, Decision, Episode, EvalOptions, FleetData, Method, TrainConfig,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let ticks: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let severity: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1.0);
    let day_ms = 1_440_000; // a "day" of 1,440 one-second ticks

    // COMPARE_SEEDS=TRAIN,TEST: other fleets, to choose settings on (the
    // report set is 1,2).
    let seeds: Vec<u64> = std::env::var("COMPARE_SEEDS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [train_seed, test_seed] = seeds[..] else {
        return Err("COMPARE_SEEDS takes TRAIN,TEST".into());
    };
    let train_cfg = FleetConfig {
        day_ms,
        ..FleetConfig::clean(devices, train_seed)
    };
    let train: Vec<_> = Fleet::new(train_cfg)?.generate(ticks).into_telemetry();
    let test_cfg = FleetConfig {
        devices,
        seed: test_seed,
        day_ms,
        ..FleetConfig::default()
    };
    let test_cfg = FleetConfig {
        anomalies: vigil_fleet_sim::AnomalyConfig {
            severity,
            ..test_cfg.anomalies.clone()
        },
        ..test_cfg
    };
    let generated = Fleet::new(test_cfg)?.generate(ticks);
    let episodes: Vec<Episode> = generated.episodes.iter().map(Episode::from).collect();
    let test: Vec<_> = generated.into_telemetry();
    let test_data = FleetData::new(&test, 0.0);
    println!(
        "train: {} records, {devices} devices; test: {} records, {} episodes\n",
        train.len(),
        test.len(),
        episodes.len()
    );

    let pca = |variance: f64, slow_window: u32, fast_window: u32| TrainConfig {
        method: Method::Pca,
        pca_variance: variance,
        slow_window,
        fast_window,
        ..TrainConfig::default()
    };
    let quick = std::env::var("COMPARE_ALL").is_err();
    let mut variants: Vec<(String, TrainConfig)> = vec![
        ("pca".into(), pca(0.95, 1024, 8)),
        (
            "robust_z".into(),
            TrainConfig {
                method: Method::RobustZ,
                ..TrainConfig::default()
            },
        ),
    ];
    if !quick {
        for (v, s, f) in [
            (0.8, 1024, 8),
            (0.99, 1024, 8),
            (0.95, 256, 8),
            (0.95, 2048, 8),
            (0.95, 1024, 16),
        ] {
            variants.push((format!("pca var={v} slow={s} fast={f}"), pca(v, s, f)));
        }
    }
    println!(
        "A record counts as flagged while its device is in alarm (\"alarm\", what a verdict's \
         `anomaly` says) or when its own judged score reaches the threshold (\"record\", the \
         measure of the figures before alarms); event precision counts alarm events.\n"
    );
    println!("| method | flagged | holdout FAR | test FAR | precision | detection rate | F1 | event precision | event F1 | mean delay | fit s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut per_kind = Vec::new();
    for (name, cfg) in &variants {
        let t = Instant::now();
        let trained = fit(&train, cfg, |_| {})?;
        let secs = t.elapsed().as_secs_f64();
        let shape = match &trained.payload.detector {
            vigil_model::Detector::Pca {
                components,
                variances,
                residual_variance,
                ..
            } => format!(
                " (k={}, λ={:.2?}, res={residual_variance:.3})",
                components.len(),
                variances
            ),
            vigil_model::Detector::RobustZ { .. } => String::new(),
        };
        for (label, decision) in [("alarm", Decision::Alarm), ("record", Decision::Record)] {
            let ev = evaluate_with(
                &trained.model,
                &test_data,
                &episodes,
                &EvalOptions::default(),
                decision,
            );
            println!(
                "| {name}{shape} | {label} | {:.5} | {:.5} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {secs:.1} |",
                trained.holdout.false_alarm_rate,
                ev.false_alarm_rate,
                ev.precision.unwrap_or(0.0),
                ev.detection_rate.unwrap_or(0.0),
                ev.f1().unwrap_or(0.0),
                ev.event_precision.unwrap_or(0.0),
                ev.event_f1().unwrap_or(0.0),
                ev.mean_detection_delay.unwrap_or(f64::NAN),
            );
            if decision == Decision::Alarm {
                per_kind.push((name, ev));
            }
        }
    }
    println!("\nPer kind (recall = episodes detected; precision against all false alarms; delay in records):\n");
    println!(
        "| method | kind | episodes | recall | precision | F1 | mean delay | records flagged |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, ev) in &per_kind {
        for (kind, k) in &ev.by_kind {
            println!(
                "| {name} | {kind} | {} | {:.3} | {:.3} | {:.3} | {} | {:.3} |",
                k.episodes,
                k.recall,
                k.precision,
                k.f1,
                k.mean_delay.map_or("-".into(), |d| format!("{d:.1}")),
                k.flagged as f64 / k.records.max(1) as f64
            );
        }
    }
    Ok(())
}
