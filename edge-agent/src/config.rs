//! Command line, environment and config file.
//!
//! Every option is a flag with a `VIGIL_*` environment variable (the names
//! ARCHITECTURE.md fixes — `VIGIL_MQTT_URL`, `VIGIL_DEVICE_ID`,
//! `VIGIL_VERIFY_KEY`, `VIGIL_MODEL` — plus `VIGIL_EDGE_*` for the agent's
//! own). `--config FILE` (or `VIGIL_EDGE_CONFIG`) names a TOML file whose
//! keys are the long option names (`mqtt_url` or `mqtt-url`); precedence is
//! flag, then environment, then file, then default. Unknown keys are errors,
//! like unknown flags. Values are checked once, at start-up, by
//! [`RunArgs::validate`], with errors that name the option.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::duration::parse_millis;
use clap::parser::ValueSource;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
pub use vigil_base::config::{LogArgs, LogFormat, MqttArgs};
pub use vigil_base::mqtt::MqttUrl;
use vigil_schemas::telemetry::check_device_id;

/// `vigil-edge`: the Vigil device agent.
#[derive(Debug, Parser)]
#[command(
    name = "vigil-edge",
    version,
    about = "Vigil's device agent: scores samples on the device with the model pushed to it, \
             buffers the uplink on disk while offline, and acts locally on anomalies",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, which is what `vigil-edge` does without a subcommand.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default).
    Run(Box<RunArgs>),
    /// Score Telemetry JSON lines from stdin to Verdict JSON lines on
    /// stdout, offline, with a model release file.
    Score(ScoreArgs),
}

/// Where samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// This host's sensors: CPU, load, memory, disk and network I/O from
    /// /proc; temperatures from /sys/class/hwmon and /sys/class/thermal.
    Host,
    /// A simulated pump (vigil-fleet-sim) with injected anomalies.
    Sim,
    /// JSON lines on stdin: Telemetry, or just `{"metrics":{…}}` with an
    /// optional `ts`.
    Stdin,
    /// A CSV file (`--csv-file`): a header of metric names, optionally with
    /// `ts` (and `device_id`, `seq`, which are ignored) columns.
    Csv,
}

/// What telemetry goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TelemetryMode {
    /// Every sample.
    Every,
    /// One record per `--summary-interval-ms`, each metric's mean (tagged
    /// `summary=mean`, `samples=N`).
    Summary,
    /// None: only verdicts.
    Off,
}

/// Which verdicts go up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerdictMode {
    /// Every sample's verdict.
    All,
    /// Only anomalous verdicts.
    Anomalies,
}

