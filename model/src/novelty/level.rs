//! Each series' own alert level for the novelty detector (experiment,
//! session 14; `training/EVALUATION.md`, "Novelty with each series' own
//! level").
//!
//! A series keeps an exponential average of its own surprise, in bits per
//! resolution (each record's contribution capped), and alerts at the larger
//! of the fixed level and a function of that average: a series whose routine
//! keeps showing "new" things is desensitised, a quiet one keeps the fixed
//! level. The default, [`LevelRule::Fixed`], is the behaviour chosen on NAB.
//! Bits are taken from the floating-point exponent and a linear mantissa
//! (no libm), so the edge and the cloud compute the same levels.

use serde::{Deserialize, Serialize};

/// How a series' alert level follows its own surprise.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LevelRule {
    /// Alert at the fixed [`super::NoveltyConfig::alarm_bits`].
    #[default]
    Fixed,
    /// Alert at `max(alarm_bits, factor × average)`.
    Scaled {
        /// Multiplier of the series' average surprise.
        factor: f64,
        /// Records the average spans (weight `1 / window` per record).
        window: u32,
        /// Largest surprise, bits per resolution, one record adds (0: the
        /// alarm bits).
        cap: f64,
        /// The average does not move while a record alerts.
        freeze: bool,
    },
    /// Alert at `max(alarm_bits, average + bits)`.
    Raised {
        /// Bits per resolution added to the series' average surprise.
        bits: f64,
        /// Records the average spans (weight `1 / window` per record).
        window: u32,
        /// Largest surprise, bits per resolution, one record adds (0: the
        /// alarm bits).
        cap: f64,
        /// The average does not move while a record alerts.
        freeze: bool,
    },
    /// Alert at `alarm_bits + factor × average`, where the average is of
    /// each record's surprise above `floor` (0 below it): a series that
    /// often comes close to the alert level is desensitised, one whose
    /// routine stays below the floor keeps the fixed level.
    Excess {
        /// Bits per resolution below which a record adds nothing.
        floor: f64,
        /// Multiplier of the average excess.
        factor: f64,
        /// Records the average spans (weight `1 / window` per record).
        window: u32,
        /// Largest surprise, bits per resolution, one record adds (0: the
        /// alarm bits).
        cap: f64,
        /// The average does not move while a record alerts.
        freeze: bool,
    },
}

/// A name of a [`LevelRule`]: `fixed`, `mul:FACTOR:WINDOW`,
/// `add:BITS:WINDOW` or `over:FLOOR:FACTOR:WINDOW`, the last three
/// optionally followed by `:capBITS` and/or `:freeze`.
impl std::str::FromStr for LevelRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "unknown level rule {s:?}: expected fixed, mul:FACTOR:WINDOW, add:BITS:WINDOW \
                 or over:FLOOR:FACTOR:WINDOW, each optionally :capBITS and/or :freeze"
            )
        };
        let mut parts: Vec<&str> = s.split(':').collect();
        if parts == ["fixed"] {
            return Ok(LevelRule::Fixed);
        }
        // `over` takes its floor first; the rest reads as the others do.
        let mut floor = 0.0;
        if parts.first() == Some(&"over") && parts.len() > 1 {
            floor = parts[1].parse::<f64>().map_err(|_| bad())?;
            if !floor.is_finite() || floor < 0.0 {
                return Err(bad());
            }
            parts.remove(1);
        }
        let amount: f64 = parts.get(1).and_then(|a| a.parse().ok()).ok_or_else(bad)?;
        let window: u32 = parts.get(2).and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        if !amount.is_finite() || amount < 0.0 || window == 0 {
            return Err(bad());
        }
        let mut cap = 0.0;
        let mut freeze = false;
        for flag in parts.get(3..).unwrap_or_default() {
            if *flag == "freeze" {
                freeze = true;
            } else if let Some(c) = flag.strip_prefix("cap").and_then(|c| c.parse::<f64>().ok()) {
                if !c.is_finite() || c <= 0.0 {
                    return Err(bad());
                }
                cap = c;
            } else {
                return Err(bad());
            }
        }
        match parts.first() {
            Some(&"mul") => Ok(LevelRule::Scaled {
                factor: amount,
                window,
                cap,
                freeze,
            }),
            Some(&"add") => Ok(LevelRule::Raised {
                bits: amount,
                window,
                cap,
                freeze,
            }),
            Some(&"over") => Ok(LevelRule::Excess {
                floor,
                factor: amount,
                window,
                cap,
                freeze,
            }),
            _ => Err(bad()),
        }
    }
}

