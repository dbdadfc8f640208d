//! `vigil-loadgen`: load generation and evaluation for Vigil.
//!
//! Only flag parsing lives here; the work is in the `vigil_loadgen` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use vigil_loadgen::nab::{score_results, ScoreOptions};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-loadgen",
    version,
    about = "Load generation and evaluation for Vigil"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score anomaly detector results on the Numenta Anomaly Benchmark.
    Nab(NabArgs),
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
    /// Where to write the scores: a file ending in .json, or a directory
    /// that gets scores.json [default: <results>/scores.json].
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
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

fn nab(args: NabArgs) -> Result<()> {
    if !args.score_only {
        bail!(
            "running Vigil's detector over the NAB corpus is not built yet; \
             score existing results with --score-only --results DIR"
        );
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
    };
    let started = Instant::now();
    let report = score_results(&options)
        .with_context(|| format!("scoring NAB results in {}", options.results.display()))?;
    print!("{}", report.table());
    println!(
        "wrote {} in {:.2} s",
        report.scores_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Nab(args) => nab(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
