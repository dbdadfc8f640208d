//! Why the demo detects worse than `compare`: trains and scores under the
//! demo's conditions and varies one thing at a time.
//!
//! `cargo run --release -p vigil-training --example demo_conditions`
//!
//! Demo conditions (`vigil-demo` defaults): one record per device every
//! 500 ms, a 60-s simulated day (120 records), 0.2 anomaly episodes per
//! device-day, training on the last 5 minutes (600 records per device)
//! that contain the injected anomalies, and a scorer whose device state
//! runs from the start. Here: 180 devices × 1,800 ticks; the model is
//! trained on ticks 600..1200 and evaluated on ticks 1200..1800 with state
//! built from tick 0. Then the demo's retraining chain (v1 on the 60-s
//! warm-up, a new model every 240 ticks on the last 600), with and without
//! leaving out what the previous model flagged. Results: `EVALUATION.md`,
//! "Under the demo's conditions".

use std::collections::{HashMap, HashSet};

mod common;

use common::ticks;
use vigil_model::Scratch;
use vigil_schemas::Telemetry;
use vigil_training::{evaluate, fit, Calibration, Episode, EvalOptions, FleetData, TrainConfig};

const DEVICES: usize = 180;
const TICKS: u64 = 1_800;

/// The fleet of every case here: seed 7, `DEVICES` × `TICKS`.
fn fleet(
    rate: f64,
    day_ms: u64,
) -> Result<(Vec<Telemetry>, Vec<Episode>), Box<dyn std::error::Error>> {
    common::demo_fleet(DEVICES, 7, rate, day_ms, TICKS)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("| variant | test FAR | precision | recall | F1 |");
    println!("|---|---|---|---|---|");
    // (name, episodes per device-day, day ms, training ticks, clean, slow window)
    type Case = (&'static str, f64, u64, (u64, u64), bool, u32);
    let cases: Vec<Case> = vec![
        (
            "demo: contaminated 600-tick window",
            0.2,
            60_000,
            (600, 1200),
            false,
            1024,
        ),
        (
            "clean 600-tick window (same fleet)",
            0.2,
            60_000,
            (600, 1200),
            true,
            1024,
        ),
        (
            "contaminated 1,200-tick window",
            0.2,
            60_000,
            (0, 1200),
            false,
            1024,
        ),
        (
            "contaminated, slow window 256",
            0.2,
            60_000,
            (600, 1200),
            false,
            256,
        ),
        (
            "contaminated, 0.05 episodes/day",
            0.05,
            60_000,
            (600, 1200),
            false,
            1024,
        ),
    ];
    for calibration in [Calibration::Quantile, Calibration::Trimmed] {
        for (name, rate, day_ms, (from, to), clean, slow_window) in cases.iter().copied() {
            let (all, episodes) = fleet(rate, day_ms)?;
            let train = if clean {
                let (clean_all, _) = fleet(0.0, day_ms)?;
                ticks(&clean_all, from, to)
            } else {
                ticks(&all, from, to)
            };
            let cfg = TrainConfig {
                slow_window,
                min_device_records: 50,
                calibration,
                ..TrainConfig::default()
            };
            let trained = fit(&train, &cfg, |_| {})?;
            // Holdout = the last third of every device: ticks 1200..1800.
            let test = FleetData::new(&all, 1.0 / 3.0);
            let ev = evaluate(
                &trained.model,
                &test,
                &episodes,
                &EvalOptions {
                    holdout_only: true,
                    ..EvalOptions::default()
                },
            );
            println!(
                "| {name}, {calibration:?} | {:.4} | {:.3} | {:.3} | {:.3} |",
                ev.false_alarm_rate,
                ev.precision.unwrap_or(0.0),
                ev.detection_rate.unwrap_or(0.0),
                ev.f1().unwrap_or(0.0)
            );
        }
    }
    // The demo's retraining chain: v1 on ticks 0..120 (its 60-s warm-up),
    // then every 240 ticks (2 min) a model on the last 600 ticks, either
    // as is or minus every record the previous model flagged and the
    // `grace` records after each flag.
    let (all, episodes) = fleet(0.2, 60_000)?;
    let test = FleetData::new(&all, 1.0 / 3.0);
    let opts = EvalOptions {
        holdout_only: true,
        ..EvalOptions::default()
    };
    for (calibration, grace) in [
        (Calibration::Quantile, None),
        (Calibration::Quantile, Some(16)),
        (Calibration::Trimmed, None),
    ] {
        let mut model = fit(
            &ticks(&all, 0, 120),
            &TrainConfig {
                min_device_records: 20,
                min_records: 1_000,
                calibration,
                ..TrainConfig::default()
            },
            |_| {},
        )?
        .model;
        let mut end: u64 = 120 + 240;
        while end <= 1200 {
            let from = end.saturating_sub(600);
            let window = ticks(&all, from, end);
            let train = match grace {
                None => window,
                Some(g) => {
                    let flagged = flags(&model, &ticks(&all, 0, end), g);
                    let mut tick: HashMap<&str, u64> = HashMap::new();
                    ticks(&all, 0, end)
                        .iter()
                        .filter(|r| {
                            let t = tick.entry(r.device_id.as_str()).or_insert(0);
                            *t += 1;
                            *t > from && !flagged.contains(&(r.device_id.clone(), r.seq))
                        })
                        .cloned()
                        .collect()
                }
            };
            let kept = train.len();
            model = fit(
                &train,
                &TrainConfig {
                    min_device_records: 20,
                    min_records: 1_000,
                    calibration,
                    ..TrainConfig::default()
                },
                |_| {},
            )?
            .model;
            let ev = evaluate(&model, &test, &episodes, &opts);
            println!(
                "| chain, {calibration:?}, exclusion {grace:?}, window ending at tick {end} ({kept} records) | {:.4} | {:.3} | {:.3} | {:.3} |",
                ev.false_alarm_rate,
                ev.precision.unwrap_or(0.0),
                ev.detection_rate.unwrap_or(0.0),
                ev.f1().unwrap_or(0.0)
            );
            end += 240;
        }
    }
    Ok(())
}

/// (device, seq) of every record `model` flags in `records` (state from
/// each device's first record), and the `grace` records after each flag.
fn flags(model: &vigil_model::Model, records: &[Telemetry], grace: u64) -> HashSet<(String, u64)> {
    let mut by_device: HashMap<&str, Vec<&Telemetry>> = HashMap::new();
    for r in records {
        by_device.entry(r.device_id.as_str()).or_default().push(r);
    }
    let mut out = HashSet::new();
    for (device, records) in by_device {
        let mut state = model.extractor().new_state();
        let mut scratch = Scratch::default();
        let mut until = None;
        for r in records {
            if model.score_record(&mut state, r, &mut scratch).anomaly {
                until = Some(r.seq + grace);
            }
            if until.is_some_and(|u| r.seq <= u) {
                out.insert((device.to_owned(), r.seq));
            }
        }
    }
    out
}
