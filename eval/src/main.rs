//! `vigil-eval`: Vigil's offline evaluation tools.
//!
//! Only flag parsing lives here; the work is in the `vigil_eval` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use vigil_eval::nab::{
    inject, run, score_results, DetectorConfig, Family, InputRange, Report, Retrain, RunOptions,
    ScoreMap, ScoreOptions, Subset,
};
use vigil_training::Method;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-eval",
    version,
    about = "Offline evaluation of Vigil's detector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the detector on the Numenta Anomaly Benchmark and score it, or
    /// score existing results (--score-only); see eval/NAB.md.
    Nab(Box<NabArgs>),
    /// Train a release on each labelled CSV file's first rows under a
    /// folder (as `vigil train --csv FILE --rows N` does), score the rest,
    /// and count the verdicts point-wise against each file's label column;
    /// prints a Markdown table, one row per file and their sum.
    Files(FilesArgs),
}

#[derive(Debug, Args)]
struct FilesArgs {
    /// Folder of CSV files (searched recursively), one recording each.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Rows each release is trained on: the first ones of its file.
    #[arg(long, default_value_t = 400)]
    rows: usize,
    /// Column of each row's label (1/true anomalous; 0/false/empty normal).
    #[arg(long, default_value = "anomaly")]
    label_column: String,
    /// Event-time column (ms since the epoch or ISO-8601).
    #[arg(long, default_value = "datetime")]
    time_column: String,
    /// Field separator, `,` or `;` [default: `;` when the header holds one].
    #[arg(long)]
    separator: Option<char>,
    /// Most rows read from one file.
    #[arg(long, default_value_t = 10_000_000)]
    max_rows: usize,
}

fn files(args: FilesArgs) -> Result<()> {
    let separator = match args.separator {
        None => None,
        Some(',') => Some(b','),
        Some(';') => Some(b';'),
        Some(other) => bail!("--separator must be ',' or ';', got {other:?}"),
    };
    let opts = vigil_eval::files::FilesOptions {
        rows: args.rows,
        csv: vigil_training::WideCsvOptions {
            separator,
            time_column: Some(args.time_column),
            device_id: None,
            label_column: Some(args.label_column),
        },
        max_rows: args.max_rows,
    };
    let report = vigil_eval::files::evaluate_files(&args.dir, &opts)?;
    print!("{}", report.table());
    Ok(())
}

