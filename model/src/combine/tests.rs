use std::collections::BTreeMap;

use vigil_schemas::Telemetry;

use super::*;

const THRESHOLD: f64 = 0.5;

/// The release side of a record outside any alarm.
fn side(judged: f64, close_after: u32) -> ReleaseSide {
    ReleaseSide {
        judged,
        threshold: THRESHOLD,
        close_after,
        in_alarm: false,
        excess: odds(judged) / odds(THRESHOLD),
    }
}

fn odds(p: f64) -> f64 {
    p / (1.0 - p)
}

fn record(seq: u64, values: &[(&str, f64)]) -> Telemetry {
    let metrics: BTreeMap<String, f64> = values.iter().map(|&(m, v)| (m.to_owned(), v)).collect();
    Telemetry::new("d", seq, seq * 1000, metrics)
}

/// The record's values of the spec's metrics `a` and `b`, as the
/// extractor hands them over.
fn values(r: &Telemetry) -> Vec<Option<f64>> {
    ["a", "b"]
        .iter()
        .map(|m| r.metrics.get(*m).copied())
        .collect()
}

/// A calm two-metric device: a small repeating pattern.
fn calm(seq: u64) -> Telemetry {
    let x = (seq % 6) as f64;
    record(seq, &[("a", 10.0 + x), ("b", 20.0 - x)])
}

/// The two detectors and their trust alone (the jump watch, which the
/// release's made-up excesses below would set off, is tested on its own).
fn policy() -> NoveltyPolicy {
    NoveltyPolicy {
        range_records: 50,
        jump: JumpPolicy::off(),
        ..NoveltyPolicy::default()
    }
}

#[test]
fn bytes_count_the_warmup_the_counts_and_the_seasons() {
    let flat = policy();
    let seasonal = NoveltyPolicy {
        seasons: Some(vec![3_600_000, 0]),
        ..policy()
    };
    let mut a = DeviceNovelty::new(&flat, 2);
    let mut b = DeviceNovelty::new(&seasonal, 2);
    let inline = std::mem::size_of::<DeviceNovelty>();
    // The warm-up's smoothing rings, before the ranges are fixed.
    assert!(a.bytes() > inline + 2 * std::mem::size_of::<RangeWarmup>());
    for seq in 1..=400 {
        let r = calm(seq);
        a.step(&flat, &values(&r), r.ts, side(0.1, 4));
        b.step(&seasonal, &values(&r), r.ts, side(0.1, 4));
    }
    let states = 2 * std::mem::size_of::<NoveltyState>();
    assert!(a.bytes() > inline + states, "counts on the heap");
    // The seasonal metric's blocks: 24 slots of 8 words at least.
    assert!(
        b.bytes() >= a.bytes() + 24 * 8 * 4,
        "{} vs {}",
        b.bytes(),
        a.bytes()
    );
}

#[test]
fn the_default_policy_is_valid_and_bad_ones_are_refused() {
    assert_eq!(NoveltyPolicy::default().check(), Ok(()));
    let mut p = NoveltyPolicy::default();
    p.config.resolutions = vec![];
    assert!(matches!(p.check(), Err(NoveltyPolicyError::Resolutions(_))));
    let mut p = NoveltyPolicy::default();
    p.trust.release_onsets = f64::NAN;
    assert!(p.check().is_err());
    let p = NoveltyPolicy {
        range_records: 0,
        ..NoveltyPolicy::default()
    };
    assert!(p.check().is_err());
    // The break is off (0) or at least 1: below, routine alerts would pass.
    for (release_break, ok) in [(0.0, true), (1.0, true), (0.5, false), (f64::NAN, false)] {
        let mut p = NoveltyPolicy::default();
        p.trust.release_break = release_break;
        assert_eq!(p.check().is_ok(), ok, "release_break {release_break}");
    }
}

