//! Experiment (session 15, `training/EVALUATION.md`, "Trust by alert
//! rate"): the demo replay with the product's decisions (as `alarms`),
//! and per-device novelty (ranges from each device's first W = 150
//! records after v1, replayed into the counts, as `novelty_demo`). A record is a candidate under
//! rule C(b, g) when the release's judged score reaches its threshold
//! and the novelty reaches b bits per resolution, or when the novelty
//! reaches its alert level (12 bits) and the judged score reaches g × the
//! threshold. Candidates go through the release's alarm policy.
//!
//! With POLICY arguments (`WINDOW:RELEASE_ONSETS:NOVELTY_ONSETS:NOVELTY_START:GATE[:RANGE_RECORDS]`)
//! it runs the product's combination (`vigil_model::combine`) with each
//! of those trust policies instead of the C(b, g) rows.
//!
//! `cargo run --release -p vigil-training --example corroboration [SEED [TICKS [POLICY...]]]`

mod common;

use vigil_model::combine::{DeviceNovelty, NoveltyPolicy, ReleaseSide, TrustPolicy};
use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
use vigil_model::{AlarmTrack, Scratch};
use vigil_schemas::Telemetry;
use vigil_training::{evaluate_flags, DeviceFlags, EvalOptions};

const DEVICES: usize = 200;
const WARMUP: u64 = 200;
const EVERY: u64 = 240;
const WINDOW: u64 = 600;
/// Records that fix a device's novelty ranges in the C(b, g) rows
/// (`VIGIL_RANGE_ROWS`, default 150).
fn range_rows() -> Result<usize, std::num::ParseIntError> {
    std::env::var("VIGIL_RANGE_ROWS").map_or(Ok(150), |v| v.parse())
}
const BITS: [f64; 8] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0];
const GATES: [f64; 3] = [0.7, 0.9, 100.0];

