//! The rustls client configuration of a `scylla://…?tls=1` URI
//! ([`ScyllaTls`]), handed to the driver's `rustls-023` backend: trusted
//! CAs (a PEM file or the system's roots), an optional client certificate
//! whose key file passes [`vigil_base::key_file`], and the name node
//! certificates are checked against.
//!
//! The driver checks a node's certificate against the IP address it
//! connected to. With `tls_server_name` a verifier of our own checks it
//! against that name instead (everything else — chain, validity, usage,
//! the handshake signature — is the webpki verifier's), so clusters whose
//! certificates name a DNS name work too.
//!
//! The ring provider is named explicitly: the driver's rustls dependency
//! also compiles aws-lc-rs, and with two providers compiled in rustls
//! would not pick one by itself.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use vigil_base::key_file::{check_key_file, KeyFileRule};

use crate::uri::ScyllaTls;

/// The override of the client key's permission check.
pub const ALLOW_SHARED_KEY_FLAG: &str =
    "--scylla-tls-allow-shared-key / VIGIL_AUDIT_SCYLLA_TLS_ALLOW_SHARED_KEY=true";

/// Builds the client configuration of `tls`, reading every file now so a
/// bad one is refused at start-up, before any connection; the error says
/// which setting and file. `allow_shared_key` lets the key file's group
/// read it.
pub fn client_config(tls: &ScyllaTls, allow_shared_key: bool) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &tls.ca {
        Some(path) => roots_from(path)?,
        None => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(
                    "tls=1 without tls_ca, and the system has no CA certificates: set tls_ca"
                        .into(),
                );
            }
            roots
        }
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("tls_ca: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.server_name {
        Some(name) => Arc::new(NamedVerifier {
            name: ServerName::try_from(name.clone())
                .map_err(|e| format!("tls_server_name={name:?}: {e}"))?,
            inner: webpki,
        }),
        None => webpki,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let (chain, private) = client_identity(cert, key, allow_shared_key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => format!(
                        "tls_key {} is not the private key of the certificate in tls_cert {}",
                        key.display(),
                        cert.display()
                    ),
                    other => format!("tls_key {}: {other}", key.display()),
                })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The CA certificates in the PEM file `path` (at least one).
fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("tls_ca {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_ca {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "tls_ca {} holds no usable PEM CERTIFICATE",
            path.display()
        ));
    }
    Ok(roots)
}

/// The client certificate chain and key, the key file checked first.
fn client_identity(
    cert: &Path,
    key: &Path,
    allow_shared_key: bool,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let pem = std::fs::read(cert).map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert {} holds no PEM CERTIFICATE",
            cert.display()
        ));
    }
    let rule = KeyFileRule::with_override(
        "Scylla TLS private key file (tls_key)",
        ALLOW_SHARED_KEY_FLAG,
    )
    .group_may_read(allow_shared_key);
    check_key_file(key, rule).map_err(|e| e.to_string())?;
    let pem = std::fs::read(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "tls_key {} holds no usable PEM private key: {e}",
            key.display()
        )
    })?;
    Ok((chain, private))
}

/// Checks node certificates against a configured name instead of the
/// address connected to; the rest is the webpki verifier's.
#[derive(Debug)]
struct NamedVerifier {
    name: ServerName<'static>,
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
