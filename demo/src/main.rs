//! `vigil-demo`: parses flags, sets up logging and Ctrl-C, runs the demo
//! ([`vigil_demo::run`]) and prints its summary.

use clap::Parser as _;
use vigil_service::Shutdown;

/// jemalloc rather than glibc malloc: with glibc's per-thread arenas each
/// periodic training (on whichever thread ran it) left its freed memory
/// in another arena and the process grew by 60-150 MiB per training; with
/// jemalloc (and its background threads, [`vigil_service::memory`]),
/// freed memory is reused and returned (BENCHMARKS.md, "Demo").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    vigil_service::exit_with("Error: ", run())
}

fn run() -> anyhow::Result<()> {
    let cli = vigil_demo::Cli::parse();
    vigil_service::logging::init(&cli.log_args())?;
    vigil_service::memory::tune_allocators();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();
        let summary = vigil_demo::run(cli.demo, shutdown).await?;
        println!("{}", summary.human());
        Ok(())
    })
}
