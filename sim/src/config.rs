//! What to simulate: fleet size, clock, metric set and anomaly mix.
//!
//! A [`FleetConfig`] is plain data with a [`Default`] that produces a
//! realistic fleet (six correlated metrics, one record per second, a 24 h
//! cycle, about one anomaly per device-day). Tests shrink the "day" with
//! [`FleetConfig::day_ms`] so a daily cycle fits in a few hundred ticks.
//! [`FleetConfig::validate`] runs once when a fleet is built and names the
//! offending option.

use vigil_schemas::telemetry::MAX_NAME_LEN;

use crate::AnomalyKind;

/// A closed interval `(lo, hi)`; each device draws its own value uniformly
/// from it, which is what gives every device a different baseline.
pub type Span = (f64, f64);

/// How one metric behaves on a healthy device.
///
/// A sample is `base + load_gain·load + ambient_gain·ambient + noise_sd·N(0,1)`
/// where `load` is the device's latent utilisation in [0, 1] (a daily cycle
/// plus a slow random walk) and `ambient` is a daily sine in [−1, 1]. Metrics
/// that share `load` are correlated, which is what the broken-correlation
/// anomaly breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Metric name as it appears in `Telemetry::metrics`.
    pub name: String,
    /// Level at zero load and neutral ambient.
    pub base: Span,
    /// Change from idle to full load; 0 for metrics that ignore load.
    pub load_gain: Span,
    /// Amplitude of the daily ambient swing.
    pub ambient_gain: Span,
    /// Standard deviation of the white measurement noise.
    pub noise_sd: Span,
    /// Follows a smoothed load (thermal inertia) instead of the instant load.
    pub lagged: bool,
    /// A physical quantity that cannot go below zero: the healthy signal is
    /// clamped at 0 and anomalies that have a direction push it upwards.
    pub nonnegative: bool,
}

impl MetricSpec {
    /// A metric with the given name and base level and no load, ambient or
    /// noise; fill in the rest with struct update syntax.
    pub fn constant(name: impl Into<String>, base: Span) -> Self {
        Self {
            name: name.into(),
            base,
            load_gain: (0.0, 0.0),
            ambient_gain: (0.0, 0.0),
            noise_sd: (0.0, 0.0),
            lagged: false,
            nonnegative: false,
        }
    }

    /// Whether the metric responds to load on every device (both ends of
    /// `load_gain` non-zero with one sign), so its correlation can be broken.
    pub fn load_coupled(&self) -> bool {
        let (lo, hi) = self.load_gain;
        (lo > 0.0 && hi > 0.0) || (lo < 0.0 && hi < 0.0)
    }

    /// Six metrics of an industrial pump or motor: temperature follows load
    /// with a lag, current/vibration/pressure follow it instantly, supply
    /// voltage sags under load, humidity follows the ambient cycle only.
    pub fn defaults() -> Vec<MetricSpec> {
        vec![
            MetricSpec {
                lagged: true,
                load_gain: (15.0, 30.0),
                ambient_gain: (2.0, 5.0),
                noise_sd: (0.2, 0.5),
                ..Self::constant("temperature_c", (35.0, 55.0))
            },
            MetricSpec {
                load_gain: (0.3, 0.8),
                noise_sd: (0.02, 0.06),
                nonnegative: true,
                ..Self::constant("vibration_rms", (0.2, 0.5))
            },
            MetricSpec {
                load_gain: (4.0, 10.0),
                noise_sd: (0.05, 0.15),
                nonnegative: true,
                ..Self::constant("current_a", (1.0, 3.0))
            },
            MetricSpec {
                load_gain: (20.0, 60.0),
                noise_sd: (1.0, 3.0),
                nonnegative: true,
                ..Self::constant("pressure_kpa", (280.0, 340.0))
            },
            MetricSpec {
                ambient_gain: (-8.0, -3.0),
                noise_sd: (0.5, 1.5),
                nonnegative: true,
                ..Self::constant("humidity_pct", (35.0, 60.0))
            },
            MetricSpec {
                load_gain: (-4.0, -1.0),
                noise_sd: (0.3, 0.8),
                ..Self::constant("voltage_v", (228.0, 232.0))
            },
        ]
    }
}