#[test]
fn the_novelty_abstains_until_the_ranges_are_fixed_then_names_the_novel_metric() {
    let p = NoveltyPolicy {
        trust: TrustPolicy {
            novelty_start: 0.0,
            ..TrustPolicy::default()
        },
        ..policy()
    };
    let mut d = DeviceNovelty::new(&p, 2);
    for seq in 1..=50 {
        let c = d.step(&p, &values(&calm(seq)), 0, side(0.1, 4));
        assert_eq!(c.novelty, None, "record {seq}");
        assert!(!c.alert);
    }
    for seq in 51..=400 {
        let c = d.step(&p, &values(&calm(seq)), 0, side(0.1, 4));
        if seq > 200 {
            assert!(!c.alert, "a learnt rhythm alerts at {seq}");
        }
    }
    // Metric b jumps far outside anything it showed: a trusted novelty
    // alerts on it alone, with the release's score low.
    let c = d.step(
        &p,
        &values(&record(401, &[("a", 11.0), ("b", 500.0)])),
        0,
        side(0.1, 4),
    );
    assert!(c.alert && c.novelty.is_some_and(|n| n >= 0.5), "{c:?}");
    assert_eq!(c.novel_metric, Some(1));
}

#[test]
fn the_release_bound_and_the_novelty_start_shrink_with_its_calibration_evidence() {
    let t = TrustPolicy::default();
    // A fleet's release: 200,000 rows at 0.1 % is 200 exceedances.
    assert_eq!(t.for_calibration(200_000, 0.001), t);
    // Exactly the full evidence keeps the whole bound.
    assert_eq!(
        t.for_calibration(10_000, 0.001).release_onsets,
        t.release_onsets
    );
    // 4,000 rows: 4 exceedances, 40 % of the bound (0.0024) is below
    // what a release keeping a 0.1 % promise can show (3 onsets in a
    // window of 1,024), so it gets that.
    let promise = t.promised_onsets(0.001);
    assert_eq!(promise, 3.0 / 1024.0);
    assert_eq!(t.for_calibration(4_000, 0.001).release_onsets, promise);
    // 6,000 rows: 60 % of the bound is above it.
    let mid = t.for_calibration(6_000, 0.001).release_onsets;
    assert!((mid - 0.6 * t.release_onsets).abs() < 1e-12, "{mid}");
    // A NAB file's 600 rows: 0.6 exceedances; the promise.
    let small = t.for_calibration(600, 0.001);
    assert_eq!(small.release_onsets, promise);
    // … and its novelty starts at its bound, not 4 times above it.
    assert_eq!(small.novelty_start, t.novelty_onsets);
    assert_eq!(
        TrustPolicy {
            release_onsets: t.release_onsets,
            novelty_start: t.novelty_start,
            ..small
        },
        t,
        "only the release's bound and the novelty's start move"
    );
    // 6,000 rows: 60 % of the start is above the bound.
    let start = t.for_calibration(6_000, 0.001).novelty_start;
    assert!((start - 0.6 * t.novelty_start).abs() < 1e-12, "{start}");
    // A start set below the bound is never raised to it.
    let low = TrustPolicy {
        novelty_start: 0.001,
        ..t
    };
    assert_eq!(low.for_calibration(600, 0.001).novelty_start, 0.001);
    // No rows: the promise alone; a meaningless target: no trust of
    // its own.
    assert_eq!(t.for_calibration(0, 0.001).release_onsets, promise);
    assert_eq!(t.for_calibration(500, f64::NAN).release_onsets, 0.0);
    assert_eq!(t.for_calibration(500, -0.1).release_onsets, 0.0);
    // The promise grows with the target and never passes 1.
    assert_eq!(t.promised_onsets(0.01), 16.0 / 1024.0);
    assert!(t.promised_onsets(0.0001) == 1.0 / 1024.0);
    assert_eq!(t.promised_onsets(1.0), 1.0);
    // A long window at a high target: the normal approximation, where
    // the Poisson sum's first term would underflow. Mean 1,000 over
    // 100,000 records: 1,053 onsets.
    let long = TrustPolicy {
        window: 100_000,
        ..t
    };
    assert_eq!(long.promised_onsets(0.01), 1_053.0 / 100_000.0);
    // Both sides of the switch agree to within an onset or two.
    let at = |mean: f64| {
        TrustPolicy {
            window: 10_000,
            ..t
        }
        .promised_onsets(mean / 10_000.0)
            * 10_000.0
    };
    assert!(
        (at(399.9) - at(400.1)).abs() <= 2.0,
        "{} {}",
        at(399.9),
        at(400.1)
    );
}

