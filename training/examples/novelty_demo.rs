//! Experiment: the demo replay (as `alarms`) with per-device online
//! novelty (ranges from each device's first W records) combined with the
//! release's score by max, through the release's alarm policy.
//!
//! `cargo run --release -p vigil-training --example novelty_demo [SEED [TICKS]]`

use std::collections::HashMap;

mod common;

use common::ticks;
use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
use vigil_model::{AlarmPolicy, AlarmTrack, Model, Scratch};
use vigil_schemas::Telemetry;
use vigil_training::{evaluate_flags, fit, DeviceFlags, EvalOptions, TrainConfig};

const DEVICES: usize = 200;
const WARMUP: u64 = 200;
const EVERY: u64 = 240;
const WINDOW: u64 = 600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed: u64 = std::env::args().nth(1).map_or(Ok(0x5EED), |s| s.parse())?;
    let ticks_run: u64 = std::env::args().nth(2).map_or(Ok(1_200), |s| s.parse())?;
    let (all, episodes) = common::demo_fleet(DEVICES, seed, 0.2, 60_000, ticks_run)?;
    let mut chain: Vec<(u64, Model)> = Vec::new();
    let mut at = WARMUP;
    while at < ticks_run {
        let train = ticks(&all, at.saturating_sub(WINDOW), at);
        let cfg = TrainConfig {
            min_device_records: 20,
            min_records: 1_000,
            ..TrainConfig::default()
        };
        chain.push((at, fit(&train, &cfg, |_| {})?.model));
        at += EVERY;
    }
    let mut by_device: HashMap<&str, Vec<&Telemetry>> = HashMap::new();
    for r in &all {
        by_device.entry(r.device_id.as_str()).or_default().push(r);
    }
    let config = NoveltyConfig::default();
    let metrics: Vec<String> = chain[0]
        .1
        .payload()
        .features
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .collect();
    // (device, rows of (seq, ts, pca, novelty per W))
    let ws = [100usize, 150, 300];
    let mut rows_by_device = Vec::new();
    for (device, records) in &by_device {
        let mut state = chain[0].1.extractor().new_state();
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        let mut seen: Vec<&Telemetry> = Vec::new();
        let mut nov: Vec<Option<(Vec<MetricNovelty>, Vec<NoveltyState>)>> = vec![None; ws.len()];
        // Novelty of the normalised features (innovation, level) on a fixed
        // range of ±4 sd: stationary by construction, no warm-up.
        let fixed = vigil_model::novelty::ChannelRange {
            low: -4.0,
            width: 8.0,
        };
        let feature_fit = MetricNovelty {
            value: fixed,
            smooth: fixed,
        };
        let mut feature_states: Vec<NoveltyState> = (0..metrics.len() * 2)
            .map(|_| NoveltyState::new(&config))
            .collect();
        for (tick, r) in records.iter().enumerate() {
            let tick = tick as u64;
            let Some((_, model)) = chain.iter().rev().find(|(from, _)| *from <= tick) else {
                continue;
            };
            let s = model.score_record(&mut state, r, &mut scratch);
            seen.push(r);
            let mut ns = Vec::new();
            let f = scratch.features();
            let mut fp = 1.0f64;
            for j in 0..metrics.len() {
                for (k, idx) in [j * 4, j * 4 + 3].into_iter().enumerate() {
                    fp = fp.min(feature_states[j * 2 + k].observe(&config, &feature_fit, f[idx]));
                }
            }
            let feature_novelty = novelty_score(&config, fp);
            for (k, &w) in ws.iter().enumerate() {
                let value = |t: &Telemetry, m: &str| t.metrics.get(m).copied().unwrap_or(f64::NAN);
                if seen.len() < w {
                    ns.push(0.0);
                    continue;
                }
                if nov[k].is_none() {
                    let fits: Vec<MetricNovelty> = metrics
                        .iter()
                        .map(|m| {
                            let v: Vec<f64> = seen.iter().map(|t| value(t, m)).collect();
                            MetricNovelty::fit(&config, &v)
                        })
                        .collect();
                    let mut states: Vec<NoveltyState> =
                        metrics.iter().map(|_| NoveltyState::new(&config)).collect();
                    for t in &seen[..seen.len() - 1] {
                        for (j, m) in metrics.iter().enumerate() {
                            states[j].observe(&config, &fits[j], value(t, m));
                        }
                    }
                    nov[k] = Some((fits, states));
                }
                let Some((fits, states)) = nov[k].as_mut() else {
                    continue;
                };
                let mut p = 1.0f64;
                for (j, m) in metrics.iter().enumerate() {
                    p = p.min(states[j].observe(&config, &fits[j], value(r, m)));
                }
                ns.push(novelty_score(&config, p));
            }
            ns.push(feature_novelty);
            out.push((r.seq, r.ts, s.score.score, model.threshold(), ns));
        }
        rows_by_device.push(((*device).to_owned(), out));
    }
    let policy = AlarmPolicy::default();
    println!("| variant | event precision | recall | normal flagged | alarm events (true/false) |");
    println!("|---|---|---|---|---|");
    for variant in 0..(3 + 2 * ws.len()) {
        let devices: Vec<DeviceFlags> = rows_by_device
            .iter()
            .map(|(device, rows)| {
                let mut track = AlarmTrack::default();
                let flags = rows
                    .iter()
                    .map(|(seq, ts, pca, thr, ns)| {
                        let fnov = ns[ws.len()];
                        let score = match variant {
                            0 => *pca,
                            v if v <= ws.len() => pca.max(ns[v - 1]),
                            v if v <= 2 * ws.len() => ns[v - 1 - ws.len()],
                            v if v == 2 * ws.len() + 1 => pca.max(fnov),
                            _ => fnov,
                        };
                        let step = track.step(&policy, *seq, *ts, score, *thr);
                        (*seq, step.anomaly)
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
        let name = match variant {
            0 => "pca".to_owned(),
            v if v <= ws.len() => format!("max(pca, novelty W={})", ws[v - 1]),
            v if v <= 2 * ws.len() => format!("novelty alone W={}", ws[v - 1 - ws.len()]),
            v if v == 2 * ws.len() + 1 => "max(pca, feature novelty)".to_owned(),
            _ => "feature novelty alone".to_owned(),
        };
        println!(
            "| {name} | {:.3} | {:.3} | {:.4} | {}/{} |",
            ev.event_precision.unwrap_or(0.0),
            ev.detection_rate.unwrap_or(0.0),
            ev.false_alarm_rate,
            ev.alarm_events,
            ev.false_alarm_events
        );
    }
    Ok(())
}