/// Which anomalies to inject, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    /// Mean number of episodes per device per simulated day
    /// ([`FleetConfig::day_ms`]); 0 gives clean data.
    pub rate_per_device_day: f64,
    /// Kinds to draw from, uniformly; list a kind twice to make it twice as
    /// likely.
    pub kinds: Vec<AnomalyKind>,
    /// Ticks at the start of each device's life with no anomaly, so a
    /// detector can learn the baseline first.
    pub quiet_start_ticks: u64,
    /// Healthy ticks between the end of one episode and the start of the next.
    pub min_gap_ticks: u64,
    /// Multiplier on every magnitude (1.0 = the documented defaults); lower
    /// makes anomalies subtler.
    pub severity: f64,
    /// Multiplier on every episode's duration (1.0 = the documented
    /// ranges of [`AnomalyKind::duration_ticks`]); 4 makes a level shift
    /// last 120–480 samples, a sustained fault as an industrial test rig
    /// records one.
    pub duration_scale: f64,
}

impl AnomalyConfig {
    /// No anomalies at all: training data.
    pub fn none() -> Self {
        Self {
            rate_per_device_day: 0.0,
            ..Self::default()
        }
    }

    /// Only the given kinds, at the given rate.
    pub fn only(kinds: &[AnomalyKind], rate_per_device_day: f64) -> Self {
        Self {
            rate_per_device_day,
            kinds: kinds.to_vec(),
            ..Self::default()
        }
    }

    /// Whether any anomaly can be injected.
    pub fn enabled(&self) -> bool {
        self.rate_per_device_day > 0.0 && !self.kinds.is_empty()
    }
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            rate_per_device_day: 1.0,
            kinds: AnomalyKind::ALL.to_vec(),
            quiet_start_ticks: 100,
            min_gap_ticks: 30,
            severity: 1.0,
            duration_scale: 1.0,
        }
    }
}

/// Everything that determines a simulated fleet. Same config, same output.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Number of devices.
    pub devices: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Device ids are `{prefix}-{index:05}` (`dev-00042`).
    pub device_prefix: String,
    /// Event time of tick 0, ms since the Unix epoch.
    pub start_ms: u64,
    /// Time between two samples of one device, ms.
    pub interval_ms: u64,
    /// Each sample's timestamp is late by up to this many ms (uniform,
    /// per device and tick); must be below `interval_ms` so a device's
    /// timestamps stay strictly increasing.
    pub jitter_ms: u64,
    /// Length of the daily cycle, ms. Shrink it in tests to compress a day.
    pub day_ms: u64,
    /// Devices' daily cycles are shifted by up to this fraction of a day
    /// (different sites, different shifts).
    pub phase_spread: f64,
    /// The metrics every device reports.
    pub metrics: Vec<MetricSpec>,
    /// Anomaly injection.
    pub anomalies: AnomalyConfig,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            devices: 100,
            seed: 0x5EED,
            device_prefix: "dev".to_owned(),
            // 2026-01-01T00:00:00Z
            start_ms: 1_767_225_600_000,
            interval_ms: 1_000,
            jitter_ms: 0,
            day_ms: 86_400_000,
            phase_spread: 0.1,
            metrics: MetricSpec::defaults(),
            anomalies: AnomalyConfig::default(),
        }
    }
}

impl FleetConfig {
    /// The default fleet of `devices` devices with no anomalies.
    pub fn clean(devices: usize, seed: u64) -> Self {
        Self {
            devices,
            seed,
            anomalies: AnomalyConfig::none(),
            ..Self::default()
        }
    }

    /// Samples per device per simulated day.
    pub fn ticks_per_day(&self) -> f64 {
        self.day_ms as f64 / self.interval_ms.max(1) as f64
    }

