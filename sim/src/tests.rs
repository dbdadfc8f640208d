//! Behavioural tests: determinism, seq/ts contracts, ground truth, and each
//! anomaly kind measured against the same fleet run clean.

use std::collections::HashMap;

use crate::{AnomalyConfig, AnomalyKind, Device, Fleet, FleetConfig, Generated, Label, SimRecord};

/// A compressed day (200 ticks of 1 s) so daily cycles and several episodes
/// fit in a short run.
fn compressed(devices: usize, anomalies: AnomalyConfig) -> FleetConfig {
    FleetConfig {
        devices,
        seed: 42,
        interval_ms: 1_000,
        jitter_ms: 250,
        day_ms: 200_000,
        anomalies,
        ..FleetConfig::default()
    }
}

fn run(config: &FleetConfig, ticks: u64) -> Generated {
    Fleet::new(config.clone())
        .expect("valid config")
        .generate(ticks)
}

#[test]
fn same_seed_same_records_other_seed_other_records() {
    let config = compressed(20, AnomalyConfig::default());
    let a = run(&config, 300);
    let b = run(&config, 300);
    assert_eq!(a, b);
    let c = run(&FleetConfig { seed: 43, ..config }, 300);
    assert_ne!(
        a.records[0].telemetry.metrics,
        c.records[0].telemetry.metrics
    );
}

#[test]
fn iterator_and_ticks_and_single_devices_agree() {
    let config = compressed(7, AnomalyConfig::only(&AnomalyKind::ALL, 20.0));
    let by_tick = run(&config, 500).records;
    let by_iter: Vec<SimRecord> = Fleet::new(config.clone())
        .expect("valid")
        .take(by_tick.len())
        .collect();
    assert_eq!(by_tick, by_iter);
    let mut alone = Device::new(&config, 3).expect("valid");
    let expected: Vec<&SimRecord> = by_tick
        .iter()
        .filter(|r| r.telemetry.device_id == "dev-00003")
        .collect();
    for want in expected {
        assert_eq!(&alone.next_record(), want);
    }
}

#[test]
fn seq_is_contiguous_and_ts_increasing_per_device() {
    let config = compressed(50, AnomalyConfig::only(&AnomalyKind::ALL, 20.0));
    let records = run(&config, 1_000).records;
    let mut last: HashMap<&str, (u64, u64, u64)> = HashMap::new();
    let mut gaps = 0;
    for r in &records {
        let t = &r.telemetry;
        let tick_start = config.start_ms + r.tick * config.interval_ms;
        assert!((tick_start..=tick_start + config.jitter_ms).contains(&t.ts));
        match last.get(t.device_id.as_str()) {
            None => assert_eq!(t.seq, 1, "{} starts at seq 1", t.device_id),
            Some(&(seq, ts, tick)) => {
                assert_eq!(t.seq, seq + 1, "{} seq gap", t.device_id);
                assert!(t.ts > ts, "{} ts not increasing", t.device_id);
                if r.tick > tick + 1 {
                    gaps += 1;
                    assert_eq!(r.label, Label::Anomaly(AnomalyKind::Missing));
                }
            }
        }
        last.insert(&t.device_id, (t.seq, t.ts, r.tick));
    }
    assert_eq!(last.len(), 50);
    assert!(
        gaps > 10,
        "missing-data episodes should leave ts gaps; saw {gaps}"
    );
}

