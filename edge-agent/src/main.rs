//! The `vigil-edge` binary: parses the command line and runs the agent,
//! `score` or `--check` (see the library for what each does).

use std::process::ExitCode;

use vigil_base::Shutdown;
use vigil_edge::config::{self, Command, RunArgs};

fn main() -> ExitCode {
    let cli = match config::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Some(Command::Score(args)) => score(&args),
        Some(Command::Run(args)) => run(*args),
        None => run(cli.run),
    }
}

fn score(args: &config::ScoreArgs) -> ExitCode {
    if let Err(e) = vigil_base::logging::init(&args.log) {
        eprintln!("error: {}", vigil_base::error_text(&e));
        return ExitCode::from(2);
    }
    match vigil_edge::score::main(args) {
        Ok(summary) if summary.rejected == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", vigil_base::error_text(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    if args.check {
        return vigil_edge::check::run(&args);
    }
    if let Err(e) = vigil_base::logging::init(&args.log) {
        eprintln!("error: {}", vigil_base::error_text(&e));
        return ExitCode::from(2);
    }
    // One thread: the agent's work is small and sequential; blocking file
    // work (fsync) goes to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();
        vigil_edge::agent::run(args, shutdown.token().clone()).await
    });
    // A blocking read of stdin (the stdin source) never returns by itself;
    // everything that matters was flushed by `agent::run`.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", vigil_base::error_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