#[test]
fn a_release_alarm_that_counted_runs_on_and_its_onset_is_judged_once() {
    // A release whose bound is below one onset per window: one onset
    // lifts its rate (1/1024) above it.
    let mut p = policy();
    p.trust.release_onsets = 0.5 / 1024.0;
    let mut d = DeviceNovelty::new(&p, 2);
    for seq in 1..=300 {
        d.step(&p, &values(&calm(seq)), 0, side(0.1, 4));
    }
    // Ten release alerts in a row, two calm records between the last
    // ones: one alarm, and every alert of it counts.
    for (i, judged) in [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9]
        .into_iter()
        .enumerate()
    {
        let c = d.step(&p, &values(&calm(301 + i as u64)), 0, side(judged, 4));
        assert_eq!(c.alert, judged >= THRESHOLD, "record {i}: {c:?}");
    }
    // Calm for longer than close_after: the next release alert is an
    // onset, judged by the rate, and the release is not trusted now.
    for seq in 313..=320 {
        d.step(&p, &values(&calm(seq)), 0, side(0.1, 4));
    }
    let c = d.step(&p, &values(&calm(321)), 0, side(0.9, 4));
    assert!(!c.release_trusted && !c.alert, "{c:?}");
    // Nor does its continuation count.
    let c = d.step(&p, &values(&calm(322)), 0, side(0.9, 4));
    assert!(!c.alert, "{c:?}");
}

#[test]
fn an_untrusted_detector_counts_only_with_the_other_one() {
    // The default start (0.012) is above the bound (0.0025): 300 calm
    // records later (0.009) the novelty is not trusted yet.
    let p = policy();
    let warm = || {
        let mut d = DeviceNovelty::new(&p, 2);
        for seq in 1..=300 {
            d.step(&p, &values(&calm(seq)), 0, side(0.1, 4));
        }
        d
    };
    // Metric a jumps; b keeps its rhythm.
    let jump = |seq: u64| record(seq, &[("a", 900.0), ("b", 20.0 - (seq % 6) as f64)]);
    let c = warm().step(&p, &values(&jump(301)), 0, side(0.1, 4));
    assert!(!c.novelty_trusted && c.novelty.is_some_and(|n| n >= 0.5));
    assert!(!c.alert, "an untrusted novelty alone: {c:?}");
    let c = warm().step(&p, &values(&jump(301)), 0, side(0.46, 4));
    assert!(!c.alert, "the release below its threshold: {c:?}");
    // A release that lost its voice (an alert every 20th record) ...
    let mut d = warm();
    for seq in 301..=1_300u64 {
        let judged = if seq % 20 == 0 { 0.9 } else { 0.1 };
        d.step(&p, &values(&calm(seq)), 0, side(judged, 4));
    }
    let mut loud = d.clone();
    let c = loud.step(&p, &values(&calm(1_301)), 0, side(0.9, 4));
    assert!(!c.release_trusted && !c.alert, "alone: {c:?}");
    // ... still counts where the untrusted novelty alerts with it.
    let c = d.step(&p, &values(&jump(1_301)), 0, side(0.9, 4));
    assert!(!c.release_trusted && !c.novelty_trusted && c.alert, "{c:?}");
    assert_eq!(c.novel_metric, Some(0));
}

#[test]
fn training_ranges_let_the_novelty_speak_from_a_devices_first_record() {
    let range = |low| crate::novelty::ChannelRange { low, width: 6.0 };
    let p = NoveltyPolicy {
        training_ranges: Some(vec![
            MetricNovelty {
                value: range(10.0),
                smooth: range(10.0),
            },
            MetricNovelty {
                value: range(15.0),
                smooth: range(15.0),
            },
        ]),
        trust: TrustPolicy {
            novelty_start: 0.0,
            ..TrustPolicy::default()
        },
        ..NoveltyPolicy::default()
    };
    assert_eq!(p.check(), Ok(()));
    let mut d = DeviceNovelty::new(&p, 2);
    let c = d.step(&p, &values(&calm(1)), 0, side(0.1, 4));
    assert!(c.novelty.is_some(), "no warm-up with training ranges");
    for seq in 2..=200 {
        d.step(&p, &values(&calm(seq)), 0, side(0.1, 4));
    }
    // Record 201, long before a warm-up of range_records (300) ends.
    let c = d.step(
        &p,
        &values(&record(
            201,
            &[("a", 500.0), ("b", 20.0 - (201 % 6) as f64)],
        )),
        0,
        side(0.1, 4),
    );
    assert!(c.alert && c.novel_metric == Some(0), "{c:?}");
    // Ranges of the wrong count fall back to the warm-up.
    let warm = DeviceNovelty::new(&p, 3);
    assert!(warm.ranges.is_empty() && warm.warmup.len() == 3);
    // A range without width is refused.
    let mut bad = p.clone();
    if let Some(r) = bad.training_ranges.as_mut() {
        r[1].smooth.width = 0.0;
    }
    assert_eq!(bad.check(), Err(NoveltyPolicyError::TrainingRanges));
}