#[test]
fn ground_truth_matches_labels() {
    let config = compressed(40, AnomalyConfig::only(&AnomalyKind::ALL, 10.0));
    let out = run(&config, 2_000);
    assert!(out.episodes.len() > 200, "{} episodes", out.episodes.len());
    let mut kinds_seen = AnomalyKind::ALL.to_vec();
    kinds_seen.retain(|k| !out.episodes.iter().any(|e| e.kind == *k));
    assert!(kinds_seen.is_empty(), "never injected: {kinds_seen:?}");
    // (device, seq) → the episodes claiming it, from the ground truth alone.
    let mut owners: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
    for (i, e) in out.episodes.iter().enumerate() {
        for seq in e.first_seq..=e.last_seq {
            owners
                .entry((e.device_id.as_str(), seq))
                .or_default()
                .push(i);
        }
    }
    let mut labelled_per_episode = vec![0u64; out.episodes.len()];
    for r in &out.records {
        let t = &r.telemetry;
        let claimed = owners
            .get(&(t.device_id.as_str(), t.seq))
            .map_or(&[][..], Vec::as_slice);
        match r.label {
            Label::Normal => assert!(claimed.is_empty(), "normal record inside {claimed:?}"),
            Label::Anomaly(kind) => {
                assert_eq!(claimed.len(), 1, "{r:?}");
                let e = &out.episodes[claimed[0]];
                assert_eq!(e.kind, kind);
                assert!((e.start_ts..=e.end_ts).contains(&t.ts));
                labelled_per_episode[claimed[0]] += 1;
            }
        }
    }
    // Each episode's labelled records span exactly first..=last (or were cut
    // off by the end of the run).
    let last_tick = 1_999;
    for (e, n) in out.episodes.iter().zip(labelled_per_episode) {
        let planned = e.last_seq - e.first_seq + 1;
        let ends_in_run = e.end_ts < config.start_ms + last_tick * config.interval_ms;
        if ends_in_run {
            assert_eq!(n, planned, "{e:?}");
        }
        assert!(n <= planned);
        if e.kind == AnomalyKind::Missing {
            assert_eq!(e.first_seq, e.last_seq);
            assert!(e.end_ts - e.start_ts >= 5 * config.interval_ms - config.jitter_ms);
        }
    }
}

#[test]
fn clean_mode_has_no_anomalies() {
    let config = compressed(30, AnomalyConfig::none());
    let out = run(&config, 1_000);
    assert!(out.episodes.is_empty());
    assert!(out.records.iter().all(|r| r.label == Label::Normal));
    assert_eq!(out.records.len(), 30_000);
}

#[test]
fn rate_is_roughly_per_device_day() {
    // 200-tick days, 50 days, 20 devices, 0.5 per device-day → ~500 episodes
    // (a little fewer: episodes and the minimum gap take time too).
    let anomalies = AnomalyConfig {
        quiet_start_ticks: 0,
        min_gap_ticks: 0,
        ..AnomalyConfig::only(&[AnomalyKind::Spike], 0.5)
    };
    let n = run(&compressed(20, anomalies), 10_000).episodes.len();
    assert!((400..=600).contains(&n), "{n} episodes");
}

#[test]
fn duration_scale_stretches_episodes_and_nothing_else() {
    let long = AnomalyConfig {
        duration_scale: 4.0,
        ..AnomalyConfig::only(&[AnomalyKind::LevelShift], 2.0)
    };
    let base = AnomalyConfig {
        duration_scale: 1.0,
        ..long.clone()
    };
    let (a, b) = (
        run(&compressed(1, base), 2_000),
        run(&compressed(1, long), 2_000),
    );
    let span = |g: &Generated| -> Vec<u64> {
        g.episodes
            .iter()
            .map(|e| e.last_seq - e.first_seq + 1)
            .collect()
    };
    let (short, long) = (span(&a), span(&b));
    assert!(!long.is_empty() && short.iter().all(|d| (30..=120).contains(d)));
    // Cut short only where generation stops.
    assert!(
        long.iter().all(|d| (120..=480).contains(d))
            || b.episodes.iter().any(|e| e.last_seq >= 2_000),
        "{long:?}"
    );
    // One device: its first episode starts at the same record, since the
    // scale draws nothing, and lasts four times as long.
    assert_eq!(a.episodes[0].first_seq, b.episodes[0].first_seq);
    assert_eq!(
        long[0],
        (short[0] * 4).min(2_000 - b.episodes[0].first_seq + 1)
    );
    let bad = AnomalyConfig {
        duration_scale: 0.0,
        ..AnomalyConfig::default()
    };
    assert!(matches!(
        Fleet::new(compressed(1, bad)),
        Err(crate::ConfigError::DurationScale { .. })
    ));
}

