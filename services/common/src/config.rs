//! Configuration shared by the services: each option is a flag with a
//! `VIGIL_*` environment variable and a default that works on localhost.
//! Services `#[command(flatten)]` the groups they need. The groups the edge
//! agent shares too (logging, MQTT) live in `vigil-base` and are re-exported
//! here.

use std::net::SocketAddr;

use clap::Args;
pub use vigil_base::config::{parse_key_value, LogArgs, LogFormat, MqttArgs};

/// Kafka connection options (the flags are declared on [`KafkaFlags`];
/// an empty `--kafka-option`, or an empty piece of `VIGIL_KAFKA_OPTIONS`,
/// means no option).
#[derive(Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated.
    pub kafka_brokers: String,
    /// Prefix of every Kafka topic name.
    pub kafka_topic_prefix: String,
    /// Extra librdkafka settings passed through unchanged, applied after
    /// Vigil's own defaults (see [`crate::kafka`]), so they win.
    pub kafka_options: Vec<(String, String)>,
    /// Create missing topics at start-up.
    pub kafka_create_topics: bool,
    /// Partitions of topics Vigil creates.
    pub kafka_partitions: i32,
    /// Replication factor of topics Vigil creates.
    pub kafka_replication_factor: i32,
    /// `min.insync.replicas` of topics Vigil creates (`None`: the
    /// broker's default).
    pub kafka_min_insync_replicas: Option<i32>,
}

/// The flags of [`KafkaArgs`] as clap parses them.
#[derive(Debug, Clone, Args)]
pub struct KafkaFlags {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "VIGIL_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,

    /// Prefix of every Kafka topic name.
    #[arg(long, env = "VIGIL_KAFKA_TOPIC_PREFIX", default_value = vigil_schemas::topics::DEFAULT_KAFKA_PREFIX)]
    kafka_topic_prefix: String,

    /// Extra librdkafka settings passed through unchanged, as KEY=VALUE
    /// (repeatable; separated by ';' in the environment variable; empty
    /// means none). They override Vigil's latency defaults (fetch.wait.max.ms,
    /// linger.ms, …; docs/ARCHITECTURE.md) and carry security options:
    /// security.protocol, sasl.mechanism, sasl.username, sasl.password,
    /// ssl.ca.location, …
    #[arg(long = "kafka-option", env = "VIGIL_KAFKA_OPTIONS", hide_env_values = true, value_delimiter = ';', value_parser = parse_kafka_option)]
    kafka_options: Vec<KafkaOption>,

    /// Create missing topics at start-up (partitions, replication factor
    /// and min.insync.replicas below; existing topics are left as they are).
    #[arg(long, env = "VIGIL_KAFKA_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    kafka_create_topics: bool,

    /// Partitions of topics Vigil creates.
    #[arg(long, env = "VIGIL_KAFKA_PARTITIONS", default_value_t = 6)]
    kafka_partitions: i32,

    /// Replication factor of topics Vigil creates. 1 suits a single
    /// broker (tests, the demo); production: 3 (docs/ARCHITECTURE.md,
    /// "Broker settings that keep data").
    #[arg(long, env = "VIGIL_KAFKA_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    kafka_replication_factor: i32,

    /// `min.insync.replicas` of topics Vigil creates: how many replicas
    /// must have a record before Kafka confirms it to Vigil's producers
    /// (all idempotent, so acks=all). Unset: the broker's default (1).
    /// Production: 2 with a replication factor of 3, so one broker may be
    /// down and no confirmed record lives on a single disk.
    #[arg(long, env = "VIGIL_KAFKA_MIN_INSYNC_REPLICAS", value_parser = clap::value_parser!(i32).range(1..))]
    kafka_min_insync_replicas: Option<i32>,
}

/// One `--kafka-option`: a KEY=VALUE pair, nothing for an empty one, or
/// why it is not KEY=VALUE.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOption(Result<Option<(String, String)>, String>);

// Values are secrets (`sasl.password`); debug output shows keys only.
impl std::fmt::Debug for KafkaOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(Some((key, _))) => write!(f, "KafkaOption({key}=***)"),
            Ok(None) => f.write_str("KafkaOption(none)"),
            Err(why) => write!(f, "KafkaOption(bad: {why})"),
        }
    }
}

/// Parses one `--kafka-option`: KEY=VALUE, or blank for none (so
/// `VIGIL_KAFKA_OPTIONS=""` and a trailing `;` are accepted). It never
/// fails here: clap would print the whole piece, a password perhaps, so
/// a malformed one is refused when the flags are collected, by its name
/// only ([`parse_key_value`]).
pub fn parse_kafka_option(s: &str) -> Result<KafkaOption, String> {
    if s.trim().is_empty() {
        return Ok(KafkaOption(Ok(None)));
    }
    Ok(KafkaOption(parse_key_value(s).map(Some)))
}