#[derive(Debug, Args)]
struct NabArgs {
    /// Score existing results instead of running the detector.
    #[arg(long)]
    score_only: bool,
    /// Results to score: a root with <detector>/<category>/<detector>_<file>.csv,
    /// or one detector's folder.
    #[arg(long, env = "VIGIL_NAB_RESULTS", value_name = "DIR")]
    results: Option<PathBuf>,
    /// The NAB checkout or dataset folder (holding data/, labels/, config/);
    /// the defaults of --data, --labels and --profiles are inside it.
    #[arg(long, env = "VIGIL_NAB_DIR", value_name = "DIR")]
    nab_dir: Option<PathBuf>,
    /// Corpus data files [default: <nab-dir>/data]; results must match
    /// their rows.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Anomaly windows [default: <nab-dir>/labels/combined_windows.json].
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Scoring profiles [default: <nab-dir>/config/profiles.json].
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Where to write: with --score-only, scores.json (a file ending in
    /// .json, or a directory that gets scores.json) [default:
    /// <results>/scores.json]; otherwise the results root, which gets
    /// <detector>/<category>/<detector>_<file>.csv and scores.json.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Detector to run (and its name in the results).
    #[arg(long, default_value = "vigil", value_parser = ["vigil"])]
    detector: String,
    /// When the detector is refitted after the probationary period (with
    /// `--method release`: retrained on every row so far and swapped in
    /// with each device's state carried as the scorer carries it).
    #[arg(long, value_enum, default_value_t = Retrain::Never)]
    retrain: Retrain,
    /// How the detector's raw score becomes NAB's anomaly_score.
    #[arg(long, value_enum, default_value_t = ScoreMap::Cooldown)]
    score_map: ScoreMap,
    /// False-alarm rate each fit calibrates the model's threshold to (the
    /// `episode` and `cooldown` maps alert at that threshold).
    #[arg(long, value_name = "RATE", default_value_t = vigil_eval::nab::NAB_FALSE_ALARM_RATE)]
    false_alarm_rate: f64,
    /// Detector: `novelty` (model crate, no fit), or the family `fit`
    /// trains on the probationary rows, `pca` or `robust-z` (these use
    /// --retrain, --score-map and --false-alarm-rate); experiment: `gated`,
    /// the PCA detector's alerts plus novelty alerts while the PCA score is
    /// at least --gate times its threshold (eval/NAB.md, session 14).
    #[arg(long, default_value = "release", value_parser = ["release", "novelty", "pca", "robust-z", "gated"])]
    method: String,
    /// Experiment, with `--method gated`: the gate in percent of the PCA
    /// threshold (0: novelty alerts freely; 100: only with a PCA alert).
    #[arg(long, value_name = "PERCENT", default_value_t = 50)]
    gate: u32,
    /// Experiment, with `--method release`: each device's first RECORDS
    /// fix its novelty ranges, instead of the ranges the release learnt
    /// from the training rows (the product before session 16).
    #[arg(long, value_name = "RECORDS")]
    range_records: Option<u32>,
    /// Experiment, with `--method release`: the trust policy as
    /// WINDOW:RELEASE_ONSETS:NOVELTY_ONSETS:NOVELTY_START:GATE [default:
    /// the trainer's] (training/EVALUATION.md, "Trust by alert rate").
    #[arg(long, value_name = "POLICY")]
    trust: Option<String>,
    /// Experiment, with `--method release`: the trust's release break
    /// alone (0: off) [default: the trainer's] (eval/NAB.md, session 26).
    #[arg(long, value_name = "TIMES")]
    release_break: Option<f64>,
    /// Experiment, with `--method release`: the drift watch's widths (0:
    /// off) [default: the trainer's] (eval/NAB.md, session 27).
    #[arg(long, value_name = "WIDTHS")]
    drift_widths: Option<f64>,
    /// Experiment, with `--method release`: the jump watch's bar in
    /// standard deviations (0: off) [default: the trainer's] (eval/NAB.md,
    /// session 28).
    #[arg(long, value_name = "SDS")]
    jump_sds: Option<f64>,
    /// Experiment, with `--method gated`: leave out the PCA detector's own
    /// alerts (only the gated novelty alerts).
    #[arg(long)]
    gate_only: bool,
    /// With `--method release`: whether each file's release is told the
    /// file's smallest and largest value, as NAB's runner tells every
    /// detector (`inputMin`, `inputMax`), declared as the metric's range
    /// (`vigil train --range`); `none` gives the strict figures
    /// (eval/NAB.md, session 31).
    #[arg(long, value_enum, default_value_t = InputRange::Nab)]
    input_range: InputRange,
    /// Corpus files to run (with --score-only: to score): `all`, or one
    /// fixed half of eval/nab-split.txt (`tune`: the settings were chosen on
    /// it; `holdout`: they were not).
    #[arg(long, value_enum, default_value_t = Subset::All)]
    files: Subset,
    /// Rows an alert silences the novelty alerts and the `onset`,
    /// `episode` and `cooldown` maps.
    #[arg(long, value_name = "ROWS", default_value_t = vigil_eval::nab::REFRACTORY_ROWS)]
    refractory_rows: usize,
    /// Experiment (training/EVALUATION.md, session 14): how the novelty
    /// detector judges a small step into a never-seen cell: `novel` (the
    /// default), `new:REACH[:finest]` or `any:REACH[:finest]`.
    #[arg(long, value_name = "MODE", default_value = "novel")]
    novelty_expansion: vigil_model::novelty::Expansion,
    /// Experiment: the novelty alert level, bits per resolution [default:
    /// the model crate's].
    #[arg(long, value_name = "BITS")]
    novelty_alarm_bits: Option<u32>,
    /// Experiment (training/EVALUATION.md, "Novelty with each series' own
    /// level"): how each series' novelty alert level follows its own
    /// surprise: `fixed` (the default), `mul:FACTOR:WINDOW`,
    /// `add:BITS:WINDOW` or `over:FLOOR:FACTOR:WINDOW`, optionally
    /// `:capBITS` and `:freeze`.
    #[arg(long, value_name = "RULE", default_value = "fixed")]
    novelty_level: vigil_model::novelty::LevelRule,
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Run on the tuning half with anomalies injected instead (built from
    /// --nab-dir under <out>/corpus with this seed; eval/NAB.md, session
    /// 22), and count the injected windows found, by kind. --files,
    /// --data and --labels do not apply.
    #[arg(long, value_name = "SEED")]
    inject: Option<u64>,
}

/// The dataset beside the workspace (shared/datasets/nab), when present.
fn default_nab_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab");
    dir.join("labels").is_dir().then_some(dir)
}

impl NabArgs {
    fn nab_file(&self, given: &Option<PathBuf>, inside: &str, flag: &str) -> Result<PathBuf> {
        match (given, &self.nab_dir) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(dir)) => Ok(dir.join(inside)),
            (None, None) => {
                bail!("{flag} is required when neither --nab-dir nor VIGIL_NAB_DIR is set")
            }
        }
    }
}

fn print_report(report: &Report, started: Instant) {
    print!("{}", report.table());
    println!(
        "wrote {} in {:.2} s",
        report.scores_path.display(),
        started.elapsed().as_secs_f64()
    );
}

