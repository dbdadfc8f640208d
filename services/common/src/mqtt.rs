//! MQTT 5 client options from [`MqttArgs`]: URL parsing (`mqtt://` plain,
//! `mqtts://` TLS with rustls), credentials, keep-alive, client id.

use std::sync::Once;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::Transport;

use crate::config::MqttArgs;

/// Name of the MQTT dependency in `/readyz`.
pub const DEPENDENCY: &str = "mqtt";

/// Why MQTT options could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MqttConfigError {
    #[error("invalid VIGIL_MQTT_URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("reading VIGIL_MQTT_CA_FILE {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Options for a client of role `role` (used in the default client id).
pub fn options(args: &MqttArgs, role: &str) -> Result<MqttOptions, MqttConfigError> {
    let bad = |why: &str| MqttConfigError::Url {
        url: args.mqtt_url.clone(),
        why: why.to_owned(),
    };
    let url = url::Url::parse(&args.mqtt_url).map_err(|e| bad(&e.to_string()))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => return Err(bad(&format!("scheme {other:?} is not mqtt:// or mqtts://"))),
    };
    let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = args
        .mqtt_client_id
        .clone()
        .unwrap_or_else(|| default_client_id(role));
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(args.mqtt_keep_alive_secs.max(5)));
    let username = args
        .mqtt_username
        .clone()
        .or_else(|| (!url.username().is_empty()).then(|| url.username().to_owned()));
    let password = args
        .mqtt_password
        .clone()
        .or_else(|| url.password().map(str::to_owned));
    if let Some(username) = username {
        options.set_credentials(username, password.unwrap_or_default());
    }
    if tls {
        install_crypto_provider();
        let transport = match &args.mqtt_ca_file {
            Some(path) => {
                let ca = std::fs::read(path).map_err(|source| MqttConfigError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?;
                Transport::tls(ca, None, None)
            }
            None => Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    }
    Ok(options)
}

/// `vigil-<role>-<hostname>`: stable across restarts, so a persistent
/// session is found again (a pod name in Kubernetes StatefulSets).
pub fn default_client_id(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("vigil-{role}-{host}")
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        mqtt: MqttArgs,
    }

    fn args(extra: &[&str]) -> MqttArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).mqtt
    }

    #[test]
    fn plain_url_parses() {
        let o = options(&args(&["--mqtt-url", "mqtt://10.1.2.3:1999"]), "ingest").expect("valid");
        assert_eq!(o.broker_address(), ("10.1.2.3".to_owned(), 1999));
        assert!(o.client_id().starts_with("vigil-ingest-"));
    }

    #[test]
    fn bad_urls_name_the_variable() {
        for url in ["http://x", "not a url", "mqtt://"] {
            let err = options(&args(&["--mqtt-url", url]), "ingest").expect_err(url);
            assert!(err.to_string().contains("VIGIL_MQTT_URL"), "{err}");
        }
    }
}
