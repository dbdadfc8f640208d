//! `vigil train`: the batch trainer.
//!
//! One training:
//! 1. **Data**: a window of `vigil.telemetry` replayed by timestamp
//!    (`--window`, `--until`), or a CSV file (`--csv`); optional labels
//!    (`--labels`) make the evaluation report detection rate and delay.
//! 2. **Version**: one above the highest release of the model on
//!    `vigil.models` that verifies with this trainer's keys (its signing
//!    key's public half, plus the key ring of `--verify-key` if given: during
//!    a key rotation the old key, so numbering continues across the switch;
//!    retired keys' releases do not count): a forged or garbage envelope
//!    (say, a claimed `u64::MAX`) does not move it (it is logged), and the
//!    largest version refuses to overflow.
//! 3. **Fit** with `vigil-training` (linfa PCA on the shared features);
//!    too little data is refused with the counts.
//! 4. **Gate** (champion/challenger): the candidate and the live release
//!    (the newest one that verifies with those keys) are
//!    evaluated on the same holdout; the candidate is published only if it
//!    is not worse beyond the tolerances. `--force` skips the gate.
//! 5. **Sign and publish** to compacted `vigil.models`, keyed by model name,
//!    waiting for Kafka's confirmation.
//!
//! `--once` does this once and exits 0 when it published, 1 when it did
//! not (gate refusal, too little data). Otherwise it repeats every
//! `--interval` and serves `/healthz`, `/readyz`, `/metrics`.
//!
//! `--out FILE` (with `--csv`) is the file workflow: no broker, version
//! from `--version` (default 1), no live model; the signed release is
//! written to the file ([`mod@file`]).
//!
//! Run one periodic trainer per model name (a Kubernetes CronJob with
//! `concurrencyPolicy: Forbid`, or one Deployment replica): two trainers
//! racing could pick the same next version; scorers then keep the first
//! and refuse the second as "not newer".

pub mod config;
pub mod file;
pub mod metrics;
pub mod source;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::producer::FutureProducer;
use vigil_model::{KeyRing, KeyStatus, Model, SigningKey};
use vigil_releases::{Lineage, Offer};
use vigil_schemas::{ModelRelease, Telemetry};
use vigil_service::kafka::{self, ProducerTuning, TopicSpec, VigilContext};
use vigil_service::key_file::{check_key_file, KeyFileRule};
use vigil_service::{bootstrap, now_ms, Bootstrap, Shutdown};
use vigil_training::{
    Calibration, Episode, EvalOptions, FleetData, GateConfig, Method, Progress, TrainConfig,
    TrainError,
};

pub use config::{CsvFormatArgs, TrainArgs};
pub use file::{train_to_file, write_atomically};
pub use source::read_csv;
pub use vigil_training::PointCounts;

use crate::config::{CalibrationArg, MethodArg};
use crate::metrics::TrainMetrics;

/// What one training did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A release was published.
    Published {
        version: u64,
        partition: i32,
        offset: i64,
    },
    /// Nothing was published, and why (gate, too little data).
    NotPublished(String),
}

/// Runs `vigil train` (see the crate docs).
pub async fn run(args: TrainArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    args.validate()?;
    check_key_file(
        &args.signing_key,
        KeyFileRule::with_override(
            "model signing key file",
            "--allow-shared-key-file / VIGIL_ALLOW_SHARED_KEY_FILE=true",
        )
        .group_may_read(args.allow_shared_key_file),
    )?;
    let key = vigil_model::load_signing_key(&args.signing_key)?;
    let ring = trainer_ring(&args, &key)?;
    if let Some(out) = &args.out {
        return train_to_file(&args, &key, out).await;
    }
    let boot = Bootstrap::new(&[kafka::DEPENDENCY])?;
    let readiness = boot.readiness.clone();
    let metrics = TrainMetrics::register(&boot.registry)?;
    if !args.once {
        boot.serve(&args.http, axum::Router::new(), &shutdown)
            .await?;
    }
    let topics = args.kafka.topics();
    bootstrap::ensure_topics(
        &args.kafka,
        &[TopicSpec::compact(&topics.models)],
        &shutdown,
    )
    .await;
    let producer: FutureProducer<VigilContext> =
        kafka::producer_config(&args.kafka, "vigil-train", &ProducerTuning::default())
            .create_with_context(VigilContext::new(readiness.clone()))
            .context("creating the kafka producer")?;
    if !args.once {
        kafka::watch_connection(
            producer.clone(),
            readiness.clone(),
            Duration::from_secs(5),
            &shutdown,
        );
    }

    loop {
        let started = Instant::now();
        let result = train_once(&args, &key, &ring, &producer).await;
        let outcome_label = match &result {
            Ok(Outcome::Published {
                version,
                partition,
                offset,
            }) => {
                tracing::info!(
                    model = %args.model,
                    version,
                    partition,
                    offset,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "release published"
                );
                metrics
                    .published_version
                    .set(i64::try_from(*version).unwrap_or(i64::MAX));
                "published"
            }
            Ok(Outcome::NotPublished(why)) => {
                tracing::warn!(model = %args.model, why = %why, "nothing published");
                "not_published"
            }
            Err(e) => {
                tracing::error!(model = %args.model, error = %format!("{e:#}"), "training failed");
                "failed"
            }
        };
        metrics.runs.with_label_values(&[outcome_label]).inc();
        if args.once {
            return match result {
                Ok(Outcome::Published { .. }) => Ok(()),
                Ok(Outcome::NotPublished(why)) => bail!("nothing published: {why}"),
                Err(e) => Err(e),
            };
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(args.interval) => {}
        }
    }
    bootstrap::stop(&shutdown, "train").await;
    Ok(())
}

