//! `vigil api` options. Every bound on the dashboard's memory is one of
//! them, with a default sized for a fleet of a few thousand devices.

use std::time::Duration;

use clap::Args;
use vigil_audit_store::scylla::{credentials, Password, ScyllaOptions};
use vigil_service::config::{HttpArgs, KafkaArgs};
use vigil_service::duration::{in_range, parse_millis, parse_secs};

/// Options of `vigil api`.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Most devices kept in memory; when a new one appears at the bound,
    /// the least recently seen 1/64 of them are forgotten (counted in
    /// `vigil_api_devices_evicted_total`).
    #[arg(long, env = "VIGIL_API_MAX_DEVICES", default_value_t = 5_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_devices: u32,

    /// Verdicts (score, threshold, anomaly flag) kept per device for its
    /// chart.
    #[arg(long, env = "VIGIL_API_DEVICE_HISTORY", default_value_t = 240,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub device_history: u32,

    /// Telemetry samples kept per device (each at most
    /// `--max-metrics-per-device` values).
    #[arg(long, env = "VIGIL_API_TELEMETRY_HISTORY", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub telemetry_history: u32,

    /// Metrics per device whose telemetry is charted; further metric names
    /// are ignored (their scores still count).
    #[arg(long, env = "VIGIL_API_MAX_METRICS_PER_DEVICE", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_metrics_per_device: u32,

    /// Anomalies kept for the live feed (newest first) and per device.
    #[arg(long, env = "VIGIL_API_ANOMALY_HISTORY", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub anomaly_history: u32,

    /// At start-up, read at most this many of the newest records of each
    /// partition of vigil.verdicts, vigil.anomalies, vigil.telemetry and
    /// vigil.dlq, so the page is not empty after a restart. Compacted
    /// topics (vigil.models, vigil.device-status) are read whole.
    #[arg(long, env = "VIGIL_API_BACKFILL_RECORDS", default_value_t = 2_000)]
    pub backfill_records: u32,

    /// Read vigil.telemetry for the per-metric charts (off: only verdicts
    /// are charted, and the dashboard reads much less).
    #[arg(long, env = "VIGIL_API_READ_TELEMETRY", default_value_t = true, action = clap::ArgAction::Set)]
    pub read_telemetry: bool,

    /// Consumer groups whose lag (committed offset behind the end of the
    /// log, per topic) the pipeline view shows, comma separated.
    #[arg(
        long,
        env = "VIGIL_API_LAG_GROUPS",
        value_delimiter = ',',
        default_value = "vigil-score,vigil-audit"
    )]
    pub lag_groups: Vec<String>,

    /// How often consumer lag and retained DLQ totals are measured, ms.
    #[arg(long, env = "VIGIL_API_LAG_INTERVAL_MS", default_value_t = 2_000,
          value_parser = |s: &str| in_range(s, parse_millis::<u64>, 200..=600_000))]
    pub lag_interval_ms: u64,

    /// Events buffered per live-feed (SSE) client; a client that falls
    /// further behind loses the oldest events (counted in
    /// `vigil_api_sse_dropped_events_total`) and is told to reload.
    #[arg(long, env = "VIGIL_API_SSE_BUFFER", default_value_t = 1_024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sse_buffer: u32,

    /// Most live-feed (SSE) clients at once; more are refused with 503.
    #[arg(long, env = "VIGIL_API_MAX_SSE_CLIENTS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_sse_clients: u32,

    /// Audit store to complete device pages from (`sqlite:///path/audit.db`
    /// or `scylla://host:9042/keyspace`, as `vigil audit` writes it): a
    /// device's older verdicts, or a device not seen since the dashboard
    /// started. Unset: only what the dashboard read from Kafka.
    #[arg(long, env = "VIGIL_AUDIT_STORE", hide_env_values = true)]
    pub audit_store: Option<String>,

    /// Scylla/Cassandra audit store: user name (with
    /// VIGIL_AUDIT_SCYLLA_PASSWORD), as `vigil audit` takes it. TLS comes
    /// from the URI's `tls=1&tls_ca=…` options.
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_USERNAME")]
    pub audit_scylla_username: Option<String>,

    /// Scylla/Cassandra audit store: password (prefer the environment
    /// variable; never printed).
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_PASSWORD", hide_env_values = true)]
    pub audit_scylla_password: Option<Password>,

    /// Scylla/Cassandra audit store: accept a `tls_key` file its group may
    /// read (others never).
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_TLS_ALLOW_SHARED_KEY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub audit_scylla_tls_allow_shared_key: bool,

    /// How far back device history is read from the audit store, seconds.
    #[arg(long, env = "VIGIL_API_HISTORY_SECS", default_value_t = 3_600,
          value_parser = |s: &str| in_range(s, parse_secs::<u64>, 1..=86_400 * 365))]
    pub history_secs: u64,

    /// A device with no record for this long is shown as stale, seconds.
    #[arg(long, env = "VIGIL_API_STALE_SECS", default_value_t = 60,
          value_parser = |s: &str| in_range(s, parse_secs::<u64>, 1..=86_400 * 365))]
    pub stale_secs: u64,
}

impl ApiArgs {
    /// The in-memory bounds, as the state module takes them.
    pub fn limits(&self) -> crate::state::Limits {
        crate::state::Limits {
            max_devices: self.max_devices as usize,
            device_history: self.device_history as usize,
            telemetry_history: self.telemetry_history as usize,
            max_metrics_per_device: self.max_metrics_per_device as usize,
            anomaly_history: self.anomaly_history as usize,
            stale_ms: self.stale_secs.saturating_mul(1_000),
        }
    }

    /// How the history reader connects to a Scylla/Cassandra audit store:
    /// the same credentials and key-file rule as `vigil audit`.
    pub fn scylla_options(&self) -> anyhow::Result<ScyllaOptions> {
        let credentials = credentials(
            self.audit_scylla_username.as_ref(),
            self.audit_scylla_password.as_ref(),
        )?;
        Ok(ScyllaOptions {
            credentials,
            allow_shared_key: self.audit_scylla_tls_allow_shared_key,
            ..ScyllaOptions::default()
        })
    }

    /// How often lag is measured.
    pub fn lag_interval(&self) -> Duration {
        Duration::from_millis(self.lag_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    fn args(extra: &[&str]) -> ApiArgs {
        let mut argv = vec!["api"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parses").api
    }

    #[test]
    fn the_history_reader_takes_the_audit_stores_credentials() {
        let a = args(&[
            "--audit-scylla-username",
            "vigil",
            "--audit-scylla-password",
            "Pa55word",
        ]);
        let options = a.scylla_options().expect("options");
        assert_eq!(
            options.credentials,
            Some(("vigil".to_owned(), "Pa55word".to_owned()))
        );
        assert!(!format!("{a:?}").contains("Pa55word"), "{a:?}");
        assert!(!format!("{options:?}").contains("Pa55word"));
        assert_eq!(args(&[]).scylla_options().expect("none").credentials, None);
    }

    #[test]
    fn a_user_name_without_a_password_is_refused() {
        let err = args(&["--audit-scylla-username", "vigil"])
            .scylla_options()
            .expect_err("half the credentials");
        assert!(err.to_string().contains("go together"), "{err}");
    }
}
