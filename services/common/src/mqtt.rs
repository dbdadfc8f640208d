//! MQTT 5 client options from [`MqttArgs`]: the URL, credentials,
//! keep-alive and TLS come from `vigil-base` (shared with the edge agent);
//! this adds the services' client id.

use rumqttc::v5::MqttOptions;
use vigil_base::mqtt::ClientSettings;
pub use vigil_base::mqtt::{disconnect_cleanly, MqttConfigError};

use crate::config::MqttArgs;

/// Name of the MQTT dependency in `/readyz`.
pub const DEPENDENCY: &str = "mqtt";

/// Options for a client of role `role` (used in the default client id).
pub fn options(args: &MqttArgs, role: &str) -> Result<MqttOptions, MqttConfigError> {
    let client_id = args
        .mqtt_client_id
        .clone()
        .unwrap_or_else(|| default_client_id(role));
    Ok(ClientSettings::from_args(args)?.v5_options(client_id))
}

/// `vigil-<role>-<hostname>`: stable across restarts, so a persistent
/// session is found again (a pod name in Kubernetes StatefulSets).
pub fn default_client_id(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("vigil-{role}-{host}")
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