/// Options of `vigil-edge score`.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// Signed model release (JSON, as published on vigil/models/{model} or
    /// written by `vigil models export`).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// ed25519 public key file that must have signed the release, or a key
    /// ring (see `run --verify-key`).
    #[arg(long, env = "VIGIL_VERIFY_KEY", value_name = "FILE")]
    pub verify_key: PathBuf,
    /// Set `scored_ts` to each record's event time instead of the clock, so
    /// the output is reproducible (replays, cross-platform comparisons).
    #[arg(long)]
    pub scored_ts_from_event: bool,
    /// Devices whose state is kept at once (input may interleave devices).
    #[arg(long, default_value_t = 100_000)]
    pub device_capacity: usize,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Options of the agent.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// TOML file with any of these options (keys are the long option names);
    /// flags and environment variables override it.
    #[arg(long, env = "VIGIL_EDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Self-test: check the configuration, the key, the model and the
    /// source, print a report and exit (0 when all is usable).
    #[arg(long)]
    pub check: bool,

    /// This device's id (letters, digits, `._:-`); the host name by default.
    #[arg(long, env = "VIGIL_DEVICE_ID")]
    pub device_id: Option<String>,

    /// Broker URL, client id, credentials, CA file, keep-alive, topic
    /// prefix (the same flags as the services').
    #[command(flatten)]
    pub mqtt: MqttArgs,

    /// Model name: releases come from the retained vigil/models/{model}.
    #[arg(long, env = "VIGIL_MODEL", default_value = "default")]
    pub model: String,

    /// ed25519 public key file every release must be signed with
    /// (required), or a key ring for key rotation: a file of several
    /// `vigil-ed25519-public:` lines and `vigil-retired-key-id:` lines, or a
    /// directory of `*.pub` files.
    #[arg(long, env = "VIGIL_VERIFY_KEY", value_name = "PATH")]
    pub verify_key: Option<PathBuf>,

    /// ed25519 public key file every cloud command must be signed with
    /// (`vigil commands keygen` makes the pair: `command-verify.pub`; not
    /// the release key). Without it every command is refused (reason
    /// `no_key`).
    #[arg(long, env = "VIGIL_EDGE_COMMAND_VERIFY_KEY", value_name = "FILE")]
    pub command_verify_key: Option<PathBuf>,

    /// A release to start from when the state directory holds none (or an
    /// older one), e.g. baked into the device image.
    #[arg(long, env = "VIGIL_EDGE_INITIAL_MODEL", value_name = "FILE")]
    pub initial_model: Option<PathBuf>,

    /// Where the agent keeps the accepted model, the uplink queue and its
    /// status file. Must survive reboots.
    #[arg(
        long,
        env = "VIGIL_EDGE_STATE_DIR",
        default_value = "/var/lib/vigil-edge"
    )]
    pub state_dir: PathBuf,

    /// Where samples come from.
    #[arg(long, env = "VIGIL_EDGE_SOURCE", value_enum, default_value_t = SourceKind::Host)]
    pub source: SourceKind,

    /// CSV file for `--source csv`.
    #[arg(long, env = "VIGIL_EDGE_CSV_FILE", value_name = "FILE")]
    pub csv_file: Option<PathBuf>,

    /// Sampling interval, ms. For stdin and CSV, 0 reads as fast as input
    /// comes.
    #[arg(long, env = "VIGIL_EDGE_INTERVAL_MS", default_value_t = 1000, value_parser = parse_millis::<u64>)]
    pub interval_ms: u64,

    /// Stop sampling after the sample with this seq (replays and tests);
    /// the uplink keeps running until the agent is stopped.
    #[arg(long, env = "VIGIL_EDGE_STOP_AFTER_SEQ")]
    pub stop_after_seq: Option<u64>,

    /// Seed of the simulated device.
    #[arg(long, env = "VIGIL_EDGE_SIM_SEED", default_value_t = 1)]
    pub sim_seed: u64,

    /// Anomaly episodes per simulated day on the simulated device (0: none).
    #[arg(long, env = "VIGIL_EDGE_SIM_ANOMALY_RATE", default_value_t = 1.0)]
    pub sim_anomaly_rate: f64,

    /// Length of the simulated device's daily cycle, ms.
    #[arg(long, env = "VIGIL_EDGE_SIM_DAY_MS", default_value_t = 86_400_000, value_parser = parse_millis::<u64>)]
    pub sim_day_ms: u64,

    /// Telemetry uplink: every sample, per-interval summaries, or none.
    #[arg(long, env = "VIGIL_EDGE_TELEMETRY", value_enum, default_value_t = TelemetryMode::Every)]
    pub telemetry: TelemetryMode,

    /// Summary interval for `--telemetry summary`, ms.
    #[arg(long, env = "VIGIL_EDGE_SUMMARY_INTERVAL_MS", default_value_t = 60_000, value_parser = parse_millis::<u64>)]
    pub summary_interval_ms: u64,

    /// Verdict uplink: every verdict or only anomalies.
    #[arg(long, env = "VIGIL_EDGE_VERDICTS", value_enum, default_value_t = VerdictMode::All)]
    pub verdicts: VerdictMode,

    /// Most bytes the on-disk uplink queue may use; when full the oldest
    /// records are dropped and counted.
    #[arg(long, env = "VIGIL_EDGE_QUEUE_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub queue_max_bytes: u64,

    /// How often the queue is fsynced, ms: the most a power loss can lose.
    #[arg(long, env = "VIGIL_EDGE_QUEUE_FSYNC_MS", default_value_t = 1000, value_parser = parse_millis::<u64>)]
    pub queue_fsync_ms: u64,

    /// Sequence numbers reserved per durable write of `{state_dir}/seq.json`
    /// (so that none is reused after a power loss): a larger block means
    /// fewer flash writes and a larger gap in `seq` after a power cut.
    #[arg(long, env = "VIGIL_EDGE_SEQ_BLOCK", default_value_t = 1000)]
    pub seq_block: u64,

    /// Where this boot's id is read (a crash without a reboot resumes
    /// `seq` with no gap); tests point it at a file to simulate a reboot.
    #[arg(long, env = "VIGIL_EDGE_BOOT_ID_FILE", default_value = crate::seq::BOOT_ID_PATH, hide = true)]
    pub boot_id_file: PathBuf,

    /// Most uplink messages per second (drains a backlog without
    /// stampeding the broker when a fleet reconnects at once).
    #[arg(long, env = "VIGIL_EDGE_DRAIN_RATE", default_value_t = 200)]
    pub drain_rate: u32,

    /// Most unacknowledged uplink records at once.
    #[arg(long, env = "VIGIL_EDGE_MAX_INFLIGHT", default_value_t = 32)]
    pub max_inflight: u16,

    /// How long the broker keeps this device's MQTT session (its command
    /// subscription and the commands sent meanwhile) while it is offline,
    /// seconds; 4294967295 keeps it for ever.
    #[arg(long, env = "VIGIL_EDGE_SESSION_EXPIRY_SECS", default_value_t = 7 * 24 * 3600, value_parser = crate::duration::parse_secs::<u32>)]
    pub session_expiry_secs: u32,

    /// Longest wait between reconnection attempts, ms (exponential backoff
    /// with jitter up to this).
    #[arg(long, env = "VIGIL_EDGE_RECONNECT_MAX_MS", default_value_t = 30_000, value_parser = parse_millis::<u64>)]
    pub reconnect_max_ms: u64,

    /// How often the retained status and the status file are refreshed, ms.
    #[arg(long, env = "VIGIL_EDGE_STATUS_INTERVAL_MS", default_value_t = 30_000, value_parser = parse_millis::<u64>)]
    pub status_interval_ms: u64,

    /// Shell command run on a local anomaly (`/bin/sh -c`), with the
    /// verdict JSON on stdin.
    #[arg(long, env = "VIGIL_EDGE_ACTION_COMMAND")]
    pub action_command: Option<String>,

    /// Shell command run for each cloud command received on
    /// vigil/devices/{id}/commands, with the command JSON on stdin; the
    /// action command when unset.
    #[arg(long, env = "VIGIL_EDGE_COMMAND_HANDLER")]
    pub command_handler: Option<String>,

    /// A local action or command handler still running after this long is
    /// killed, ms.
    #[arg(long, env = "VIGIL_EDGE_ACTION_TIMEOUT_MS", default_value_t = 10_000, value_parser = parse_millis::<u64>)]
    pub action_timeout_ms: u64,

    /// At most one local action per this many ms (anomalies in between are
    /// counted, not acted on).
    #[arg(long, env = "VIGIL_EDGE_ACTION_DEBOUNCE_MS", default_value_t = 60_000, value_parser = parse_millis::<u64>)]
    pub action_debounce_ms: u64,

    #[command(flatten)]
    pub log: LogArgs,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid {option}: {why}")]
