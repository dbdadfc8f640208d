//! One simulated device: its baseline, its latent load, its anomaly schedule.
//!
//! State per device is a fixed handful of numbers plus one small parameter
//! row per metric; nothing grows with time. Three independent random streams
//! keep things comparable: *params* draws the baseline once, *signal* drives
//! the load walk and measurement noise, *events* schedules and shapes
//! anomalies. Because anomalies never touch the signal stream, a fleet with
//! anomalies produces exactly the clean fleet's signal outside its episodes,
//! which is how the tests check each anomaly against the baseline.

use std::collections::BTreeMap;
use std::f64::consts::{FRAC_1_SQRT_2, TAU};
use std::sync::Arc;

use vigil_schemas::Telemetry;

use crate::rng::{derive, mix, Rng};
use crate::{AnomalyKind, ConfigError, Episode, FleetConfig, Label};

/// Persistence of the load's random walk per tick (AR(1) coefficient).
const WALK_PHI: f64 = 0.98;
/// Innovation s.d. of the load walk per tick.
const WALK_SD: f64 = 0.01;
/// Smoothing factor of the lagged load (thermal inertia), per tick.
const LAG_ALPHA: f64 = 0.05;
/// Device load mean and daily amplitude, drawn per device.
const LOAD_MEAN: (f64, f64) = (0.35, 0.65);
const LOAD_AMP: (f64, f64) = (0.15, 0.3);

const STREAM_PARAMS: u64 = 1;
const STREAM_SIGNAL: u64 = 2;
const STREAM_EVENTS: u64 = 3;
const STREAM_JITTER: u64 = 4;

/// What every device of a fleet shares: the validated config and derived
/// constants.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: FleetConfig,
    /// Indices of metrics whose correlation with load can be broken.
    coupled: Vec<usize>,
    /// Mean healthy ticks between episodes; infinite when disabled.
    mean_gap_ticks: f64,
    /// Every metric name mapped to 0. Cloning it and overwriting the values
    /// is much cheaper than inserting names one by one into a fresh map.
    template: BTreeMap<String, f64>,
    /// Metric indices in the map's (name) order.
    sorted: Vec<usize>,
}

impl Shared {
    pub(crate) fn new(config: FleetConfig) -> Result<Arc<Self>, ConfigError> {
        config.validate()?;
        let coupled = config
            .metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| m.load_coupled())
            .map(|(i, _)| i)
            .collect();
        let mean_gap_ticks = if config.anomalies.enabled() {
            config.ticks_per_day() / config.anomalies.rate_per_device_day
        } else {
            f64::INFINITY
        };
        let template: BTreeMap<String, f64> = config
            .metrics
            .iter()
            .map(|m| (m.name.clone(), 0.0))
            .collect();
        let sorted = template
            .keys()
            .filter_map(|name| config.metrics.iter().position(|m| &m.name == name))
            .collect();
        Ok(Arc::new(Self {
            config,
            coupled,
            mean_gap_ticks,
            template,
            sorted,
        }))
    }
}

/// One metric's baseline on one device.
#[derive(Debug, Clone, Copy)]
struct MetricParams {
    base: f64,
    load_gain: f64,
    ambient_gain: f64,
    noise_sd: f64,
    lagged: bool,
    nonnegative: bool,
    /// Typical spread of the healthy signal; anomaly magnitudes use it.
    scale: f64,
}

/// The episode in progress on a device.
#[derive(Debug, Clone, Copy)]
struct Active {
    kind: AnomalyKind,
    metric: usize,
    start_tick: u64,
    /// Last tick of the episode (for `Missing`, the tick that ends the silence).
    end_tick: u64,
    /// Signed size in the metric's units.
    size: f64,
    /// The value a stuck sensor repeats (set on the first tick).
    stuck: f64,
}

/// One record and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    pub telemetry: Telemetry,
    pub label: Label,
    /// Sample slot since the start: `ts = start_ms + tick·interval_ms + jitter`.
    pub tick: u64,
    /// Set on the first record of an episode: that episode's ground truth.
    pub episode: Option<Box<Episode>>,
}

/// A simulated device. Get one from [`crate::Fleet::into_devices`] or
/// [`Device::new`]; both give identical devices for the same config and index.
#[derive(Debug, Clone)]
pub struct Device {
    shared: Arc<Shared>,
    index: usize,
    id: String,
    params: Box<[MetricParams]>,
    load_mean: f64,
    load_amp: f64,
    /// Shift of this device's daily cycle, fraction of a day.
    phase: f64,
    walk: f64,
    lagged_load: f64,
    signal: Rng,
    events: Rng,
    jitter_key: u64,
    /// Next tick to simulate.
    tick: u64,
    /// Seq of the last emitted record (0 before the first).
    seq: u64,
    next_episode_tick: u64,
    active: Option<Active>,
    /// Ground truth waiting for the episode's first emitted record.
    pending: Option<Box<Episode>>,
}

impl Device {
    /// Device `index` of the fleet `config` describes.
    pub fn new(config: &FleetConfig, index: usize) -> Result<Self, ConfigError> {
        if index >= config.devices {
            return Err(ConfigError::DeviceIndex {
                index,
                devices: config.devices,
            });
        }
        Ok(Self::with_shared(Shared::new(config.clone())?, index))
    }

