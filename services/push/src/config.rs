//! `vigil push` options.

use std::path::PathBuf;

use clap::Args;
use vigil_service::config::{HttpArgs, KafkaArgs, MqttArgs};
use vigil_service::duration::{parse_millis, parse_secs};

/// Options of `vigil push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub mqtt: MqttArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Models whose releases are mirrored to `vigil/models/{model}`
    /// (comma separated in the environment variable).
    #[arg(
        long = "model",
        env = "VIGIL_MODEL",
        default_value = "default",
        value_delimiter = ','
    )]
    pub models: Vec<String>,

    /// ed25519 public key file every mirrored release must verify with, or
    /// a key ring for key rotation: a file of several public key lines and
    /// `vigil-retired-key-id:` lines, or a directory of `*.pub` files.
    #[arg(long, env = "VIGIL_VERIFY_KEY")]
    pub verify_key: PathBuf,

    /// Folder where the newest accepted release of each model is kept
    /// (`<model>.release.json`) and read back at start-up, so that a
    /// restart never goes back to an older release, even after compaction
    /// left one last on vigil.models. Unset: nothing is kept (the live
    /// release is whatever the log says at start-up).
    #[arg(long, env = "VIGIL_RELEASE_DIR", value_name = "DIR")]
    pub release_dir: Option<PathBuf>,

    /// Shared-subscription group of the status bridge: replicas in one
    /// group split the devices' status messages between them.
    #[arg(long, env = "VIGIL_PUSH_GROUP", default_value = "vigil-push")]
    pub group: String,

    /// Largest accepted status payload, bytes; larger ones go to the DLQ.
    #[arg(long, env = "VIGIL_PUSH_MAX_STATUS_BYTES", default_value_t = 16 * 1024)]
    pub max_status_bytes: usize,

    /// Largest accepted edge verdict payload, bytes; larger ones go to the
    /// DLQ.
    #[arg(long, env = "VIGIL_PUSH_MAX_VERDICT_BYTES", default_value_t = 64 * 1024)]
    pub max_verdict_bytes: usize,

    /// Most edge verdict messages received but not yet acknowledged (the
    /// MQTT 5 receive maximum of the verdict bridge; 1..=65535).
    #[arg(long, env = "VIGIL_PUSH_VERDICTS_MAX_IN_FLIGHT", default_value_t = 4096,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub verdicts_max_in_flight: u16,

    /// Largest accepted command result payload, bytes; larger ones go to
    /// the DLQ.
    #[arg(long, env = "VIGIL_PUSH_MAX_RESULT_BYTES", default_value_t = 16 * 1024)]
    pub max_result_bytes: usize,

    /// Most command result messages received but not yet acknowledged
    /// (the MQTT 5 receive maximum of the result bridge; 1..=65535).
    #[arg(long, env = "VIGIL_PUSH_RESULTS_MAX_IN_FLIGHT", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub results_max_in_flight: u16,

    /// How long an edge verdict naming a model version newer than any this
    /// replica has read waits for the model log to bring it before it goes
    /// to the DLQ (`unknown_model_version`), ms.
    #[arg(long, env = "VIGIL_PUSH_RELEASE_WAIT_MS", default_value_t = 5000, value_parser = parse_millis::<u64>)]
    pub release_wait_ms: u64,

    /// Most status messages received but not yet acknowledged (the MQTT 5
    /// receive maximum announced to the broker; 1..=65535).
    #[arg(long, env = "VIGIL_PUSH_MAX_IN_FLIGHT", default_value_t = 1024,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,

    /// How long the broker keeps the bridge's session (subscription and
    /// queued status messages) while it is disconnected, seconds.
    #[arg(long, env = "VIGIL_PUSH_SESSION_EXPIRY_SECS", default_value_t = 24 * 3600, value_parser = parse_secs::<u32>)]
    pub session_expiry_secs: u32,

    /// After subscribing to a model's retained topic, how long to wait for
    /// the broker's retained release before taking the topic as empty, ms.
    /// Until then nothing is published, so a newer retained release is
    /// never overwritten by an older one.
    #[arg(long, env = "VIGIL_PUSH_RETAINED_SETTLE_MS", default_value_t = 1000, value_parser = parse_millis::<u64>)]
    pub retained_settle_ms: u64,

    /// A device whose last status is older than this is shown offline in
    /// the rollout view, ms (agents refresh their status every 30 s by
    /// default).
    #[arg(long, env = "VIGIL_PUSH_OFFLINE_AFTER_MS", default_value_t = 120_000, value_parser = parse_millis::<u64>)]
    pub offline_after_ms: u64,

    /// Devices the rollout view keeps; beyond it the device seen least
    /// recently is evicted (and counted).
    #[arg(long, env = "VIGIL_PUSH_DEVICE_CAPACITY", default_value_t = 200_000)]
    pub device_capacity: usize,

    /// Kafka producer linger, ms.
    #[arg(long, env = "VIGIL_PUSH_LINGER_MS", default_value_t = vigil_service::kafka::DEFAULT_LINGER_MS, value_parser = parse_millis::<u64>)]
    pub linger_ms: u64,

    /// On shutdown, how long to wait for in-flight deliveries, seconds.
    #[arg(long, env = "VIGIL_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = parse_secs::<u64>)]
    pub shutdown_timeout_secs: u64,
}

impl PushArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.models.is_empty() || self.models.iter().any(|m| m.trim().is_empty()) {
            anyhow::bail!("--model / VIGIL_MODEL: give at least one non-empty model name");
        }
        if let Some(bad) = self.models.iter().find(|m| m.contains(['+', '#', '/'])) {
            anyhow::bail!("--model / VIGIL_MODEL: {bad:?} cannot be part of an MQTT topic name (no '+', '#' or '/')");
        }
        if self.device_capacity == 0 {
            anyhow::bail!("--device-capacity must be at least 1");
        }
        if self.offline_after_ms == 0 {
            anyhow::bail!("--offline-after-ms must be at least 1");
        }
        Ok(())
    }
}
