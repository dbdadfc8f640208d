//! Plumbing every Vigil service shares, so that each service's own crate
//! holds only its logic.
//!
//! - [`bootstrap`]: the start-up and stop every role shares (registry,
//!   readiness, HTTP server, topics).
//! - [`bridge`]: the Kafka side of an MQTT → Kafka bridge (ingest, push).
//! - [`dlq`]: the [`dlq::Rejection`] of refused input and the capped
//!   `vigil.dlq` record built from it (every service that rejects).
//! - [`config`]: flags with `VIGIL_*` environment variables for Kafka, MQTT,
//!   HTTP and logging, validated once at start-up.
//! - [`duration`]: the one form of every duration flag (`30s`, `10m`,
//!   `1h`, or a plain number in the flag's unit; from `vigil-base`).
//! - [`key_file`]: the permission check of every private key file
//!   (from `vigil-base`).
//! - [`logging`]: `tracing` output, human or JSON (from `vigil-base`).
//! - [`redact`]: passwords kept out of printed URLs (from `vigil-base`).
//! - [`health`]: readiness of named dependencies and the HTTP server that
//!   serves `/healthz`, `/readyz`, `/metrics` (and a service's own routes).
//! - [`http_auth`]: bearer tokens on a role's own routes.
//! - [`http_tls`]: HTTPS on the same server (rustls, ring).
//! - [`metrics`]: helpers around the Prometheus registry.
//! - [`memory`]: heap figures by allocator and the allocator settings.
//! - [`shutdown`]: the one cancellation signal every task selects on (from
//!   `vigil-base`).
//! - [`kafka`]: producer/consumer construction, topic creation, connection
//!   state.
//! - [`from_start`]: reading a topic from its beginning to the end it had
//!   at the start, without a consumer group.
//! - [`mqtt`]: MQTT client options from a URL.
//! - [`local_brokers`]: the installed `tansu` and Mosquitto binaries and a
//!   free loopback port, for the demo and the integration tests that start
//!   brokers as child processes.
//! - [`broker_auth`]: the broker's users and ACLs (`vigil devices`);
//!   [`device_ca`]: the local CA of its certificate mode.
//! - [`subscription`]: a persistent, manually acknowledged, bounded shared
//!   subscription (the MQTT side of every MQTT → Kafka bridge).

pub mod bootstrap;
pub mod bridge;
pub mod broker_auth;
pub mod config;
pub mod device_ca;
pub mod dlq;
pub mod from_start;
pub mod health;
pub mod http_auth;
pub mod http_tls;
pub mod kafka;
pub mod local_brokers;
pub mod memory;
pub mod metrics;
pub mod mqtt;
pub mod subscription;

pub use bootstrap::Bootstrap;
pub use health::{HttpServer, Readiness};
pub use vigil_base::{duration, error_text, key_file, logging, now_ms, redact, shutdown, Shutdown};

/// A program's exit status from what its `run` returned; an error goes to
/// stderr after `prefix`, each cause once ([`error_text()`]). A program
/// whose standard output was closed by its reader ([`StdoutClosed`], as
/// `vigil models score … | head` does) ends quietly and successfully, as
/// Unix tools do.
pub fn exit_with(prefix: &str, outcome: anyhow::Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prefix}{}", error_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The reader of the program's standard output has gone away (a broken
/// pipe): nothing is wrong, there is just no one left to write to.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed by its reader")]
pub struct StdoutClosed;

/// An error writing standard output: [`StdoutClosed`] for a broken pipe,
/// otherwise the I/O error, said to be stdout's.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("writing stdout")
    }
}

/// Writes one line to standard output, as `println!` does, but hands a
/// write error back instead of panicking (`println!` panics, status 101,
/// when the reader has gone, as in `vigil models list | head -1`): a
/// closed stdout becomes [`StdoutClosed`], which [`exit_with`] ends
/// quietly, any other error "writing stdout: …" ([`stdout_error`]). Called
/// through [`outln!`]; SIGPIPE stays ignored, as Rust sets it, since the
/// same binary runs network services.
pub fn print_line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{args}").map_err(stdout_error)
}

/// `println!` for commands: the same arguments and output, but returns
/// `anyhow::Result<()>` ([`print_line`]), so a command ends on `?` when
/// its stdout is closed or fails instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print_line(::std::format_args!($($arg)*))
    };
}