    pub(crate) fn with_shared(shared: Arc<Shared>, index: usize) -> Self {
        let cfg = &shared.config;
        let dev = index as u64;
        let mut params_rng = Rng::new(derive(cfg.seed, dev, STREAM_PARAMS));
        let load_mean = params_rng.between(LOAD_MEAN);
        let load_amp = params_rng.between(LOAD_AMP);
        let phase = params_rng.between((0.0, cfg.phase_spread));
        let walk_sd = WALK_SD / (1.0 - WALK_PHI * WALK_PHI).sqrt();
        let params = cfg
            .metrics
            .iter()
            .map(|m| {
                let base = params_rng.between(m.base);
                let load_gain = params_rng.between(m.load_gain);
                let ambient_gain = params_rng.between(m.ambient_gain);
                let noise_sd = params_rng.between(m.noise_sd);
                let load_sd = load_gain * (load_amp * FRAC_1_SQRT_2).hypot(walk_sd);
                let scale = noise_sd
                    .hypot(load_sd)
                    .hypot(ambient_gain * FRAC_1_SQRT_2)
                    .max(f64::MIN_POSITIVE);
                MetricParams {
                    base,
                    load_gain,
                    ambient_gain,
                    noise_sd,
                    lagged: m.lagged,
                    nonnegative: m.nonnegative,
                    scale,
                }
            })
            .collect();
        let mut events = Rng::new(derive(cfg.seed, dev, STREAM_EVENTS));
        let next_episode_tick = cfg
            .anomalies
            .quiet_start_ticks
            .saturating_add(healthy_gap(&mut events, shared.mean_gap_ticks));
        let mut device = Self {
            id: format!("{}-{index:05}", cfg.device_prefix),
            index,
            params,
            load_mean,
            load_amp,
            phase,
            walk: 0.0,
            lagged_load: 0.0,
            signal: Rng::new(derive(cfg.seed, dev, STREAM_SIGNAL)),
            events,
            jitter_key: derive(cfg.seed, dev, STREAM_JITTER),
            tick: 0,
            seq: 0,
            next_episode_tick,
            active: None,
            pending: None,
            shared,
        };
        let (load_cycle, _) = device.cycles(0);
        device.lagged_load = (load_mean + load_amp * load_cycle).clamp(0.0, 1.0);
        device
    }

    /// The device id, `{prefix}-{index:05}`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Position in the fleet.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Seq of the last record produced (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The tick the next call to [`Device::step`] simulates.
    pub fn next_tick(&self) -> u64 {
        self.tick
    }

    /// Typical spread (≈ standard deviation) of metric `i` on this healthy
    /// device; anomaly magnitudes are multiples of it.
    pub fn metric_scale(&self, i: usize) -> Option<f64> {
        self.params.get(i).map(|p| p.scale)
    }

    /// Event time of `tick` on this device, ms.
    pub fn ts_of(&self, tick: u64) -> u64 {
        let cfg = &self.shared.config;
        let jitter = if cfg.jitter_ms == 0 {
            0
        } else {
            mix(self.jitter_key ^ tick) % (cfg.jitter_ms + 1)
        };
        cfg.start_ms
            .saturating_add(tick.saturating_mul(cfg.interval_ms))
            .saturating_add(jitter)
    }

    /// The next record, skipping ticks in which the device is silent.
    pub fn next_record(&mut self) -> SimRecord {
        loop {
            if let Some(record) = self.step() {
                return record;
            }
        }
    }

    /// Simulates one tick: the record, or `None` while the device is silent.
    pub fn step(&mut self) -> Option<SimRecord> {
        let tick = self.tick;
        self.tick += 1;
        if self.active.is_none() && tick >= self.next_episode_tick {
            self.begin_episode(tick);
        }

        let (load_cycle, ambient) = self.cycles(tick);
        self.walk = WALK_PHI * self.walk + WALK_SD * self.signal.normal();
        let load = (self.load_mean + self.load_amp * load_cycle + self.walk).clamp(0.0, 1.0);
        self.lagged_load += LAG_ALPHA * (load - self.lagged_load);

        let (silent, label) = match &self.active {
            None => (false, Label::Normal),
            Some(a) if a.kind == AnomalyKind::Missing => {
                (tick < a.end_tick, Label::Anomaly(AnomalyKind::Missing))
            }
            Some(a) => (false, Label::Anomaly(a.kind)),
        };

        let shared = &*self.shared;
        let (params, signal, events, active) = (
            &self.params,
            &mut self.signal,
            &mut self.events,
            &mut self.active,
        );
        let (lagged_load, load_mean) = (self.lagged_load, self.load_mean);
        let mut sample = |i: usize| {
            let p = &params[i];
            let l = if p.lagged { lagged_load } else { load };
            let mut v =
                p.base + p.load_gain * l + p.ambient_gain * ambient + p.noise_sd * signal.normal();
            if p.nonnegative {
                v = v.max(0.0);
            }
            match active.as_mut() {
                Some(a) if a.metric == i => {
                    apply(a, tick, v, 2.0 * p.load_gain * (load_mean - l), events)
                }
                _ => v,
            }
        };
        // Noise is drawn for every metric on every tick, silent or not, so
        // the signal stream never depends on the anomalies.
        let metrics = if silent {
            shared.sorted.iter().for_each(|&i| {
                sample(i);
            });
            None
        } else {
            let mut metrics = shared.template.clone();
            for (v, &i) in metrics.values_mut().zip(&shared.sorted) {
                *v = sample(i);
            }
            Some(metrics)
        };

        if let Some(a) = self.active {
            if tick >= a.end_tick {
                self.active = None;
                self.schedule_next(tick);
            }
        }
        let metrics = metrics?;
        self.seq += 1;
        let ts = self.ts_of(tick);
        Some(SimRecord {
            telemetry: Telemetry::new(self.id.clone(), self.seq, ts, metrics),
            label,
            tick,
            episode: self.pending.take(),
        })
    }

