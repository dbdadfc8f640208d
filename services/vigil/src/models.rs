//! `vigil models …`: operator commands on model releases (the `vigil`
//! binary's; the `vigil-releases` library they read with has no CLI).
//!
//! | command | reads | does |
//! |---|---|---|
//! | `keygen --out DIR` | – | writes `DIR/signing.key` (0600) and `DIR/verify.pub` |
//! | `list` | `vigil.models` | every model name, its live and newest version |
//! | `show [--model-version N]` | `vigil.models` | provenance and validation metrics of a release |
//! | `verify (--file F \| --model-version N)` | file or `vigil.models` | whether a release verifies with `VIGIL_VERIFY_KEY`; exit 1 if not |
//! | `export --out FILE [--model-version N]` | `vigil.models` | the release exactly as published |
//! | `score --model FILE [--csv F]` | file, stdin or CSV | Telemetry JSON lines (or CSV rows) → Verdict JSON lines, cloud code path |
//!
//! "Live" is what a scorer with the same key would run: the newest release
//! accepted in log order (see [`vigil_releases::Lineage`]). Without a verify key the
//! commands that need one say so instead of guessing.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde::Serialize;
use vigil_model::{KeyRing, ReleaseError, Scorer};
use vigil_releases::{Lineage, Offer, Published};
use vigil_schemas::{Message, ModelRelease, ReleaseHeader, ScoredAt, Telemetry};
use vigil_service::config::KafkaArgs;
use vigil_service::outln;

use vigil_service::duration::parse_secs;
/// `vigil models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// The operator commands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Make an ed25519 key pair: DIR/signing.key (for the trainer, mode
    /// 0600) and DIR/verify.pub (for scorers, edge agents, push).
    Keygen {
        /// Directory to write the key files to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// List the models on vigil.models with their live and newest versions.
    List(ReadArgs),
    /// Show a release's provenance and validation metrics (the live one by
    /// default).
    Show(SelectArgs),
    /// Check a release's checksum and signature (from --file or the topic).
    Verify(VerifyArgs),
    /// Write a release exactly as published (the live one by default).
    Export(ExportArgs),
    /// Score Telemetry JSON lines from stdin (or the rows of a CSV file,
    /// --csv) to Verdict JSON lines on stdout with a release file, offline,
    /// with the cloud scorer's code.
    Score(ScoreArgs),
}

/// Options of the commands that read `vigil.models`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// ed25519 public key file releases must verify with, or a key ring (a
    /// file of several public key and `vigil-retired-key-id:` lines, or a
    /// directory of `*.pub` files).
    #[arg(long, env = "VIGIL_VERIFY_KEY")]
    pub verify_key: Option<PathBuf>,

    /// How long to wait for Kafka, seconds.
    #[arg(long, default_value_t = 30, value_parser = parse_secs::<u64>)]
    pub timeout_secs: u64,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of the commands that pick one release of one model.
#[derive(Debug, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    pub read: ReadArgs,

    /// Model name.
    #[arg(long, env = "VIGIL_MODEL", default_value = "default")]
    pub model: String,

    /// Version to pick instead of the live one.
    #[arg(long)]
    pub model_version: Option<u64>,
}

/// `vigil models verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Verify this release file instead of reading the topic.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// `vigil models export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// File to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `vigil models score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Release file (as written by `vigil models export`).
    #[arg(long)]
    pub model: PathBuf,

    /// ed25519 public key file (or key ring) the release must verify with.
    #[arg(long, env = "VIGIL_VERIFY_KEY")]
    pub verify_key: PathBuf,

    /// Per-device state is kept for at most this many devices.
    #[arg(long, default_value_t = 100_000)]
    pub device_capacity: usize,

    /// Score this CSV file (the layout `vigil train --csv` reads, see the
    /// CSV layout flags) instead of Telemetry JSON lines from stdin.
    #[arg(long)]
    pub csv: Option<PathBuf>,

    #[command(flatten)]
    pub csv_format: vigil_train::CsvFormatArgs,

    /// With --csv: print verdicts only for the data rows after the first
    /// N (e.g. the rows `vigil train --rows N` trained on). Those N rows
    /// still go through the scorer, so each device's state is warm, as in
    /// a scorer that saw them live.
    #[arg(long, default_value_t = 0, requires = "csv")]
    pub after_row: usize,
}