impl LevelRule {
    /// The alert level, bits per resolution, for a series whose average
    /// surprise is `average`.
    pub fn alert_bits(self, alarm_bits: f64, average: f64) -> f64 {
        match self {
            LevelRule::Fixed => alarm_bits,
            LevelRule::Scaled { factor, .. } => alarm_bits.max(factor * average),
            LevelRule::Raised { bits, .. } => alarm_bits.max(average + bits),
            LevelRule::Excess { factor, .. } => alarm_bits + factor * average.max(0.0),
        }
    }

    /// The average after a record of `bits` surprise alerting at `alert`
    /// bits (both per resolution).
    pub fn update(self, alarm_bits: f64, average: f64, bits: f64, alert: f64) -> f64 {
        let (window, cap, freeze, floor) = match self {
            LevelRule::Fixed => return average,
            LevelRule::Excess {
                floor,
                window,
                cap,
                freeze,
                ..
            } => (window, cap, freeze, Some(floor)),
            LevelRule::Scaled {
                window,
                cap,
                freeze,
                ..
            }
            | LevelRule::Raised {
                window,
                cap,
                freeze,
                ..
            } => (window, cap, freeze, None),
        };
        if freeze && bits >= alert {
            return average;
        }
        let cap = if cap > 0.0 { cap } else { alarm_bits };
        let bits = bits.min(cap);
        let added = floor.map_or(bits, |f| (bits - f).max(0.0));
        average + (added - average) / f64::from(window.max(1))
    }
}

/// `log2(x)` from the exponent and a linear mantissa (within 0.09 of the
/// true value; exact at powers of two), for `x` in (0, ∞); 0 and smaller
/// numbers give the smallest normal's, non-finite ones 0.
pub fn log2_approx(x: f64) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let x = x.max(f64::MIN_POSITIVE);
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    f64::from(exponent) + (mantissa - 1.0)
}

/// `2^x` for `x ≥ 0`, the inverse of [`log2_approx`] (integer part exact,
/// the fraction linear); at most `2^1023`.
pub fn exp2_approx(x: f64) -> f64 {
    let x = if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1023.0)
    };
    let whole = x.floor();
    let fraction = x - whole;
    let power = f64::from_bits((whole as u64 + 1023) << 52);
    power * (1.0 + fraction)
}

#[cfg(test)]
mod tests {
    use super::super::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
    use super::*;

    /// Alerts (score ≥ 0.5) after row 500 of `values` under `level`.
    fn alerts(values: &[f64], level: LevelRule) -> Vec<usize> {
        let config = NoveltyConfig {
            level,
            ..NoveltyConfig::default()
        };
        let fit = MetricNovelty::fit(&config, &values[..500]);
        let mut state = NoveltyState::new(&config);
        values
            .iter()
            .enumerate()
            .filter_map(|(t, &v)| {
                let score = novelty_score(&config, state.observe(&config, &fit, v));
                (t >= 500 && score >= 0.5).then_some(t)
            })
            .collect()
    }

