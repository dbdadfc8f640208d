//! Flags and environment variables of `vigil actions`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use vigil_service::config::{HttpArgs, KafkaArgs, MqttArgs};
use vigil_service::duration::{parse_duration, parse_millis};

/// `vigil actions` options.
#[derive(Debug, Clone, Args)]
pub struct ActionsArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub mqtt: MqttArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Rules file (TOML; see the crate docs or docs/actions.md). Read at
    /// start-up (an invalid file stops the role with the line at fault)
    /// and again on SIGHUP (an invalid file is refused, the rules in force
    /// stay). Without it, incidents are tracked and no action is taken.
    #[arg(long, env = "VIGIL_ACTIONS_RULES")]
    pub rules: Option<PathBuf>,

    /// Kafka consumer group of the actions role.
    #[arg(long, env = "VIGIL_ACTIONS_GROUP", default_value = "vigil-actions")]
    pub group: String,

    /// Static group membership id (`group.instance.id`), e.g. the
    /// StatefulSet pod name: a restarted replica gets its partitions back
    /// at once.
    #[arg(long, env = "VIGIL_ACTIONS_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// How long after its last alarm closed an incident resolves (event
    /// time of the device's calm verdicts, or wall-clock time when the
    /// device sends nothing); an alarm opening within it joins the
    /// incident. 0 resolves on the close.
    #[arg(long, env = "VIGIL_ACTIONS_QUIET_PERIOD", default_value = "60s", value_parser = parse_duration)]
    pub quiet_period: Duration,

    /// Most open incidents held; beyond it the least recently active one
    /// is resolved (reason `capacity`).
    #[arg(
        long,
        env = "VIGIL_ACTIONS_MAX_OPEN_INCIDENTS",
        default_value_t = 10_000
    )]
    pub max_open_incidents: usize,

    /// Actions per second allowed across all devices (a token bucket);
    /// actions beyond it are recorded as rate_limited and not sent.
    #[arg(long, env = "VIGIL_ACTIONS_MAX_PER_SEC", default_value_t = 10.0)]
    pub max_actions_per_sec: f64,

    /// Burst of that token bucket.
    #[arg(long, env = "VIGIL_ACTIONS_BURST", default_value_t = 50.0)]
    pub action_burst: f64,

    /// Private key every command to a device is signed with (the
    /// `command-signing.key` of `vigil commands keygen`; not the model
    /// signing key). Required when the rules send commands; without it a
    /// command is recorded `failed`.
    #[arg(long, env = "VIGIL_ACTIONS_COMMAND_SIGNING_KEY", value_name = "FILE")]
    pub command_signing_key: Option<PathBuf>,

    /// Accept a command signing key file its group may read (a Kubernetes
    /// secret mounted read-only for the pod's fsGroup).
    #[arg(long, env = "VIGIL_ALLOW_SHARED_KEY_FILE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_shared_key_file: bool,

    /// How long a signed command stays valid: a device refuses it after
    /// this (its `expires_ts`, absolute, so device clocks must be roughly
    /// right).
    #[arg(long, env = "VIGIL_ACTIONS_COMMAND_TTL", default_value = "5m", value_parser = parse_duration)]
    pub command_ttl: Duration,

    /// A command the MQTT broker has not acknowledged within this long is
    /// recorded as failed.
    #[arg(long, env = "VIGIL_ACTIONS_COMMAND_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub command_timeout: Duration,

    /// How long a device has to report the result of a command on
    /// `vigil/devices/{id}/command-results` (bridged to
    /// vigil.command-results) before the command is recorded `timed_out`;
    /// a command's `result_timeout` in the rules overrides it.
    #[arg(long, env = "VIGIL_ACTIONS_RESULT_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub result_timeout: Duration,

    /// Webhook deliveries in progress at once.
    #[arg(
        long,
        env = "VIGIL_ACTIONS_MAX_CONCURRENT_WEBHOOKS",
        default_value_t = 16
    )]
    pub max_concurrent_webhooks: usize,

    /// How often stored offsets are committed, ms.
    #[arg(long, env = "VIGIL_ACTIONS_COMMIT_INTERVAL_MS", default_value_t = 1000, value_parser = parse_millis::<u64>)]
    pub commit_interval_ms: u64,

    /// Longest time reading vigil.incidents back at start-up may take.
    #[arg(long, env = "VIGIL_ACTIONS_RECOVER_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub recover_timeout: Duration,

    /// Largest verdict accepted, bytes.
    #[arg(long, env = "VIGIL_ACTIONS_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub max_payload_bytes: usize,
}

impl ActionsArgs {
    /// Checks the values clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_open_incidents > 0,
            "--max-open-incidents must be at least 1"
        );
        anyhow::ensure!(
            self.max_actions_per_sec.is_finite() && self.max_actions_per_sec >= 0.0,
            "--max-actions-per-sec must be a number >= 0"
        );
        anyhow::ensure!(
            self.action_burst.is_finite() && self.action_burst >= 1.0,
            "--action-burst must be at least 1"
        );
        anyhow::ensure!(
            !self.command_ttl.is_zero(),
            "--command-ttl must be longer than 0"
        );
        anyhow::ensure!(
            self.max_concurrent_webhooks > 0,
            "--max-concurrent-webhooks must be at least 1"
        );
        Ok(())
    }
}
