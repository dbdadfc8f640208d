//! What an MQTT client needs from [`MqttArgs`], for rumqttc's v3.1.1
//! client (the edge agent) and its v5 client (the services) alike: the
//! parsed `mqtt://` / `mqtts://` URL, credentials (flags over the URL's
//! user info), keep-alive and the TLS transport (rustls with ring).

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use rumqttc::Transport;

use crate::config::MqttArgs;

/// A parsed `mqtt://` / `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// TLS (mqtts://).
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (1883 / 8883 by default).
    pub port: u16,
    /// User name from the URL.
    pub username: Option<String>,
    /// Password from the URL.
    pub password: Option<String>,
}

impl MqttUrl {
    /// Parses `mqtt://[user[:password]@]host[:port][/]` (also `tcp://`,
    /// `mqtts://`, `ssl://`). The error says what is wrong, not which
    /// option held it.
    pub fn parse(url: &str) -> Result<MqttUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} has no scheme; expected mqtt://host:port"))?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(format!("scheme {other:?} is not mqtt:// or mqtts://")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!("{url:?} has a path; expected mqtt://host:port"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = match userinfo.map(|u| u.split_once(':').ok_or(u)) {
            None => (None, None),
            Some(Ok((user, pass))) => (Some(user.to_owned()), Some(pass.to_owned())),
            Some(Err(user)) => (Some(user.to_owned()), None),
        };
        let default_port = if tls { 8883 } else { 1883 };
        let bad_port = |p: &str| format!("{url:?}: bad port {p:?}");
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad_port(p))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url:?}: unexpected {after:?} after the host")),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad_port(p))?),
                None => (hostport, default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(MqttUrl {
            tls,
            host: host.to_owned(),
            port,
            username,
            password,
        })
    }
}

/// Why MQTT client settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MqttConfigError {
    #[error("invalid --mqtt-url / VIGIL_MQTT_URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("reading --mqtt-ca-file / VIGIL_MQTT_CA_FILE {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading --mqtt-credentials-file / VIGIL_MQTT_CREDENTIALS_FILE {}: {why}", path.display())]
    CredentialsFile { path: PathBuf, why: String },
}

/// The user name and password of a credentials file (`KEY=value` lines,
/// `#` comments; `VIGIL_MQTT_USERNAME` required, `VIGIL_MQTT_PASSWORD`
/// optional).
pub fn read_credentials_file(path: &Path) -> Result<(String, String), MqttConfigError> {
    let fail = |why: String| MqttConfigError::CredentialsFile {
        path: path.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let mut username = None;
    let mut password = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some(("VIGIL_MQTT_USERNAME", v)) => username = Some(v.to_owned()),
            Some(("VIGIL_MQTT_PASSWORD", v)) => password = Some(v.to_owned()),
            _ => {}
        }
    }
    let username = username.ok_or_else(|| fail("no VIGIL_MQTT_USERNAME= line".into()))?;
    Ok((username, password.unwrap_or_default()))
}

/// The client settings [`MqttArgs`] fix, whichever rumqttc client uses
/// them.
pub struct ClientSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Keep-alive interval (at least 5 s).
    pub keep_alive: Duration,
    /// User name and password, from the flags or else the URL.
    pub credentials: Option<(String, String)>,
    /// The TLS transport for `mqtts://`; `None` for plain TCP.
    pub tls: Option<Transport>,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ClientSettings {
    /// Parses the URL, picks the credentials and, for TLS, reads the CA
    /// file.
    pub fn from_args(args: &MqttArgs) -> Result<ClientSettings, MqttConfigError> {
        let url = MqttUrl::parse(&args.mqtt_url).map_err(|why| MqttConfigError::Url {
            url: args.mqtt_url.clone(),
            why,
        })?;
        let (file_user, file_password) = match &args.mqtt_credentials_file {
            Some(path) => {
                let (u, p) = read_credentials_file(path)?;
                (Some(u), Some(p))
            }
            None => (None, None),
        };
        let username = args.mqtt_username.clone().or(file_user).or(url.username);
        let password = args
            .mqtt_password
            .clone()
            .or(file_password)
            .or(url.password);
        let tls = if url.tls {
            Some(tls_transport(args.mqtt_ca_file.as_deref())?)
        } else {
            None
        };
        Ok(ClientSettings {
            host: url.host,
            port: url.port,
            keep_alive: Duration::from_secs(args.mqtt_keep_alive_secs.max(5)),
            credentials: username.map(|u| (u, password.unwrap_or_default())),
            tls,
        })
    }
}

