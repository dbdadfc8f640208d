//! Flags and environment variables of `vigil train`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use vigil_service::config::{HttpArgs, KafkaArgs};
use vigil_service::duration::{parse_duration, parse_secs};

/// Detector family (see training/EVALUATION.md for why PCA is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Principal components of the per-metric features.
    Pca,
    /// Robust z-scores per feature.
    RobustZ,
}

/// Threshold calibration (training/EVALUATION.md, "Under the demo's
/// conditions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CalibrationArg {
    /// For history that may hold anomalies: trim the rows above a tail
    /// extrapolated from the central scores, refit, calibrate on that tail.
    Trimmed,
    /// The empirical quantile of the training scores: for training data
    /// known to be clean.
    Quantile,
}

/// `vigil train` options.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Model name to train and publish.
    #[arg(long, env = "VIGIL_MODEL", default_value = "default")]
    pub model: String,

    /// ed25519 private key file releases are signed with. Refused when
    /// its group or others may read it, unless --allow-shared-key-file.
    #[arg(long, env = "VIGIL_SIGNING_KEY")]
    pub signing_key: PathBuf,

    /// Public keys whose releases count for the next version and the live
    /// release, besides the signing key's own: during a key rotation, the
    /// ring holding the previous key, so the first release signed by the
    /// new key continues its numbering (a file of public key lines and
    /// `vigil-retired-key-id:` lines, or a directory of `*.pub` files).
    /// Unset: only releases of the signing key count.
    #[arg(long, env = "VIGIL_VERIFY_KEY", value_name = "PATH")]
    pub verify_key: Option<PathBuf>,

    /// Accept a signing key file its group may read (a Kubernetes secret
    /// mounted read-only for the pod's fsGroup).
    #[arg(long, env = "VIGIL_ALLOW_SHARED_KEY_FILE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_shared_key_file: bool,

    /// Train once, publish (or refuse) and exit: 0 when a release was
    /// published, 1 otherwise (for a Kubernetes CronJob). Without it the
    /// trainer runs every --interval and serves health and metrics.
    #[arg(long)]
    pub once: bool,

    /// Time between two trainings in periodic mode (e.g. `1h`, `30m`).
    #[arg(long, env = "VIGIL_TRAIN_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub interval: Duration,

    /// Publish even if the champion/challenger gate refuses the candidate.
    #[arg(long)]
    pub force: bool,

    /// Train from this CSV file instead of replaying vigil.telemetry
    /// (`device_id,seq,ts,<metric>…` by default; see the CSV layout
    /// flags). With --out no broker is needed.
    #[arg(long, env = "VIGIL_TRAIN_CSV")]
    pub csv: Option<PathBuf>,

    #[command(flatten)]
    pub csv_format: CsvFormatArgs,

    /// Train on the first N data rows of --csv only (e.g. to score the
    /// rest with `vigil models score --after-row N`).
    #[arg(long, requires = "csv")]
    pub rows: Option<usize>,

    /// Write the signed release to this file instead of publishing it to
    /// vigil.models; with --csv nothing talks to Kafka. Trains once.
    #[arg(long, requires = "csv")]
    pub out: Option<PathBuf>,

    /// Version of the release written with --out (default 1; when
    /// publishing, the version is always the next after the topic's).
    #[arg(long = "version", visible_alias = "model-version", requires = "out")]
    pub release_version: Option<u64>,

    /// Event-time span of vigil.telemetry to replay, ending at --until.
    #[arg(long, env = "VIGIL_TRAIN_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub window: Duration,

    /// End of the replayed window, RFC 3339 (e.g. `2026-11-23T12:00:00Z`);
    /// defaults to now.
    #[arg(long, env = "VIGIL_TRAIN_UNTIL", value_parser = humantime::parse_rfc3339_weak)]
    pub until: Option<std::time::SystemTime>,

    /// Most records held for one training (replay or file).
    #[arg(long, env = "VIGIL_TRAIN_MAX_RECORDS", default_value_t = 2_000_000)]
    pub max_records: usize,

    /// Fewer usable records than this: refuse to train. Default 5000 when
    /// replaying vigil.telemetry; with --csv only the fit's own requirement
    /// applies (rows after warm-up and holdout, 10 per feature).
    #[arg(long, env = "VIGIL_TRAIN_MIN_RECORDS")]
    pub min_records: Option<usize>,

    /// Devices with fewer records are left out of the fit. Default 100
    /// when replaying vigil.telemetry; with --csv every device is kept.
    #[arg(long, env = "VIGIL_TRAIN_MIN_DEVICE_RECORDS")]
    pub min_device_records: Option<usize>,

    /// Fraction of each device's records (its end) held out for evaluation
    /// and the gate. With 0 the gate cannot validate the candidate and
    /// refuses it (publish anyway with --force).
    #[arg(
        long,
        visible_alias = "holdout",
        env = "VIGIL_TRAIN_HOLDOUT",
        default_value_t = 0.2
    )]
    pub holdout_fraction: f64,

    /// False-alarm rate the threshold is calibrated to on normal data.
    #[arg(long, env = "VIGIL_TRAIN_TARGET_FAR", default_value_t = 0.001)]
    pub target_false_alarm_rate: f64,

    /// Metrics to model, comma separated; default: every metric present in
    /// at least half of the records.
    #[arg(long, env = "VIGIL_TRAIN_METRICS", value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,

    /// A metric's known span, `METRIC=LOW:HIGH` (repeatable, or comma
    /// separated), e.g. a sensor's specified range: the release's novelty
    /// cuts that span into cells rather than only the stretch the training
    /// rows covered, so a value ordinary for the sensor but above anything
    /// the training rows held is less of a surprise. The metric must be
    /// one the release models.
    #[arg(
        long = "range",
        env = "VIGIL_TRAIN_RANGES",
        value_name = "METRIC=LOW:HIGH",
        value_delimiter = ',',
        value_parser = parse_declared_range
    )]
    pub ranges: Vec<(String, vigil_training::DeclaredRange)>,

    /// Detector family.
    #[arg(long, env = "VIGIL_TRAIN_METHOD", value_enum, default_value_t = MethodArg::Pca)]
    pub method: MethodArg,

    /// How the threshold is placed on the training scores; `trimmed` unless
    /// the replayed window is known to hold no anomalies.
    #[arg(long, env = "VIGIL_TRAIN_CALIBRATION", value_enum, default_value_t = CalibrationArg::Trimmed)]
    pub calibration: CalibrationArg,

    /// Labelled anomaly episodes for the evaluation and the gate, CSV
    /// `device_id,kind,first_seq,last_seq` (with that header).
    #[arg(long, env = "VIGIL_TRAIN_LABELS")]
    pub labels: Option<PathBuf>,

    /// How long to wait for Kafka when reading or publishing, seconds.
    #[arg(long, env = "VIGIL_TRAIN_KAFKA_TIMEOUT_SECS", default_value_t = 60, value_parser = parse_secs::<u64>)]
    pub kafka_timeout_secs: u64,

    /// Show a progress bar (default: when stderr is a terminal).
    #[arg(long, env = "VIGIL_PROGRESS")]
    pub progress: Option<bool>,
}