/// One scored record: seq, ts, judged, threshold, product's anomaly,
/// novelty bits per resolution, novelty score, model index.
type Row = (u64, u64, f64, f64, bool, f64, f64, usize);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed: u64 = std::env::args().nth(1).map_or(Ok(7), |s| s.parse())?;
    let ticks_run: u64 = std::env::args().nth(2).map_or(Ok(1_200), |s| s.parse())?;
    let (all, episodes) = common::demo_fleet(DEVICES, seed, 0.2, 60_000, ticks_run)?;
    let chain = common::release_chain(&all, ticks_run, (WARMUP, EVERY, WINDOW))?;
    let by_device = common::by_device(&all);
    let config = NoveltyConfig::default();
    let resolutions = config.resolutions.len() as f64;
    let metrics: Vec<String> = chain[0]
        .1
        .payload()
        .features
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let value = |t: &Telemetry, m: &str| t.metrics.get(m).copied().unwrap_or(f64::NAN);
    let mut devices: Vec<(String, Vec<Row>, Vec<&Telemetry>)> = Vec::new();
    for (device, records) in &by_device {
        let mut state = chain[0].1.extractor().new_state();
        let mut scratch = Scratch::default();
        let mut seen: Vec<&Telemetry> = Vec::new();
        let mut nov: Option<(Vec<MetricNovelty>, Vec<NoveltyState>)> = None;
        let mut rows = Vec::new();
        let mut scored: Vec<&Telemetry> = Vec::new();
        for (tick, r) in records.iter().enumerate() {
            let tick = tick as u64;
            let Some(m) = chain.iter().rposition(|(from, _)| *from <= tick) else {
                continue;
            };
            let model = &chain[m].1;
            let s = model.score_record(&mut state, r, &mut scratch);
            scored.push(r);
            seen.push(r);
            // Until a device has its ranges the novelty abstains: PCA
            // needs no corroboration (infinite bits) and raises none.
            let w = range_rows()?;
            let (bits, nscore) = if seen.len() < w {
                (f64::INFINITY, 0.0)
            } else {
                if nov.is_none() {
                    let fits: Vec<MetricNovelty> = metrics
                        .iter()
                        .map(|m| {
                            let v: Vec<f64> = seen.iter().map(|t| value(t, m)).collect();
                            MetricNovelty::fit(&config, &v)
                        })
                        .collect();
                    let mut states: Vec<NoveltyState> =
                        metrics.iter().map(|_| NoveltyState::new(&config)).collect();
                    if std::env::var("VIGIL_NO_REPLAY").is_err() {
                        for t in &seen[..seen.len() - 1] {
                            for (j, m) in metrics.iter().enumerate() {
                                states[j].observe(&config, &fits[j], value(t, m));
                            }
                        }
                    }
                    nov = Some((fits, states));
                }
                let (fits, states) = nov.as_mut().expect("just set");
                let mut p = 1.0f64;
                for (j, m) in metrics.iter().enumerate() {
                    p = p.min(states[j].observe(&config, &fits[j], value(r, m)));
                }
                (
                    -p.max(f64::MIN_POSITIVE).log2() / resolutions,
                    novelty_score(&config, p),
                )
            };
            rows.push((
                r.seq,
                r.ts,
                s.judged,
                model.threshold(),
                s.anomaly,
                bits,
                nscore,
                m,
            ));
        }
        devices.push(((*device).to_owned(), rows, scored));
    }
    devices.sort_by(|a, b| a.0.cmp(&b.0));
    // Onsets per 1,000 records of each detector, per device (normal rows
    // and anomalies alike: what the device shows), after the novelty's W.
    let mut rel = Vec::new();
    let mut nov = Vec::new();
    for (_, rows, _) in &devices {
        let rows: Vec<&Row> = rows.iter().filter(|r| r.5.is_finite()).collect();
        let onsets = |hot: &dyn Fn(&Row) -> bool| {
            let mut prev = false;
            let mut n = 0usize;
            for r in &rows {
                let h = hot(r);
                n += usize::from(h && !prev);
                prev = h;
            }
            1000.0 * n as f64 / rows.len().max(1) as f64
        };
        rel.push(onsets(&|r: &Row| r.2 >= r.3));
        nov.push(onsets(&|r: &Row| r.6 >= 0.5));
    }
    for (name, v) in [("release", &mut rel), ("novelty", &mut nov)] {
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        eprintln!(
            "onsets per 1000 records, {name}: p10 {:.2} p25 {:.2} p50 {:.2} p75 {:.2} p90 {:.2}",
            q(0.1),
            q(0.25),
            q(0.5),
            q(0.75),
            q(0.9)
        );
    }
    let alert_bits = f64::from(config.alarm_bits);
    let run = |rule: &dyn Fn(&Row) -> Option<f64>| {
        let flags: Vec<DeviceFlags> = devices
            .iter()
            .map(|(device, rows, _)| {
                let mut track = AlarmTrack::default();
                let flags = rows
                    .iter()
                    .map(|row| {
                        let policy = &chain[row.7].1.payload().alarm;
                        let anomaly = match rule(row) {
                            Some(score) => track.step(policy, row.0, row.1, score, row.3).anomaly,
                            None => row.4,
                        };
                        (row.0, anomaly)
                    })
                    .collect();
                DeviceFlags {
                    device_id: device.clone(),
                    flags,
                    sent: None,
                }
            })
            .collect();
        evaluate_flags(&flags, &episodes, &EvalOptions::default())
    };
    println!("| rule | event precision | recall | normal flagged | alarm events (true/false) | recall by kind |");
    println!("|---|---|---|---|---|---|");
    let report = |name: String, ev: vigil_training::Evaluation| {
        let mut kinds: Vec<_> = ev.by_kind.iter().collect();
        kinds.sort_by(|a, b| a.0.cmp(b.0));
        println!(
            "| {name} | {:.3} | {:.3} | {:.4} | {}/{} | {} |",
            ev.event_precision.unwrap_or(0.0),
            ev.detection_rate.unwrap_or(0.0),
            ev.false_alarm_rate,
            ev.alarm_events,
            ev.false_alarm_events,
            kinds
                .iter()
                .map(|(k, st)| format!("{k} {}/{}", st.detected, st.episodes))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    report(
        "product (the release's own decisions)".into(),
        run(&|_| None),
    );
    // Trust by alert rate (vigil_model::combine), the product's own
    // combination with the policy given on the command line after SEED and
    // TICKS: WINDOW:RELEASE_ONSETS:NOVELTY_ONSETS:NOVELTY_START:GATE
    // [:RANGE_RECORDS] (the release's judged scores above; the alarm's
    // close_after is the onsets' calm run).
    for spec in std::env::args().skip(3) {
        let f: Vec<f64> = spec
            .split(':')
            .map(|x| x.parse().expect("number"))
            .collect();
        let policy = NoveltyPolicy {
            range_records: f
                .get(5)
                .map_or(NoveltyPolicy::default().range_records, |&w| w as u32),
            trust: TrustPolicy {
                window: f[0] as u32,
                release_onsets: f[1],
                novelty_onsets: f[2],
                novelty_start: f[3],
                gate: f[4],
                ..TrustPolicy::default()
            },
            ..NoveltyPolicy::default()
        };
        let flags: Vec<DeviceFlags> = devices
            .iter()
            .map(|(device, rows, records)| {
                let mut track = AlarmTrack::default();
                let mut novelty = DeviceNovelty::new(&policy, metrics.len());
                let flags = rows
                    .iter()
                    .zip(records)
                    .map(|(row, record)| {
                        let alarm = &chain[row.7].1.payload().alarm;
                        let (judged, thr) = (row.2, row.3);
                        let values: Vec<Option<f64>> = metrics
                            .iter()
                            .map(|m| record.metrics.get(m).copied())
                            .collect();
                        let c = novelty.step(
                            &policy,
                            &values,
                            record.ts,
                            ReleaseSide {
                                judged,
                                threshold: thr,
                                close_after: alarm.close_after,
                                in_alarm: track.is_open(),
                                // From the stored (rounded) judged score: a
                                // judged score of 1 is no finite excess, and
                                // neither breaks nor raises the peak.
                                excess: (judged / (1.0 - judged)) / (thr / (1.0 - thr)),
                            },
                        );
                        let score = if c.alert {
                            judged.max(c.novelty.unwrap_or(0.0)).max(thr)
                        } else {
                            0.0
                        };
                        (row.0, track.step(alarm, row.0, row.1, score, thr).anomaly)
                    })
                    .collect();
                DeviceFlags {
                    device_id: device.clone(),
                    flags,
                    sent: None,
                }
            })
            .collect();
        report(
            format!("trust {spec}"),
            evaluate_flags(&flags, &episodes, &EvalOptions::default()),
        );
    }
    if std::env::args().len() > 3 {
        return Ok(());
    }
    for g in GATES {
        for b in BITS {
            let ev = run(&|row: &Row| {
                let (judged, thr, bits, nscore) = (row.2, row.3, row.5, row.6);
                let by_pca = judged >= thr && bits >= b;
                let by_novelty = nscore >= 0.5 && bits >= alert_bits && judged >= g * thr;
                Some(if by_pca || by_novelty {
                    judged.max(nscore).max(thr)
                } else {
                    0.0
                })
            });
            let gate = if g > 10.0 {
                "none".to_owned()
            } else {
                format!("{g}")
            };
            report(format!("C(b = {b}, g = {gate})"), ev);
        }
    }
    Ok(())
}