/// A rustls transport trusting `ca_file` (PEM), or the system's roots.
pub fn tls_transport(ca_file: Option<&Path>) -> Result<Transport, MqttConfigError> {
    install_crypto_provider();
    Ok(match ca_file {
        Some(path) => {
            let ca = std::fs::read(path).map_err(|source| MqttConfigError::CaFile {
                path: path.to_owned(),
                source,
            })?;
            Transport::tls(ca, None, None)
        }
        None => Transport::tls_with_default_config(),
    })
}

/// rustls needs one process-wide crypto provider; Vigil uses ring.
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

    #[test]
    fn mqtt_urls_parse() {
        let u = MqttUrl::parse("mqtt://10.0.0.5:1999").expect("valid");
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "10.0.0.5", 1999));
        let u = MqttUrl::parse("mqtts://edge:s3cret@broker.example/").expect("valid");
        assert_eq!((u.tls, u.port), (true, 8883));
        assert_eq!(u.username.as_deref(), Some("edge"));
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        let u = MqttUrl::parse("mqtt://[::1]:1884").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        for bad in [
            "http://x",
            "127.0.0.1:1883",
            "mqtt://",
            "mqtt://h:port",
            "mqtt://h/x",
            "not a url",
        ] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        mqtt: MqttArgs,
    }

    #[test]
    fn flags_override_the_url_s_credentials() {
        let args = Cli::parse_from([
            "test",
            "--mqtt-url",
            "mqtt://u:p@h",
            "--mqtt-password",
            "flag",
        ])
        .mqtt;
        let c = ClientSettings::from_args(&args).expect("valid");
        assert_eq!((c.host.as_str(), c.port), ("h", 1883));
        assert_eq!(c.credentials, Some(("u".into(), "flag".into())));
        assert!(c.tls.is_none());
        let err =
            ClientSettings::from_args(&Cli::parse_from(["test", "--mqtt-url", "http://x"]).mqtt)
                .expect_err("http");
        assert!(err.to_string().contains("VIGIL_MQTT_URL"), "{err}");
    }

    #[test]
    fn a_credentials_file_sits_between_the_flags_and_the_url() {
        let path = std::env::temp_dir().join(format!("vigil-cred-{}.env", std::process::id()));
        std::fs::write(
            &path,
            "# issued\nVIGIL_MQTT_USERNAME=pump-1\nVIGIL_MQTT_PASSWORD=s3cret\n",
        )
        .expect("write");
        let file = path.display().to_string();
        let from_file = Cli::parse_from([
            "test",
            "--mqtt-url",
            "mqtt://u:p@h",
            "--mqtt-credentials-file",
            &file,
        ])
        .mqtt;
        let c = ClientSettings::from_args(&from_file).expect("valid");
        assert_eq!(c.credentials, Some(("pump-1".into(), "s3cret".into())));
        let flag_wins = Cli::parse_from([
            "test",
            "--mqtt-credentials-file",
            &file,
            "--mqtt-password",
            "flag",
        ])
        .mqtt;
        let c = ClientSettings::from_args(&flag_wins).expect("valid");
        assert_eq!(c.credentials, Some(("pump-1".into(), "flag".into())));
        std::fs::write(&path, "VIGIL_MQTT_PASSWORD=x\n").expect("write");
        let err = ClientSettings::from_args(&from_file).expect_err("no user");
        assert!(err.to_string().contains("VIGIL_MQTT_USERNAME"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