impl From<KafkaFlags> for KafkaArgs {
    fn from(flags: KafkaFlags) -> Self {
        KafkaArgs {
            kafka_brokers: flags.kafka_brokers,
            kafka_topic_prefix: flags.kafka_topic_prefix,
            kafka_options: flags
                .kafka_options
                .into_iter()
                .filter_map(|o| o.0.ok().flatten())
                .collect(),
            kafka_create_topics: flags.kafka_create_topics,
            kafka_partitions: flags.kafka_partitions,
            kafka_replication_factor: flags.kafka_replication_factor,
            kafka_min_insync_replicas: flags.kafka_min_insync_replicas,
        }
    }
}

// `KafkaArgs` is flattened into each command through `KafkaFlags`, so its
// users keep plain pairs while blank options are dropped at parse time.
impl clap::FromArgMatches for KafkaArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let flags = KafkaFlags::from_arg_matches(matches)?;
        if let Some(Err(why)) = flags
            .kafka_options
            .iter()
            .map(|o| &o.0)
            .find(|o| o.is_err())
        {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("--kafka-option / VIGIL_KAFKA_OPTIONS: {why}\n"),
            ));
        }
        match flags.kafka_min_insync_replicas {
            // Kafka would accept such a topic and then refuse every
            // acks=all write to it (NOT_ENOUGH_REPLICAS).
            Some(n) if n > flags.kafka_replication_factor => Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--kafka-min-insync-replicas {n} is above --kafka-replication-factor {}: \
                     no write could ever be confirmed\n",
                    flags.kafka_replication_factor
                ),
            )),
            _ => Ok(flags.into()),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

// `kafka_options` values are secrets (`sasl.password`): debug output
// shows their keys only.
impl std::fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let option_keys: Vec<&str> = self.kafka_options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaArgs")
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_topic_prefix", &self.kafka_topic_prefix)
            .field("kafka_options (keys)", &option_keys)
            .field("kafka_create_topics", &self.kafka_create_topics)
            .field("kafka_partitions", &self.kafka_partitions)
            .field("kafka_replication_factor", &self.kafka_replication_factor)
            .field("kafka_min_insync_replicas", &self.kafka_min_insync_replicas)
            .finish()
    }
}

impl clap::Args for KafkaArgs {
    fn group_id() -> Option<clap::Id> {
        KafkaFlags::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        KafkaFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        KafkaFlags::augment_args_for_update(cmd)
    }
}

impl KafkaArgs {
    /// Topic names under the configured prefix.
    pub fn topics(&self) -> vigil_schemas::KafkaTopics {
        vigil_schemas::KafkaTopics::with_prefix(&self.kafka_topic_prefix)
    }
}

/// Where a service serves health, metrics and its API.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address for /healthz, /readyz, /metrics and the service's API.
    #[arg(long, env = "VIGIL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// File of API tokens (`SCOPES TOKEN` per line; `vigil tokens new`
    /// writes one). The service's API then needs a token; /healthz,
    /// /readyz and /metrics stay open. Without it, an API on a
    /// non-loopback address refuses to start.
    #[arg(long, env = "VIGIL_API_TOKENS_FILE")]
    pub api_tokens_file: Option<std::path::PathBuf>,
    /// Serve the API without tokens on a non-loopback address.
    #[arg(long, env = "VIGIL_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// PEM certificate chain (server certificate first): with
    /// --http-tls-key, the HTTP server speaks HTTPS only, /healthz,
    /// /readyz and /metrics included (same listener).
    #[arg(
        long,
        env = "VIGIL_HTTP_TLS_CERT",
        value_name = "FILE",
        requires = "http_tls_key"
    )]
    pub http_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --http-tls-cert (PKCS#8, PKCS#1 or SEC1).
    /// Refused when its group or others may read it, unless
    /// --http-tls-allow-shared-key.
    #[arg(
        long,
        env = "VIGIL_HTTP_TLS_KEY",
        value_name = "FILE",
        requires = "http_tls_cert"
    )]
    pub http_tls_key: Option<std::path::PathBuf>,
    /// Accept an --http-tls-key file its group may read (a Kubernetes
    /// secret mounted read-only for the pod's fsGroup).
    #[arg(long, env = "VIGIL_HTTP_TLS_ALLOW_SHARED_KEY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub http_tls_allow_shared_key: bool,
}

impl HttpArgs {
    /// `addr` with no tokens (open on loopback, refused elsewhere).
    pub fn at(http_addr: SocketAddr) -> Self {
        Self {
            http_addr,
            api_tokens_file: None,
            insecure_no_auth: false,
            http_tls_cert: None,
            http_tls_key: None,
            http_tls_allow_shared_key: false,
        }
    }