#[test]
fn a_release_that_cries_wolf_on_a_device_loses_its_voice_there() {
    let p = policy();
    let mut d = DeviceNovelty::new(&p, 2);
    let mut alerts = Vec::new();
    // The release alerts on every 20th record of a calm device: 50
    // onsets per 1,000 records, far above its bound of 3.
    for seq in 1..=2_000u64 {
        let judged = if seq % 20 == 0 { 0.9 } else { 0.1 };
        let c = d.step(&p, &values(&calm(seq)), 0, side(judged, 4));
        if judged > THRESHOLD {
            alerts.push((seq, c.alert, c.release_trusted));
        }
    }
    // It starts trusted, ...
    assert!(alerts[0].1 && alerts[0].2);
    // ... and after a few onsets its alerts no longer stand alone.
    let late: Vec<_> = alerts.iter().filter(|a| a.0 > 1_000).collect();
    assert!(late.iter().all(|a| !a.1 && !a.2), "{late:?}");
    // A device where it alerts rarely keeps it.
    let mut quiet = DeviceNovelty::new(&p, 2);
    for seq in 1..=2_000u64 {
        let judged = if seq % 700 == 0 { 0.9 } else { 0.1 };
        let c = quiet.step(&p, &values(&calm(seq)), 0, side(judged, 4));
        if judged > THRESHOLD {
            assert!(c.alert && c.release_trusted, "record {seq}");
        }
    }
}

#[test]
fn alerts_inside_an_open_alarm_are_not_onsets() {
    // A long fault: the release's score wavers about the threshold,
    // alerting every 20th record for 1,000 records, while the device
    // stays in alarm. That is one fault, so the release keeps its
    // voice; the same alerts outside an alarm would cost it (the test
    // above).
    let p = policy();
    let mut d = DeviceNovelty::new(&p, 2);
    let mut last = None;
    for seq in 1..=1_000u64 {
        let judged = if seq % 20 == 0 { 0.9 } else { 0.1 };
        let in_alarm = seq > 20;
        let c = d.step(
            &p,
            &values(&calm(seq)),
            0,
            ReleaseSide {
                in_alarm,
                ..side(judged, 4)
            },
        );
        if judged > THRESHOLD {
            last = Some((seq, c.alert, c.release_trusted));
        }
    }
    assert_eq!(last, Some((1_000, true, true)));
}

#[test]
fn flickers_within_close_after_are_one_onset() {
    let p = policy();
    let run = |close_after| {
        let mut d = DeviceNovelty::new(&p, 2);
        let mut trusted_at_end = true;
        for seq in 1..=3_000u64 {
            // Bursts of alternating hot and calm records every 400.
            let hot = seq % 400 < 8 && seq % 2 == 0;
            let judged = if hot { 0.9 } else { 0.1 };
            trusted_at_end = d
                .step(&p, &values(&calm(seq)), 0, side(judged, close_after))
                .release_trusted;
        }
        trusted_at_end
    };
    // Counted as one onset per burst (2.5 per 1,000) the release stays
    // trusted; counted per flicker (10 per 1,000) it does not.
    assert!(run(4));
    assert!(!run(1));
}

/// The release side of a record outside any alarm whose excess over the
/// threshold's raw score is `excess` (the judged score that goes with it).
fn side_excess(excess: f64, close_after: u32) -> ReleaseSide {
    let odds = excess * odds(THRESHOLD);
    ReleaseSide {
        judged: odds / (1.0 + odds),
        excess,
        ..side(0.0, close_after)
    }
}