pub struct ConfigError {
    /// The option (flag and variable).
    pub option: &'static str,
    /// What is wrong with it.
    pub why: String,
}

fn bad(option: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        why: why.into(),
    }
}

impl RunArgs {
    /// The device id: configured, or the host name.
    pub fn device_id(&self) -> String {
        self.device_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "vigil-edge".into())
        })
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> String {
        self.mqtt
            .mqtt_client_id
            .clone()
            .unwrap_or_else(|| format!("vigil-edge-{}", self.device_id()))
    }

    /// The verify key path, or an error naming the variable.
    pub fn verify_key_path(&self) -> Result<&Path, ConfigError> {
        self.verify_key.as_deref().ok_or_else(|| {
            bad(
                "--verify-key / VIGIL_VERIFY_KEY",
                "is required: releases are only accepted when signed with this key",
            )
        })
    }

    /// Checks every option once; the error names the option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_device_id(&self.device_id())
            .map_err(|e| bad("--device-id / VIGIL_DEVICE_ID", e.to_string()))?;
        if self.model.is_empty() || self.model.contains(['/', '+', '#']) {
            return Err(bad(
                "--model / VIGIL_MODEL",
                format!(
                    "{:?} is not a usable model name (empty, or contains / + #)",
                    self.model
                ),
            ));
        }
        self.verify_key_path()?;
        MqttUrl::parse(&self.mqtt.mqtt_url)
            .map_err(|why| bad("--mqtt-url / VIGIL_MQTT_URL", why))?;
        match (self.source, &self.csv_file) {
            (SourceKind::Csv, None) => {
                return Err(bad(
                    "--csv-file / VIGIL_EDGE_CSV_FILE",
                    "is required with --source csv",
                ))
            }
            (SourceKind::Host | SourceKind::Sim | SourceKind::Stdin, Some(_)) => {
                return Err(bad(
                    "--csv-file / VIGIL_EDGE_CSV_FILE",
                    "is only used with --source csv",
                ))
            }
            _ => {}
        }
        if matches!(self.source, SourceKind::Host | SourceKind::Sim) && self.interval_ms == 0 {
            return Err(bad(
                "--interval-ms / VIGIL_EDGE_INTERVAL_MS",
                "must be at least 1 for the host and simulated sources",
            ));
        }
        if self.telemetry == TelemetryMode::Summary && self.summary_interval_ms == 0 {
            return Err(bad(
                "--summary-interval-ms / VIGIL_EDGE_SUMMARY_INTERVAL_MS",
                "must be at least 1",
            ));
        }
        if self.queue_max_bytes < crate::queue::MIN_MAX_BYTES {
            return Err(bad(
                "--queue-max-bytes / VIGIL_EDGE_QUEUE_MAX_BYTES",
                format!("must be at least {}", crate::queue::MIN_MAX_BYTES),
            ));
        }
        if self.queue_fsync_ms == 0 {
            return Err(bad(
                "--queue-fsync-ms / VIGIL_EDGE_QUEUE_FSYNC_MS",
                "must be at least 1",
            ));
        }
        if self.seq_block == 0 {
            return Err(bad(
                "--seq-block / VIGIL_EDGE_SEQ_BLOCK",
                "must be at least 1",
            ));
        }
        if self.drain_rate == 0 {
            return Err(bad(
                "--drain-rate / VIGIL_EDGE_DRAIN_RATE",
                "must be at least 1",
            ));
        }
        if !(1..=1000).contains(&self.max_inflight) {
            return Err(bad(
                "--max-inflight / VIGIL_EDGE_MAX_INFLIGHT",
                "must lie in 1..=1000",
            ));
        }
        if self.status_interval_ms < 100 {
            return Err(bad(
                "--status-interval-ms / VIGIL_EDGE_STATUS_INTERVAL_MS",
                "must be at least 100",
            ));
        }
        if self.reconnect_max_ms < 100 {
            return Err(bad(
                "--reconnect-max-ms / VIGIL_EDGE_RECONNECT_MAX_MS",
                "must be at least 100",
            ));
        }
        if self.action_timeout_ms == 0 {
            return Err(bad(
                "--action-timeout-ms / VIGIL_EDGE_ACTION_TIMEOUT_MS",
                "must be at least 1",
            ));
        }
        if !(self.sim_anomaly_rate.is_finite() && self.sim_anomaly_rate >= 0.0) {
            return Err(bad(
                "--sim-anomaly-rate / VIGIL_EDGE_SIM_ANOMALY_RATE",
                "must be a finite number ≥ 0",
            ));
        }
        Ok(())
    }
}