/// Most rows `vigil models score --csv` reads.
const MAX_CSV_ROWS: usize = 10_000_000;

/// Runs a `vigil models` command.
pub async fn run(args: ModelsArgs) -> anyhow::Result<()> {
    match args.command {
        ModelsCommand::Keygen { out } => {
            let keys = vigil_model::keygen(&out)?;
            outln!(
                "wrote {} and {} (key id {})",
                keys.signing_key.display(),
                keys.verify_key.display(),
                keys.key_id
            )?;
            Ok(())
        }
        ModelsCommand::List(read) => list(&read).await,
        ModelsCommand::Show(select) => show(&select).await,
        ModelsCommand::Verify(verify_args) => verify(&verify_args).await,
        ModelsCommand::Export(export_args) => export(&export_args).await,
        ModelsCommand::Score(score_args) if score_args.csv.is_some() => {
            let stdout = std::io::stdout().lock();
            score_csv(&score_args, stdout)?;
            Ok(())
        }
        ModelsCommand::Score(score_args) => {
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            let summary = score_lines(&score_args, stdin, stdout)?;
            if summary.rejected > 0 {
                bail!(
                    "{} of {} lines were not valid telemetry (see the messages above)",
                    summary.rejected,
                    summary.lines
                );
            }
            Ok(())
        }
    }
}

fn load_key(path: Option<&Path>) -> anyhow::Result<Option<KeyRing>> {
    path.map(|p| vigil_model::load_key_ring(p).map_err(anyhow::Error::from))
        .transpose()
}

async fn read_log(read: &ReadArgs) -> anyhow::Result<Vec<Published>> {
    Ok(vigil_releases::load(&read.kafka, Duration::from_secs(read.timeout_secs)).await?)
}

/// One model in `vigil models list`.
#[derive(Debug, Serialize)]
struct ModelSummary {
    model: String,
    /// What a scorer with the verify key runs (None without a key or when
    /// nothing verifies).
    live_version: Option<u64>,
    /// Highest version published, verified or not.
    newest_version: u64,
    /// Releases still in the (compacted) log.
    releases_in_log: usize,
    /// Of those, refused by the verify key's lineage.
    rejected: usize,
}

async fn list(read: &ReadArgs) -> anyhow::Result<()> {
    let key = load_key(read.verify_key.as_deref())?;
    let log = read_log(read).await?;
    let mut names: Vec<String> = log
        .iter()
        .filter_map(|p| p.name_version().map(|(n, _)| n.to_owned()))
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let (live, rejected) = match &key {
            Some(key) => {
                let (lineage, _, rejected) = replay(&log, &name, key);
                (lineage.live().map(|m| m.version()), rejected.len())
            }
            None => (None, 0),
        };
        out.push(ModelSummary {
            live_version: live,
            newest_version: vigil_releases::max_version(&log, &name).unwrap_or(0),
            releases_in_log: log
                .iter()
                .filter(|p| p.name_version().is_some_and(|(n, _)| n == name))
                .count(),
            rejected,
            model: name,
        });
    }
    let undecodable = log.iter().filter(|p| p.release.is_err()).count();
    if read.json {
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        outln!(
            "{:<24} {:>6} {:>7} {:>9} {:>9}",
            "MODEL",
            "LIVE",
            "NEWEST",
            "IN LOG",
            "REJECTED"
        )?;
        for m in &out {
            let live = m
                .live_version
                .map_or_else(|| "-".to_owned(), |v| v.to_string());
            outln!(
                "{:<24} {:>6} {:>7} {:>9} {:>9}",
                m.model,
                live,
                m.newest_version,
                m.releases_in_log,
                m.rejected
            )?;
        }
        if key.is_none() {
            outln!("(no --verify-key / VIGIL_VERIFY_KEY: live versions not determined)")?;
        }
        if undecodable > 0 {
            outln!("{undecodable} records of the topic are not readable releases")?;
        }
    }
    Ok(())
}