#[test]
fn devices_have_different_baselines_and_a_daily_cycle() {
    let config = compressed(10, AnomalyConfig::none());
    let out = run(&config, 400);
    let mean = |dev: &str, metric: &str, ticks: std::ops::Range<u64>| {
        let xs: Vec<f64> = out
            .records
            .iter()
            .filter(|r| r.telemetry.device_id == dev && ticks.contains(&(r.tick % 200)))
            .map(|r| r.telemetry.metrics[metric])
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    let a = mean("dev-00000", "pressure_kpa", 0..200);
    let b = mean("dev-00001", "pressure_kpa", 0..200);
    assert!((a - b).abs() > 1.0, "baselines {a} and {b} look identical");
    // Load peaks mid-day: current at noon well above current at midnight.
    let noon = mean("dev-00002", "current_a", 90..110);
    let night = mean("dev-00002", "current_a", 0..10);
    assert!(noon > night + 1.0, "noon {noon} night {night}");
}

#[test]
fn metrics_are_correlated_through_load() {
    let out = run(&compressed(1, AnomalyConfig::none()), 2_000);
    let series =
        |m: &str| -> Vec<f64> { out.records.iter().map(|r| r.telemetry.metrics[m]).collect() };
    let current = series("current_a");
    assert!(corr(&current, &series("vibration_rms")) > 0.7);
    assert!(corr(&current, &series("temperature_c")) > 0.5);
    assert!(corr(&current, &series("voltage_v")) < -0.5);
}

fn corr(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// For each episode of `kind`: the affected metric's values in the faulty run
/// and in the clean run, aligned by tick, plus that metric's scale.
fn episodes_against_clean(kind: AnomalyKind) -> Vec<(Vec<f64>, Vec<f64>, f64)> {
    let faulty_cfg = compressed(30, AnomalyConfig::only(&[kind], 8.0));
    let clean_cfg = FleetConfig {
        anomalies: AnomalyConfig::none(),
        ..faulty_cfg.clone()
    };
    let faulty = run(&faulty_cfg, 3_000);
    let clean = run(&clean_cfg, 3_000);
    let clean_at: HashMap<(&str, u64), &SimRecord> = clean
        .records
        .iter()
        .map(|r| ((r.telemetry.device_id.as_str(), r.tick), r))
        .collect();
    let faulty_at: HashMap<(&str, u64), &SimRecord> = faulty
        .records
        .iter()
        .map(|r| ((r.telemetry.device_id.as_str(), r.telemetry.seq), r))
        .collect();
    let devices = Fleet::new(faulty_cfg).expect("valid").into_devices();
    let mut found = Vec::new();
    for e in &faulty.episodes {
        let Some(metric) = e.metric.as_deref() else {
            continue;
        };
        let index = faulty_cfg_metric_index(metric);
        let dev: usize = e.device_id["dev-".len()..].parse().expect("sim device id");
        let scale = devices[dev].metric_scale(index).expect("metric exists");
        let (mut f, mut c) = (Vec::new(), Vec::new());
        for r in
            (e.first_seq..=e.last_seq).filter_map(|seq| faulty_at.get(&(e.device_id.as_str(), seq)))
        {
            f.push(r.telemetry.metrics[metric]);
            c.push(clean_at[&(e.device_id.as_str(), r.tick)].telemetry.metrics[metric]);
        }
        if f.len() as u64 == e.last_seq - e.first_seq + 1 {
            found.push((f, c, scale));
        }
    }
    assert!(
        found.len() >= 20,
        "{kind}: only {} complete episodes",
        found.len()
    );
    found
}

fn faulty_cfg_metric_index(metric: &str) -> usize {
    crate::MetricSpec::defaults()
        .iter()
        .position(|m| m.name == metric)
        .expect("default metric")
}

fn deltas(f: &[f64], c: &[f64]) -> Vec<f64> {
    f.iter().zip(c).map(|(a, b)| a - b).collect()
}

#[test]
fn signal_outside_episodes_equals_the_clean_run() {
    let faulty_cfg = compressed(10, AnomalyConfig::only(&AnomalyKind::ALL, 2.0));
    let clean_cfg = FleetConfig {
        anomalies: AnomalyConfig::none(),
        ..faulty_cfg.clone()
    };
    let faulty = run(&faulty_cfg, 1_000);
    let clean = run(&clean_cfg, 1_000);
    let clean_at: HashMap<(&str, u64), &SimRecord> = clean
        .records
        .iter()
        .map(|r| ((r.telemetry.device_id.as_str(), r.tick), r))
        .collect();
    let mut normal = 0;
    for r in faulty.records.iter().filter(|r| r.label == Label::Normal) {
        let c = clean_at[&(r.telemetry.device_id.as_str(), r.tick)];
        assert_eq!(r.telemetry.metrics, c.telemetry.metrics);
        assert_eq!(r.telemetry.ts, c.telemetry.ts);
        normal += 1;
    }
    assert!(normal > 5_000);
}

#[test]
fn spike_jumps_by_many_spreads() {
    for (f, c, scale) in episodes_against_clean(AnomalyKind::Spike) {
        assert!(f.len() <= 3);
        for d in deltas(&f, &c) {
            assert!(
                d.abs() >= 6.0 * scale - 1e-9,
                "spike of {d} vs scale {scale}"
            );
        }
    }
}

#[test]
fn level_shift_is_a_constant_offset() {
    for (f, c, scale) in episodes_against_clean(AnomalyKind::LevelShift) {
        let d = deltas(&f, &c);
        assert!(d[0].abs() >= 3.0 * scale - 1e-9);
        assert!(d.iter().all(|x| (x - d[0]).abs() < 1e-9 * scale.max(1.0)));
    }
}

#[test]
fn drift_ramps_away_steadily() {
    for (f, c, scale) in episodes_against_clean(AnomalyKind::Drift) {
        let d = deltas(&f, &c);
        let sign = d[d.len() - 1].signum();
        assert!(
            d.windows(2).all(|w| sign * (w[1] - w[0]) > 0.0),
            "not monotone"
        );
        assert!(d[d.len() - 1].abs() >= 4.0 * scale - 1e-9);
        assert!(d[0].abs() <= 8.0 * scale / 60.0 + 1e-9);
    }
}

#[test]
fn stuck_sensor_repeats_one_value_while_the_clean_signal_moves() {
    for (f, c, _) in episodes_against_clean(AnomalyKind::StuckAt) {
        assert!(f.iter().all(|v| *v == f[0]));
        assert_eq!(f[0], c[0]);
        assert!(c.iter().any(|v| *v != c[0]));
    }
}

#[test]
fn noise_burst_adds_variance() {
    let mut ratios = Vec::new();
    for (f, c, scale) in episodes_against_clean(AnomalyKind::NoiseBurst) {
        let d = deltas(&f, &c);
        let sd = (d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt();
        ratios.push(sd / scale);
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!(
        (2.5..3.5).contains(&mean),
        "extra noise {mean} spreads, want ~3"
    );
    assert!(ratios.iter().all(|r| *r > 1.0), "{ratios:?}");
}

#[test]
fn broken_correlation_moves_against_the_load() {
    // The clean value rises with load; the anomaly mirrors the load about
    // its mean, so within an episode the change it makes falls as the clean
    // value rises. Measurement noise blurs short or flat episodes, so judge
    // the episodes together.
    let mut corrs = Vec::new();
    let mut size = 0.0;
    let mut n = 0.0;
    for (f, c, scale) in episodes_against_clean(AnomalyKind::BrokenCorrelation) {
        let d = deltas(&f, &c);
        corrs.push(corr(&d, &c));
        size += d.iter().map(|x| x.abs()).sum::<f64>() / scale;
        n += d.len() as f64;
    }
    let mean = corrs.iter().sum::<f64>() / corrs.len() as f64;
    let negative = corrs.iter().filter(|r| **r < 0.0).count() as f64 / corrs.len() as f64;
    eprintln!(
        "mean corr {mean}, negative {negative}, mean |delta| {} spreads",
        size / n
    );
    assert!(mean < -0.5, "mean corr {mean}");
    assert!(
        negative > 0.9,
        "only {negative} of episodes anti-correlated"
    );
    assert!(size / n > 0.5, "mean change {} spreads", size / n);
}
