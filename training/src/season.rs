//! Each metric's period, for the novelty's seasonal channel
//! (`vigil_model::combine::NoveltyPolicy::seasons`, eval/NAB.md,
//! "Session 20").
//!
//! Per device, the metric's most recent [`MAX_ROWS`] values (in `seq`
//! order) are correlated with themselves at every lag up to half their
//! length. A period is the lag of the highest autocorrelation after the
//! first lag at which it turns negative (so the slow decay of a smooth
//! series is not taken for a cycle), if that peak reaches
//! [`MIN_AUTOCORRELATION`]; in ms, the lag times the device's median
//! interval between records. A fleet's period is the median of its
//! devices' when at least half of the devices that report the metric show
//! one; otherwise the metric has none (0). A fleet of more than
//! [`MAX_DEVICES`] devices is judged on that many, evenly spaced in
//! device-id order (the estimate costs `MAX_ROWS`² a device and metric).

use vigil_schemas::Telemetry;

use crate::data::FleetData;

/// Values per device the estimate looks at (the most recent): the cost
/// grows with its square.
pub const MAX_ROWS: usize = 1024;
/// Devices per metric the fleet's period is estimated from.
pub const MAX_DEVICES: usize = 32;
/// Autocorrelation a cycle must reach.
pub const MIN_AUTOCORRELATION: f64 = 0.3;

/// The period of `values` in records, if they show one.
pub fn period_lag(values: &[f64]) -> Option<usize> {
    let n = values.len();
    if n < 8 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = values.iter().map(|v| v - mean).collect();
    let energy: f64 = centred.iter().map(|v| v * v).sum();
    if !(energy.is_finite() && energy > 0.0) {
        return None;
    }
    let correlation = |lag: usize| -> f64 {
        centred[..n - lag]
            .iter()
            .zip(&centred[lag..])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / energy
    };
    let first_negative = (1..=n / 2).find(|&lag| correlation(lag) < 0.0)?;
    let (mut best, mut best_lag) = (f64::NEG_INFINITY, first_negative);
    for lag in first_negative..=n / 2 {
        let c = correlation(lag);
        if c > best {
            best = c;
            best_lag = lag;
        }
    }
    (best >= MIN_AUTOCORRELATION).then_some(best_lag)
}

/// One device's period of `metric` in ms, if it shows one.
fn device_period(records: &[&Telemetry], metric: &str) -> Option<u64> {
    let points: Vec<(u64, f64)> = records
        .iter()
        .filter_map(|r| r.metrics.get(metric).map(|&v| (r.ts, v)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let points = &points[points.len().saturating_sub(MAX_ROWS)..];
    let values: Vec<f64> = points.iter().map(|&(_, v)| v).collect();
    let lag = period_lag(&values)?;
    let mut steps: Vec<u64> = points
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .collect();
    steps.sort_unstable();
    let interval = *steps.get(steps.len() / 2)?;
    let period = interval.checked_mul(lag as u64)?;
    (period > 0).then(|| snap(period))
}

/// Calendar periods a device's cycle is taken to be when its estimate
/// lies within [`SNAP_TOLERANCE`] of one: a minute, an hour, a day, a
/// week (ms).
pub const CALENDAR_PERIODS: [u64; 4] = [60_000, 3_600_000, 86_400_000, 604_800_000];
/// Relative distance from a calendar period within which an estimate is
/// snapped to it.
pub const SNAP_TOLERANCE: f64 = 0.05;

/// `period`, or the calendar period it is within [`SNAP_TOLERANCE`] of.
/// An estimate is a whole number of median intervals, so it may be off by
/// one interval; a phase computed with it would drift by that much every
/// cycle, and over months through every slot.
pub fn snap(period: u64) -> u64 {
    CALENDAR_PERIODS
        .into_iter()
        .find(|&c| (period as f64 - c as f64).abs() <= SNAP_TOLERANCE * c as f64)
        .unwrap_or(period)
}

/// One entry per metric of `metrics`, in order: its period in ms, or 0.
pub(crate) fn metric_periods(data: &FleetData<'_>, metrics: &[String]) -> Vec<u64> {
    metrics
        .iter()
        .map(|metric| {
            let reporting: Vec<_> = data
                .devices
                .iter()
                .filter(|d| d.records.iter().any(|r| r.metrics.contains_key(metric)))
                .collect();
            let sample = reporting.len().min(MAX_DEVICES);
            let mut found: Vec<u64> = (0..sample)
                .filter_map(|i| {
                    let device = reporting[i * reporting.len() / sample];
                    device_period(&device.records, metric)
                })
                .collect();
            if found.is_empty() || 2 * found.len() < sample {
                return 0;
            }
            found.sort_unstable();
            found[(found.len() - 1) / 2]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn cycle(n: usize, period: usize, noise: u64) -> Vec<f64> {
        let mut state = noise.wrapping_add(1);
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let jitter = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.2;
                let phase = (i % period) as f64 / period as f64;
                // A triangle wave: no libm needed.
                let wave = if phase < 0.5 { phase } else { 1.0 - phase };
                wave + jitter
            })
            .collect()
    }

    #[test]
    fn a_daily_cycle_is_found_and_noise_or_a_ramp_is_not() {
        // The peak of a noisy cycle is broad: an estimate within 5 % (what
        // `snap` takes for a calendar period).
        for (period, seed) in [(96, 1), (288, 2), (40, 4)] {
            let lag = period_lag(&cycle(600, period, seed)).expect("a cycle") as f64;
            assert!(
                (lag / period as f64 - 1.0).abs() <= SNAP_TOLERANCE,
                "{period}: {lag}"
            );
        }
        let noise: Vec<f64> = cycle(600, 1, 3);
        assert_eq!(period_lag(&noise), None);
        let ramp: Vec<f64> = (0..600).map(f64::from).collect();
        assert_eq!(period_lag(&ramp), None);
        assert_eq!(period_lag(&[1.0; 100]), None);
        assert_eq!(period_lag(&[1.0, 2.0]), None);
    }

    #[test]
    fn a_fleet_period_needs_half_its_devices_and_is_in_ms() {
        let mut records = Vec::new();
        let periodic = cycle(400, 40, 5);
        for (i, v) in periodic.iter().enumerate() {
            let seq = i as u64 + 1;
            for device in ["a", "b"] {
                let m = BTreeMap::from([("x".to_owned(), *v), ("y".to_owned(), (i % 7) as f64)]);
                records.push(Telemetry::new(device, seq, 1_000_000 + seq * 500, m));
            }
            // Device c reports x as noise.
            let m = BTreeMap::from([("x".to_owned(), cycle(1, 1, seq)[0])]);
            records.push(Telemetry::new("c", seq, 1_000_000 + seq * 500, m));
        }
        let data = FleetData::new(&records, 0.2);
        let p = metric_periods(&data, &["x".to_owned(), "y".to_owned(), "z".to_owned()]);
        // x: a and b show 40 records of 500 ms, c none (2 of 3 is enough);
        // y: a 7-record cycle on a and b, the only devices that report it;
        // z: nobody reports it.
        assert_eq!(p, vec![20_000, 3_500, 0]);
    }

    #[test]
    fn estimates_near_a_calendar_period_snap_to_it() {
        assert_eq!(snap(59_500), 60_000);
        assert_eq!(snap(86_400_000 - 300_000), 86_400_000);
        assert_eq!(snap(95_000_000), 95_000_000);
        assert_eq!(snap(604_800_000 + 1_800_000), 604_800_000);
        assert_eq!(snap(20_000), 20_000);
    }
}
