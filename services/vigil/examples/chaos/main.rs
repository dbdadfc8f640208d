//! `vigil-chaos` (run by `scripts/chaos.sh`): the chaos suite of issue 17.
//!
//! Each case starts a fresh stack — real Mosquitto and tansu, `vigil
//! ingest`, `score`, `audit`, `push` and `train` as child processes — runs
//! `vigil-loadgen` against it, injects one fault (a role killed with
//! SIGKILL and restarted, tansu stopped and restarted, Mosquitto
//! restarted, poison input, an edge agent offline then power-cut) and counts every (device_id, seq) through to
//! the audit store: loss, duplicates and time to recover. The table goes
//! to stdout and, with `--write FILE`, into FILE between the markers
//! `<!-- chaos:begin -->` and `<!-- chaos:end -->`. The last line printed
//! is `chaos: N cases, loss 0, duplicates D`, or names the failing cases;
//! the exit code is non-zero when any case lost a record or failed.

mod cases;
mod edge;
mod stack;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use cases::{Case, Outcome};

/// Rates, lengths and cases of one run.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub devices: usize,
    pub rate: f64,
    pub duration: Duration,
    /// When the fault comes, from the start of publishing.
    pub fault_at: Duration,
    /// How long tansu stays down.
    pub outage: Duration,
    /// How long the edge agent is offline before its power cut.
    pub edge_offline: Duration,
    /// How long the load generator waits for the last verdicts (records
    /// Mosquitto dropped never get one: a case with drops waits this long).
    pub drain: Duration,
    /// How long to wait for the audit store to hold every record.
    pub audit_timeout: Duration,
    pub cases: Vec<Case>,
    /// The no-fault case's backlog (issue 17's scenario): devices, and
    /// records of each, published before the run with the scorer stopped.
    pub backlog_devices: u64,
    pub backlog_per_device: u64,
}

impl Profile {
    /// Every case at 5,000 msg/s.
    fn full() -> Self {
        Self {
            name: "full",
            devices: 500,
            rate: 5_000.0,
            duration: Duration::from_secs(40),
            fault_at: Duration::from_secs(10),
            outage: Duration::from_secs(15),
            edge_offline: Duration::from_secs(60),
            drain: Duration::from_secs(60),
            audit_timeout: Duration::from_secs(60),
            cases: Case::ALL.to_vec(),
            // Issue 17's scenario: 50 devices × 1,500 records.
            backlog_devices: 50,
            backlog_per_device: 1_500,
        }
    }

    /// A few cases at 1,000 msg/s, for CI.
    fn quick() -> Self {
        Self {
            name: "quick",
            devices: 100,
            rate: 1_000.0,
            duration: Duration::from_secs(15),
            fault_at: Duration::from_secs(5),
            outage: Duration::from_secs(5),
            edge_offline: Duration::from_secs(5),
            drain: Duration::from_secs(30),
            audit_timeout: Duration::from_secs(45),
            cases: vec![
                Case::NoFault,
                Case::Kill("ingest"),
                Case::Kill("score"),
                Case::MosquittoRestart,
                Case::Poison,
                // 16 s on this machine, as long as the baseline.
                Case::EdgePowerCut,
            ],
            backlog_devices: 50,
            backlog_per_device: 300,
        }
    }
}

/// Runs the chaos suite (see the crate docs).
#[derive(Debug, Parser)]
struct Args {
    /// The quick profile (a few cases at 1,000 msg/s) instead of the full one.
    #[arg(long, env = "VIGIL_CHAOS_QUICK")]
    quick: bool,
    /// Only these cases (comma separated names, e.g. kill-ingest,poison).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Override the profile's rate, msg/s.
    #[arg(long)]
    rate: Option<f64>,
    /// Write the table into this file's chaos section (RELIABILITY.md).
    #[arg(long)]
    write: Option<PathBuf>,
    /// The `vigil` binary [default: `vigil` beside the examples folder].
    #[arg(long, env = "VIGIL_BIN")]
    vigil_bin: Option<PathBuf>,
}

fn vigil_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.vigil_bin {
        return Ok(bin.clone());
    }
    // target/<profile>/examples/chaos → target/<profile>/vigil
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("vigil"))
        .filter(|bin| bin.is_file());
    bin.ok_or_else(|| anyhow::anyhow!("no vigil binary beside {}; pass --vigil-bin", exe.display()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            println!("chaos: could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut profile = if args.quick {
        Profile::quick()
    } else {
        Profile::full()
    };
    if let Some(rate) = args.rate {
        profile.rate = rate;
    }
    if !args.cases.is_empty() {
        let wanted: Vec<Case> = Case::ALL
            .into_iter()
            .filter(|c| args.cases.contains(&c.name()))
            .collect();
        anyhow::ensure!(
            wanted.len() == args.cases.len(),
            "unknown case in {:?}; cases: {}",
            args.cases,
            Case::ALL.map(Case::name).join(", ")
        );
        profile.cases = wanted;
    }
    let bin = vigil_bin(args)?;
    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &case in &profile.cases {
        eprintln!("chaos: {} …", case.name());
        let case_started = Instant::now();
        let outcome = match cases::run_case(case, &profile, &bin).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::error(case, &e),
        };
        eprintln!(
            "{}\n  ({:.0} s)",
            table::row(&outcome, &profile),
            case_started.elapsed().as_secs_f64()
        );
        outcomes.push(outcome);
    }
    let elapsed = started.elapsed();
    let rendered = table::render(&outcomes, &profile, elapsed);
    println!("{rendered}");
    if let Some(file) = &args.write {
        table::write_section(file, &rendered)?;
        eprintln!("chaos: table written to {}", file.display());
    }
    let line = table::summary(&outcomes);
    println!("{line}");
    Ok(if outcomes.iter().all(Outcome::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
