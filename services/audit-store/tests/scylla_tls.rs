//! CQL over TLS without a Scylla server: a rustls listener on 127.0.0.1
//! with certificates from a throwaway CA (rcgen) stands in for a node.
//! It records the first byte each connection sends before any TLS
//! (0x16 opens a TLS handshake; 0x04 is a plaintext CQL v4 request) and,
//! after a handshake, the first CQL frame header read inside TLS, then
//! hangs up; the store's connect then fails by itself, and the test
//! looks at what the listener saw and at the error.
//!
//! - the right CA (and a client certificate the listener requires): the
//!   handshake completes and a CQL request header arrives inside TLS;
//! - another CA: the connection fails naming the certificate problem, and
//!   nothing but a TLS handshake reached the listener;
//! - a plain `scylla://` URI: the listener sees plaintext CQL and refuses
//!   it; the connect fails;
//! - `tls_server_name`: a certificate naming only a DNS name is refused
//!   for the IP connected to, and accepted with that name;
//! - a client key others may read is refused before any connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use vigil_audit_store::scylla::ScyllaOptions;
use vigil_audit_store::{AnyStore, StoreUri};

/// Longest any one step may take; the store's own connect timeout is
/// far shorter.
const WAIT: Duration = Duration::from_secs(20);

/// What the listener saw on one connection.
#[derive(Debug)]
enum Seen {
    /// The handshake completed; the first 9 bytes read inside TLS (a CQL
    /// frame header), or fewer if the client hung up first.
    Cql { first_byte: u8, header: Vec<u8> },
    /// The handshake failed.
    Refused { first_byte: u8, why: String },
}

/// A CA: its certificate file and issuer.
struct Ca {
    cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("test {name}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).expect("write CA");
    Ca {
        cert: path,
        issuer: Issuer::new(params, key),
    }
}

/// A certificate for `names` issued by `ca`: (cert file, key file 0600).
fn issue(dir: &Path, ca: &Ca, file: &str, names: &[&str], client: bool) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, &ca.issuer).expect("issue");
    let (cert_path, key_path) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    (cert_path, key_path)
}

/// A TLS listener on 127.0.0.1 presenting `server` and, with
/// `client_ca`, requiring a client certificate it issued. Returns its
/// port and what it sees, one message per connection.
async fn listener(
    server: &(PathBuf, PathBuf),
    client_ca: Option<&Path>,
) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_file_iter(&server.0)
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_file(&server.1).expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).expect("ca") {
                roots.add(cert.expect("ca")).expect("ca");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                let first_byte = match stream.peek(&mut first).await {
                    Ok(1) => first[0],
                    _ => return,
                };
                let seen = match acceptor.accept(stream).await {
                    Ok(mut tls) => {
                        let mut header = vec![0u8; 9];
                        let mut got = 0;
                        while got < header.len() {
                            match tls.read(&mut header[got..]).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got += n,
                            }
                        }
                        header.truncate(got);
                        Seen::Cql { first_byte, header }
                    }
                    Err(e) => Seen::Refused {
                        first_byte,
                        why: e.to_string(),
                    },
                };
                let _ = tx.send(seen);
                // Dropping the stream hangs up: no CQL answer ever comes.
            });
        }
    });
    (port, rx)
}

/// Opens the store at `uri` and returns its error (it must fail: no
/// listener here answers CQL), within [`WAIT`].
async fn connect_error(uri: &str) -> String {
    let parsed: StoreUri = uri.parse().expect("the URI parses");
    let options = ScyllaOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        ..ScyllaOptions::default()
    };
    let result = tokio::time::timeout(WAIT, AnyStore::open(&parsed, &options))
        .await
        .expect("the connect attempt ends by itself");
    match result {
        Ok(_) => panic!("{uri}: connected to a listener that speaks no CQL"),
        Err(e) => e.to_string(),
    }
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("the listener saw a connection")
        .expect("listener running")
}