/// How a CSV file is laid out (`vigil train --csv`, `vigil models score
/// --csv`); the default is `device_id,seq,ts,<metric>…`.
#[derive(Debug, Clone, Default, Args)]
pub struct CsvFormatArgs {
    /// Field separator of the CSV file: `,` or `;` (default: `;` when the
    /// header line holds one, else `,`). In a `;` file a decimal comma
    /// (`3,25`) is accepted.
    #[arg(long, value_parser = parse_separator)]
    pub separator: Option<u8>,

    /// CSV column with the event time, as ms since the epoch or ISO-8601
    /// (`2024-03-01 12:00:00`, `2024-03-01T12:00:00Z`; UTC without an
    /// offset).
    #[arg(long, default_value = "ts")]
    pub time_column: String,

    /// Device of every row, for a CSV file of one series (no device_id
    /// column); rows without a `seq` column are numbered from 1.
    #[arg(long)]
    pub device_id: Option<String>,

    /// CSV column holding each row's label (1/true: anomalous; 0/false or
    /// empty: normal), as benchmark files carry one: never a metric. `vigil
    /// train` takes its runs as labelled episodes (as --labels does);
    /// `vigil models score` reports point-wise precision, recall and F1
    /// against it.
    #[arg(long, requires = "csv")]
    pub label_column: Option<String>,
}

impl CsvFormatArgs {
    /// The reader's options.
    pub fn options(&self) -> vigil_training::WideCsvOptions {
        vigil_training::WideCsvOptions {
            separator: self.separator,
            time_column: Some(self.time_column.clone()),
            device_id: self.device_id.clone(),
            label_column: self.label_column.clone(),
        }
    }
}

fn parse_declared_range(s: &str) -> Result<(String, vigil_training::DeclaredRange), String> {
    let (metric, span) = s
        .split_once('=')
        .ok_or_else(|| format!("expected METRIC=LOW:HIGH, got {s:?}"))?;
    if metric.trim().is_empty() {
        return Err(format!("no metric named in {s:?}"));
    }
    Ok((metric.trim().to_owned(), span.parse()?))
}

fn parse_separator(s: &str) -> Result<u8, String> {
    match s {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        _ => Err(format!("the separator must be ',' or ';', got {s:?}")),
    }
}

impl TrainArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..1.0).contains(&self.holdout_fraction) {
            anyhow::bail!(
                "--holdout-fraction must lie in [0, 1), got {}",
                self.holdout_fraction
            );
        }
        if self.window.is_zero() {
            anyhow::bail!("--window must be positive");
        }
        if !self.once && self.out.is_none() && self.interval < Duration::from_secs(1) {
            anyhow::bail!("--interval must be at least 1s");
        }
        if self.max_records == 0 {
            anyhow::bail!("--max-records must be positive");
        }
        if self.rows == Some(0) {
            anyhow::bail!("--rows must be positive");
        }
        if self.release_version == Some(0) {
            anyhow::bail!("--version must be at least 1");
        }
        for (i, (metric, _)) in self.ranges.iter().enumerate() {
            if self.ranges[..i].iter().any(|(m, _)| m == metric) {
                anyhow::bail!("--range declares {metric:?} twice");
            }
        }
        if self.csv_format.label_column.is_some() && self.labels.is_some() {
            anyhow::bail!("--labels and --label-column both give labels; use one");
        }
        Ok(())
    }
}
