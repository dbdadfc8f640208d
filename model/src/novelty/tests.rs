//! Tests of the novelty detector (`super`).

use super::*;

#[test]
fn the_alarm_product_is_two_to_the_minus_bits_exactly() {
    for (bits, resolutions) in [(12u32, 3usize), (1, 1), (64, 64), (30, 40)] {
        let config = NoveltyConfig {
            alarm_bits: bits,
            resolutions: vec![3; resolutions],
            ..NoveltyConfig::default()
        };
        // Metrics add ceil(log2 M) bits: none for one, 3 for eight.
        for (metrics, extra) in [
            (0usize, 0u32),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (8, 3),
            (9, 4),
        ] {
            let mut halved = 1.0f64;
            for _ in 0..(bits * resolutions as u32 + extra).min(1_000) {
                halved *= 0.5;
            }
            assert_eq!(
                alarm_product(&config, metrics).to_bits(),
                halved.to_bits(),
                "{bits} bits, {resolutions} resolutions, {metrics} metrics"
            );
        }
    }
}

#[test]
fn the_online_warm_up_gives_the_fitted_ranges() {
    let config = NoveltyConfig::default();
    let values: Vec<f64> = (0..300)
        .map(|i| (f64::from(i) * 0.37).sin() * 5.0 + f64::from(i % 7))
        .collect();
    let mut warm = RangeWarmup::new(&config);
    for &v in &values {
        warm.push(v);
    }
    assert_eq!(warm.ranges(), MetricNovelty::fit(&config, &values));
    let constant = [3.0; 20];
    let mut warm = RangeWarmup::new(&config);
    constant.iter().for_each(|&v| {
        warm.push(v);
    });
    assert_eq!(warm.ranges(), MetricNovelty::fit(&config, &constant));
}

fn run(values: &[f64], train: usize) -> Vec<f64> {
    let config = NoveltyConfig::default();
    let fit = MetricNovelty::fit(&config, &values[..train]);
    let mut state = NoveltyState::new(&config);
    values
        .iter()
        .map(|&v| novelty_score(&config, state.observe(&config, &fit, v)))
        .collect()
}

fn daily(n: usize) -> Vec<f64> {
    // A repeating 24-step pattern: the series' normal rhythm.
    (0..n)
        .map(|i| [1.0, 2.0, 4.0, 7.0, 4.0, 2.0][(i / 4) % 6])
        .collect()
}

#[test]
fn a_learned_rhythm_is_not_novel() {
    let s = run(&daily(2_000), 500);
    let top = s[1_000..].iter().copied().fold(0.0, f64::max);
    assert!(top < 0.5, "max {top}");
}

#[test]
fn a_spike_is_novel_once_and_a_new_level_is_learned() {
    let mut v = daily(3_000);
    v[1_500] = 40.0;
    for x in &mut v[2_000..] {
        *x += 30.0;
    }
    let s = run(&v, 500);
    assert!(s[1_500] > 0.5, "spike scored {}", s[1_500]);
    assert!(s[2_000] > 0.5, "level shift scored {}", s[2_000]);
    // Once the new level has been seen for a while it is normal again.
    assert!(s[2_600..].iter().all(|&x| x < 0.5));
}

#[test]
fn a_changed_order_of_known_values_is_novel() {
    let mut v = daily(2_000);
    // Known values, unknown steps: jump straight from 1 to 7 and back.
    for (k, x) in v[1_200..1_208].iter_mut().enumerate() {
        *x = if k % 2 == 0 { 1.0 } else { 7.0 };
    }
    let s = run(&v, 500);
    let top = |r: &[f64]| r.iter().copied().fold(0.0, f64::max);
    // Weaker than a never-seen value, but far above the rhythm's own.
    assert!(
        top(&s[1_200..1_208]) > 100.0 * top(&s[1_000..1_200]),
        "changed {} vs normal {}",
        top(&s[1_200..1_208]),
        top(&s[1_000..1_200])
    );
}

#[test]
fn ranges_of_degenerate_series_are_positive() {
    assert_eq!(ChannelRange::of([]).width, 1.0);
    assert_eq!(ChannelRange::of([5.0, 5.0]).width, 0.5);
    assert_eq!(ChannelRange::of([0.0, 0.0]).width, 1.0);
    assert_eq!(ChannelRange::of([f64::NAN, 2.0, 4.0]).width, 2.0);
}

#[test]
fn extreme_and_non_finite_values_stay_in_the_edge_cells() {
    let config = NoveltyConfig::default();
    let fit = MetricNovelty::fit(&config, &[0.0, 1.0, 2.0]);
    let mut state = NoveltyState::new(&config);
    for v in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        -1e300,
        1.0,
    ] {
        let p = state.observe(&config, &fit, v);
        assert!(p > 0.0 && p <= 1.0, "{v}: {p}");
    }
}