    /// Checks every option; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.devices == 0 {
            return Err(ConfigError::NoDevices);
        }
        if self.device_prefix.is_empty()
            || !self
                .device_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(ConfigError::DevicePrefix {
                prefix: self.device_prefix.clone(),
            });
        }
        if self.interval_ms == 0 {
            return Err(ConfigError::ZeroInterval);
        }
        if self.jitter_ms >= self.interval_ms {
            return Err(ConfigError::JitterTooLarge {
                jitter_ms: self.jitter_ms,
                interval_ms: self.interval_ms,
            });
        }
        if self.day_ms < 2 * self.interval_ms {
            return Err(ConfigError::DayTooShort {
                day_ms: self.day_ms,
                interval_ms: self.interval_ms,
            });
        }
        if !(0.0..=1.0).contains(&self.phase_spread) {
            return Err(ConfigError::PhaseSpread {
                value: self.phase_spread,
            });
        }
        if self.metrics.is_empty() {
            return Err(ConfigError::NoMetrics);
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if m.name.is_empty() || m.name.len() > MAX_NAME_LEN {
                return Err(ConfigError::MetricName {
                    name: m.name.clone(),
                });
            }
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return Err(ConfigError::DuplicateMetric {
                    name: m.name.clone(),
                });
            }
            let spans = [
                ("base", m.base),
                ("load_gain", m.load_gain),
                ("ambient_gain", m.ambient_gain),
                ("noise_sd", m.noise_sd),
            ];
            for (field, (lo, hi)) in spans {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(ConfigError::BadSpan {
                        metric: m.name.clone(),
                        field,
                        lo,
                        hi,
                    });
                }
            }
            if m.noise_sd.0 < 0.0 {
                return Err(ConfigError::BadSpan {
                    metric: m.name.clone(),
                    field: "noise_sd",
                    lo: m.noise_sd.0,
                    hi: m.noise_sd.1,
                });
            }
        }
        let a = &self.anomalies;
        if !(a.rate_per_device_day.is_finite() && a.rate_per_device_day >= 0.0) {
            return Err(ConfigError::Rate {
                value: a.rate_per_device_day,
            });
        }
        if a.rate_per_device_day > 0.0 && a.kinds.is_empty() {
            return Err(ConfigError::NoKinds);
        }
        if !(a.severity.is_finite() && a.severity > 0.0) {
            return Err(ConfigError::Severity { value: a.severity });
        }
        if !(a.duration_scale.is_finite() && a.duration_scale > 0.0) {
            return Err(ConfigError::DurationScale {
                value: a.duration_scale,
            });
        }
        if a.kinds.contains(&AnomalyKind::BrokenCorrelation)
            && !self.metrics.iter().any(MetricSpec::load_coupled)
        {
            return Err(ConfigError::NothingToDecorrelate);
        }
        Ok(())
    }
}

/// A [`FleetConfig`] option that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("fleet config: devices is 0; simulate at least one device")]
    NoDevices,
    #[error("fleet config: device_prefix {prefix:?} must be non-empty letters, digits or . _ : -")]
    DevicePrefix { prefix: String },
    #[error("fleet config: interval_ms is 0; devices need time between samples")]
    ZeroInterval,
    #[error("fleet config: jitter_ms {jitter_ms} must be below interval_ms {interval_ms} to keep timestamps increasing")]
    JitterTooLarge { jitter_ms: u64, interval_ms: u64 },
    #[error("fleet config: day_ms {day_ms} must span at least two intervals of {interval_ms} ms")]
    DayTooShort { day_ms: u64, interval_ms: u64 },
    #[error("fleet config: phase_spread {value} must lie in [0, 1]")]
    PhaseSpread { value: f64 },
    #[error("fleet config: metrics is empty; devices must report at least one metric")]
    NoMetrics,
    #[error("fleet config: metric name {name:?} is empty or longer than {MAX_NAME_LEN} bytes")]
    MetricName { name: String },
    #[error("fleet config: metric {name:?} is listed twice")]
    DuplicateMetric { name: String },
    #[error("fleet config: metric {metric:?} {field} span ({lo}, {hi}) must be finite with lo <= hi (and non-negative for noise_sd)")]
    BadSpan {
        metric: String,
        field: &'static str,
        lo: f64,
        hi: f64,
    },
    #[error("fleet config: anomaly rate {value} per device-day must be a finite number >= 0")]
    Rate { value: f64 },
    #[error("fleet config: anomaly rate is positive but no anomaly kinds are enabled")]
    NoKinds,
    #[error("fleet config: anomaly severity {value} must be a finite number > 0")]
    Severity { value: f64 },
    #[error("fleet config: anomaly duration_scale {value} must be a finite number > 0")]
    DurationScale { value: f64 },
    #[error("device index {index} is outside the fleet of {devices} devices")]
    DeviceIndex { index: usize, devices: usize },
    #[error(
        "fleet config: broken_correlation needs a metric whose load_gain is non-zero with one sign"
    )]
    NothingToDecorrelate,
}