    /// Load cycle (peaks mid-day) and ambient cycle (peaks mid-afternoon) at
    /// `tick`, both in [−1, 1].
    fn cycles(&self, tick: u64) -> (f64, f64) {
        let cfg = &self.shared.config;
        let t_ms = u128::from(tick) * u128::from(cfg.interval_ms);
        let frac = (t_ms % u128::from(cfg.day_ms)) as f64 / cfg.day_ms as f64 + self.phase;
        // Ambient lags load by 1/8 day: sin(a − π/4) = (sin a − cos a)/√2.
        let (s, c) = (TAU * (frac - 0.25)).sin_cos();
        (s, (s - c) * FRAC_1_SQRT_2)
    }

    fn begin_episode(&mut self, tick: u64) {
        let shared = Arc::clone(&self.shared);
        let cfg = &shared.config;
        let kinds = &cfg.anomalies.kinds;
        let kind = kinds[self.events.below(kinds.len() as u64) as usize];
        let (lo, hi) = kind.duration_ticks();
        // Scaled after the draw, so the default scale (1) draws and gives
        // exactly what it did before the scale existed.
        let duration = (self.events.int_between(lo, hi) as f64 * cfg.anomalies.duration_scale)
            .round()
            .max(1.0) as u64;
        let metric = match kind {
            AnomalyKind::Missing => usize::MAX,
            AnomalyKind::BrokenCorrelation => {
                shared.coupled[self.events.below(shared.coupled.len() as u64) as usize]
            }
            _ => self.events.below(self.params.len() as u64) as usize,
        };
        let mut size = 0.0;
        if let Some(p) = self.params.get(metric) {
            let sign = if p.nonnegative {
                1.0
            } else {
                self.events.sign()
            };
            size = sign * self.events.between(kind.magnitude()) * cfg.anomalies.severity * p.scale;
        }
        let (end_tick, last_seq) = if kind == AnomalyKind::Missing {
            (tick + duration, self.seq + 1)
        } else {
            (tick + duration - 1, self.seq + duration)
        };
        self.active = Some(Active {
            kind,
            metric,
            start_tick: tick,
            end_tick,
            size,
            stuck: 0.0,
        });
        self.pending = Some(Box::new(Episode {
            device_id: self.id.clone(),
            kind,
            metric: cfg.metrics.get(metric).map(|m| m.name.clone()),
            first_seq: self.seq + 1,
            last_seq,
            start_ts: self.ts_of(tick),
            end_ts: self.ts_of(end_tick),
        }));
    }

    fn schedule_next(&mut self, end_tick: u64) {
        let gap = healthy_gap(&mut self.events, self.shared.mean_gap_ticks);
        self.next_episode_tick = end_tick
            .saturating_add(1)
            .saturating_add(self.shared.config.anomalies.min_gap_ticks)
            .saturating_add(gap);
    }
}

/// Ticks until the next episode may start: exponential with the given mean,
/// or never when anomalies are off.
fn healthy_gap(events: &mut Rng, mean_ticks: f64) -> u64 {
    if mean_ticks.is_finite() {
        // `as` saturates, so an enormous draw means "not in this run".
        events.exponential(mean_ticks) as u64
    } else {
        u64::MAX
    }
}

/// The anomalous value of the affected metric; `v` is the healthy value and
/// `mirror_delta` what mirroring the load about its mean would add.
fn apply(a: &mut Active, tick: u64, v: f64, mirror_delta: f64, events: &mut Rng) -> f64 {
    match a.kind {
        AnomalyKind::Spike | AnomalyKind::LevelShift => v + a.size,
        AnomalyKind::Drift => {
            let progress =
                (tick - a.start_tick + 1) as f64 / (a.end_tick - a.start_tick + 1) as f64;
            v + a.size * progress
        }
        AnomalyKind::StuckAt => {
            if tick == a.start_tick {
                a.stuck = v;
            }
            a.stuck
        }
        AnomalyKind::NoiseBurst => v + a.size.abs() * events.normal(),
        AnomalyKind::BrokenCorrelation => v + mirror_delta,
        AnomalyKind::Missing => v,
    }
}
