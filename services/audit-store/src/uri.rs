//! `VIGIL_AUDIT_STORE`: which backend, and where.
//!
//! - `sqlite:///var/lib/vigil/audit.db` — an absolute path (three slashes),
//!   or `sqlite://audit.db` relative to the working directory; optionally
//!   followed by memory settings, `?cache_mib=16&mmap_mib=0`
//!   ([`SqliteTuning`]).
//! - `scylla://10.0.0.5:9042/vigil` — one or more contact points separated
//!   by commas (port 9042 when omitted), then the keyspace. `cassandra://`
//!   is accepted as a synonym. TLS is set in the query string
//!   ([`ScyllaTls`]): `scylla://10.0.0.5:9142/vigil?tls=1&tls_ca=/etc/vigil/scylla-ca.pem`.
//!   The user name and password are flags (`VIGIL_AUDIT_SCYLLA_USERNAME`,
//!   `VIGIL_AUDIT_SCYLLA_PASSWORD`), never part of the URI.
//!
//! Errors show the URI with any password replaced by `***`.

use std::path::PathBuf;

use vigil_base::redact::redact_url;

/// A parsed `VIGIL_AUDIT_STORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUri {
    /// Embedded SQLite database file.
    Sqlite {
        /// Database file (created when missing).
        path: PathBuf,
        /// Memory settings from the query string.
        tuning: SqliteTuning,
    },
    /// ScyllaDB or Cassandra cluster.
    Scylla {
        /// Contact points, `host:port`.
        nodes: Vec<String>,
        /// Keyspace holding Vigil's tables.
        keyspace: String,
        /// TLS to every node (`?tls=1&…`); `None` for plain CQL.
        tls: Option<ScyllaTls>,
    },
}

/// TLS to a Scylla/Cassandra cluster, from the query string of a
/// `scylla://` URI. Paths are used as written (no percent-decoding), so
/// they may not hold `&`.
///
/// | key | value |
/// |---|---|
/// | `tls` | `1` (or `true`) turns TLS on; `0` / `false` is plain CQL. Every other key needs `tls=1`. |
/// | `tls_ca` | PEM file of the CA(s) that signed the nodes' certificates; without it the system's roots. |
/// | `tls_cert`, `tls_key` | PEM client certificate (chain) and its private key, for a cluster that requires client certificates (`require_client_auth`); both or neither. The key file is refused when its group or others may read it. |
/// | `tls_server_name` | The name the nodes' certificates are checked against. Without it, against the address the driver connects to (the certificate must hold the node's IP address); with it, every node must present a certificate for this DNS name (or IP). |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScyllaTls {
    /// `tls_ca`: trusted CA certificates (PEM); `None` for the system's.
    pub ca: Option<PathBuf>,
    /// `tls_cert`: client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `tls_key`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// `tls_server_name`: the name certificates are checked against.
    pub server_name: Option<String>,
}

/// The query keys of a `scylla://` URI.
const SCYLLA_KEYS: &str = "tls, tls_ca, tls_cert, tls_key, tls_server_name";

