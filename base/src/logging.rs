//! Structured logs with `tracing` on stderr: human lines on a terminal,
//! JSON lines for journald and log collectors. stdout stays free for
//! programs that write data there (`vigil-edge score`).

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogArgs, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The `--log` filter does not parse.
    #[error("invalid --log / VIGIL_LOG filter {filter:?}: {why}")]
    Filter { filter: String, why: String },
    /// A global subscriber was installed before.
    #[error("installing the log subscriber: {0}")]
    Install(String),
}

/// Installs the global subscriber. Errors when the filter does not parse or
/// a subscriber is already installed.
pub fn init(args: &LogArgs) -> Result<(), LogError> {
    let filter = EnvFilter::try_new(&args.log).map_err(|e| LogError::Filter {
        filter: args.log.clone(),
        why: e.to_string(),
    })?;
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
    result.map_err(|e| LogError::Install(e.to_string()))
}
