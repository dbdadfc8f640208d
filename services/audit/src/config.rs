//! `vigil audit` options.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use vigil_service::config::{HttpArgs, KafkaArgs};

use crate::store::scylla::{credentials, parse_consistency, Password, ScyllaOptions};
use crate::store::{StoreUri, StoreUriError};
use vigil_service::duration::{parse_millis, parse_secs};

/// Options of `vigil audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Audit store: `sqlite:///path/audit.db` (embedded, the default;
    /// memory settings as `?cache_mib=64&mmap_mib=256`, the defaults) or
    /// `scylla://host:9042,host2:9042/keyspace` (ScyllaDB or Cassandra;
    /// TLS as `?tls=1&tls_ca=FILE`, with `&tls_cert=FILE&tls_key=FILE`
    /// for a client certificate and `&tls_server_name=NAME` when the
    /// nodes' certificates name a DNS name rather than their IP).
    #[arg(
        long,
        env = "VIGIL_AUDIT_STORE",
        hide_env_values = true,
        default_value = "sqlite://vigil-audit.db"
    )]
    pub store: String,

    /// Kafka consumer group; replicas in one group split the partitions.
    #[arg(long, env = "VIGIL_AUDIT_GROUP", default_value = "vigil-audit")]
    pub group: String,

    /// Static consumer-group membership (Kafka's `group.instance.id`): a
    /// replica restarted with the same id gets its partitions back at once
    /// instead of after the session timeout. Unique per replica (a
    /// StatefulSet pod name); unset for dynamic membership.
    #[arg(long, env = "VIGIL_AUDIT_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Most Kafka records in one store write. Larger batches amortise the
    /// per-transaction cost (pages touched, fsync): SQLite writes ~30,000
    /// verdicts/s in batches of 5,000 and ~60,000/s in batches of 20,000
    /// (BENCHMARKS.md).
    #[arg(long, env = "VIGIL_AUDIT_BATCH_MAX_RECORDS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_max_records: u32,

    /// Most payload bytes in one store write.
    #[arg(long, env = "VIGIL_AUDIT_BATCH_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub batch_max_bytes: usize,

    /// Longest a record waits in a partial batch before it is written, ms.
    #[arg(long, env = "VIGIL_AUDIT_BATCH_MAX_MS", default_value_t = 200, value_parser = parse_millis::<u64>)]
    pub batch_max_ms: u64,

    /// Public key (ed25519, `verify.pub`) to verify model releases with, or
    /// a key ring (a file of several public key and `vigil-retired-key-id:`
    /// lines, or a directory of `*.pub` files). Without it releases are still recorded (checksum and envelope
    /// checked) with `signature_verified: false`; with it a release whose
    /// signature fails goes to vigil.dlq instead.
    #[arg(long, env = "VIGIL_VERIFY_KEY")]
    pub verify_key: Option<PathBuf>,

    /// Largest accepted verdict or incident record, bytes (larger go to
    /// the DLQ). Releases are limited to 64 KiB by the release format.
    #[arg(long, env = "VIGIL_AUDIT_MAX_PAYLOAD_BYTES", default_value_t = 64 * 1024)]
    pub max_payload_bytes: usize,

    /// Scylla/Cassandra: replication of the keyspace when `vigil audit`
    /// creates it, as a CQL map.
    #[arg(
        long,
        env = "VIGIL_AUDIT_SCYLLA_REPLICATION",
        default_value = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}"
    )]
    pub scylla_replication: String,

    /// Scylla/Cassandra: consistency of reads and writes (LOCAL_QUORUM,
    /// QUORUM, ONE, LOCAL_ONE, …).
    #[arg(
        long,
        env = "VIGIL_AUDIT_SCYLLA_CONSISTENCY",
        default_value = "LOCAL_QUORUM"
    )]
    pub scylla_consistency: String,

    /// Scylla/Cassandra: time to live of verdict, anomaly and incident
    /// rows, seconds; 0 keeps them forever. Releases never expire.
    #[arg(long, env = "VIGIL_AUDIT_TTL_SECS", default_value_t = 0, value_parser = parse_secs::<u32>)]
    pub ttl_secs: u32,

    /// Scylla/Cassandra: client-side timeout of one request, ms.
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_TIMEOUT_MS", default_value_t = 10_000, value_parser = parse_millis::<u64>)]
    pub scylla_timeout_ms: u64,

    /// Scylla/Cassandra: user name (with VIGIL_AUDIT_SCYLLA_PASSWORD).
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_USERNAME")]
    pub scylla_username: Option<String>,

    /// Scylla/Cassandra: password (prefer the environment variable).
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_PASSWORD", hide_env_values = true)]
    pub scylla_password: Option<Password>,

    /// Scylla/Cassandra: accept a `tls_key` file its group may read (a
    /// Kubernetes secret mounted read-only for the pod's fsGroup); others
    /// may never read it.
    #[arg(long, env = "VIGIL_AUDIT_SCYLLA_TLS_ALLOW_SHARED_KEY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub scylla_tls_allow_shared_key: bool,

    /// Create or update the store's schema, then exit (the service also
    /// does this at every start; the migration is idempotent).
    #[arg(long, env = "VIGIL_AUDIT_MIGRATE_ONLY", default_value_t = false)]
    pub migrate_only: bool,

    /// Serve only the query API and health endpoints (no Kafka sink); for
    /// read replicas or looking at a store offline.
    #[arg(long, env = "VIGIL_AUDIT_API_ONLY", default_value_t = false)]
    pub api_only: bool,

    /// On shutdown, how long to keep retrying the last batch's write before
    /// leaving it uncommitted (it is consumed again at the next start), s.
    #[arg(long, env = "VIGIL_AUDIT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = parse_secs::<u64>)]
    pub shutdown_timeout_secs: u64,

    /// How long the sink may fail to finish a batch (the store refusing
    /// writes for a transient reason, or Kafka refusing its DLQ records)
    /// before `/readyz` reports it stalled (`sink: false`), seconds. It
    /// turns green again with the next batch written.
    #[arg(long, env = "VIGIL_AUDIT_STALL_TIMEOUT_SECS", default_value_t = 60, value_parser = parse_secs::<u64>)]
    pub stall_timeout_secs: u64,
}

