//! Structured logs with `tracing` on stderr: human lines, or JSON lines for
//! journald/collectors. stdout stays free for `score`'s verdicts.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogArgs, LogFormat};

/// Installs the global subscriber; errors when the filter does not parse.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("invalid --log / VIGIL_LOG filter {:?}: {e}", args.log))?;
    use std::io::IsTerminal as _;
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}