    #[test]
    fn an_own_level_quiets_a_noisy_series_and_keeps_a_quiet_one_sensitive() {
        // A wandering, noisy series: a random walk with jitter.
        let mut seed = 12_345u64;
        let mut walk = 0.0;
        let noisy: Vec<f64> = (0..4_000)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
                walk += u - 0.5;
                walk + 3.0 * u
            })
            .collect();
        let rule: LevelRule = "mul:3:64".parse().expect("parses");
        let fixed = alerts(&noisy, LevelRule::Fixed).len();
        let own = alerts(&noisy, rule).len();
        assert!(own < fixed, "own level {own} alerts, fixed {fixed}");
        // A quiet rhythm with one spike: the spike still alerts.
        let mut quiet: Vec<f64> = (0..3_000)
            .map(|i| [1.0, 2.0, 4.0, 7.0, 4.0, 2.0][(i / 4) % 6])
            .collect();
        quiet[2_000] = 40.0;
        let own = alerts(&quiet, rule);
        assert_eq!(own.first(), Some(&2_000));
        assert_eq!(own, alerts(&quiet, LevelRule::Fixed));
    }

    #[test]
    fn bits_are_exact_at_powers_of_two_and_close_between() {
        for k in [-1000, -36, -1, 0, 1, 12, 500] {
            let x = f64::from_bits(((k + 1023) as u64) << 52);
            assert_eq!(log2_approx(x), f64::from(k), "2^{k}");
        }
        for x in [3.0, 0.3, 1e-12, 7.5e20] {
            let error = (log2_approx(x) - x.log2()).abs();
            assert!(error < 0.09, "{x}: {error}");
        }
        assert_eq!(log2_approx(0.0), -1022.0);
        assert_eq!(log2_approx(f64::NAN), 0.0);
        for x in [0.0, 0.25, 1.0, 5.5, 36.0] {
            let back = log2_approx(exp2_approx(x));
            assert!((back - x).abs() < 1e-12, "{x}: {back}");
        }
        assert_eq!(exp2_approx(-3.0), 1.0);
        assert_eq!(exp2_approx(2000.0), 2f64.powi(1023));
    }

    #[test]
    fn the_level_rises_with_routine_surprise_and_caps_each_record() {
        let rule: LevelRule = "mul:2:4".parse().expect("parses");
        let mut average = 0.0;
        for _ in 0..200 {
            let alert = rule.alert_bits(12.0, average);
            average = rule.update(12.0, average, 8.0, alert);
        }
        assert!((average - 8.0).abs() < 1e-9, "{average}");
        assert!((rule.alert_bits(12.0, average) - 16.0).abs() < 1e-9);
        // One huge record moves the average by at most (cap − average) / 4.
        let after = rule.update(12.0, average, 500.0, 16.0);
        assert!((after - 9.0).abs() < 1e-9, "{after}");
        // A quiet series keeps the fixed level.
        assert_eq!(rule.alert_bits(12.0, 1.0), 12.0);
        let add: LevelRule = "add:5:4:cap20:freeze".parse().expect("parses");
        assert_eq!(add.alert_bits(12.0, 10.0), 15.0);
        // Frozen while alerting, moving otherwise.
        assert_eq!(add.update(12.0, 10.0, 30.0, 15.0), 10.0);
        assert_eq!(add.update(12.0, 10.0, 14.0, 15.0), 11.0);
        assert_eq!(LevelRule::Fixed.update(12.0, 3.0, 30.0, 12.0), 3.0);
        // Only the part above the floor counts, capped at the alarm bits.
        let over: LevelRule = "over:6:10:4".parse().expect("parses");
        assert_eq!(over.update(12.0, 0.0, 5.0, 12.0), 0.0);
        assert_eq!(over.update(12.0, 0.0, 10.0, 12.0), 1.0);
        assert_eq!(over.update(12.0, 0.0, 50.0, 12.0), 1.5);
        assert_eq!(over.alert_bits(12.0, 0.5), 17.0);
        assert_eq!(over.alert_bits(12.0, 0.0), 12.0);
    }

    #[test]
    fn rules_parse_and_bad_names_are_refused() {
        assert_eq!("fixed".parse(), Ok(LevelRule::Fixed));
        assert_eq!(
            "mul:1.5:256:cap24:freeze".parse(),
            Ok(LevelRule::Scaled {
                factor: 1.5,
                window: 256,
                cap: 24.0,
                freeze: true
            })
        );
        assert_eq!(
            "over:6:10:128:freeze".parse(),
            Ok(LevelRule::Excess {
                floor: 6.0,
                factor: 10.0,
                window: 128,
                cap: 0.0,
                freeze: true
            })
        );
        for bad in [
            "",
            "mul",
            "mul:2",
            "mul:2:0",
            "mul:x:4",
            "add:1:4:cap0",
            "add:1:4:hot",
            "pow:2:4",
            "fixed:1",
            "mul:-1:4",
            "over:6:1",
            "over:x:1:4",
        ] {
            assert!(bad.parse::<LevelRule>().is_err(), "{bad:?}");
        }
    }
}