impl ScyllaTls {
    /// The TLS settings of a `scylla://` URI's query string; `None`
    /// without `tls=1`.
    fn parse(uri: &str, query: &str) -> Result<Option<Self>, StoreUriError> {
        let mut on = None;
        let mut tls = ScyllaTls::default();
        let mut seen: Vec<(&str, &str)> = Vec::new();
        let bad = |key: &str, value: &str, why: &str| StoreUriError::BadTls {
            uri: uri.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            why: why.to_owned(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if seen.iter().any(|(k, _)| *k == key) {
                return Err(bad(key, value, "is given twice"));
            }
            seen.push((key, value));
            let path = |value: &str| {
                if value.is_empty() {
                    Err(bad(key, value, "needs a file path"))
                } else {
                    Ok(Some(PathBuf::from(value)))
                }
            };
            match key {
                "tls" => {
                    on = Some(match value.to_ascii_lowercase().as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => return Err(bad(key, value, "is not 1, true, 0 or false")),
                    })
                }
                "tls_ca" => tls.ca = path(value)?,
                "tls_cert" => tls.cert = path(value)?,
                "tls_key" => tls.key = path(value)?,
                "tls_server_name" => {
                    if !is_server_name(value) {
                        return Err(bad(
                            key,
                            value,
                            "is not a DNS name or IP address (letters, digits, '-' and '.')",
                        ));
                    }
                    tls.server_name = Some(value.to_owned());
                }
                _ => {
                    return Err(StoreUriError::UnknownScyllaParam {
                        uri: uri.to_owned(),
                        key: key.to_owned(),
                    })
                }
            }
        }
        let settings = seen.iter().find(|(k, _)| *k != "tls");
        match (on, settings) {
            (Some(true), _) => {}
            (_, Some((key, value))) => {
                return Err(bad(key, value, "needs tls=1 in the same URI"));
            }
            (None | Some(false), None) => return Ok(None),
        }
        match (&tls.cert, &tls.key) {
            (Some(_), None) => return Err(bad("tls_cert", "", "needs tls_key (its private key)")),
            (None, Some(_)) => return Err(bad("tls_key", "", "needs tls_cert (its certificate)")),
            _ => {}
        }
        Ok(Some(tls))
    }
}

/// A DNS name or an IP address literal a certificate may be issued for.
fn is_server_name(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

/// How much memory the SQLite store may use, from the URI's query string.
/// Both bound the process's resident memory however large the database
/// grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteTuning {
    /// `cache_mib`: page cache of the writer connection, MiB (its b-tree
    /// pages between batches; the read-only connections keep SQLite's
    /// default of ~2 MiB each and read through the memory map).
    pub cache_mib: u32,
    /// `mmap_mib`: how much of the file each connection maps and reads
    /// without copying, MiB; 0 turns mapping off (reads go through the
    /// page caches). Mapped pages the queries touch count as resident.
    pub mmap_mib: u32,
}

impl Default for SqliteTuning {
    fn default() -> Self {
        Self {
            cache_mib: 64,
            mmap_mib: 256,
        }
    }
}

/// Largest `cache_mib` / `mmap_mib` accepted (64 GiB).
const MAX_TUNING_MIB: u32 = 65_536;

impl SqliteTuning {
    /// Applies `key=value&...` over the defaults.
    fn parse(uri: &str, query: &str) -> Result<Self, StoreUriError> {
        let mut tuning = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "cache_mib" => &mut tuning.cache_mib,
                "mmap_mib" => &mut tuning.mmap_mib,
                _ => {
                    return Err(StoreUriError::UnknownParam {
                        uri: uri.to_owned(),
                        key: key.to_owned(),
                    })
                }
            };
            *slot = value
                .parse::<u32>()
                .ok()
                .filter(|v| *v <= MAX_TUNING_MIB)
                .ok_or_else(|| StoreUriError::BadParam {
                    uri: uri.to_owned(),
                    key: key.to_owned(),
                    value: value.to_owned(),
                })?;
        }
        Ok(tuning)
    }
}