/// What [`replay`] found: the lineage, the log position (partition,
/// offset) of the live release, and the refused releases with reasons.
type Replayed = (Lineage, Option<(i32, i64)>, Vec<(i64, ReleaseError)>);

/// Applies the scorer's accept rule to the log; returns the lineage, the
/// log position of the live release, and the refused releases of `model`
/// with their reasons.
fn replay(log: &[Published], model: &str, key: &KeyRing) -> Replayed {
    let mut lineage = Lineage::new(model, key.clone());
    let mut live_at = None;
    let mut rejected = Vec::new();
    for p in log {
        let Ok(release) = &p.release else { continue };
        if release.model != model {
            continue;
        }
        match lineage.offer(release) {
            Offer::Accepted(_) => live_at = Some((p.partition, p.offset)),
            Offer::Rejected(e) => rejected.push((p.offset, e)),
            Offer::OtherModel => {}
        }
    }
    (lineage, live_at, rejected)
}

/// Picks the release `select` names: `--model-version N` (the newest record
/// with that version, preferring one that verifies when a key is given),
/// else the live one (needs a key).
fn pick<'a>(
    log: &'a [Published],
    select: &SelectArgs,
    key: Option<&KeyRing>,
) -> anyhow::Result<(&'a Published, &'a ModelRelease)> {
    let of_model = |p: &&'a Published| p.name_version().is_some_and(|(n, _)| n == select.model);
    let found = match (select.model_version, key) {
        (Some(v), key) => {
            let mut candidates = log
                .iter()
                .filter(of_model)
                .filter(|p| p.name_version().is_some_and(|(_, pv)| pv == v));
            match key {
                Some(key) => candidates
                    .clone()
                    .rfind(|p| {
                        p.release
                            .as_ref()
                            .is_ok_and(|r| vigil_model::verify(r, key).is_ok())
                    })
                    .or_else(|| candidates.next_back()),
                None => candidates.next_back(),
            }
        }
        (None, Some(key)) => {
            let (_, live_at, _) = replay(log, &select.model, key);
            live_at.and_then(|at| log.iter().find(|p| (p.partition, p.offset) == at))
        }
        (None, None) => bail!(
            "which release is live depends on the verify key: pass --verify-key (or VIGIL_VERIFY_KEY), or pick one with --model-version"
        ),
    };
    let Some(p) = found else {
        match select.model_version {
            Some(v) => bail!("no release {} v{v} on the topic", select.model),
            None => bail!("no verified release of model {} on the topic", select.model),
        }
    };
    let release = p.release.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((p, release))
}

/// What `vigil models show` prints.
#[derive(Debug, Serialize)]
struct ShowOutput<'a> {
    model: &'a str,
    version: u64,
    key_id: &'a str,
    payload_sha256: &'a str,
    published_ms: Option<i64>,
    size_bytes: usize,
    /// "ok", the reason it failed, or "unchecked" without a key.
    verification: String,
    #[serde(flatten)]
    header: Option<ReleaseHeader>,
}