/// The changes to the release's novelty policy `--range-records`,
/// `--trust`, `--release-break`, `--drift-widths` and `--jump-sds` ask
/// for.
fn release_novelty(args: &NabArgs) -> Result<vigil_eval::nab::ReleaseOverride> {
    let mut change = vigil_eval::nab::ReleaseOverride {
        range_records: args.range_records,
        ..Default::default()
    };
    if let Some(spec) = &args.trust {
        let f: Vec<f64> = spec
            .split(':')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("--trust {spec}: numbers separated by ':'"))?;
        let [window, release, novelty, start, gate] = f[..] else {
            bail!("--trust takes WINDOW:RELEASE_ONSETS:NOVELTY_ONSETS:NOVELTY_START:GATE");
        };
        change.trust = Some(vigil_model::combine::TrustPolicy {
            window: window as u32,
            release_onsets: release,
            novelty_onsets: novelty,
            novelty_start: start,
            gate,
            ..Default::default()
        });
    }
    change.release_break = args.release_break;
    change.drift_widths = args.drift_widths;
    change.jump_sds = args.jump_sds;
    // The policy the override makes must be a valid one.
    let mut policy = vigil_model::combine::NoveltyPolicy::default();
    change.apply(&mut policy);
    policy.check()?;
    Ok(change)
}

/// Runs the detector over the corpus and scores it.
fn nab_run(mut args: NabArgs) -> Result<()> {
    let Some(out) = args.out.clone() else {
        bail!("running the detector needs --out DIR (the results root)");
    };
    if args.nab_dir.is_none() {
        // --data DIR inside a NAB checkout finds labels/ and config/ beside it.
        args.nab_dir = args
            .data
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| p.join("labels").is_dir())
            .map(Path::to_owned)
            .or_else(default_nab_dir);
    }
    let injected = match args.inject {
        Some(seed) => {
            let nab = args.nab_file(&None, "", "--nab-dir")?;
            let corpus = out.join("corpus");
            let injected = inject::build(&nab, &corpus, seed)
                .with_context(|| format!("building the injected corpus in {}", corpus.display()))?;
            args.data = Some(corpus.join("data"));
            args.labels = Some(corpus.join("labels/combined_windows.json"));
            args.profiles = Some(corpus.join("config/profiles.json"));
            args.files = Subset::All;
            Some(injected)
        }
        None => None,
    };
    let options = RunOptions {
        data: args.nab_file(&args.data, "data", "--data")?,
        labels: args.nab_file(&args.labels, "labels/combined_windows.json", "--labels")?,
        profiles: args.nab_file(&args.profiles, "config/profiles.json", "--profiles")?,
        out,
        detector: args.detector.clone(),
        config: DetectorConfig {
            retrain: args.retrain,
            score: args.score_map,
            target_false_alarm_rate: args.false_alarm_rate,
            refractory_rows: args.refractory_rows,
            family: match args.method.as_str() {
                "robust-z" => Family::Fitted(Method::RobustZ),
                "pca" => Family::Fitted(Method::Pca),
                "release" => Family::Release,
                "gated" => Family::Gated {
                    percent: args.gate,
                    pca_alerts: !args.gate_only,
                },
                _ => Family::Novelty,
            },
            novelty: {
                let mut novelty = vigil_model::novelty::NoveltyConfig {
                    expansion: args.novelty_expansion,
                    level: args.novelty_level,
                    ..Default::default()
                };
                if let Some(bits) = args.novelty_alarm_bits {
                    novelty.alarm_bits = bits;
                }
                novelty
            },
            release_novelty: release_novelty(&args)?,
            input_range: args.input_range,
        },
        subset: args.files,
        threads: args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
    };
    let started = Instant::now();
    let report = run(&options).with_context(|| {
        format!(
            "running {} over the NAB corpus in {}",
            options.detector,
            options.data.display()
        )
    })?;
    print_report(&report, started);
    if let Some(injected) = injected {
        let threshold = report.detectors[&options.detector]
            .profile("standard")
            .map_or(f64::INFINITY, |p| p.threshold);
        let recall = inject::recall(&injected, &options.out, &options.detector, threshold)?;
        let (found, all) = recall.total();
        let kinds: Vec<String> = recall
            .0
            .iter()
            .map(|(k, (f, n))| format!("{} {f}/{n}", k.as_str()))
            .collect();
        println!(
            "injected windows found at the standard threshold: {found} of {all} ({})",
            kinds.join(", ")
        );
    }
    Ok(())
}

fn nab(args: NabArgs) -> Result<()> {
    if !args.score_only {
        return nab_run(args);
    }
    let Some(results) = args.results.clone() else {
        bail!("--score-only needs --results DIR (or VIGIL_NAB_RESULTS)");
    };
    let data = match (&args.data, &args.nab_dir) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(dir)) if dir.join("data").is_dir() => Some(dir.join("data")),
        _ => None,
    };
    let options = ScoreOptions {
        labels: args.nab_file(&args.labels, "labels/combined_windows.json", "--labels")?,
        profiles: args.nab_file(&args.profiles, "config/profiles.json", "--profiles")?,
        results,
        data,
        out: args.out.map(|out| {
            if out.extension().is_some_and(|e| e == "json") {
                out
            } else {
                out.join("scores.json")
            }
        }),
        subset: args.files,
    };
    let started = Instant::now();
    let report = score_results(&options)
        .with_context(|| format!("scoring NAB results in {}", options.results.display()))?;
    print_report(&report, started);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Nab(args) => nab(*args),
        Command::Files(args) => files(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-eval: {}", vigil_base::error_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