pub(crate) fn progress_bar(args: &TrainArgs) -> Option<ProgressBar> {
    let show = args
        .progress
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    show.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    })
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The training data named by `args`.
pub(crate) struct Loaded {
    pub records: Vec<Telemetry>,
    /// Where they came from (the release's `training.source`).
    pub source: String,
    /// Labelled episodes: from `--labels`, or the CSV file's label column.
    pub episodes: Vec<Episode>,
}

/// Loads the training data named by `args`, with their labels.
pub(crate) async fn load_data(
    args: &TrainArgs,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<Loaded> {
    let (records, source, labels) = load_records(args, bar).await?;
    let episodes = match &args.labels {
        Some(path) => source::read_labels(path)?,
        None => vigil_training::label_episodes(&records, &labels),
    };
    Ok(Loaded {
        records,
        source,
        episodes,
    })
}

/// The records named by `args`, their source and each one's label from
/// a CSV file's label column (none from Kafka).
async fn load_records(
    args: &TrainArgs,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<(Vec<Telemetry>, String, Vec<bool>)> {
    if let Some(path) = &args.csv {
        if let Some(b) = bar {
            b.set_message(format!("reading {}", path.display()));
        }
        let file = path.clone();
        let format = args.csv_format.clone();
        let max = args.max_records;
        let (mut records, mut labels) =
            tokio::task::spawn_blocking(move || source::read_csv(&file, &format, max))
                .await
                .context("csv reader panicked")??;
        let mut source = format!("file:{}", path.display());
        if let Some(rows) = args.rows {
            if records.len() > rows {
                records.truncate(rows);
                labels.truncate(rows);
                source.push_str(&format!(" rows 1-{rows}"));
            }
        }
        return Ok((records, source, labels));
    }
    let until = args.until.map_or_else(now_ms, ms);
    let window_ms = u64::try_from(args.window.as_millis()).unwrap_or(u64::MAX);
    let from = until.saturating_sub(window_ms);
    let topic = args.kafka.topics().telemetry;
    let kafka_args = args.kafka.clone();
    let max = args.max_records;
    let timeout = Duration::from_secs(args.kafka_timeout_secs);
    let bar_clone = bar.cloned();
    let t = topic.clone();
    let replayed = tokio::task::spawn_blocking(move || {
        source::replay_window(&kafka_args, &t, from, until, max, timeout, |n| {
            if let Some(b) = &bar_clone {
                b.set_message(format!("replaying {t}: {n} records read"));
            }
        })
    })
    .await
    .context("replay panicked")??;
    tracing::info!(
        topic = %topic,
        from_ms = from,
        until_ms = until,
        records = replayed.records.len(),
        outside_window = replayed.outside_window,
        undecodable = replayed.undecodable,
        truncated = replayed.truncated,
        "telemetry replayed"
    );
    if replayed.truncated {
        tracing::warn!(
            max_records = max,
            "the window holds more records than --max-records; training on the oldest part of it"
        );
    }
    let labels = vec![false; replayed.records.len()];
    Ok((replayed.records, format!("kafka:{topic}"), labels))
}

/// The keys whose releases count for the trainer: `--verify-key`'s ring
/// (if any) and the signing key's own public key. A signing key the ring
/// retires is refused: its releases would be refused everywhere.
pub fn trainer_ring(args: &TrainArgs, key: &SigningKey) -> anyhow::Result<KeyRing> {
    let mut ring = match &args.verify_key {
        Some(path) => vigil_model::load_key_ring(path)
            .with_context(|| format!("--verify-key / VIGIL_VERIFY_KEY {}", path.display()))?,
        None => KeyRing::default(),
    };
    let own = ring.add(key.verifying_key());
    if let KeyStatus::Retired = ring.status(&own) {
        bail!(
            "the signing key {} has key id {own}, which --verify-key retires: \
             sign with the new key (see the key rotation procedure)",
            args.signing_key.display()
        );
    }
    tracing::info!(key_id = %own, verify_keys = %ring.summary(), "signing releases");
    Ok(ring)
}

/// One training: data, version, fit, gate, sign, publish. `ring` decides
/// which releases in the log count ([`trainer_ring`]).
pub async fn train_once(
    args: &TrainArgs,
    key: &SigningKey,
    ring: &KeyRing,
    producer: &FutureProducer<VigilContext>,
) -> anyhow::Result<Outcome> {
    let bar = progress_bar(args);
    let Loaded {
        records,
        source,
        episodes,
    } = load_data(args, bar.as_ref()).await?;

    if let Some(b) = &bar {
        b.set_message("reading vigil.models".to_owned());
    }
    let log =
        vigil_releases::load(&args.kafka, Duration::from_secs(args.kafka_timeout_secs)).await?;
    let (version, ignored) = vigil_releases::next_version(&log, &args.model, ring)?;
    for (claimed, why) in &ignored {
        tracing::warn!(
            model = %args.model,
            claimed_version = claimed,
            reason = why.reason(),
            "a release on vigil.models does not verify with this trainer's keys; its version is ignored"
        );
    }
    let mut lineage = Lineage::new(args.model.clone(), ring.clone());
    for p in &log {
        let Ok(release) = &p.release else { continue };
        if let Offer::Rejected(e) = lineage.offer(release) {
            tracing::debug!(
                offset = p.offset,
                reason = e.reason(),
                "release in the log not live"
            );
        }
    }
    let live = lineage.live().cloned();
    if let Some(live) = &live {
        tracing::info!(live_version = live.version(), "live release");
    }

    let candidate = Candidate {
        records,
        source,
        episodes,
        version,
    };
    let release =
        match build_release(args, key, candidate, live.as_ref().map(|m| m.model()), bar).await? {
            Ok(release) => release,
            Err(why) => return Ok(Outcome::NotPublished(why)),
        };
    let (partition, offset) = vigil_releases::publish(
        producer,
        &args.kafka.topics().models,
        &release,
        Duration::from_secs(args.kafka_timeout_secs),
    )
    .await?;
    Ok(Outcome::Published {
        version,
        partition,
        offset,
    })
}

/// What a training fits: the records, where they came from, labels, and
/// the version the release gets.
pub(crate) struct Candidate {
    pub records: Vec<Telemetry>,
    pub source: String,
    pub episodes: Vec<Episode>,
    pub version: u64,
}

/// Fit, gate against `live` (unless --force), sign and check the
/// signature: the signed release, or why there is none (too little data,
/// gate refusal).
pub(crate) async fn build_release(
    args: &TrainArgs,
    key: &SigningKey,
    candidate: Candidate,
    live: Option<&Model>,
    bar: Option<ProgressBar>,
) -> anyhow::Result<Result<ModelRelease, String>> {
    let Candidate {
        records,
        source,
        episodes,
        version,
    } = candidate;
    // A file is what the user chose to train on: only the fit's own
    // requirement applies. A replayed window must be substantial.
    let (default_min, default_device_min) = if args.csv.is_some() {
        (1, 1)
    } else {
        (5_000, 100)
    };
    let cfg = TrainConfig {
        model: args.model.clone(),
        version,
        created_ts: now_ms(),
        source,
        method: match args.method {
            MethodArg::Pca => Method::Pca,
            MethodArg::RobustZ => Method::RobustZ,
        },
        calibration: match args.calibration {
            CalibrationArg::Trimmed => Calibration::Trimmed,
            CalibrationArg::Quantile => Calibration::Quantile,
        },
        metrics: args.metrics.clone(),
        declared_ranges: args.ranges.iter().cloned().collect(),
        holdout_fraction: args.holdout_fraction,
        target_false_alarm_rate: args.target_false_alarm_rate,
        min_records: args.min_records.unwrap_or(default_min),
        min_device_records: args.min_device_records.unwrap_or(default_device_min),
        ..TrainConfig::default()
    };
    let fit_bar = bar.clone();
    let no_holdout = args.holdout_fraction == 0.0;
    let trained = tokio::task::spawn_blocking(move || {
        let trained = vigil_training::fit(&records, &cfg, |p| {
            let msg = match p {
                Progress::Grouped { devices, records } => {
                    format!("{records} records from {devices} devices; extracting features")
                }
                Progress::Extracted { rows } => format!("{rows} feature rows; fitting"),
                Progress::Fitted { components } => {
                    format!("fitted ({components} components); evaluating the holdout")
                }
                Progress::Evaluated { .. } if no_holdout => {
                    "no holdout (--holdout 0): the model is not validated".to_owned()
                }
                Progress::Evaluated { false_alarm_rate } => {
                    format!("holdout false-alarm rate {false_alarm_rate:.5}")
                }
            };
            match &fit_bar {
                Some(b) => b.set_message(msg),
                None => tracing::info!("{msg}"),
            }
        });
        (trained, records)
    })
    .await
    .context("training panicked")?;
    let (trained, records) = trained;
    let trained = match trained {
        Ok(t) => t,
        Err(e @ (TrainError::TooLittleData { .. } | TrainError::TooFewRows { .. })) => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Ok(Err(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    if !trained.label_metrics.is_empty() {
        tracing::warn!(
            metrics = %trained.label_metrics.join(", "),
            "left out of the model: named as a label (a file's own answer, not a measurement); \
             --label-column uses one as the labels, --metrics keeps it as a metric"
        );
    }
    if !trained.constant_metrics.is_empty() {
        tracing::warn!(
            metrics = %trained.constant_metrics.join(", "),
            "left out of the model: each holds one value over the training rows \
             (a setpoint, an idle channel or a label column); --metrics keeps them"
        );
    }

    let decision = if args.force {
        None
    } else {
        let data = FleetData::new(&records, args.holdout_fraction);
        let opts = EvalOptions {
            holdout_only: true,
            ..EvalOptions::default()
        };
        Some(vigil_training::gate(
            &trained.model,
            live,
            &data,
            &episodes,
            &opts,
            &GateConfig::default(),
        ))
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(d) = &decision {
        tracing::info!(
            accepted = d.accepted,
            reason = %d.reason,
            "champion/challenger gate"
        );
        if !d.accepted {
            let mut why = d.reason.clone();
            if d.candidate.normal_records == 0 {
                why.push_str(
                    "; keep a holdout (e.g. --holdout 0.2) or publish unvalidated with --force",
                );
            }
            return Ok(Err(why));
        }
    } else {
        tracing::warn!("--force: skipping the gate");
    }

    let release = vigil_model::sign(&trained.payload, key)?;
    // Refuse to publish what scorers would refuse.
    vigil_model::verify(&release, &key.verifying_key())
        .context("the signed release does not verify")?;
    Ok(Ok(release))
}

#[cfg(test)]
mod tests {
    use clap::{Args as _, FromArgMatches as _};

    use super::*;

    fn args(signing: &std::path::Path, ring: &std::path::Path) -> TrainArgs {
        let command = TrainArgs::augment_args(clap::Command::new("train"));
        let matches = command
            .try_get_matches_from([
                "train".as_ref(),
                "--signing-key".as_ref(),
                signing.as_os_str(),
                "--verify-key".as_ref(),
                ring.as_os_str(),
            ])
            .expect("parses");
        TrainArgs::from_arg_matches(&matches).expect("train args")
    }

    #[test]
    fn the_ring_adds_old_keys_and_a_retired_signing_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = vigil_model::keygen(&dir.path().join("old")).expect("keygen");
        let new = vigil_model::keygen(&dir.path().join("new")).expect("keygen");
        let signing = vigil_model::load_signing_key(&new.signing_key).expect("key");
        let ring = dir.path().join("ring.pub");
        std::fs::copy(&old.verify_key, &ring).expect("copy");
        let keys = trainer_ring(&args(&new.signing_key, &ring), &signing).expect("ring");
        let mut expected = vec![old.key_id.as_str(), new.key_id.as_str()];
        expected.sort_unstable();
        assert_eq!(keys.active_ids(), expected);

        let retired = format!(
            "{}{}{}\n",
            std::fs::read_to_string(&old.verify_key).expect("read"),
            vigil_model::keyring::RETIRED_PREFIX,
            new.key_id
        );
        std::fs::write(&ring, retired).expect("write");
        let e = trainer_ring(&args(&new.signing_key, &ring), &signing).expect_err("retired");
        assert!(e.to_string().contains("retires"), "{e}");
    }
}