/// Why `VIGIL_AUDIT_STORE` did not parse; each says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUriError {
    #[error("VIGIL_AUDIT_STORE {0:?} has no scheme; expected sqlite:///path/audit.db or scylla://host:9042/keyspace")]
    NoScheme(String),
    #[error("VIGIL_AUDIT_STORE scheme {0:?} is not sqlite:// or scylla://")]
    UnknownScheme(String),
    #[error("VIGIL_AUDIT_STORE {0:?} names no database file after sqlite://")]
    NoPath(String),
    #[error(
        "VIGIL_AUDIT_STORE {uri:?}: unknown SQLite setting {key:?}; known: cache_mib, mmap_mib"
    )]
    UnknownParam { uri: String, key: String },
    #[error(
        "VIGIL_AUDIT_STORE {uri:?}: {key}={value:?} is not a whole number of MiB in 0..=65536"
    )]
    BadParam {
        uri: String,
        key: String,
        value: String,
    },
    #[error("VIGIL_AUDIT_STORE {0:?} names no host after scylla://")]
    NoHost(String),
    #[error("VIGIL_AUDIT_STORE {uri:?}: port {port:?} of contact point {host:?} is not a number in 1..=65535")]
    BadPort {
        uri: String,
        host: String,
        port: String,
    },
    #[error("VIGIL_AUDIT_STORE {0:?} names no keyspace; expected scylla://host:9042/keyspace")]
    NoKeyspace(String),
    #[error("VIGIL_AUDIT_STORE keyspace {0:?} is not a CQL identifier (a letter, then up to 47 letters, digits or _)")]
    BadKeyspace(String),
    #[error("VIGIL_AUDIT_STORE {uri:?}: unknown Scylla setting {key:?}; known: {SCYLLA_KEYS}")]
    UnknownScyllaParam { uri: String, key: String },
    #[error("VIGIL_AUDIT_STORE {uri:?}: {key}={value:?} {why}")]
    BadTls {
        uri: String,
        key: String,
        value: String,
        why: String,
    },
    #[error(
        "VIGIL_AUDIT_STORE {0:?} holds a user name or password; give them as \
         VIGIL_AUDIT_SCYLLA_USERNAME and VIGIL_AUDIT_SCYLLA_PASSWORD instead"
    )]
    Credentials(String),
}

/// Port of the CQL native protocol.
const DEFAULT_CQL_PORT: u16 = 9042;

impl std::str::FromStr for StoreUri {
    type Err = StoreUriError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        // Every error quotes the URI with any password hidden.
        let uri = &redact_url(raw);
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| StoreUriError::NoScheme(uri.to_owned()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                if path.is_empty() || path == "/" {
                    return Err(StoreUriError::NoPath(uri.to_owned()));
                }
                Ok(StoreUri::Sqlite {
                    path: PathBuf::from(path),
                    tuning: SqliteTuning::parse(uri, query)?,
                })
            }
            "scylla" | "cassandra" => {
                let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
                if rest.contains('@') {
                    return Err(StoreUriError::Credentials(uri.clone()));
                }
                let tls = ScyllaTls::parse(uri, query)?;
                let (hosts, keyspace) = rest
                    .split_once('/')
                    .ok_or_else(|| StoreUriError::NoKeyspace(uri.to_owned()))?;
                let keyspace = keyspace.trim_end_matches('/');
                if keyspace.is_empty() {
                    return Err(StoreUriError::NoKeyspace(uri.to_owned()));
                }
                if !is_cql_identifier(keyspace) {
                    return Err(StoreUriError::BadKeyspace(keyspace.to_owned()));
                }
                let mut nodes = Vec::new();
                for host in hosts.split(',').map(str::trim) {
                    if host.is_empty() {
                        return Err(StoreUriError::NoHost(uri.to_owned()));
                    }
                    nodes.push(with_port(uri, host)?);
                }
                Ok(StoreUri::Scylla {
                    nodes,
                    keyspace: keyspace.to_owned(),
                    tls,
                })
            }
            other => Err(StoreUriError::UnknownScheme(other.to_owned())),
        }
    }
}

/// `host:port`, adding the default port; IPv6 literals go in brackets.
fn with_port(uri: &str, host: &str) -> Result<String, StoreUriError> {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, "")) => (format!("[{addr}]"), None),
            Some((addr, port)) => (format!("[{addr}]"), Some(port.trim_start_matches(':'))),
            None => return Err(StoreUriError::NoHost(uri.to_owned())),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (host.to_owned(), None),
        }
    };
    if name.is_empty() || name == "[]" {
        return Err(StoreUriError::NoHost(uri.to_owned()));
    }
    let port = match port {
        None => DEFAULT_CQL_PORT,
        Some(p) => {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| StoreUriError::BadPort {
                    uri: uri.to_owned(),
                    host: name.clone(),
                    port: p.to_owned(),
                })?
        }
    };
    Ok(format!("{name}:{port}"))
}

