//! `vigil-loadgen`: load generation and end-to-end measurement for Vigil.
//! (The NAB evaluation moved to `vigil-eval nab`.)
//!
//! Only flag parsing lives here; the work is in the `vigil_loadgen` library.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use vigil_service::config::LogArgs;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-loadgen",
    version,
    about = "Load generation and end-to-end measurement for Vigil"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish a simulated fleet (or replay a CSV) over MQTT on an
    /// open-loop schedule and measure latency, loss, duplicates and
    /// detection quality from the verdicts (report schema: loadgen/REPORT.md).
    Run(Box<vigil_loadgen::run::RunArgs>),
}

/// `vigil-loadgen run`: Ctrl-C stops publishing, skips the drain and
/// still reports what was measured.
fn load(args: vigil_loadgen::run::RunArgs) -> Result<()> {
    let threads = args.threads;
    let config = args.validate()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: stopping publishing and reporting what was measured");
                on_signal.cancel();
            }
        });
        let report = vigil_loadgen::run::run(config, stop).await?;
        print!("{}", report.summary());
        Ok(())
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = vigil_service::logging::init(&cli.log) {
        eprintln!("vigil-loadgen: {}", vigil_service::error_text(&e));
        return ExitCode::FAILURE;
    }
    let outcome = match cli.command {
        Command::Run(args) => load(*args),
    };
    vigil_service::exit_with("vigil-loadgen: ", outcome)
}