#[test]
fn the_default_keeps_no_step_counts() {
    let config = NoveltyConfig::default();
    let plain = NoveltyState::new(&config).bytes();
    let with_steps = NoveltyState::new(&NoveltyConfig {
        expansion: "new:1".parse().expect("parses"),
        ..NoveltyConfig::default()
    })
    .bytes();
    // Per resolution and channel: the counts of two step sizes.
    let per_cells = std::mem::size_of::<StepSizes>() + 2 * 4;
    assert_eq!(
        with_steps - plain,
        std::mem::size_of::<Expanding>() + 6 * per_cells
    );
}

#[test]
fn a_state_keeps_scoring_past_u16_visits_of_one_cell() {
    // A flat series with a rare blip: every table's one cell passes
    // 65,535 visits and its counts are halved (module docs).
    let config = NoveltyConfig::default();
    let fit = MetricNovelty::fit(&config, &[0.0, 1.0]);
    let mut state = NoveltyState::new(&config);
    let mut last = 0.0;
    for i in 0..140_500 {
        let v = if i % 1_000 == 999 { 0.9 } else { 0.5 };
        let p = state.observe(&config, &fit, v);
        assert!(p > 0.0 && p <= 1.0, "row {i}: {p}");
        last = p;
    }
    // The routine stays routine after the halvings.
    assert!(novelty_score(&config, last) < 0.01, "{last}");
    let words = &state.counts.words;
    let first = state.counts.first_start();
    // The value channel's coarsest table: two cells, the flat one's
    // visits halved at least once.
    let head = 1;
    assert_eq!(words[head + 4], 2);
    let visits = u32::from(words[first + 1]) + u32::from(words[first + 3]);
    assert!(visits < 140_500 / 2 + 2, "{visits}");
    assert_eq!(
        u32::from(words[head + 1]) | u32::from(words[head + 2]) << 16,
        visits
    );
}

/// Five-minute values of a working-day routine for `days` days: quiet
/// at night, a shoulder from 06:00, busy from 08:00, an evening level
/// from 20:00; on day `holiday` the shoulder lasts until 20:00.
fn routine(days: usize, holiday: usize) -> Vec<(u64, f64)> {
    (0..days * 288)
        .map(|i| {
            let (day, hour) = (i / 288, i % 288 / 12);
            let v = match hour {
                6..=7 => 4.0,
                8..=19 if day == holiday => 4.0,
                8..=19 => 10.0,
                20..=23 => 6.0,
                _ => 1.0,
            } + (i % 3) as f64 * 0.1;
            (i as u64 * 300_000, v)
        })
        .collect()
}

#[test]
fn the_seasonal_channel_flags_a_usual_value_at_an_unusual_time_of_day() {
    let config = NoveltyConfig::default();
    let (days, holiday) = (80, 70);
    let values = routine(days, holiday);
    let plain: Vec<f64> = values.iter().map(|&(_, v)| v).collect();
    let fit = MetricNovelty::fit(&config, &plain[..288 * 3]);
    let scores = |period: u64| -> Vec<f64> {
        let mut state = NoveltyState::with_period(&config, period);
        values
            .iter()
            .map(|&(ts, v)| novelty_score(&config, state.observe_at(&config, &fit, v, ts)))
            .collect()
    };
    let seasonal = scores(86_400_000);
    let without = scores(0);
    let day = |d: usize| d * 288..(d + 1) * 288;
    // Without a period the long shoulder is nothing new: its level,
    // and steps at it, are seen every morning.
    assert!(without[day(holiday)].iter().all(|&s| s < 0.5));
    // At its phase, the shoulder level in working hours is.
    assert!(seasonal[day(holiday)].iter().any(|&s| s >= 0.5));
    // The routine days after the first weeks, the holiday's neighbours
    // included, are not.
    for (i, &s) in seasonal.iter().enumerate().skip(20 * 288) {
        if !day(holiday).contains(&i) {
            assert!(s < 0.5, "record {i}: {s}");
        }
    }
    // No period, no seasonal state: the same bits as `observe`.
    let mut a = NoveltyState::with_period(&config, 0);
    let mut b = NoveltyState::new(&config);
    for &(ts, v) in &values {
        assert_eq!(
            a.observe_at(&config, &fit, v, ts),
            b.observe(&config, &fit, v)
        );
    }
    assert_eq!(a, b);
    // The seasonal counts: 24 slots of at most 32 pairs here (the
    // ramps at 06:00, 08:00 and 20:00 cross many cells), 3 KB.
    let mut state = NoveltyState::with_period(&config, 86_400_000);
    for &(ts, v) in &values {
        state.observe_at(&config, &fit, v, ts);
    }
    let extra = state.bytes() - b.bytes();
    assert!(extra <= 24 * 32 * 4, "{extra}");
}

#[test]
fn the_alarm_product_scores_one_half() {
    let config = NoveltyConfig::default();
    assert_eq!(novelty_score(&config, alarm_product(&config, 1)), 0.5);
    // 11 bits a resolution for one metric; eight metrics cost three
    // bits more, the 12 a resolution of payload formats up to 10.
    assert_eq!(alarm_product(&config, 1), 2f64.powi(-33));
    assert_eq!(alarm_product(&config, 8), 2f64.powi(-36));
}
