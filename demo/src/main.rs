//! `vigil-demo`: parses flags, sets up logging and Ctrl-C, runs the demo
//! ([`vigil_demo::run`]) and prints its summary.

use clap::Parser as _;
use vigil_service::Shutdown;

fn main() -> anyhow::Result<()> {
    let cli = vigil_demo::Cli::parse();
    vigil_service::logging::init(&cli.log_args())?;
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