/// The files of one test: a CA, another CA, the node's certificate for
/// 127.0.0.1, a client certificate.
struct Pki {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ca: Ca,
    other_ca: Ca,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    let other_ca = ca(&dir, "other-ca");
    let ca = ca(&dir, "ca");
    let server = issue(&dir, &ca, "node", &["127.0.0.1"], false);
    let client = issue(&dir, &ca, "vigil-audit", &["vigil-audit"], true);
    Pki {
        _dir: tmp,
        dir,
        ca,
        other_ca,
        server,
        client,
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn with_the_right_ca_cql_runs_inside_tls() {
    let pki = pki();
    let (port, mut seen) = listener(&pki.server, Some(&pki.ca.cert)).await;
    let uri = format!(
        "scylla://127.0.0.1:{port}/vigil?tls=1&tls_ca={}&tls_cert={}&tls_key={}",
        s(&pki.ca.cert),
        s(&pki.client.0),
        s(&pki.client.1)
    );
    let err = connect_error(&uri).await;
    match next(&mut seen).await {
        Seen::Cql { first_byte, header } => {
            assert_eq!(
                first_byte, 0x16,
                "the connection opened with a TLS handshake"
            );
            assert_eq!(
                header.len(),
                9,
                "a whole CQL frame header inside TLS: {header:02x?}"
            );
            let version = header[0];
            assert_eq!(
                version & 0x80,
                0,
                "a request, not a response: {header:02x?}"
            );
            assert!(
                (3..=5).contains(&(version & 0x7f)),
                "a CQL protocol version: {header:02x?}"
            );
            // OPTIONS (0x05) or STARTUP (0x01): the driver's first words.
            assert!(
                matches!(header[4], 0x05 | 0x01),
                "opcode OPTIONS or STARTUP: {header:02x?}"
            );
        }
        Seen::Refused { why, .. } => panic!("the handshake failed: {why}; store error {err}"),
    }
    assert!(err.contains("?tls=1"), "the error says TLS was on: {err}");
}

#[tokio::test]
async fn another_ca_fails_naming_the_certificate_and_sends_no_cql() {
    let pki = pki();
    let (port, mut seen) = listener(&pki.server, None).await;
    let uri = format!(
        "scylla://127.0.0.1:{port}/vigil?tls=1&tls_ca={}",
        s(&pki.other_ca.cert)
    );
    let err = connect_error(&uri).await;
    let lower = err.to_lowercase();
    assert!(
        lower.contains("invalid peer certificate") && lower.contains("unknownissuer"),
        "the error names the certificate problem: {err}"
    );
    match next(&mut seen).await {
        Seen::Refused { first_byte, .. } => {
            assert_eq!(first_byte, 0x16, "only a TLS handshake reached the node");
        }
        Seen::Cql { header, .. } => {
            panic!("the client went on after a bad certificate: {header:02x?}")
        }
    }
}

#[tokio::test]
async fn a_plain_uri_does_not_get_through_a_tls_node() {
    let pki = pki();
    let (port, mut seen) = listener(&pki.server, None).await;
    let err = connect_error(&format!("scylla://127.0.0.1:{port}/vigil")).await;
    match next(&mut seen).await {
        Seen::Refused { first_byte, why } => {
            assert_eq!(first_byte & 0x80, 0, "plaintext CQL: {first_byte:#04x}");
            assert!(
                (3..=5).contains(&first_byte),
                "a CQL version byte: {first_byte:#04x} ({why})"
            );
        }
        Seen::Cql { .. } => panic!("a plain client completed a TLS handshake"),
    }
    assert!(!err.contains("tls=1"), "{err}");
}

#[tokio::test]
async fn tls_server_name_checks_certificates_naming_a_dns_name() {
    let pki = pki();
    let named = issue(&pki.dir, &pki.ca, "named", &["scylla.test"], false);
    let (port, mut seen) = listener(&named, None).await;
    let base = format!(
        "scylla://127.0.0.1:{port}/vigil?tls=1&tls_ca={}",
        s(&pki.ca.cert)
    );
    let err = connect_error(&base).await;
    assert!(
        err.to_lowercase().contains("certificate"),
        "a certificate without the node's IP is refused: {err}"
    );
    assert!(matches!(next(&mut seen).await, Seen::Refused { .. }));
    connect_error(&format!("{base}&tls_server_name=scylla.test")).await;
    match next(&mut seen).await {
        Seen::Cql { header, .. } => assert_eq!(header.len(), 9, "{header:02x?}"),
        Seen::Refused { why, .. } => panic!("tls_server_name=scylla.test: {why}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_client_key_others_may_read_is_refused_before_connecting() {
    use std::os::unix::fs::PermissionsExt as _;
    let pki = pki();
    std::fs::set_permissions(&pki.client.1, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let uri = format!(
        "scylla://127.0.0.1:9/vigil?tls=1&tls_ca={}&tls_cert={}&tls_key={}",
        s(&pki.ca.cert),
        s(&pki.client.0),
        s(&pki.client.1)
    );
    let err = connect_error(&uri).await;
    assert!(
        err.contains("tls_key") && err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    let parsed: StoreUri = uri.parse().expect("parses");
    std::fs::set_permissions(&pki.client.1, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let shared = ScyllaOptions {
        allow_shared_key: true,
        connect_timeout: Duration::from_millis(500),
        ..ScyllaOptions::default()
    };
    let err = tokio::time::timeout(WAIT, AnyStore::open(&parsed, &shared))
        .await
        .expect("ends")
        .expect_err("nothing listens on port 9")
        .to_string();
    assert!(
        !err.contains("chmod"),
        "the group may read it when allowed: {err}"
    );
}
