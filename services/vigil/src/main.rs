//! `vigil`: every cloud role of Vigil in one binary, chosen by subcommand,
//! so one container image serves them all. This file only parses flags,
//! sets up logging and the shutdown signal, and calls the role's `run`.

mod commands;
mod devices;
mod models;
mod probe;
mod tokens;

use clap::{Parser, Subcommand};
use vigil_service::config::LogArgs;
use vigil_service::Shutdown;

/// jemalloc rather than glibc malloc: with glibc's per-thread arenas each
/// periodic training (on whichever thread ran it) left its freed memory
/// in another arena and the process grew by 60-150 MiB per training; with
/// jemalloc (and its background threads, [`vigil_service::memory`]),
/// freed memory is reused and returned (BENCHMARKS.md, "Demo").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Vigil: IoT anomaly detection on a Fast Data stack.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,

    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Move device telemetry from MQTT to Kafka (vigil.telemetry), validated,
    /// acknowledging each message only after Kafka confirmed it.
    Ingest(Box<vigil_ingest::IngestArgs>),
    /// Score every telemetry record with the live model (hot-swapped from
    /// vigil.models) and emit verdicts and anomalies.
    Score(Box<vigil_score::ScoreArgs>),
    /// Replay telemetry (or read a CSV file), fit the detector, gate, sign
    /// and publish a model release to vigil.models (once, or
    /// periodically), or write it to a file (--csv FILE --out RELEASE, no
    /// broker).
    // `--version` is the release's version here (with --out).
    #[command(disable_version_flag = true)]
    Train(Box<vigil_train::TrainArgs>),
    /// Operator commands on model releases: keygen, list, show, verify,
    /// export, score.
    Models(models::ModelsArgs),
    /// The key pair cloud → device commands are signed with: `keygen
    /// --out DIR` (separate from the model release key).
    Commands(commands::CommandsArgs),
    /// Broker credentials: the Mosquitto password file and ACL, one user
    /// per device (init, add, remove, list).
    Devices(devices::DevicesArgs),
    /// API tokens for the services' HTTP APIs (VIGIL_API_TOKENS_FILE):
    /// `new --out FILE` writes a read and a read,score token.
    Tokens(tokens::TokensArgs),
    /// Keep every verdict, anomaly and model release (from vigil.verdicts,
    /// vigil.anomalies, vigil.models, vigil.incidents) in the audit store,
    /// committing offsets only after durable writes, and serve the query
    /// API (/v1/…).
    Audit(Box<vigil_audit::AuditArgs>),
    /// Mirror the newest verified release of each model to the retained
    /// MQTT topic vigil/models/{model}, bridge device statuses to
    /// vigil.device-status, and serve the rollout view (/v1/rollout).
    Push(Box<vigil_push::PushArgs>),
    /// Serve the live web dashboard (fleet, anomaly feed, devices, models,
    /// pipeline health) and its JSON/SSE API, reading the topics without a
    /// consumer group.
    Api(Box<vigil_api::ApiArgs>),
    /// Group alarms into incidents (vigil.incidents) and act on them by
    /// rules: commands to devices over MQTT, webhooks, suppressions.
    Actions(Box<vigil_actions::ActionsArgs>),
    /// Health check without curl: GET an http:// or https:// URL, exit 0
    /// on a 2xx answer within --timeout, 1 with the reason otherwise.
    Probe(probe::ProbeArgs),
}

fn main() -> std::process::ExitCode {
    vigil_service::exit_with("Error: ", run())
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    vigil_service::logging::init(&cli.log)?;
    vigil_service::memory::tune_allocators();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();
        vigil_service::kafka::stop_on_fatal(&shutdown);
        let result = match cli.role {
            Role::Ingest(args) => vigil_ingest::run(*args, shutdown).await,
            Role::Score(args) => vigil_score::run(*args, shutdown).await,
            Role::Train(args) => vigil_train::run(*args, shutdown).await,
            Role::Models(args) => models::run(args).await,
            Role::Commands(args) => commands::run(args),
            Role::Devices(args) => devices::run(args),
            Role::Tokens(args) => tokens::run(args),
            Role::Audit(args) => vigil_audit::run(*args, shutdown).await,
            Role::Push(args) => vigil_push::run(*args, shutdown).await,
            Role::Api(args) => vigil_api::run(*args, shutdown).await,
            Role::Actions(args) => vigil_actions::run(*args, shutdown).await,
            Role::Probe(args) => probe::run(&args),
        };
        // A fatal Kafka client error stopped the role: exit non-zero so
        // the orchestrator restarts it.
        match vigil_service::kafka::fatal_error() {
            Some(error) => Err(anyhow::anyhow!(
                "stopped on a fatal kafka client error: {error}"
            )),
            None => result,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_subcommand_s_flags_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