#[test]
fn an_untrusted_release_speaks_record_by_record_far_beyond_its_peak() {
    let run = |release_break: f64| {
        let p = NoveltyPolicy {
            trust: TrustPolicy {
                release_break,
                ..TrustPolicy::default()
            },
            ..policy()
        };
        let mut d = DeviceNovelty::new(&p, 2);
        // The release cries wolf at nine times its threshold's raw score on
        // every 20th record, and loses its voice on the device.
        let mut seq = 0u64;
        for _ in 0..2_000 {
            seq += 1;
            let excess = if seq % 20 == 0 { 9.0 } else { 0.2 };
            d.step(&p, &values(&calm(seq)), 0, side_excess(excess, 4));
        }
        // Then one run of alerts whose excess climbs past 32 × 9 = 288, as
        // a stuck sensor's does, dips, and climbs again.
        [279.0, 300.0, 100.0, 400.0]
            .into_iter()
            .map(|excess| {
                seq += 1;
                let c = d.step(&p, &values(&calm(seq)), 0, side_excess(excess, 4));
                assert!(!c.release_trusted);
                c.alert
            })
            .collect::<Vec<_>>()
    };
    // Below the bar nothing; each record past it speaks on its own, and one
    // that falls back below it (an episode's wake) does not ride on the
    // last one's voice.
    assert_eq!(run(RELEASE_BREAK), [false, true, false, true]);
    // With the break off the untrusted release stays silent throughout.
    assert_eq!(run(0.0), [false; 4]);
}

#[test]
fn the_bar_is_the_peak_before_the_run_so_a_second_run_must_beat_the_first() {
    let p = policy();
    let mut d = DeviceNovelty::new(&p, 2);
    let mut seq = 0u64;
    let mut step = |excess: f64| {
        seq += 1;
        d.step(&p, &values(&calm(seq)), 0, side_excess(excess, 4))
    };
    for n in 1..=2_000 {
        step(if n % 20 == 0 { 9.0 } else { 0.2 });
    }
    // A run far beyond the cry-wolf level speaks, and raises the peak.
    assert!(step(1_000.0).alert);
    for _ in 0..10 {
        step(0.2);
    }
    // The next run is measured against it: 1,000 again is routine now.
    assert!(!step(1_000.0).alert);
    for _ in 0..10 {
        step(0.2);
    }
    assert!(step(32_000.0).alert);
}

/// Alerts of a device whose metric `drifting` (0: `a`, 1: `b`; 2: none)
/// climbs 0.05 a record from record 401 on, under `p`: `a` a sawtooth of
/// 60 records (0 to 5.9 over 10), `b` a slow ramp over the first 300
/// records, flat after; the release silent, the novelty untrusted.
fn drift_alerts(p: &NoveltyPolicy, drifting: usize) -> Vec<(u64, Option<usize>)> {
    let mut d = DeviceNovelty::new(p, 2);
    let mut alerts = Vec::new();
    for seq in 1..=1_000u64 {
        let climb = 0.05 * seq.saturating_sub(400) as f64;
        let mut a = 10.0 + (seq % 60) as f64 / 10.0;
        let mut b = 20.0 + 0.01 * seq.min(300) as f64;
        match drifting {
            0 => a += climb,
            1 => b += climb,
            _ => {}
        }
        let r = record(seq, &[("a", a), ("b", b)]);
        let c = d.step(p, &values(&r), r.ts, side(0.1, 4));
        if c.alert {
            alerts.push((seq, c.novel_metric));
        }
    }
    alerts
}

fn drift_policy() -> NoveltyPolicy {
    NoveltyPolicy {
        seasons: Some(vec![60_000, 60_000]),
        drift: drift::DriftPolicy { widths: 0.5 },
        // The novelty starts (and stays) untrusted: every alert below is
        // the drift watch's.
        trust: TrustPolicy {
            novelty_start: 1.0,
            window: 100_000,
            ..TrustPolicy::default()
        },
        ..NoveltyPolicy::default()
    }
}

