//! Flags of `vigil-loadgen run`, validated once into a [`RunConfig`].
//!
//! Every option has a flag and a `VIGIL_LOADGEN_*` variable (MQTT and Kafka
//! options are the services' own `VIGIL_MQTT_*` / `VIGIL_KAFKA_*`), with a
//! default that works against a local stack. Conflicting or impossible
//! combinations are refused here with a message naming the option.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use vigil_fleet_sim::{AnomalyConfig, AnomalyKind, FleetConfig};
use vigil_service::config::{KafkaArgs, MqttArgs};
use vigil_service::duration::parse_secs_f64;

/// Longest run `--duration` accepts (a day): longer runs are a soak test
/// for something else, and the per-device seq sets stay small.
const MAX_DURATION_SECS: f64 = 86_400.0;
/// Most devices one run simulates.
pub const MAX_DEVICES: usize = 1_000_000;
/// Most MQTT connections one run opens.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most records one replayed CSV file may hold (they are loaded up front).
pub const MAX_REPLAY_ROWS: usize = 5_000_000;

/// Which verdicts to read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerdictSource {
    /// `vigil.verdicts` in Kafka (cloud and bridged edge verdicts).
    Kafka,
    /// `vigil/devices/+/verdicts` over MQTT (edge agents' own verdicts).
    Mqtt,
    /// Both; a verdict read on both paths counts as a duplicate.
    Both,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A live bar when stderr is a terminal, log lines otherwise.
    Auto,
    /// Always the live bar.
    Bar,
    /// Periodic log lines.
    Log,
    /// Nothing until the summary.
    None,
}

/// `vigil-loadgen run`: simulate a fleet (or replay a CSV) over MQTT and
/// measure what comes back.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub mqtt: MqttArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Simulated devices.
    #[arg(long, env = "VIGIL_LOADGEN_DEVICES", default_value_t = 100)]
    pub devices: usize,

    /// Target aggregate rate, messages per second over all devices. Each
    /// device sends every devices/rate seconds.
    #[arg(long, env = "VIGIL_LOADGEN_RATE", default_value_t = 1000.0)]
    pub rate: f64,

    /// How long to publish, seconds [default: 60 unless --count is given].
    #[arg(long, env = "VIGIL_LOADGEN_DURATION_SECS", conflicts_with = "count", value_parser = parse_secs_f64)]
    pub duration: Option<f64>,

    /// How many send slots to schedule instead of a duration (a device in a
    /// missing-data episode leaves its slots empty, so slightly fewer
    /// messages go out).
    #[arg(long, env = "VIGIL_LOADGEN_COUNT")]
    pub count: Option<u64>,

    /// MQTT connections; devices are spread over them round-robin and each
    /// connection carries its devices' messages in order.
    #[arg(long, env = "VIGIL_LOADGEN_CONNECTIONS", default_value_t = 4)]
    pub connections: usize,

    /// MQTT QoS of telemetry: 1 (acknowledged, Vigil's contract) or 0 (for
    /// measuring the generator and broker alone).
    #[arg(long, env = "VIGIL_LOADGEN_QOS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,

    /// Unacknowledged QoS 1 publishes allowed per connection.
    #[arg(long, env = "VIGIL_LOADGEN_INFLIGHT", default_value_t = 1000)]
    pub inflight: u16,

    /// Seed of the simulated fleet (same seed, same records).
    #[arg(long, env = "VIGIL_LOADGEN_SEED", default_value_t = 0x5EED)]
    pub seed: u64,

    /// Device ids are `{prefix}-{index:05}`.
    #[arg(long, env = "VIGIL_LOADGEN_DEVICE_PREFIX", default_value = "dev")]
    pub device_prefix: String,

    /// Injected anomaly episodes per device per simulated day (0 = none).
    #[arg(long, env = "VIGIL_LOADGEN_ANOMALY_RATE", default_value_t = 1.0)]
    pub anomaly_rate: f64,

    /// Anomaly kinds to inject, comma separated [default: all seven].
    #[arg(long, env = "VIGIL_LOADGEN_ANOMALY_KINDS", value_delimiter = ',')]
    pub anomaly_kinds: Vec<AnomalyKind>,

    /// Multiplier on every anomaly magnitude (lower = subtler).
    #[arg(long, env = "VIGIL_LOADGEN_SEVERITY", default_value_t = 1.0)]
    pub severity: f64,

    /// Length of the simulated daily cycle, seconds of wall time (shrink it
    /// to see daily cycles and many anomalies in a short run).
    #[arg(long, env = "VIGIL_LOADGEN_DAY_SECS", default_value_t = 86_400.0, value_parser = parse_secs_f64)]
    pub day_secs: f64,

    /// Records per device before the first anomaly may start.
    #[arg(long, env = "VIGIL_LOADGEN_QUIET_START", default_value_t = 100)]
    pub quiet_start: u64,

    /// Replay CSV files instead of simulating (repeatable): NAB's
    /// `timestamp,value` or `timestamp,<metric>,<metric>…` (one device per
    /// file, named after it; timestamps as YYYY-MM-DD HH:MM:SS or ms), or
    /// wide `device_id,seq,ts,<metric>…`. Times are replayed relative to
    /// the first row, divided by --speedup.
    #[arg(long, env = "VIGIL_LOADGEN_REPLAY", value_delimiter = ',', conflicts_with_all = ["devices", "rate", "duration", "count"])]
    pub replay: Vec<PathBuf>,

    /// Replay speed-up: 60 plays an hour of data in a minute.
    #[arg(long, env = "VIGIL_LOADGEN_SPEEDUP", default_value_t = 1.0)]
    pub speedup: f64,

    /// Only publish: no verdicts are read, no latency, loss or detection.
    #[arg(long, env = "VIGIL_LOADGEN_PUBLISH_ONLY")]
    pub publish_only: bool,

    /// Where verdicts are read back from.
    #[arg(long, env = "VIGIL_LOADGEN_VERDICTS", value_enum, default_value_t = VerdictSource::Kafka)]
    pub verdicts: VerdictSource,

    /// After publishing, wait this long (seconds) for the last verdicts.
    #[arg(long, env = "VIGIL_LOADGEN_DRAIN_TIMEOUT_SECS", default_value_t = 30.0, value_parser = parse_secs_f64)]
    pub drain_timeout: f64,

    /// After publishing, wait this long (seconds) for the broker's PUBACKs.
    #[arg(long, env = "VIGIL_LOADGEN_ACK_TIMEOUT_SECS", default_value_t = 30.0, value_parser = parse_secs_f64)]
    pub ack_timeout: f64,

    /// Write the JSON report here (schema: loadgen/REPORT.md).
    #[arg(long, env = "VIGIL_LOADGEN_REPORT")]
    pub report: Option<PathBuf>,

    /// Write the ground truth here, one JSON episode per line.
    #[arg(long, env = "VIGIL_LOADGEN_TRUTH")]
    pub truth: Option<PathBuf>,

    /// Write SVG plots here: latency.svg (latency by percentile) and
    /// scores.svg (scores of a few devices against the injected anomalies).
    #[arg(long, env = "VIGIL_LOADGEN_PLOTS")]
    pub plots: Option<PathBuf>,

    /// Devices whose scores are kept for scores.svg.
    #[arg(long, env = "VIGIL_LOADGEN_PLOT_DEVICES", default_value_t = 4)]
    pub plot_devices: usize,

    /// Progress display.
    #[arg(long, env = "VIGIL_LOADGEN_PROGRESS", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Seconds between progress log lines.
    #[arg(
        long,
        env = "VIGIL_LOADGEN_PROGRESS_INTERVAL_SECS",
        default_value_t = 5.0,
        value_parser = parse_secs_f64
    )]
    pub progress_interval: f64,

    /// Runtime worker threads [default: the machine's cores]. On a machine
    /// shared with the broker, 1 leaves the other cores to it.
    #[arg(long, env = "VIGIL_LOADGEN_THREADS")]
    pub threads: Option<usize>,
}

