//! Configuration shared by the services: each option is a flag with a
//! `VIGIL_*` environment variable and a default that works on localhost.
//! Services `#[command(flatten)]` the groups they need. The groups the edge
//! agent shares too (logging, MQTT) live in `vigil-base` and are re-exported
//! here.

use std::net::SocketAddr;

use clap::Args;
pub use vigil_base::config::{parse_key_value, LogArgs, LogFormat, MqttArgs};

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

/// Where a service serves health, metrics and its API.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address for /healthz, /readyz, /metrics and the service's API.
    #[arg(long, env = "VIGIL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
}
