//! Experiment: the demo replay (as `alarms`) with per-device online
//! novelty (ranges from each device's first W records) combined with the
//! release's score by max, through the release's alarm policy.
//!
//! The last two variants calibrate the novelty alert level per release:
//! the release trained at tick `at` takes, over every device's records of
//! its training window (ticks `at − 600 .. at`, after the device's first W
//! records), the surprise in bits at the target false-alarm rate,
//! extrapolated from the 75th and 90th percentiles as the PCA threshold is
//! (`fit.rs`, trimmed calibration), and alerts at the larger of that and
//! the fixed level.
//!
//! The rows named with an expansion (session 14) run the novelty with
//! `NoveltyConfig::expansion` set (W = 150): a small step into a never-seen
//! cell judged by how often steps of that size were seen, not as
//! "something new" (`training/EVALUATION.md`, "Novelty without random-walk
//! expansion").
//!
//! Rows named `EXPANSION+LEVEL` (session 14, "Novelty with each series'
//! own level") also set `NoveltyConfig::level`, e.g. `novel+mul:2:256`.
//!
//! The `gated` rows (session 14, "Novelty gated by the PCA score") let the
//! default novelty (W = 150) count only while the release's own score is
//! at least g × its threshold: `gated g` scores max(PCA, novelty) when
//! PCA ≥ g × threshold and PCA alone otherwise; `gated-only g` scores the
//! novelty when PCA ≥ g × threshold and 0 otherwise (a diagnostic).
//!
//! `cargo run --release -p vigil-training --example novelty_demo [SEED [TICKS [EXPANSION[+LEVEL][@BITS]...]]]`
//! (expansions as `vigil-eval nab --novelty-expansion` takes them, e.g.
//! `new:1:finest`; `@BITS` sets the alert level in bits per resolution;
//! default: `new:1:finest`).

mod common;

use vigil_model::novelty::{
    novelty_score, Expansion, LevelRule, MetricNovelty, NoveltyConfig, NoveltyState,
};
use vigil_model::{AlarmPolicy, AlarmTrack, Scratch};
use vigil_schemas::Telemetry;
use vigil_training::{evaluate_flags, DeviceFlags, EvalOptions};