async fn show(select: &SelectArgs) -> anyhow::Result<()> {
    let key = load_key(select.read.verify_key.as_deref())?;
    let log = read_log(&select.read).await?;
    let (published, release) = pick(&log, select, key.as_ref())?;
    let verification = match &key {
        Some(key) => match vigil_model::verify(release, key) {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("failed ({}): {e}", e.reason()),
        },
        None => "unchecked (no verify key)".to_owned(),
    };
    let header: Option<ReleaseHeader> = serde_json::from_str(release.payload.get()).ok();
    let out = ShowOutput {
        model: &release.model,
        version: release.version,
        key_id: &release.key_id,
        payload_sha256: &release.payload_sha256,
        published_ms: published.published_ms,
        size_bytes: release.encode().map(|b| b.len()).unwrap_or(0),
        verification,
        header,
    };
    if select.read.json {
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    outln!("model          {} v{}", out.model, out.version)?;
    outln!("verification   {}", out.verification)?;
    outln!("signed by key  {}", out.key_id)?;
    outln!("payload sha256 {}", out.payload_sha256)?;
    outln!("size           {} bytes", out.size_bytes)?;
    if let Some(ms) = out.published_ms {
        outln!("published      {ms} (ms since epoch)")?;
    }
    if let Some(h) = &out.header {
        outln!("created        {} (ms since epoch)", h.created_ts)?;
        outln!(
            "trained on     {} records from {} devices, event time {}..{}, source {}",
            h.training.records,
            h.training.devices,
            h.training.from_ts,
            h.training.to_ts,
            h.training.source
        )?;
        outln!("threshold      {}", h.threshold)?;
        outln!(
            "holdout        {} records, false-alarm rate {:.5}, detection rate {}, mean delay {}",
            h.validation.holdout_records,
            h.validation.false_alarm_rate,
            h.validation
                .detection_rate
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}")),
            h.validation
                .mean_detection_delay
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} records")),
        )?;
    }
    Ok(())
}

async fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let Some(key_path) = args.select.read.verify_key.as_deref() else {
        bail!("vigil models verify needs the public key: --verify-key or VIGIL_VERIFY_KEY");
    };
    let key = vigil_model::load_key_ring(key_path)?;
    let (what, result) = match &args.file {
        Some(file) => {
            let bytes = std::fs::read(file)
                .with_context(|| format!("reading release file {}", file.display()))?;
            (
                file.display().to_string(),
                vigil_model::decode_and_verify(&bytes, &key)
                    .map(|m| (m.version(), m.release().key_id.clone())),
            )
        }
        None => {
            let log = read_log(&args.select.read).await?;
            let select = SelectArgs {
                read: ReadArgs {
                    kafka: args.select.read.kafka.clone(),
                    verify_key: None,
                    timeout_secs: args.select.read.timeout_secs,
                    json: false,
                },
                model: args.select.model.clone(),
                model_version: args.select.model_version,
            };
            let (_, release) = pick(&log, &select, Some(&key))?;
            (
                format!("{} v{} on the topic", release.model, release.version),
                vigil_model::verify(release, &key)
                    .map(|m| (m.version(), m.release().key_id.clone())),
            )
        }
    };
    match result {
        Ok((version, key_id)) => {
            outln!("{what}: ok (version {version}, key {key_id})")?;
            Ok(())
        }
        Err(e) => bail!("{what}: does not verify ({}): {e}", e.reason()),
    }
}

async fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let key = load_key(args.select.read.verify_key.as_deref())?;
    let log = read_log(&args.select.read).await?;
    let (_, release) = pick(&log, &args.select, key.as_ref())?;
    let bytes = release.encode()?;
    vigil_train::write_atomically(&args.out, &bytes)?;
    eprintln!(
        "wrote {} v{} ({} bytes) to {}",
        release.model,
        release.version,
        bytes.len(),
        args.out.display()
    );
    Ok(())
}

/// Counts from [`score_lines`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreSummary {
    /// Non-empty input lines.
    pub lines: u64,
    /// Lines that were not valid Telemetry (reported on stderr).
    pub rejected: u64,
}

