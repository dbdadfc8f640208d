//! `vigil ingest` options.

use clap::Args;
use vigil_schemas::TelemetryLimits;
use vigil_service::config::{HttpArgs, KafkaArgs, MqttArgs};
use vigil_service::duration::{parse_millis, parse_secs};

/// Options of `vigil ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub mqtt: MqttArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Shared-subscription group: replicas in one group split the devices'
    /// messages between them.
    #[arg(long, env = "VIGIL_INGEST_GROUP", default_value = "vigil-ingest")]
    pub group: String,

    /// Largest accepted telemetry payload, bytes; larger ones go to the DLQ.
    #[arg(long, env = "VIGIL_INGEST_MAX_PAYLOAD_BYTES", default_value_t = 64 * 1024)]
    pub max_payload_bytes: usize,

    /// How far a record's event time may lie ahead of ingest's clock, ms.
    #[arg(long, env = "VIGIL_INGEST_MAX_FUTURE_SKEW_MS", default_value_t = 5 * 60 * 1000, value_parser = parse_millis::<u64>)]
    pub max_future_skew_ms: u64,

    /// Earliest accepted event time, ms since the Unix epoch; earlier
    /// records go to the DLQ (`timestamp_too_old`). Default 2000-01-01.
    #[arg(long, env = "VIGIL_INGEST_MIN_TS_MS", default_value_t = vigil_schemas::telemetry::DEFAULT_MIN_TS_MS)]
    pub min_ts_ms: u64,

    /// Most messages received but not yet acknowledged (the MQTT 5 receive
    /// maximum announced to the broker; 1..=65535).
    #[arg(long, env = "VIGIL_INGEST_MAX_IN_FLIGHT", default_value_t = 8192,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,

    /// How long the broker keeps this client's session (subscription and
    /// queued messages) while it is disconnected, seconds.
    #[arg(long, env = "VIGIL_INGEST_SESSION_EXPIRY_SECS", default_value_t = 24 * 3600, value_parser = parse_secs::<u32>)]
    pub session_expiry_secs: u32,

    /// Kafka compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, env = "VIGIL_INGEST_COMPRESSION", default_value = "lz4",
          value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,

    /// Kafka producer linger, ms: how long to wait to fill a batch.
    #[arg(long, env = "VIGIL_INGEST_LINGER_MS", default_value_t = vigil_service::kafka::DEFAULT_LINGER_MS, value_parser = parse_millis::<u64>)]
    pub linger_ms: u64,

    /// Take over the persistent session of a departed replica with this
    /// MQTT client id (repeatable, or comma-separated in the variable):
    /// connect as it, leave the group, move everything its session holds
    /// to Kafka, then end the session, so the broker stops routing a share
    /// of the group's messages to it. Only for replicas that are gone: a
    /// live one is disconnected (client-id takeover) and the adoption
    /// fails when it reconnects (nothing is lost either way).
    #[arg(
        long = "adopt-session",
        value_name = "CLIENT_ID",
        env = "VIGIL_INGEST_ADOPT_SESSIONS",
        value_delimiter = ','
    )]
    pub adopt_sessions: Vec<String>,

    /// Only adopt the `--adopt-session` sessions, without joining the
    /// group; exit 0 once all are emptied and ended, 1 if one could not be
    /// (a one-shot job, for example after a scale-down).
    #[arg(long, env = "VIGIL_INGEST_ADOPT_ONLY", requires = "adopt_sessions")]
    pub adopt_only: bool,

    /// On shutdown, how long to wait for in-flight deliveries, seconds.
    #[arg(long, env = "VIGIL_INGEST_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = parse_secs::<u64>)]
    pub shutdown_timeout_secs: u64,
}

impl IngestArgs {
    /// Limits applied to each message.
    pub fn limits(&self) -> TelemetryLimits {
        TelemetryLimits {
            max_payload_bytes: self.max_payload_bytes,
            max_future_skew_ms: self.max_future_skew_ms,
            min_ts_ms: self.min_ts_ms,
        }
    }
}
