//! Flag groups every Vigil program shares, each option a flag with a
//! `VIGIL_*` environment variable and a default that works on localhost,
//! and small parsers for flag values. Programs `#[command(flatten)]` the
//! groups they need.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// MQTT connection options.
#[derive(Debug, Clone, Args)]
pub struct MqttArgs {
    /// MQTT broker URL: `mqtt://[user[:password]@]host[:port]`, or `mqtts://`
    /// for TLS (rustls).
    #[arg(
        long,
        env = "VIGIL_MQTT_URL",
        hide_env_values = true,
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub mqtt_url: String,

    /// MQTT client id. Keep it stable across restarts (the broker finds a
    /// persistent session by it) and unique per client. Services default to
    /// `vigil-<role>-<hostname>`, the edge agent to `vigil-edge-<device id>`.
    #[arg(long, env = "VIGIL_MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,

    /// MQTT user name (overrides the URL's).
    #[arg(long, env = "VIGIL_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,

    /// MQTT password (prefer the environment variable over the flag).
    #[arg(long, env = "VIGIL_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,

    /// File with the MQTT user name and password as `vigil devices`
    /// writes them (`VIGIL_MQTT_USERNAME=…` and `VIGIL_MQTT_PASSWORD=…`
    /// lines), for a mounted secret; the flags above win over it.
    #[arg(long, env = "VIGIL_MQTT_CREDENTIALS_FILE", value_name = "FILE")]
    pub mqtt_credentials_file: Option<PathBuf>,

    /// PEM file of the CA that signs the broker's certificate (mqtts://);
    /// the system's roots are used when unset.
    #[arg(long, env = "VIGIL_MQTT_CA_FILE", value_name = "FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// PEM file of this client's certificate (chain), for brokers that
    /// require client certificates (mqtts:// only; with --mqtt-key). `vigil
    /// devices add ID --cert` issues one signed by a local CA.
    #[arg(
        long,
        env = "VIGIL_MQTT_CERT",
        value_name = "FILE",
        requires = "mqtt_key"
    )]
    pub mqtt_cert: Option<PathBuf>,

    /// PEM file of the private key of --mqtt-cert (PKCS#8, SEC1 or PKCS#1);
    /// refused when its group or others may read it (mode 0600 or 0400).
    #[arg(
        long,
        env = "VIGIL_MQTT_KEY",
        value_name = "FILE",
        requires = "mqtt_cert"
    )]
    pub mqtt_key: Option<PathBuf>,

    /// Accept a --mqtt-key file its group may read (a Kubernetes secret
    /// mounted for the pod's fsGroup); one others may read is still
    /// refused.
    #[arg(long, env = "VIGIL_MQTT_ALLOW_SHARED_KEY_FILE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub mqtt_allow_shared_key_file: bool,

    /// MQTT keep-alive interval (`30s`, or plain seconds).
    #[arg(long, env = "VIGIL_MQTT_KEEP_ALIVE_SECS", default_value_t = 30, value_parser = crate::duration::parse_secs::<u64>)]
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
        // Only the leading name is shown: the rest may be a secret
        // written with the wrong separator (`sasl.password:…`).
        _ => {
            let name: String = s
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .collect();
            let hidden = s.trim().len() - name.len();
            Err(if hidden == 0 {
                format!("expected KEY=VALUE, got {name:?}")
            } else {
                format!("expected KEY=VALUE, got {name:?} and {hidden} more characters (not shown)")
            })
        }
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
        let err = parse_key_value("sasl.password:Pa55word").expect_err("no =");
        assert!(
            err.contains("sasl.password") && !err.contains("Pa55"),
            "{err}"
        );
    }
}