/// An unquoted CQL identifier (keyspace names are at most 48 characters).
pub fn is_cql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && s.len() <= 48
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreUri, StoreUriError> {
        s.parse()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            parse("sqlite:///var/lib/vigil/audit.db"),
            Ok(StoreUri::Sqlite {
                path: "/var/lib/vigil/audit.db".into(),
                tuning: SqliteTuning::default(),
            })
        );
        assert_eq!(
            parse("sqlite://audit.db"),
            Ok(StoreUri::Sqlite {
                path: "audit.db".into(),
                tuning: SqliteTuning::default(),
            })
        );
        assert_eq!(
            parse("sqlite:///d/audit.db?cache_mib=16&mmap_mib=0"),
            Ok(StoreUri::Sqlite {
                path: "/d/audit.db".into(),
                tuning: SqliteTuning {
                    cache_mib: 16,
                    mmap_mib: 0
                },
            })
        );
        assert_eq!(
            parse("scylla://10.0.0.5:9042/vigil"),
            Ok(StoreUri::Scylla {
                nodes: vec!["10.0.0.5:9042".into()],
                keyspace: "vigil".into(),
                tls: None,
            })
        );
        assert_eq!(
            parse("cassandra://a,b:9043,[::1]/audit_1"),
            Ok(StoreUri::Scylla {
                nodes: vec!["a:9042".into(), "b:9043".into(), "[::1]:9042".into()],
                keyspace: "audit_1".into(),
                tls: None,
            })
        );
    }

    #[test]
    fn errors_are_specific() {
        assert!(matches!(parse("audit.db"), Err(StoreUriError::NoScheme(_))));
        assert!(matches!(
            parse("postgres://x/y"),
            Err(StoreUriError::UnknownScheme(s)) if s == "postgres"
        ));
        assert!(matches!(parse("sqlite://"), Err(StoreUriError::NoPath(_))));
        assert!(matches!(
            parse("scylla://h:9042"),
            Err(StoreUriError::NoKeyspace(_))
        ));
        assert!(matches!(
            parse("scylla://h:9042/"),
            Err(StoreUriError::NoKeyspace(_))
        ));
        assert!(matches!(
            parse("scylla:///ks"),
            Err(StoreUriError::NoHost(_))
        ));
        assert!(matches!(
            parse("scylla://a,,b/ks"),
            Err(StoreUriError::NoHost(_))
        ));
        assert!(matches!(
            parse("scylla://h:99999/ks"),
            Err(StoreUriError::BadPort { port, .. }) if port == "99999"
        ));
        assert!(matches!(
            parse("scylla://h/1bad-name"),
            Err(StoreUriError::BadKeyspace(k)) if k == "1bad-name"
        ));
        assert!(matches!(
            parse("sqlite:///d/a.db?cache=1"),
            Err(StoreUriError::UnknownParam { key, .. }) if key == "cache"
        ));
        assert!(matches!(
            parse("sqlite:///d/a.db?mmap_mib=-1"),
            Err(StoreUriError::BadParam { key, value, .. }) if key == "mmap_mib" && value == "-1"
        ));
        assert!(matches!(
            parse("sqlite:///d/a.db?cache_mib=999999"),
            Err(StoreUriError::BadParam { .. })
        ));
        assert!(matches!(
            parse("sqlite://?cache_mib=1"),
            Err(StoreUriError::NoPath(_))
        ));
        let msg = parse("scylla://h:x/ks").expect_err("bad port").to_string();
        assert!(
            msg.contains("VIGIL_AUDIT_STORE") && msg.contains("\"x\""),
            "{msg}"
        );
    }

    #[test]
    fn scylla_tls_options() {
        let Ok(StoreUri::Scylla { tls, nodes, .. }) = parse(
            "scylla://a:9142,b:9142/vigil?tls=1&tls_ca=/etc/ca.pem&tls_cert=c.pem&tls_key=k.pem&tls_server_name=scylla.example",
        ) else {
            panic!("parses");
        };
        assert_eq!(nodes, vec!["a:9142".to_owned(), "b:9142".to_owned()]);
        assert_eq!(
            tls,
            Some(ScyllaTls {
                ca: Some("/etc/ca.pem".into()),
                cert: Some("c.pem".into()),
                key: Some("k.pem".into()),
                server_name: Some("scylla.example".into()),
            })
        );
        let tls_of = |s: &str| match parse(s) {
            Ok(StoreUri::Scylla { tls, .. }) => tls,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(tls_of("scylla://h/ks?tls=true"), Some(ScyllaTls::default()));
        assert_eq!(tls_of("scylla://h/ks?tls=0"), None);
        assert_eq!(tls_of("scylla://h/ks/?"), None);
        assert_eq!(
            tls_of("cassandra://h/ks?tls=1&tls_server_name=10.0.0.5"),
            Some(ScyllaTls {
                server_name: Some("10.0.0.5".into()),
                ..ScyllaTls::default()
            })
        );
    }

    #[test]
    fn bad_scylla_tls_options_are_named() {
        let bad = |s: &str, key: &str, why: &str| match parse(s) {
            Err(e @ StoreUriError::BadTls { .. }) => {
                let text = e.to_string();
                assert!(text.contains(key) && text.contains(why), "{s}: {text}");
            }
            other => panic!("{s}: {other:?}"),
        };
        bad("scylla://h/ks?tls=yes", "tls", "is not 1, true, 0 or false");
        bad("scylla://h/ks?tls_ca=/ca.pem", "tls_ca", "needs tls=1");
        bad(
            "scylla://h/ks?tls=0&tls_ca=/ca.pem",
            "tls_ca",
            "needs tls=1",
        );
        bad("scylla://h/ks?tls=1&tls_ca=", "tls_ca", "needs a file path");
        bad(
            "scylla://h/ks?tls=1&tls_cert=c.pem",
            "tls_cert",
            "needs tls_key",
        );
        bad(
            "scylla://h/ks?tls=1&tls_key=k.pem",
            "tls_key",
            "needs tls_cert",
        );
        bad("scylla://h/ks?tls=1&tls=1", "tls", "twice");
        bad(
            "scylla://h/ks?tls=1&tls_server_name=bad_name!",
            "tls_server_name",
            "is not a DNS name",
        );
        match parse("scylla://h/ks?tls=1&ca=/ca.pem") {
            Err(e @ StoreUriError::UnknownScyllaParam { .. }) => {
                assert!(
                    e.to_string().contains("\"ca\"") && e.to_string().contains("tls_ca"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_never_show_a_password() {
        for uri in [
            "scylla://vigil:Pa55word@h:9042/ks",
            "scylla://vigil:Pa55word@h:x/ks",
            "scylla://vigil:Pa55word@h/ks?tls=2",
            "postgres://vigil:Pa55word@h/ks",
            "vigil:Pa55word@h/ks",
        ] {
            let err = parse(uri).expect_err(uri).to_string();
            assert!(!err.contains("Pa55"), "{uri}: {err}");
            assert!(
                err.contains("VIGIL_AUDIT_STORE") || err.contains("postgres"),
                "{err}"
            );
        }
        let err = parse("scylla://vigil:Pa55word@h/ks").expect_err("credentials");
        assert!(matches!(err, StoreUriError::Credentials(_)), "{err}");
        assert!(
            err.to_string().contains("VIGIL_AUDIT_SCYLLA_PASSWORD"),
            "{err}"
        );
    }
}