const DEVICES: usize = 200;
const WARMUP: u64 = 200;
const EVERY: u64 = 240;
const WINDOW: u64 = 600;
/// The W whose novelty is also run with a calibrated alert level.
const CALIBRATED_W: usize = 150;
/// The release's target false-alarm rate.
const TARGET: f64 = 0.001;
/// Gates of the `gated` rows, as fractions of the release's threshold.
const GATES: [f64; 9] = [0.0, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// `v`'s value at the `1 - target` quantile, extrapolated from the 75th and
/// 90th percentiles (the trainer's trimmed calibration, on bits).
fn tail_bits(v: &mut [f64], target: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let (q75, q90) = (q(0.75), q(0.90));
    let beta = (q90 - q75).max(0.0) / (0.25_f64 / 0.10).ln();
    Some(q90 + beta * (0.10 / target).ln())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed: u64 = std::env::args().nth(1).map_or(Ok(0x5EED), |s| s.parse())?;
    let ticks_run: u64 = std::env::args().nth(2).map_or(Ok(1_200), |s| s.parse())?;
    let mut variants: Vec<(String, NoveltyConfig)> = Vec::new();
    for arg in std::env::args().skip(3) {
        let (name, bits) = arg.split_once('@').unwrap_or((arg.as_str(), ""));
        let (name, level) = name.split_once('+').unwrap_or((name, "fixed"));
        let mut config = NoveltyConfig {
            expansion: name.parse::<Expansion>()?,
            level: level.parse::<LevelRule>()?,
            ..NoveltyConfig::default()
        };
        if !bits.is_empty() {
            config.alarm_bits = bits.parse()?;
        }
        variants.push((arg.clone(), config));
    }
    if variants.is_empty() {
        let config = NoveltyConfig {
            expansion: "new:1:finest".parse::<Expansion>()?,
            ..NoveltyConfig::default()
        };
        variants.push(("new:1:finest".to_owned(), config));
    }
    let (all, episodes) = common::demo_fleet(DEVICES, seed, 0.2, 60_000, ticks_run)?;
    let chain = common::release_chain(&all, ticks_run, (WARMUP, EVERY, WINDOW))?;
    let by_device = common::by_device(&all);
    let config = NoveltyConfig::default();
    let metrics: Vec<String> = chain[0]
        .1
        .payload()
        .features
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .collect();
    // (device, rows of (seq, ts, pca, novelty per W and settings))
    let mut ws: Vec<(usize, NoveltyConfig, String)> = [100usize, 150, 300]
        .into_iter()
        .map(|w| (w, config.clone(), String::new()))
        .collect();
    for (name, c) in &variants {
        ws.push((CALIBRATED_W, c.clone(), format!(" {name}")));
    }
    let mut rows_by_device = Vec::new();
    // Per settings: the largest and the summed state bytes of a device.
    let mut state_bytes: Vec<(usize, usize)> = vec![(0, 0); ws.len()];
    // Surprise bits (W = CALIBRATED_W) of every device's records, by tick.
    let mut by_tick: Vec<Vec<f64>> = vec![Vec::new(); ticks_run as usize];
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
            let mut raw: Option<f64> = None;
            let f = scratch.features();
            let mut fp = 1.0f64;
            for j in 0..metrics.len() {
                for (k, idx) in [j * 4, j * 4 + 3].into_iter().enumerate() {
                    fp = fp.min(feature_states[j * 2 + k].observe(&config, &feature_fit, f[idx]));
                }
            }
            let feature_novelty = novelty_score(&config, fp);
            for (k, (w, config, _)) in ws.iter().enumerate() {
                let w = *w;
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
                            MetricNovelty::fit(config, &v)
                        })
                        .collect();
                    let mut states: Vec<NoveltyState> =
                        metrics.iter().map(|_| NoveltyState::new(config)).collect();
                    for t in &seen[..seen.len() - 1] {
                        for (j, m) in metrics.iter().enumerate() {
                            states[j].observe(config, &fits[j], value(t, m));
                        }
                    }
                    nov[k] = Some((fits, states));
                }
                let Some((fits, states)) = nov[k].as_mut() else {
                    continue;
                };
                let mut p = 1.0f64;
                for (j, m) in metrics.iter().enumerate() {
                    p = p.min(states[j].observe(config, &fits[j], value(r, m)));
                }
                if k == 1 {
                    raw = Some(p);
                }
                ns.push(novelty_score(config, p));
            }
            ns.push(feature_novelty);
            if let Some(p) = raw {
                by_tick[tick as usize].push(-p.max(f64::MIN_POSITIVE).log2());
            }
            out.push((r.seq, r.ts, s.score.score, model.threshold(), ns, raw, tick));
        }
        for (k, n) in nov.iter().enumerate() {
            let bytes: usize = n
                .iter()
                .flat_map(|(_, states)| states)
                .map(NoveltyState::bytes)
                .sum();
            state_bytes[k].0 = state_bytes[k].0.max(bytes);
            state_bytes[k].1 += bytes;
        }
        rows_by_device.push(((*device).to_owned(), out));
    }
    // Per release: the alert level in bits over its training window.
    let fixed_bits = f64::from(config.alarm_bits * config.resolutions.len() as u32);
    let levels: Vec<(u64, f64)> = chain
        .iter()
        .map(|(at, _)| {
            let mut bits: Vec<f64> = by_tick
                [at.saturating_sub(WINDOW) as usize..(*at as usize).min(by_tick.len())]
                .iter()
                .flatten()
                .copied()
                .collect();
            let level = tail_bits(&mut bits, TARGET).unwrap_or(fixed_bits);
            eprintln!(
                "release at tick {at}: {} rows, calibrated {level:.1} bits, fixed {fixed_bits}",
                bits.len()
            );
            (*at, level.max(fixed_bits))
        })
        .collect();
    let calibrated = |tick: u64, p: f64| -> f64 {
        let level = levels
            .iter()
            .rev()
            .find(|(from, _)| *from <= tick)
            .map_or(fixed_bits, |l| l.1);
        let at = (-level).exp2();
        at / (at + p)
    };
    for ((w, _, name), (max, sum)) in ws.iter().zip(&state_bytes) {
        eprintln!(
            "novelty state W={w}{name}: {} metrics, mean {} bytes, max {max} bytes per device",
            metrics.len(),
            sum / by_device.len().max(1)
        );
    }
    let policy = AlarmPolicy::default();
    println!("| variant | event precision | recall | normal flagged | alarm events (true/false) |");
    println!("|---|---|---|---|---|");
    let gated_from = 5 + 2 * ws.len();
    for variant in 0..(gated_from + 2 * GATES.len()) {
        let devices: Vec<DeviceFlags> = rows_by_device
            .iter()
            .map(|(device, rows)| {
                let mut track = AlarmTrack::default();
                let flags = rows
                    .iter()
                    .map(|(seq, ts, pca, thr, ns, raw, tick)| {
                        let fnov = ns[ws.len()];
                        let cal = raw.map_or(0.0, |p| calibrated(*tick, p));
                        let score = match variant {
                            v if v >= gated_from => {
                                let k = v - gated_from;
                                let open = *pca >= GATES[k / 2] * thr;
                                match (k % 2 == 0, open) {
                                    (true, true) => pca.max(ns[1]),
                                    (true, false) => *pca,
                                    (false, true) => ns[1],
                                    (false, false) => 0.0,
                                }
                            }
                            v if v == 2 * ws.len() + 3 => pca.max(cal),
                            v if v == 2 * ws.len() + 4 => cal,
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
            v if v >= gated_from => {
                let k = v - gated_from;
                let kind = if k % 2 == 0 { "gated" } else { "gated-only" };
                format!("{kind} {} (novelty W={CALIBRATED_W})", GATES[k / 2])
            }
            0 => "pca".to_owned(),
            v if v <= ws.len() => format!("max(pca, novelty W={}{})", ws[v - 1].0, ws[v - 1].2),
            v if v <= 2 * ws.len() => {
                let (w, _, name) = &ws[v - 1 - ws.len()];
                format!("novelty alone W={w}{name}")
            }
            v if v == 2 * ws.len() + 1 => "max(pca, feature novelty)".to_owned(),
            v if v == 2 * ws.len() + 2 => "feature novelty alone".to_owned(),
            v if v == 2 * ws.len() + 3 => format!("max(pca, calibrated novelty W={CALIBRATED_W})"),
            _ => format!("calibrated novelty alone W={CALIBRATED_W}"),
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
