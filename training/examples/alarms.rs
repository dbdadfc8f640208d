//! The demo's detection, replayed offline: a fleet like `vigil-demo`'s
//! (200 devices, one record every 500 ms, a 60-s simulated day, 0.2
//! episodes per device-day), the demo's model chain (v1 trained on the
//! 100-s warm-up, then a model every 120 s on the last 5 minutes), each
//! record scored by the model live at its tick, counted event-wise as the
//! demo's summary counts them. Prints one row per alarm policy.
//!
//! `cargo run --release -p vigil-training --example alarms [SEED [TICKS]]`

use std::collections::HashMap;

mod common;

use common::ticks;
use vigil_model::{Model, Scratch};
use vigil_schemas::Telemetry;
use vigil_training::{
    evaluate_flags, fit, gate, DeviceFlags, EvalOptions, FleetData, GateConfig, TrainConfig,
};

const DEVICES: usize = 200;
const WARMUP: u64 = 200;
const EVERY: u64 = 240;
const WINDOW: u64 = 600;

/// A device and its `(seq, score, threshold)` rows from v1 on.
type Scored = (String, Vec<(u64, f64, f64)>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The demo's seed by default; policies were chosen with seed 7.
    let seed: u64 = std::env::args().nth(1).map_or(Ok(0x5EED), |s| s.parse())?;
    // Ticks simulated: 1,200 = the demo's 10 minutes.
    let ticks_run: u64 = std::env::args().nth(2).map_or(Ok(1_200), |s| s.parse())?;
    let (all, episodes) = common::demo_fleet(DEVICES, seed, 0.2, 60_000, ticks_run)?;
    // The chain: (first tick it scores, model).
    let mut chain: Vec<(u64, Model)> = Vec::new();
    let mut at = WARMUP;
    while at < ticks_run {
        let train = ticks(&all, at.saturating_sub(WINDOW), at);
        let cfg = TrainConfig {
            min_device_records: 20,
            min_records: 1_000,
            ..TrainConfig::default()
        };
        let trained = fit(&train, &cfg, |_| {})?;
        // The trainer's gate on the same window (no labels), against the
        // model live at that moment.
        let window = FleetData::new(&train, cfg.holdout_fraction);
        let decision = gate(
            &trained.model,
            chain.last().map(|(_, m)| m),
            &window,
            &[],
            &EvalOptions {
                holdout_only: true,
                ..EvalOptions::default()
            },
            &GateConfig::default(),
        );
        let v = &trained.payload.header.validation;
        println!(
            "model from tick {at}: holdout flagged {:.4}, estimated FAR {:?}, young devices need {:.3}; gate: {}",
            v.false_alarm_rate, v.estimated_false_alarm_rate, trained.payload.alarm.settle_score, decision.reason
        );
        chain.push((at, trained.model));
        at += EVERY;
    }
    // Per device: (seq, score, threshold) from WARMUP on.
    let mut by_device: HashMap<&str, Vec<&Telemetry>> = HashMap::new();
    for r in &all {
        by_device.entry(r.device_id.as_str()).or_default().push(r);
    }
    let mut scored: Vec<Scored> = Vec::new();
    let mut product: Vec<DeviceFlags> = Vec::new();
    // Per model: (normal records, of those in an alarm) under the product's
    // own decisions (young settle, calm tail).
    let mut decided = vec![(0u64, 0u64); chain.len()];
    for (device, records) in &by_device {
        let mut state = chain[0].1.extractor().new_state();
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        let mut flags = Vec::new();
        for (tick, r) in records.iter().enumerate() {
            let tick = tick as u64;
            let Some((_, model)) = chain.iter().rev().find(|(from, _)| *from <= tick) else {
                // Before v1 the demo's scorer keeps no state either.
                continue;
            };
            let s = model.score_record(&mut state, r, &mut scratch);
            out.push((r.seq, s.score.score, model.threshold()));
            flags.push((r.seq, s.anomaly));
            let m = chain.iter().rposition(|(f, _)| *f <= tick).unwrap_or(0);
            let normal = !episodes.iter().any(|e| {
                e.device_id == *device && r.seq >= e.first_seq && r.seq <= e.last_seq + 64
            });
            if normal {
                decided[m].0 += 1;
                decided[m].1 += u64::from(s.anomaly);
            }
        }
        scored.push(((*device).to_owned(), out));
        product.push(DeviceFlags {
            device_id: (*device).to_owned(),
            flags,
            sent: None,
        });
    }
    scored.sort_by(|a, b| a.0.cmp(&b.0));
    diagnose(&scored, &episodes, &chain);
    let ev = evaluate_flags(&product, &episodes, &EvalOptions::default());
    println!(
        "product (the release's alarm policy): event precision {:.3}, recall {:.3}, normal flagged {:.4}, alarm events {}/{}",
        ev.event_precision.unwrap_or(0.0),
        ev.detection_rate.unwrap_or(0.0),
        ev.false_alarm_rate,
        ev.alarm_events,
        ev.false_alarm_events
    );
    let mut kinds: Vec<_> = ev.by_kind.iter().collect();
    kinds.sort_by(|a, b| a.0.cmp(b.0));
    println!(
        "product recall by kind: {}",
        kinds
            .iter()
            .map(|(k, st)| format!("{k} {}/{}", st.detected, st.episodes))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "product decisions on normal records, by model: {:?}",
        decided
            .iter()
            .map(|(n, f)| format!("{:.4}", *f as f64 / (*n).max(1) as f64))
            .collect::<Vec<_>>()
    );
    println!("| policy | event precision | recall | normal flagged | alarm events (true/false) |");
    println!("|---|---|---|---|---|");
    for (settle, hold, quiet) in [
        (0usize, 0.5, 1u32),
        (96, 0.6, 1),
        (96, 0.7, 1),
        (96, 0.8, 1),
        (128, 0.7, 1),
        (192, 0.7, 1),
        (96, 0.7, 4),
        (96, 0.7, 8),
    ] {
        let devices: Vec<DeviceFlags> = scored
            .iter()
            .map(|(device, rows)| {
                let mut open = false;
                let mut calm = 0u32;
                let flags = rows
                    .iter()
                    .enumerate()
                    .map(|(age, &(seq, score, threshold))| {
                        if score >= threshold && (age >= settle || score >= hold) {
                            open = true;
                            calm = 0;
                        } else if open {
                            if score < threshold {
                                calm += 1;
                            } else {
                                calm = 0;
                            }
                            if calm >= quiet {
                                open = false;
                            }
                        }
                        (seq, open)
                    })
                    .collect();
                DeviceFlags {
                    device_id: device.clone(),
                    flags,
                    sent: None,
                }
            })
            .collect();
        let ev = evaluate_flags(&devices, &episodes, &EvalOptions::default());
        println!(
            "| young {settle} needs {hold}, close after {quiet} calm | {:.3} | {:.3} | {:.4} | {}/{} |",
            ev.event_precision.unwrap_or(0.0),
            ev.detection_rate.unwrap_or(0.0),
            ev.false_alarm_rate,
            ev.alarm_events,
            ev.false_alarm_events
        );
        if settle == 0 {
            for (k, st) in &ev.by_kind {
                eprintln!(
                    "  {k}: {}/{} delay {:?}",
                    st.detected, st.episodes, st.mean_delay
                );
            }
        }
    }
    Ok(())
}