    /// The TLS configuration of the HTTP server: `None` without
    /// certificate and key (plain HTTP); refused when only one of them is
    /// set, a file is unreadable or not PEM, the key is readable by others
    /// or does not match the certificate.
    pub fn tls(
        &self,
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, crate::http_tls::TlsError> {
        crate::http_tls::server_config(
            self.http_tls_cert.as_deref(),
            self.http_tls_key.as_deref(),
            self.http_tls_allow_shared_key,
        )
    }

    /// Who may call the service's own routes.
    pub fn access(&self) -> anyhow::Result<crate::http_auth::Access> {
        crate::http_auth::access(
            self.http_addr,
            self.api_tokens_file.as_deref(),
            self.insecure_no_auth,
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    #[test]
    fn blank_kafka_options_mean_none() {
        let cli = Cli::try_parse_from(["vigil", "--kafka-option", ""]).expect("empty accepted");
        assert!(cli.kafka.kafka_options.is_empty());
        let cli = Cli::try_parse_from(["vigil", "--kafka-option", "a=1;;b=2;"]).expect("parses");
        assert_eq!(
            cli.kafka.kafka_options,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(Cli::try_parse_from(["vigil", "--kafka-option", "novalue"]).is_err());
    }

    #[test]
    fn kafka_option_values_are_never_printed() {
        let err = Cli::try_parse_from(["vigil", "--kafka-option", "acks=all;sasl.password:Pa55"])
            .expect_err("no =")
            .to_string();
        assert!(
            err.contains("sasl.password")
                && err.contains("VIGIL_KAFKA_OPTIONS")
                && !err.contains("Pa55"),
            "{err}"
        );
        let cli =
            Cli::try_parse_from(["vigil", "--kafka-option", "sasl.password=Pa55"]).expect("parses");
        let debug = format!("{cli:?}");
        assert!(
            debug.contains("sasl.password") && !debug.contains("Pa55"),
            "{debug}"
        );
    }

    #[test]
    fn min_insync_replicas_is_set_and_may_not_exceed_the_replication_factor() {
        let cli = Cli::try_parse_from(["vigil"]).expect("defaults");
        assert_eq!(cli.kafka.kafka_replication_factor, 1);
        assert_eq!(cli.kafka.kafka_min_insync_replicas, None);
        let cli = Cli::try_parse_from([
            "vigil",
            "--kafka-replication-factor",
            "3",
            "--kafka-min-insync-replicas",
            "2",
        ])
        .expect("production settings");
        assert_eq!(cli.kafka.kafka_min_insync_replicas, Some(2));
        let refused = Cli::try_parse_from(["vigil", "--kafka-min-insync-replicas", "2"])
            .expect_err("2 of 1 replica can never be in sync");
        assert!(refused.to_string().contains("above"), "{refused}");
        assert!(Cli::try_parse_from(["vigil", "--kafka-replication-factor", "0"]).is_err());
    }

    /// The SASL_SSL example of docs/ARCHITECTURE.md ("Kafka over SASL_SSL"),
    /// parsed as the environment variable and given to librdkafka: this
    /// build creates a client with it (SCRAM and TLS compiled in), and
    /// refuses GSSAPI (no libsasl2), as the docs say.
    #[test]
    fn the_documented_sasl_ssl_options_make_a_client() {
        use rdkafka::producer::BaseProducer;

        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("kafka-ca.pem");
        let made = rcgen::generate_simple_self_signed(vec!["kafka".into()]).expect("cert");
        std::fs::write(&ca, made.cert.pem()).expect("write");
        let options = format!(
            "security.protocol=SASL_SSL;sasl.mechanisms=SCRAM-SHA-512;\
             sasl.username=vigil-score;sasl.password=secret;ssl.ca.location={}",
            ca.display()
        );
        let cli = Cli::try_parse_from(["vigil", "--kafka-option", &options]).expect("parses");
        assert_eq!(cli.kafka.kafka_options.len(), 5);
        let config = crate::kafka::producer_config(
            &cli.kafka,
            "sasl-ssl-example",
            &crate::kafka::ProducerTuning::default(),
        );
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        config
            .create::<BaseProducer>()
            .expect("librdkafka accepts SASL_SSL with SCRAM-SHA-512");

        let mut gssapi = config.clone();
        gssapi.set("sasl.mechanisms", "GSSAPI");
        assert!(gssapi.create::<BaseProducer>().is_err(), "no libsasl2 here");
    }

    // Environment variables are process-wide: nextest runs each test in a
    // process of its own, and no other test here reads this one.
    #[test]
    fn an_empty_kafka_options_variable_means_none() {
        std::env::set_var("VIGIL_KAFKA_OPTIONS", "");
        let cli = Cli::try_parse_from(["vigil"]).expect("empty variable accepted");
        assert!(cli.kafka.kafka_options.is_empty());
        std::env::set_var("VIGIL_KAFKA_OPTIONS", "fetch.wait.max.ms=7");
        let cli = Cli::try_parse_from(["vigil"]).expect("parses");
        assert_eq!(
            cli.kafka.kafka_options,
            vec![("fetch.wait.max.ms".into(), "7".into())]
        );
        assert_eq!(cli.kafka.kafka_brokers, "127.0.0.1:9092");
    }
}