/// What a bad option is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{option} {value}: {why}")]
    Invalid {
        option: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(transparent)]
    Fleet(#[from] vigil_fleet_sim::ConfigError),
}

fn invalid(option: &'static str, value: impl ToString, why: &'static str) -> ConfigError {
    ConfigError::Invalid {
        option,
        value: value.to_string(),
        why,
    }
}

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum Workload {
    /// The simulated fleet at `rate` msg/s for `slots` send slots.
    Fleet {
        fleet: FleetConfig,
        rate: f64,
        slots: u64,
    },
    /// CSV files, played at `speedup`.
    Replay { files: Vec<PathBuf>, speedup: f64 },
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub mqtt: MqttArgs,
    pub kafka: KafkaArgs,
    pub workload: Workload,
    pub connections: usize,
    pub qos: u8,
    pub inflight: u16,
    /// None with --publish-only.
    pub verdicts: Option<VerdictSource>,
    pub drain_timeout: Duration,
    pub ack_timeout: Duration,
    pub report: Option<PathBuf>,
    pub truth: Option<PathBuf>,
    pub plots: Option<PathBuf>,
    pub plot_devices: usize,
    pub progress: ProgressMode,
    pub progress_interval: Duration,
}

fn seconds(option: &'static str, value: f64, max: f64) -> Result<Duration, ConfigError> {
    if !(value.is_finite() && value > 0.0 && value <= max) {
        return Err(invalid(
            option,
            value,
            "must be a positive number of seconds within range",
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

impl RunArgs {
    /// Checks every option and derives the fleet.
    pub fn validate(self) -> Result<RunConfig, ConfigError> {
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(invalid(
                "connections",
                self.connections,
                "must be between 1 and 1024",
            ));
        }
        if self.inflight == 0 {
            return Err(invalid("inflight", 0, "must be at least 1"));
        }
        let drain_timeout = seconds("drain-timeout", self.drain_timeout, MAX_DURATION_SECS)?;
        let ack_timeout = seconds("ack-timeout", self.ack_timeout, MAX_DURATION_SECS)?;
        let progress_interval = seconds("progress-interval", self.progress_interval, 3600.0)?;
        let workload = if self.replay.is_empty() {
            Workload::Fleet {
                rate: self.rate,
                slots: self.slots()?,
                fleet: self.fleet()?,
            }
        } else {
            if !(self.speedup.is_finite() && self.speedup > 0.0) {
                return Err(invalid(
                    "speedup",
                    self.speedup,
                    "must be a positive number",
                ));
            }
            Workload::Replay {
                files: self.replay.clone(),
                speedup: self.speedup,
            }
        };
        Ok(RunConfig {
            connections: self.connections,
            qos: self.qos,
            inflight: self.inflight,
            verdicts: (!self.publish_only).then_some(self.verdicts),
            drain_timeout,
            ack_timeout,
            report: self.report,
            truth: self.truth,
            plots: self.plots,
            plot_devices: self.plot_devices,
            progress: self.progress,
            progress_interval,
            workload,
            mqtt: self.mqtt,
            kafka: self.kafka,
        })
    }

    fn slots(&self) -> Result<u64, ConfigError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1.0e8) {
            return Err(invalid(
                "rate",
                self.rate,
                "must be a positive number of messages per second",
            ));
        }
        match (self.count, self.duration) {
            (Some(0), _) => Err(invalid("count", 0, "must be at least 1")),
            (Some(count), _) => Ok(count),
            (None, duration) => {
                let secs = seconds("duration", duration.unwrap_or(60.0), MAX_DURATION_SECS)?;
                Ok((secs.as_secs_f64() * self.rate).ceil().max(1.0) as u64)
            }
        }
    }

    /// The simulated fleet: one record per device every devices/rate s.
    fn fleet(&self) -> Result<FleetConfig, ConfigError> {
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return Err(invalid(
                "devices",
                self.devices,
                "must be between 1 and 1,000,000",
            ));
        }
        if !(self.day_secs.is_finite() && self.day_secs > 0.0) {
            return Err(invalid(
                "day-secs",
                self.day_secs,
                "must be a positive number of seconds",
            ));
        }
        // The simulator's clock only shapes the signal (daily cycle,
        // episode lengths in ticks); the timestamps sent are the schedule's.
        let interval_ms = ((self.devices as f64 * 1000.0 / self.rate).round() as u64).max(1);
        let kinds = if self.anomaly_kinds.is_empty() {
            AnomalyKind::ALL.to_vec()
        } else {
            self.anomaly_kinds.clone()
        };
        let fleet = FleetConfig {
            devices: self.devices,
            seed: self.seed,
            device_prefix: self.device_prefix.clone(),
            start_ms: 0,
            interval_ms,
            jitter_ms: 0,
            day_ms: (self.day_secs * 1000.0).round() as u64,
            anomalies: AnomalyConfig {
                rate_per_device_day: self.anomaly_rate,
                kinds,
                quiet_start_ticks: self.quiet_start,
                severity: self.severity,
                ..AnomalyConfig::default()
            },
            ..FleetConfig::default()
        };
        fleet.validate()?;
        Ok(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunConfig, String> {
        let mut argv = vec!["run"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.run.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_a_minute_of_100_devices_at_1000_per_second() {
        let config = parse(&[]).expect("defaults are valid");
        let Workload::Fleet { fleet, rate, slots } = config.workload else {
            panic!("fleet by default");
        };
        assert_eq!((fleet.devices, rate, slots), (100, 1000.0, 60_000));
        assert_eq!(fleet.interval_ms, 100);
        assert_eq!(config.verdicts, Some(VerdictSource::Kafka));
    }

    #[test]
    fn count_and_duration_set_the_slots() {
        let slots = |args: &[&str]| match parse(args).expect("valid").workload {
            Workload::Fleet { slots, .. } => slots,
            Workload::Replay { .. } => unreachable!(),
        };
        assert_eq!(slots(&["--count", "1234"]), 1234);
        assert_eq!(slots(&["--rate", "250", "--duration", "2.5"]), 625);
        assert!(
            parse(&["--count", "5", "--duration", "1"]).is_err(),
            "conflict"
        );
    }

    #[test]
    fn bad_options_are_named() {
        for (args, option) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--connections", "0"], "--connections"),
            (&["--devices", "0"], "--devices"),
            (&["--duration=-1"], "--duration"),
            (&["--count", "0"], "--count"),
            (&["--drain-timeout", "nan"], "--drain-timeout"),
        ] {
            let err = parse(args).expect_err(option);
            assert!(err.contains(option), "{args:?}: {err}");
        }
        let err = parse(&["--anomaly-kinds", "spike,wobble"]).expect_err("unknown kind");
        assert!(err.contains("wobble"), "{err}");
        let err = parse(&["--replay", "x.csv", "--devices", "3"]).expect_err("conflict");
        assert!(err.contains("--devices"), "{err}");
    }
}
