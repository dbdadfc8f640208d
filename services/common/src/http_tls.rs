//! HTTPS for a role's HTTP server (rustls with the ring provider).
//!
//! With `--http-tls-cert` and `--http-tls-key` (`VIGIL_HTTP_TLS_CERT`,
//! `VIGIL_HTTP_TLS_KEY`) the one listener of a role speaks TLS only:
//! `/healthz`, `/readyz` and `/metrics` are served on it too, so probes
//! and Prometheus scrape over HTTPS (Kubernetes `scheme: HTTPS`; they stay
//! open: no token). Without both, the server speaks plain HTTP as before.
//!
//! Start-up refuses, before anything binds: one file without the other,
//! an unreadable file, a file without a PEM certificate or key, a key
//! that does not match the certificate, and a key file its group or
//! others may access (the group may read it with `--http-tls-allow-shared-key`;
//! others never: the check of [`vigil_base::key_file`]).
//!
//! [`TlsListener`] does the handshakes off the accept path, so a client
//! that stalls its handshake holds up nobody else: at most
//! [`MAX_HANDSHAKES`] run at once, each for at most [`HANDSHAKE_TIMEOUT`],
//! and finished connections wait in a bounded queue for the server.
//! Handed to `axum::serve` like a `TcpListener`, its connections take
//! part in the graceful shutdown as any other: the server stops
//! accepting, tells each connection to finish and waits for them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use vigil_base::key_file::{check_key_file, KeyFileError, KeyFileRule};

/// Handshakes in progress at once; further connections wait in the
/// kernel's accept queue.
pub const MAX_HANDSHAKES: usize = 128;
/// Longest a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const READY_QUEUE: usize = 32;

/// Why the HTTP server's TLS configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "--http-tls-cert (VIGIL_HTTP_TLS_CERT) and --http-tls-key (VIGIL_HTTP_TLS_KEY) \
         go together: {missing} is not set"
    )]
    Half { missing: &'static str },
    #[error("reading the HTTP TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP TLS {what} file {path}: {why}")]
    Format {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error(transparent)]
    SharedKey(#[from] KeyFileError),
    #[error("HTTP TLS private key {key} does not match the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("HTTP TLS certificate {cert} with key {key}: {source}")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// The server configuration of `cert` and `key`; `None` when neither is
/// set (plain HTTP).
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    allow_shared_key: bool,
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(TlsError::Half { missing: "the key" }),
        (None, Some(_)) => {
            return Err(TlsError::Half {
                missing: "the certificate",
            })
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    check_key_file(
        key,
        KeyFileRule::with_override(
            "HTTP TLS private key file",
            "--http-tls-allow-shared-key / VIGIL_HTTP_TLS_ALLOW_SHARED_KEY=true",
        )
        .group_may_read(allow_shared_key),
    )?;
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let format = |what: &'static str, path: &Path, why: String| TlsError::Format {
        what,
        path: path.to_owned(),
        why,
    };
    let cert_pem = read("certificate", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(format(
            "certificate",
            cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key_pem = read("private key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format("private key", key, format!("no PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            source => TlsError::Rustls {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            },
        })?;
    let mut config = config;
    // The server speaks HTTP/1.1 only (axum's `http1`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// A TCP listener whose connections come out handshaken (for
/// `axum::serve`).
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and handshakes with `config` in a task of its own,
    /// which ends when this listener is dropped (its handshakes with it).
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(Self { ready, local_addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop ends only once this listener is dropped, so
            // the queue cannot close while it is read; wait forever rather
            // than invent a connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    // Dropped with this task: its handshakes are aborted then.
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = ready.closed() => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                backoff_after(e).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        handshakes.spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server stopped: drop it then.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// What a failed `accept` calls for: nothing when one connection went
/// away before it was taken; otherwise (out of file descriptors, …) a
/// pause, so the loop does not spin while the condition lasts.
async fn backoff_after(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting an HTTPS connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
        other_key: PathBuf,
    }

    fn write_private(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let other_key = dir.path().join("other.pem");
        std::fs::write(&cert, made.cert.pem()).expect("write");
        write_private(&key, &made.signing_key.serialize_pem());
        write_private(&other_key, &other.signing_key.serialize_pem());
        Files {
            _dir: dir,
            cert,
            key,
            other_key,
        }
    }

    #[test]
    fn a_matching_private_pair_loads_and_nothing_means_plain_http() {
        let f = files();
        let config = server_config(Some(&f.cert), Some(&f.key), false)
            .expect("loads")
            .expect("TLS on");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(server_config(None, None, false).expect("plain").is_none());
    }

    #[test]
    fn bad_configurations_are_refused_with_their_reason() {
        let f = files();
        let err = server_config(Some(&f.cert), None, false).expect_err("half");
        assert!(err.to_string().contains("VIGIL_HTTP_TLS_KEY"), "{err}");
        let err = server_config(None, Some(&f.key), false).expect_err("half");
        assert!(err.to_string().contains("the certificate"), "{err}");

        let err = server_config(Some(&f.cert), Some(&f.other_key), false).expect_err("mismatch");
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");

        let missing = f.cert.with_file_name("missing.pem");
        let err = server_config(Some(&missing), Some(&f.key), false).expect_err("unreadable");
        assert!(matches!(err, TlsError::Read { .. }), "{err}");

        // A key as certificate: no certificate in it.
        let err = server_config(Some(&f.key), Some(&f.key), false).expect_err("no cert");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        // A certificate as key: no key in it.
        let cert_as_key = f.cert.with_file_name("cert-as-key.pem");
        write_private(
            &cert_as_key,
            &std::fs::read_to_string(&f.cert).expect("read"),
        );
        let err = server_config(Some(&f.cert), Some(&cert_as_key), false).expect_err("no key");
        assert!(err.to_string().contains("no PEM private key"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_may_read_is_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt as _;
        let f = files();
        std::fs::set_permissions(&f.key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = server_config(Some(&f.cert), Some(&f.key), false).expect_err("shared");
        assert!(
            err.to_string().contains("mode 640") && err.to_string().contains("chmod 600"),
            "{err}"
        );
        assert!(server_config(Some(&f.cert), Some(&f.key), true)
            .expect("allowed")
            .is_some());
    }
}