/// Why the command line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("config file {path}: {why}")]
    File { path: PathBuf, why: String },
}

impl CliError {
    /// Prints the error (clap's own formatting for usage errors and help)
    /// and exits with clap's status, or 2.
    pub fn exit(self) -> ! {
        match self {
            CliError::Clap(e) => e.exit(),
            CliError::File { .. } => {
                eprintln!("error: {self}");
                std::process::exit(2)
            }
        }
    }
}

/// Parses `argv` (program name first) with a config file merged in: its
/// values fill in options set neither by flag nor by environment variable.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, CliError> {
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(&argv)?;
    let (run_matches, run_command) = match matches.subcommand() {
        Some(("run", m)) => (
            m,
            command
                .find_subcommand("run")
                .cloned()
                .unwrap_or_else(|| command.clone()),
        ),
        Some(_) => return Ok(Cli::from_arg_matches(&matches)?),
        None => (&matches, command.clone()),
    };
    let Some(path) = run_matches.get_one::<PathBuf>("config").cloned() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let file_err = |why: String| CliError::File {
        path: path.clone(),
        why,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    let mut extra = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let arg = run_command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && a.get_long().is_some())
            .filter(|_| id != "config" && id != "check" && id != "help" && id != "version")
            .ok_or_else(|| file_err(format!("unknown option {key:?}")))?;
        if matches!(
            run_matches.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let long = arg.get_long().unwrap_or_default();
        let takes_no_value = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Result<_, _>>()
                .map_err(|why| file_err(format!("{key}: {why}")))?,
            v => vec![scalar(v).map_err(|why| file_err(format!("{key}: {why}")))?],
        };
        for v in values {
            if takes_no_value {
                if v == "true" {
                    extra.push(OsString::from(format!("--{long}")));
                }
            } else {
                extra.push(OsString::from(format!("--{long}={v}")));
            }
        }
    }
    let mut argv = argv;
    argv.extend(extra);
    let matches = command.try_get_matches_from(&argv)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string, number or boolean, found {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("vigil-edge")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn the_help_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_config_file_fills_in_what_flags_and_env_leave_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("edge.toml");
        std::fs::write(
            &file,
            "device_id = \"from-file\"\nmqtt-url = \"mqtt://10.1.1.1:1883\"\ninterval_ms = 250\nmodel = \"pumps\"\n",
        )
        .expect("write");
        let cli = parse(argv(&[
            "run",
            "--config",
            file.to_str().expect("utf8"),
            "--interval-ms",
            "50",
        ]))
        .expect("parses");
        let Some(Command::Run(run)) = cli.command else {
            panic!("run subcommand")
        };
        assert_eq!(run.device_id.as_deref(), Some("from-file"));
        assert_eq!(run.mqtt.mqtt_url, "mqtt://10.1.1.1:1883");
        assert_eq!(run.interval_ms, 50, "the flag wins over the file");
        assert_eq!(run.model, "pumps");

        // Without a subcommand the same options apply to the agent.
        let cli = parse(argv(&["--config", file.to_str().expect("utf8")])).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.run.interval_ms, 250);
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("edge.toml");
        std::fs::write(&file, "mqtt_ulr = \"mqtt://x\"\n").expect("write");
        let err = parse(argv(&["--config", file.to_str().expect("utf8")])).expect_err("typo");
        assert!(
            err.to_string().contains("unknown option \"mqtt_ulr\""),
            "{err}"
        );
        std::fs::write(&file, "interval_ms = \"soon\"\n").expect("write");
        assert!(parse(argv(&["--config", file.to_str().expect("utf8")])).is_err());
    }

    #[test]
    fn validation_names_the_option() {
        let cli = parse(argv(&["--verify-key", "/k", "--device-id", "bad id"])).expect("parses");
        let err = cli.run.validate().expect_err("bad id").to_string();
        assert!(err.contains("VIGIL_DEVICE_ID"), "{err}");
        let cli = parse(argv(&["--device-id", "d1"])).expect("parses");
        let err = cli.run.validate().expect_err("no key").to_string();
        assert!(err.contains("VIGIL_VERIFY_KEY"), "{err}");
        let cli = parse(argv(&[
            "--device-id",
            "d1",
            "--verify-key",
            "/k",
            "--source",
            "csv",
        ]))
        .expect("parses");
        let err = cli.run.validate().expect_err("no csv").to_string();
        assert!(err.contains("--csv-file"), "{err}");
        let cli = parse(argv(&["--device-id", "d1", "--verify-key", "/k"])).expect("parses");
        cli.run.validate().expect("defaults are valid");
    }
}