/// A bad option, named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Store(#[from] StoreUriError),
    #[error("VIGIL_AUDIT_SCYLLA_CONSISTENCY: {0}")]
    Consistency(String),
    #[error("VIGIL_AUDIT_SCYLLA_REPLICATION {0:?} is not a CQL map ({{'class': …}})")]
    Replication(String),
    #[error("VIGIL_AUDIT_SCYLLA_USERNAME and VIGIL_AUDIT_SCYLLA_PASSWORD go together")]
    Credentials,
    #[error("VIGIL_AUDIT_BATCH_MAX_MS must be at least 1")]
    BatchTime,
}

impl AuditArgs {
    /// The parsed `VIGIL_AUDIT_STORE`.
    pub fn store_uri(&self) -> Result<StoreUri, ConfigError> {
        Ok(self.store.parse()?)
    }

    /// Scylla options from the flags.
    pub fn scylla_options(&self) -> Result<ScyllaOptions, ConfigError> {
        let replication = self.scylla_replication.trim();
        if !(replication.starts_with('{') && replication.ends_with('}')) {
            return Err(ConfigError::Replication(self.scylla_replication.clone()));
        }
        let credentials = credentials(self.scylla_username.as_ref(), self.scylla_password.as_ref())
            .map_err(|_| ConfigError::Credentials)?;
        Ok(ScyllaOptions {
            replication: replication.to_owned(),
            consistency: parse_consistency(&self.scylla_consistency)
                .map_err(ConfigError::Consistency)?,
            ttl_secs: self.ttl_secs,
            request_timeout: Duration::from_millis(self.scylla_timeout_ms.max(1)),
            credentials,
            tls: None,
            allow_shared_key: self.scylla_tls_allow_shared_key,
            ..ScyllaOptions::default()
        })
    }

    /// Checks every option once, at start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store_uri()?;
        self.scylla_options()?;
        if self.batch_max_ms == 0 {
            return Err(ConfigError::BatchTime);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        audit: AuditArgs,
    }

    fn args(extra: &[&str]) -> AuditArgs {
        let mut argv = vec!["audit"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parses").audit
    }

    #[test]
    fn defaults_work_on_localhost() {
        let a = args(&[]);
        a.validate().expect("defaults are valid");
        assert_eq!(
            a.store_uri().expect("uri"),
            StoreUri::Sqlite {
                path: "vigil-audit.db".into(),
                tuning: crate::store::SqliteTuning::default(),
            }
        );
        let o = a.scylla_options().expect("options");
        assert_eq!(
            o.consistency,
            crate::store::scylla::Consistency::LocalQuorum
        );
    }

    #[test]
    fn bad_options_are_named() {
        let e = args(&["--store", "mysql://x"]).validate().expect_err("bad");
        assert!(e.to_string().contains("VIGIL_AUDIT_STORE"), "{e}");
        let e = args(&["--scylla-consistency", "most"])
            .validate()
            .expect_err("bad");
        assert!(
            e.to_string().contains("VIGIL_AUDIT_SCYLLA_CONSISTENCY"),
            "{e}"
        );
        let e = args(&["--scylla-replication", "3"])
            .validate()
            .expect_err("bad");
        assert!(
            e.to_string().contains("VIGIL_AUDIT_SCYLLA_REPLICATION"),
            "{e}"
        );
        let e = args(&["--scylla-username", "u"])
            .validate()
            .expect_err("bad");
        assert!(e.to_string().contains("VIGIL_AUDIT_SCYLLA_PASSWORD"), "{e}");
        let e = args(&["--batch-max-ms", "0"]).validate().expect_err("bad");
        assert!(e.to_string().contains("VIGIL_AUDIT_BATCH_MAX_MS"), "{e}");
        let cli = Cli::try_parse_from(["audit", "--batch-max-records", "0"]);
        assert!(cli.is_err());
    }

    #[test]
    fn scylla_tls_and_secrets() {
        let a = args(&[
            "--store",
            "scylla://h:9142/vigil?tls=1&tls_ca=/ca.pem",
            "--scylla-username",
            "vigil",
            "--scylla-password",
            "Pa55word",
            "--scylla-tls-allow-shared-key",
        ]);
        a.validate().expect("valid");
        let StoreUri::Scylla { tls: Some(tls), .. } = a.store_uri().expect("uri") else {
            panic!("TLS on");
        };
        assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        let o = a.scylla_options().expect("options");
        assert!(o.allow_shared_key);
        assert_eq!(o.credentials, Some(("vigil".into(), "Pa55word".into())));
        for shown in [format!("{a:?}"), format!("{o:?}")] {
            assert!(
                !shown.contains("Pa55") && shown.contains("vigil"),
                "{shown}"
            );
        }
        let e = args(&["--store", "scylla://h/vigil?tls=1&tls_cafile=/ca.pem"])
            .validate()
            .expect_err("unknown option");
        assert!(e.to_string().contains("tls_cafile"), "{e}");
    }
}
