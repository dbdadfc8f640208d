//! Configuration shared by the services: each option is a flag with a
//! `VIGIL_*` environment variable and a default that works on localhost.
//! Services `#[command(flatten)]` the groups they need.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::duration::parse_secs;
use clap::{Args, ValueEnum};

/// Kafka connection options.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "VIGIL_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Prefix of every Kafka topic name.
    #[arg(long, env = "VIGIL_KAFKA_TOPIC_PREFIX", default_value = vigil_schemas::topics::DEFAULT_KAFKA_PREFIX)]
    pub kafka_topic_prefix: String,

    /// Extra librdkafka settings passed through unchanged, as KEY=VALUE
    /// (repeatable; separated by ';' in the environment variable). Use it for
    /// security options: security.protocol, sasl.mechanism, sasl.username,
    /// sasl.password, ssl.ca.location, …
    #[arg(long = "kafka-option", env = "VIGIL_KAFKA_OPTIONS", value_delimiter = ';', value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,

    /// Create missing topics at start-up (partitions below, replication
    /// factor 1 unless set with --kafka-replication-factor).
    #[arg(long, env = "VIGIL_KAFKA_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub kafka_create_topics: bool,

    /// Partitions of topics Vigil creates.
    #[arg(long, env = "VIGIL_KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,

    /// Replication factor of topics Vigil creates.
    #[arg(long, env = "VIGIL_KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    pub kafka_replication_factor: i32,
}

impl KafkaArgs {
    /// Topic names under the configured prefix.
    pub fn topics(&self) -> vigil_schemas::KafkaTopics {
        vigil_schemas::KafkaTopics::with_prefix(&self.kafka_topic_prefix)
    }
}

/// MQTT connection options.
#[derive(Debug, Clone, Args)]
pub struct MqttArgs {
    /// MQTT broker URL: mqtt://host:port, or mqtts://host:port for TLS.
    #[arg(long, env = "VIGIL_MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt_url: String,

    /// MQTT client id; defaults to `vigil-<role>-<hostname>`. Keep it stable
    /// across restarts (the broker finds a persistent session by it) and
    /// unique per replica.
    #[arg(long, env = "VIGIL_MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,

    /// MQTT user name.
    #[arg(long, env = "VIGIL_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,

    /// MQTT password (prefer the environment variable over the flag).
    #[arg(long, env = "VIGIL_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,

    /// PEM file of the CA that signs the broker's certificate (mqtts://);
    /// the system's roots are used when unset.
    #[arg(long, env = "VIGIL_MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// MQTT keep-alive interval, seconds.
    #[arg(long, env = "VIGIL_MQTT_KEEP_ALIVE_SECS", default_value_t = 30, value_parser = parse_secs::<u64>)]
    pub mqtt_keep_alive_secs: u64,

    /// Prefix of every MQTT topic name.
    #[arg(long, env = "VIGIL_MQTT_TOPIC_PREFIX", default_value = vigil_schemas::topics::DEFAULT_MQTT_PREFIX)]
    pub mqtt_topic_prefix: String,
}

impl MqttArgs {
    /// Topic names under the configured prefix.
    pub fn topics(&self) -> vigil_schemas::MqttTopics {
        vigil_schemas::MqttTopics::with_prefix(&self.mqtt_topic_prefix)
    }
}

/// Where a service serves health, metrics and its API.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address for /healthz, /readyz, /metrics and the service's API.
    #[arg(long, env = "VIGIL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging options.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "VIGIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax (`info`, `vigil_ingest=debug,info`).
    #[arg(long, env = "VIGIL_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse() {
        assert_eq!(
            parse_key_value("security.protocol=SASL_SSL"),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
