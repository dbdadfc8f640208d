//! Sanity check of the detector on NAB series (univariate `timestamp,value`).
//!
//! `cargo run --release -p vigil-training --example nab -- /work/shared/datasets/nab [FILE…]`
//!
//! For each series: train on the first 15 % (NAB's probationary period),
//! then score the whole series record by record from a cold state and
//! compare the flags with NAB's labelled anomaly windows. Windows count as
//! episodes; flags outside every window count as false alarms.

use std::collections::HashMap;
use std::path::PathBuf;

use vigil_training::data::parse_nab_timestamp;
use vigil_training::{evaluate, fit, read_nab_csv, Episode, EvalOptions, FleetData, TrainConfig};

const DEFAULT_FILES: [&str; 8] = [
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/nyc_taxi.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "artificialWithAnomaly/art_daily_flatmiddle.csv",
    "artificialNoAnomaly/art_daily_small_noise.csv",
    "artificialNoAnomaly/art_flatline.csv",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/work/shared/datasets/nab".into()),
    );
    let mut files: Vec<String> = args.collect();
    if files.is_empty() {
        files = DEFAULT_FILES.iter().map(|s| s.to_string()).collect();
    }
    let windows: HashMap<String, Vec<[String; 2]>> = serde_json::from_str(
        &std::fs::read_to_string(root.join("labels/combined_windows.json"))?,
    )?;
    println!(
        "| series | records | windows | detected | flags | flags in windows | false-alarm rate |"
    );
    println!("|---|---|---|---|---|---|---|");
    for file in &files {
        let records = read_nab_csv(&root.join("data").join(file), "nab", 1_000_000)?;
        let probation = records.len() * 15 / 100;
        let cfg = TrainConfig {
            min_records: 200,
            min_device_records: 200,
            holdout_fraction: 0.2,
            ..TrainConfig::default()
        };
        let trained = match fit(&records[..probation], &cfg, |_| {}) {
            Ok(t) => t,
            Err(e) => {
                println!(
                    "| {file} | {} | - | - | - | - | training failed: {e} |",
                    records.len()
                );
                continue;
            }
        };
        // Label windows → seq ranges.
        let episodes: Vec<Episode> = windows
            .get(file.as_str())
            .into_iter()
            .flatten()
            .filter_map(|[from, to]| {
                let from = parse_nab_timestamp(from.get(..19)?)?;
                let to = parse_nab_timestamp(to.get(..19)?)?;
                let first = records.iter().find(|r| r.ts >= from)?.seq;
                let last = records.iter().rev().find(|r| r.ts <= to)?.seq;
                Some(Episode {
                    device_id: "nab".into(),
                    kind: "nab_window".into(),
                    first_seq: first,
                    last_seq: last,
                })
            })
            .collect();
        let data = FleetData::new(&records, 0.0);
        let ev = evaluate(
            &trained.model,
            &data,
            &episodes,
            &EvalOptions {
                holdout_only: false,
                grace_records: 0,
            },
        );
        let in_windows: u64 = ev.by_kind.values().map(|k| k.flagged).sum();
        println!(
            "| {file} | {} | {} | {} | {} | {} | {:.4} |",
            records.len(),
            ev.episodes,
            ev.detected,
            ev.false_alarms + in_windows,
            in_windows,
            ev.false_alarm_rate
        );
    }
    Ok(())
}