/// Where the false alarm events of the raw flags are: by model and by
/// distance to the device's previous episode end.
fn diagnose(scored: &[Scored], episodes: &[vigil_training::Episode], chain: &[(u64, Model)]) {
    let mut by_model = vec![0u64; chain.len()];
    let mut by_distance: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut scores = Vec::new();
    let mut ages: std::collections::BTreeMap<u64, u64> = Default::default();
    for (device, rows) in scored {
        let eps: Vec<_> = episodes.iter().filter(|e| &e.device_id == device).collect();
        let first = rows.first().map_or(0, |r| r.0);
        let mut prev = false;
        for &(seq, score, thr) in rows {
            let flag = score >= thr;
            let inside = eps
                .iter()
                .any(|e| seq >= e.first_seq && seq <= e.last_seq + 64);
            if flag && !prev && !inside {
                let tick = WARMUP + (seq - first);
                let m = chain.iter().rposition(|(f, _)| *f <= tick).unwrap_or(0);
                by_model[m] += 1;
                *ages.entry(((tick - WARMUP) / 32) * 32).or_insert(0u64) += 1;
                let d = eps
                    .iter()
                    .filter(|e| e.last_seq < seq)
                    .map(|e| seq - e.last_seq)
                    .min();
                let bucket = match d {
                    None => 0,
                    Some(d) if d < 200 => 200,
                    Some(d) if d < 500 => 500,
                    Some(_) => 9999,
                };
                *by_distance.entry(bucket).or_default() += 1;
                scores.push(score);
            }
            prev = flag;
        }
    }
    println!("false events by model: {by_model:?}");
    println!("false events by ticks since v1 (32-tick buckets): {ages:?}");
    let mut flagged = vec![(0u64, 0u64); chain.len()];
    for (device, rows) in scored {
        let eps: Vec<_> = episodes.iter().filter(|e| &e.device_id == device).collect();
        let first = rows.first().map_or(0, |r| r.0);
        for &(seq, score, thr) in rows {
            if eps
                .iter()
                .any(|e| seq >= e.first_seq && seq <= e.last_seq + 64)
            {
                continue;
            }
            let tick = WARMUP + (seq - first);
            let m = chain.iter().rposition(|(f, _)| *f <= tick).unwrap_or(0);
            flagged[m].0 += 1;
            flagged[m].1 += u64::from(score >= thr);
        }
    }
    println!(
        "live normal FAR by model: {:?}",
        flagged
            .iter()
            .map(|(n, f)| format!("{:.4}", *f as f64 / *n as f64))
            .collect::<Vec<_>>()
    );
    println!("by distance after the previous episode (0 = none before): {by_distance:?}");
    scores.sort_by(f64::total_cmp);
    let q = |p: f64| scores[((scores.len() as f64 - 1.0) * p) as usize];
    println!(
        "their scores: p10 {:.3} p50 {:.3} p90 {:.3}",
        q(0.1),
        q(0.5),
        q(0.9)
    );
}
