//! `vigil-demo` options. Every option has a flag and a `VIGIL_DEMO_*`
//! variable, with defaults that show the whole stack within a few minutes
//! on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use vigil_service::config::{LogArgs, LogFormat};
use vigil_service::duration::{in_range, parse_duration, parse_millis, parse_secs_f64};

/// The whole Vigil stack in one command: brokers, ingest, scorer, trainer,
/// audit store, model push, a simulated fleet with edge devices, and the
/// dashboard.
#[derive(Debug, Parser)]
#[command(name = "vigil-demo", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "VIGIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax. Quieter than the services' own
    /// default, so that the status lines stay readable.
    #[arg(long, env = "VIGIL_LOG", default_value = "warn,vigil_demo=info")]
    pub log: String,

    #[command(flatten)]
    pub demo: DemoArgs,
}

impl Cli {
    /// The logging options in the services' form.
    pub fn log_args(&self) -> LogArgs {
        LogArgs {
            log_format: self.log_format,
            log: self.log.clone(),
        }
    }
}

/// What the demo runs and for how long.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Simulated devices in all (cloud-scored and edge).
    #[arg(long, env = "VIGIL_DEMO_DEVICES", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,

    /// Share of the devices that run the edge agent (score on the device
    /// with the model pushed over MQTT), 0..=1.
    #[arg(long, env = "VIGIL_DEMO_EDGE_SHARE", default_value_t = 0.1)]
    pub edge_share: f64,

    /// Each device sends one record every this many ms.
    #[arg(long, env = "VIGIL_DEMO_DEVICE_INTERVAL_MS", default_value_t = 500,
          value_parser = |s: &str| in_range(s, parse_millis::<u64>, 10..=60_000))]
    pub device_interval_ms: u64,

    /// Run this long, then drain, print the summary and exit (e.g. `120s`,
    /// `30m`). Without it the demo runs until Ctrl-C (at most a day).
    #[arg(long, env = "VIGIL_DEMO_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Time before the first training (the fleet's data the model v1 is
    /// fitted on).
    #[arg(long, env = "VIGIL_DEMO_WARMUP", default_value = "100s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Time between two trainings after the first (v2, v3, … roll out to
    /// the scorer and the edge devices).
    #[arg(long, env = "VIGIL_DEMO_RETRAIN_EVERY", default_value = "120s", value_parser = parse_duration)]
    pub retrain_every: Duration,

    /// Event-time window each training replays from vigil.telemetry.
    #[arg(long, env = "VIGIL_DEMO_TRAIN_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub train_window: Duration,

    /// Publish every training (`vigil train --force`) instead of passing
    /// it through the trainer's champion/challenger gate. The gate is on
    /// by default, as in production: without labels each model is checked
    /// on its estimated false-alarm rate, which the anomalies of the
    /// unlabelled window do not inflate.
    #[arg(long, env = "VIGIL_DEMO_NO_TRAIN_GATE")]
    pub no_train_gate: bool,

    /// Length of the simulated daily cycle, seconds of wall time.
    #[arg(long, env = "VIGIL_DEMO_DAY_SECS", default_value_t = 60.0, value_parser = parse_secs_f64)]
    pub day_secs: f64,

    /// Injected anomaly episodes per device per simulated day.
    #[arg(long, env = "VIGIL_DEMO_ANOMALY_RATE", default_value_t = 0.2)]
    pub anomaly_rate: f64,

    /// Seed of the simulated fleet.
    #[arg(long, env = "VIGIL_DEMO_SEED", default_value_t = 0x5EED)]
    pub seed: u64,

    /// Where the dashboard listens; the other services take free loopback
    /// ports.
    #[arg(long, env = "VIGIL_DEMO_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// The API token of this run (every service's API needs it; the
    /// dashboard's login link carries it). A new random one by default.
    #[arg(long, env = "VIGIL_DEMO_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Keep the state (keys, Kafka log, MQTT sessions, audit store, edge
    /// queues) in this directory instead of a temporary one that is
    /// removed at exit.
    #[arg(long, env = "VIGIL_DEMO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Write the end-of-run summary (JSON) here.
    #[arg(long, env = "VIGIL_DEMO_SUMMARY")]
    pub summary: Option<PathBuf>,

    /// Append a memory sample (this process by allocator, and the
    /// brokers; CSV, KiB) here at every status line.
    #[arg(long, env = "VIGIL_DEMO_MEMORY_LOG")]
    pub memory_log: Option<PathBuf>,

    /// Seconds between two status lines.
    #[arg(long, env = "VIGIL_DEMO_STATUS_EVERY", default_value = "5s", value_parser = parse_duration)]
    pub status_every: Duration,

    /// After the fleet stops, wait at most this long for the last verdicts.
    #[arg(long, env = "VIGIL_DEMO_DRAIN_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How long Kafka keeps telemetry, verdicts and anomalies (the demo's
    /// broker stays bounded; must exceed --train-window).
    #[arg(long, env = "VIGIL_DEMO_KAFKA_RETENTION", default_value = "10m", value_parser = parse_duration)]
    pub kafka_retention: Duration,
}

impl DemoArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.edge_share) {
            anyhow::bail!("--edge-share must lie in [0, 1], got {}", self.edge_share);
        }
        if self.cloud_devices() == 0 {
            anyhow::bail!(
                "--edge-share {} leaves no cloud-scored device to measure; lower it",
                self.edge_share
            );
        }
        if self.retrain_every < Duration::from_secs(1) {
            anyhow::bail!("--retrain-every must be at least 1s");
        }
        if self.status_every < Duration::from_millis(100) {
            anyhow::bail!("--status-every must be at least 100ms");
        }
        if self.duration.is_some_and(|d| d < Duration::from_secs(1)) {
            anyhow::bail!("--duration must be at least 1s");
        }
        if !(self.day_secs.is_finite() && self.day_secs > 0.0) {
            anyhow::bail!("--day-secs must be a positive number of seconds");
        }
        if !(self.anomaly_rate.is_finite() && self.anomaly_rate >= 0.0) {
            anyhow::bail!("--anomaly-rate must be zero or positive");
        }
        if self.kafka_retention <= self.train_window {
            anyhow::bail!(
                "--kafka-retention ({}) must exceed --train-window ({}): the trainer replays that window",
                humantime::format_duration(self.kafka_retention),
                humantime::format_duration(self.train_window)
            );
        }
        Ok(())
    }

    /// Devices running the edge agent.
    pub fn edge_devices(&self) -> u32 {
        (f64::from(self.devices) * self.edge_share).round() as u32
    }

    /// Devices published by the load generator and scored in the cloud.
    pub fn cloud_devices(&self) -> u32 {
        self.devices.saturating_sub(self.edge_devices())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> DemoArgs {
        let mut argv = vec!["vigil-demo"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").demo
    }

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_split_the_fleet_and_validate() {
        let a = parse(&[]);
        a.validate().expect("defaults are valid");
        assert_eq!((a.cloud_devices(), a.edge_devices()), (180, 20));
    }

    #[test]
    fn bad_combinations_are_named() {
        let e = parse(&["--edge-share", "1"])
            .validate()
            .expect_err("no cloud");
        assert!(e.to_string().contains("--edge-share"), "{e}");
        let e = parse(&["--kafka-retention", "1m", "--train-window", "5m"])
            .validate()
            .expect_err("retention");
        assert!(e.to_string().contains("--kafka-retention"), "{e}");
        assert!(Cli::try_parse_from(["vigil-demo", "--devices", "0"]).is_err());
        assert!(Cli::try_parse_from(["vigil-demo", "--duration", "soon"]).is_err());
    }
}