/// The cloud scorer's code path over JSON lines: each valid Telemetry line
/// of `input` becomes one Verdict line on `output`; an invalid line is
/// reported on stderr with its line number and skipped.
pub fn score_lines(
    args: &ScoreArgs,
    input: impl BufRead,
    mut output: impl Write,
) -> anyhow::Result<ScoreSummary> {
    let mut scorer = load_scorer(args)?;
    let mut summary = ScoreSummary::default();
    for (n, line) in input.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let record = match Telemetry::decode(line.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                summary.rejected += 1;
                eprintln!("line {}: {} ({})", n + 1, e, e.reason());
                continue;
            }
        };
        write_verdict(&mut scorer, &record, &mut output)?;
    }
    output.flush().map_err(vigil_service::stdout_error)?;
    Ok(summary)
}

/// `vigil models score --csv`: every row of the file through the scorer
/// in file order, a Verdict line for each row after `--after-row`.
/// Returns the number of verdicts written.
pub fn score_csv(args: &ScoreArgs, mut output: impl Write) -> anyhow::Result<u64> {
    let Some(path) = &args.csv else {
        bail!("score_csv needs --csv");
    };
    let (records, labels) = vigil_train::read_csv(path, &args.csv_format, MAX_CSV_ROWS)?;
    if args.after_row > records.len() {
        bail!(
            "--after-row {} but {} holds only {} data rows",
            args.after_row,
            path.display(),
            records.len()
        );
    }
    let mut scorer = load_scorer(args)?;
    let mut written = 0;
    let mut counts = vigil_train::PointCounts::default();
    for (i, (record, &label)) in records.iter().zip(&labels).enumerate() {
        if let Err(e) = record.check() {
            bail!(
                "{} data row {}: {e} ({})",
                path.display(),
                i + 1,
                e.reason()
            );
        }
        if i < args.after_row {
            scorer.score(record, None, vigil_service::now_ms(), ScoredAt::Cloud);
        } else {
            let anomaly = write_verdict(&mut scorer, record, &mut output)?;
            counts.add(anomaly, label);
            written += 1;
        }
    }
    output.flush().map_err(vigil_service::stdout_error)?;
    if let Some(column) = &args.csv_format.label_column {
        eprintln!("{}", point_summary(column, &counts));
    }
    Ok(written)
}

/// A scorer running the release file `args.model`, once it verified.
fn load_scorer(args: &ScoreArgs) -> anyhow::Result<Scorer> {
    let key = vigil_model::load_key_ring(&args.verify_key)?;
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("reading release file {}", args.model.display()))?;
    let model = vigil_model::decode_and_verify(&bytes, &key)
        .with_context(|| format!("release file {}", args.model.display()))?;
    let mut scorer = Scorer::new(model.name().to_owned(), args.device_capacity);
    scorer
        .install(Arc::new(model))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(scorer)
}

/// One line on the verdicts against a label column: point-wise precision,
/// recall and F1 (a verdict is flagged when its device is in alarm),
/// beside the F1 of flagging every row.
fn point_summary(column: &str, c: &vigil_train::PointCounts) -> String {
    let (f1, precision, recall) = c.f1();
    format!(
        "against label column {column}: {} rows scored, {} labelled anomalous, {} flagged; \
         point-wise precision {precision:.3}, recall {recall:.3}, F1 {f1:.3} \
         (flagging every row: F1 {:.3})",
        c.records,
        c.positives,
        c.hits + c.false_hits,
        c.flag_all_f1()
    )
}

/// Scores `record`, writes its Verdict as one JSON line and says whether
/// the device is in alarm at it.
fn write_verdict(
    scorer: &mut Scorer,
    record: &Telemetry,
    output: &mut impl Write,
) -> anyhow::Result<bool> {
    let verdict = scorer.score(
        record,
        record.ingest_ts,
        vigil_service::now_ms(),
        ScoredAt::Cloud,
    );
    let mut bytes = verdict.encode()?;
    bytes.push(b'\n');
    output
        .write_all(&bytes)
        .map_err(vigil_service::stdout_error)?;
    Ok(verdict.anomaly)
}
