//! Flags and environment variables of `vigil score`.

use std::path::PathBuf;

use clap::Args;
use vigil_service::config::{HttpArgs, KafkaArgs};
use vigil_service::duration::{parse_millis, parse_secs};

/// `vigil score` options.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Model name to serve (releases of other models are ignored).
    #[arg(long, env = "VIGIL_MODEL", default_value = "default")]
    pub model: String,

    /// ed25519 public key file every release must verify with, or a key
    /// ring for key rotation: a file of several public key lines and
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

    /// Kafka consumer group of the scorers; replicas in one group split
    /// the partitions of vigil.telemetry.
    #[arg(long, env = "VIGIL_SCORE_GROUP", default_value = "vigil-score")]
    pub group: String,

    /// Static group membership (`group.instance.id`): a stable id per
    /// replica, such as a StatefulSet pod name. A replica restarted with
    /// the same id gets its partitions back at once, without a rebalance
    /// and without waiting for the old session to expire.
    #[arg(long, env = "VIGIL_SCORE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Per-device state is kept for at most this many devices (least
    /// recently seen evicted first).
    #[arg(long, env = "VIGIL_SCORE_DEVICE_CAPACITY", default_value_t = 200_000)]
    pub device_capacity: usize,

    /// Records whose verdicts are not yet confirmed by Kafka; when reached,
    /// the scorer stops reading until deliveries complete.
    #[arg(long, env = "VIGIL_SCORE_MAX_IN_FLIGHT", default_value_t = 20_000)]
    pub max_in_flight: usize,

    /// Per-device state after a restart or rebalance is rebuilt by
    /// replaying this much event time of a newly assigned partition's log
    /// before its first record (0 turns the replay off).
    #[arg(long, env = "VIGIL_SCORE_REPLAY_SECS", default_value_t = 600, value_parser = parse_secs::<u64>)]
    pub replay_secs: u64,

    /// At most this many records are replayed per newly assigned partition.
    #[arg(
        long,
        env = "VIGIL_SCORE_REPLAY_MAX_RECORDS",
        default_value_t = 200_000
    )]
    pub replay_max_records: usize,

    /// Compression of produced verdicts: none, gzip, snappy, lz4, zstd.
    #[arg(long, env = "VIGIL_SCORE_COMPRESSION", default_value = "lz4")]
    pub compression: String,

    /// Producer linger, ms.
    #[arg(long, env = "VIGIL_SCORE_LINGER_MS", default_value_t = vigil_service::kafka::DEFAULT_LINGER_MS, value_parser = parse_millis::<u64>)]
    pub linger_ms: u64,

    /// How often stored offsets are committed, ms.
    #[arg(long, env = "VIGIL_SCORE_COMMIT_INTERVAL_MS", default_value_t = 1000, value_parser = parse_millis::<u64>)]
    pub commit_interval_ms: u64,

    /// Synchronous score requests (POST /v1/score) that may wait for the
    /// scoring loop; more get 503.
    #[arg(long, env = "VIGIL_SCORE_API_QUEUE", default_value_t = 256)]
    pub api_queue: usize,

    /// Devices whose edge-scored records are scored here too and compared
    /// with the edge's decision (shadow mode): comma-separated device-id
    /// globs, `*` matching any run of characters (`edge-*`, `*`). Empty:
    /// records an edge agent scored are not scored again.
    #[arg(long, env = "VIGIL_SCORE_SHADOW_EDGE", default_value = "")]
    pub shadow_edge: String,

    /// On shutdown, how long to wait for in-flight verdicts, seconds.
    #[arg(long, env = "VIGIL_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = parse_secs::<u64>)]
    pub shutdown_timeout_secs: u64,
}

impl ScoreArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_in_flight == 0 {
            anyhow::bail!("--max-in-flight must be at least 1");
        }
        if self.device_capacity == 0 {
            anyhow::bail!("--device-capacity must be at least 1");
        }
        if self.api_queue == 0 {
            anyhow::bail!("--api-queue must be at least 1");
        }
        Ok(())
    }
}