#[test]
fn a_drift_beyond_the_devices_own_settled_range_alerts_now_and_then() {
    let p = drift_policy();
    assert_eq!(p.check(), Ok(()));
    assert_eq!(drift_alerts(&p, 2), [], "a calm device");
    let alerts = drift_alerts(&p, 0);
    // The anchor: the smoothed sawtooth's range over the first 300
    // records, 10.55 to 15.35; half a width above it is 17.75, which the
    // smoothed value (lagging the climb by 5.5 records) passes near the
    // first sawtooth peak after the climb reaches about 2.7: the one
    // ending at record 479.
    let first = alerts[0].0;
    assert!((460..=480).contains(&first), "{alerts:?}");
    assert!(alerts.iter().all(|a| a.1 == Some(0)), "{alerts:?}");
    // Onsets, not a state: a handful of alerts over 550 records of drift.
    assert!((3..=40).contains(&alerts.len()), "{alerts:?}");
    // A metric whose own range was not settled (a ramp), a release
    // without periods, and the watch off: no alert at all.
    assert_eq!(drift_alerts(&p, 1), []);
    let flat = NoveltyPolicy {
        seasons: None,
        ..drift_policy()
    };
    assert_eq!(drift_alerts(&flat, 0), []);
    let off = NoveltyPolicy {
        drift: drift::DriftPolicy::off(),
        ..drift_policy()
    };
    assert_eq!(drift_alerts(&off, 0), []);
    let mut bad = drift_policy();
    bad.drift.widths = -0.5;
    assert_eq!(bad.check(), Err(NoveltyPolicyError::DriftWidths(-0.5)));
}

#[test]
fn a_swap_keeps_novelty_state_only_under_the_same_drift_watch() {
    let a = NoveltyPolicy::default();
    let mut b = a.clone();
    b.trust.release_onsets /= 2.0;
    b.trust.novelty_start /= 2.0;
    b.seasons = Some(vec![60_000]);
    assert!(NoveltyPolicy::state_compatible(Some(&a), Some(&b)));
    b.drift = drift::DriftPolicy::off();
    assert!(!NoveltyPolicy::state_compatible(Some(&a), Some(&b)));
}

#[test]
fn a_leap_of_the_release_below_its_threshold_alerts_as_the_release_s() {
    let run = |jump: JumpPolicy| {
        let p = NoveltyPolicy { jump, ..policy() };
        let mut d = DeviceNovelty::new(&p, 2);
        let mut seq = 0u64;
        // The release says 0.01 to 0.03 of its threshold's raw score of a
        // calm device for 600 records.
        for i in 0..600u64 {
            seq += 1;
            let r = calm(seq);
            let excess = [0.01, 0.02, 0.03][(i % 3) as usize];
            let s = ReleaseSide {
                excess,
                ..side(0.2, 10)
            };
            assert!(!d.step(&p, &values(&r), r.ts, s).alert, "record {seq}");
        }
        // Then 100 times that, still judged below the threshold, on a calm
        // record the novelty has seen many times.
        seq += 1;
        let r = calm(seq);
        let s = ReleaseSide {
            excess: 2.0,
            ..side(0.45, 10)
        };
        d.step(&p, &values(&r), r.ts, s)
    };
    let on = run(JumpPolicy::default());
    assert!(on.alert, "{on:?}");
    assert_eq!(on.novel_metric, None);
    assert!(!run(JumpPolicy::off()).alert);
}

#[test]
fn the_novelty_level_is_set_per_record_three_bits_higher_for_eight_metrics() {
    // Eight copies of one metric's values: every metric's product is the
    // one metric's, so the record's smallest is the same on both devices,
    // and only the level differs: 2^-33 for one metric, 2^-36 for eight.
    let p = policy();
    let mut one = DeviceNovelty::new(&p, 1);
    let mut eight = DeviceNovelty::new(&p, 8);
    let value = |seq: u64| 10.0 + ((seq * seq) % 7) as f64;
    let row = |v: f64, metrics: usize| vec![Some(v); metrics];
    for seq in 1..=400u64 {
        one.step(&p, &row(value(seq), 1), 0, side(0.1, 4));
        eight.step(&p, &row(value(seq), 8), 0, side(0.1, 4));
    }
    let odds = |s: f64| s / (1.0 - s);
    for (seq, v) in [(401, value(401)), (402, 16.5), (403, 13.0)] {
        let c1 = one.step(&p, &row(v, 1), 0, side(0.1, 4));
        let c8 = eight.step(&p, &row(v, 8), 0, side(0.1, 4));
        let (s1, s8) = (c1.novelty.expect("scored"), c8.novelty.expect("scored"));
        assert!(s1 > 0.0 && s1 < 1.0 && s8 > 0.0, "{seq}: {s1} {s8}");
        let ratio = odds(s1) / odds(s8);
        assert!(
            (ratio - 8.0).abs() < 1e-6,
            "{seq}: odds {s1} / {s8} = {ratio}"
        );
    }
}
