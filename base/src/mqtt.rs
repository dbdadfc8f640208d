//! What an MQTT client needs from [`MqttArgs`]: the parsed `mqtt://` /
//! `mqtts://` URL, credentials (flags over the URL's user info),
//! keep-alive and the TLS transport (rustls with ring), with a client
//! certificate for brokers that require one; and
//! [`ClientSettings::v5_options`], which turns them into rumqttc's MQTT 5
//! options (the services and the edge agent both speak MQTT 5).

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use rumqttc::Transport;

use crate::config::MqttArgs;
use crate::key_file::{check_key_file, KeyFileRule};
use crate::redact::redact_url;

/// Leaves the broker cleanly: asks for a DISCONNECT and drives `eventloop`
/// until it is written or the connection ends, at most `within`. A client
/// that exits without it has the broker publish its last will (an edge
/// agent's was fixed when it connected, often before its first model) and
/// drops what was queued behind it. One poll is not enough: it returns on
/// the first event, which under load may be an incoming packet.
pub async fn disconnect_cleanly(
    client: &rumqttc::v5::AsyncClient,
    eventloop: &mut rumqttc::v5::EventLoop,
    within: Duration,
) {
    use rumqttc::v5::Event;
    use rumqttc::Outgoing;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(within, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

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
    ///
    /// Errors show the URL with its password replaced by `***`
    /// ([`redact_url`]).
    pub fn parse(raw: &str) -> Result<MqttUrl, String> {
        let url = &redact_url(raw);
        let (scheme, rest) = raw
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
    /// `url` has its password replaced by `***`.
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
    /// The client certificate or its key cannot be used.
    #[error("{option}: {why}")]
    ClientCert {
        /// The flag and variable at fault.
        option: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// `--mqtt-cert / VIGIL_MQTT_CERT`.
pub const CERT_OPTION: &str = "--mqtt-cert / VIGIL_MQTT_CERT";
/// `--mqtt-key / VIGIL_MQTT_KEY`.
pub const KEY_OPTION: &str = "--mqtt-key / VIGIL_MQTT_KEY";

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
            url: redact_url(&args.mqtt_url),
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
        let client_cert = match (&args.mqtt_cert, &args.mqtt_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            (Some(_), None) => return Err(cert_error(KEY_OPTION, "is required with --mqtt-cert")),
            (None, Some(_)) => return Err(cert_error(CERT_OPTION, "is required with --mqtt-key")),
        };
        let tls = if url.tls {
            Some(match client_cert {
                Some(client) => client_tls_transport(
                    args.mqtt_ca_file.as_deref(),
                    client,
                    args.mqtt_allow_shared_key_file,
                )?,
                None => tls_transport(args.mqtt_ca_file.as_deref())?,
            })
        } else if client_cert.is_some() {
            return Err(cert_error(
                CERT_OPTION,
                "a client certificate needs TLS: use an mqtts:// URL",
            ));
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

    /// rumqttc MQTT 5 options for `client_id` with these settings (broker,
    /// keep-alive, credentials, TLS); the caller adds its session, will
    /// and flow-control settings.
    pub fn v5_options(self, client_id: impl Into<String>) -> rumqttc::v5::MqttOptions {
        let mut options = rumqttc::v5::MqttOptions::new(client_id, self.host, self.port);
        options.set_keep_alive(self.keep_alive);
        if let Some((username, password)) = self.credentials {
            options.set_credentials(username, password);
        }
        if let Some(transport) = self.tls {
            options.set_transport(transport);
        }
        options
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

fn cert_error(option: &'static str, why: impl Into<String>) -> MqttConfigError {
    MqttConfigError::ClientCert {
        option,
        why: why.into(),
    }
}

/// A rustls transport that trusts `ca_file` (or the system's roots) and
/// presents the client certificate `cert` with its private key `key`
/// (both PEM). Everything is checked here, before any connection: the
/// files are readable and hold a certificate and a key, the key matches
/// the certificate, and the key file is not readable by others (nor by
/// its group unless `shared_with_group`).
pub fn client_tls_transport(
    ca_file: Option<&Path>,
    (cert, key): (&Path, &Path),
    shared_with_group: bool,
) -> Result<Transport, MqttConfigError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| MqttConfigError::CaFile {
                path: path.to_owned(),
                source,
            })?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| MqttConfigError::CaFile {
                    path: path.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(MqttConfigError::CaFile {
                    path: path.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "no usable PEM CERTIFICATE in it",
                    ),
                });
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let read = |option: &'static str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| cert_error(option, format!("reading {}: {e}", path.display())))
    };
    let cert_pem = read(CERT_OPTION, cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(CERT_OPTION, format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(cert_error(
            CERT_OPTION,
            format!("{} holds no PEM CERTIFICATE", cert.display()),
        ));
    }
    check_private_key_file(key, shared_with_group)?;
    let key_pem = read(KEY_OPTION, key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        cert_error(
            KEY_OPTION,
            format!("{} holds no usable PEM private key: {e}", key.display()),
        )
    })?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(CERT_OPTION, e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => cert_error(
                KEY_OPTION,
                format!(
                    "{} is not the private key of the certificate in {}",
                    key.display(),
                    cert.display()
                ),
            ),
            other => cert_error(KEY_OPTION, format!("{}: {other}", key.display())),
        })?;
    Ok(Transport::tls_with_config(config.into()))
}

/// Refuses a private key file others may access, or its group unless
/// `shared_with_group` (a key is a secret: mode 0600 or 0400; 0440 for a
/// Kubernetes secret read through the pod's fsGroup); see
/// [`crate::key_file`].
pub fn check_private_key_file(path: &Path, shared_with_group: bool) -> Result<(), MqttConfigError> {
    let rule = KeyFileRule::with_override(
        "MQTT private key file",
        "--mqtt-allow-shared-key-file / VIGIL_MQTT_ALLOW_SHARED_KEY_FILE=true",
    )
    .group_may_read(shared_with_group);
    check_key_file(path, rule).map_err(|e| cert_error(KEY_OPTION, e.to_string()))
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

    #[test]
    fn url_errors_never_show_the_password() {
        for bad in [
            "edge:Pa55word@broker:1883",
            "mqtt://edge:Pa55word@broker:port",
            "mqtt://edge:Pa55word@broker/path",
            "mqtt://edge:Pa55/word@broker",
            "mqtt://edge:Pa55word@[::1",
            "mqtt://edge:Pa55word@[::1]x",
            "mqtt://edge:Pa55word@",
        ] {
            let why = MqttUrl::parse(bad).expect_err(bad);
            assert!(!why.contains("Pa55"), "{bad}: {why}");
            let args = Cli::parse_from(["test", "--mqtt-url", bad]).mqtt;
            let err = ClientSettings::from_args(&args).expect_err(bad).to_string();
            assert!(
                !err.contains("Pa55") && err.contains("edge:***@"),
                "{bad}: {err}"
            );
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
        let o = c.v5_options("dev-1");
        assert_eq!(o.broker_address(), ("h".to_owned(), 1883));
        assert_eq!(o.client_id(), "dev-1");
        assert_eq!(o.credentials().map(|l| l.username), Some("u".to_owned()));
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

    /// A self-signed certificate and its key in `dir`, as `name.crt` and
    /// `name.key` (mode 0600).
    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        (c, k)
    }

    #[test]
    fn client_certificates_are_checked_before_connecting() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed(tmp.path(), "pump-1");
        let (ca, other_key) = self_signed(tmp.path(), "other");
        let s = |p: &Path| p.display().to_string();
        let with = |url: &str, cert: &Path, key: &Path| {
            let args = Cli::parse_from([
                "test",
                "--mqtt-url",
                url,
                "--mqtt-ca-file",
                &s(&ca),
                "--mqtt-cert",
                &s(cert),
                "--mqtt-key",
                &s(key),
            ])
            .mqtt;
            ClientSettings::from_args(&args).map(|c| c.tls.is_some())
        };
        assert!(with("mqtts://h", &cert, &key).expect("a matching pair"));
        let err = with("mqtt://h", &cert, &key).expect_err("plain TCP");
        assert!(err.to_string().contains("mqtts://"), "{err}");
        let err = with("mqtts://h", &cert, &other_key).expect_err("mismatched");
        assert!(err.to_string().contains("is not the private key"), "{err}");
        let err = with("mqtts://h", &tmp.path().join("nope.crt"), &key).expect_err("missing");
        assert!(err.to_string().contains("VIGIL_MQTT_CERT"), "{err}");
        let err = with("mqtts://h", &key, &key).expect_err("a key is no certificate");
        assert!(err.to_string().contains("no PEM CERTIFICATE"), "{err}");
        let err = with("mqtts://h", &cert, &cert).expect_err("a certificate is no key");
        assert!(err.to_string().contains("VIGIL_MQTT_KEY"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = with("mqtts://h", &cert, &key).expect_err("exposed key");
            assert!(err.to_string().contains("chmod 600"), "{err}");
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o440)).expect("chmod");
            assert!(
                with("mqtts://h", &cert, &key).is_err(),
                "group-readable key"
            );
            let shared = |allow: bool| {
                let mut args = Cli::parse_from([
                    "test",
                    "--mqtt-url",
                    "mqtts://h",
                    "--mqtt-ca-file",
                    &s(&ca),
                    "--mqtt-cert",
                    &s(&cert),
                    "--mqtt-key",
                    &s(&key),
                    "--mqtt-allow-shared-key-file",
                ])
                .mqtt;
                args.mqtt_allow_shared_key_file = allow;
                ClientSettings::from_args(&args).map(|c| c.tls.is_some())
            };
            assert!(shared(true).expect("the group may read it when allowed"));
            assert!(shared(false).is_err());
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o444)).expect("chmod");
            assert!(shared(true).is_err(), "others may never read it");
        }
        // One without the other is a usage error.
        assert!(Cli::try_parse_from(["test", "--mqtt-cert", &s(&cert)]).is_err());
    }
}
