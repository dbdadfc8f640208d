//! `vigil probe URL`: a health check for containers whose image has no
//! curl. It sends one plain HTTP/1.1 GET over a TCP connection and exits
//! 0 when the answer's status is 2xx within the timeout, or fails with a
//! message saying what went wrong (no connection, a timeout, another
//! status, not HTTP).
//!
//! `https://` URLs are for a service serving HTTPS (`VIGIL_HTTP_TLS_CERT`),
//! whose health endpoints are then on TLS too. By default the probe does
//! not check the server's certificate, as Kubernetes' own HTTPS probes do
//! not: it asks whether the service in this container answers, not who it
//! is. `--ca FILE` (with `--server-name` when the certificate names a DNS
//! name rather than the probed address) checks it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use vigil_service::outln;

/// Arguments of `vigil probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The URL to GET, `http[s]://HOST[:PORT][/PATH]` (for example
    /// `http://127.0.0.1:8080/readyz`).
    pub url: String,

    /// https: check the server's certificate against this PEM CA (or the
    /// certificate itself, when self-signed). Without it the certificate
    /// is not checked.
    #[arg(long)]
    pub ca: Option<PathBuf>,

    /// https with --ca: the name the certificate must carry (default: the
    /// URL's host).
    #[arg(long, requires = "ca")]
    pub server_name: Option<String>,

    /// Seconds to wait for the connection and the status line together.
    #[arg(long, default_value_t = 2.0, value_parser = parse_timeout)]
    pub timeout: f64,
}

/// A timeout in seconds: positive and finite.
fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Where a URL points: the `host:port` to connect to and send as `Host`,
/// and the path with its query.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    host: String,
    port: u16,
    path: String,
    tls: bool,
}

fn parse_url(url: &str) -> anyhow::Result<Target> {
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => bail!("{url}: only http:// and https:// URLs can be probed"),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("{url}: unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| anyhow!("{url}: {p:?} is not a port"))?,
        None if tls => 443,
        None => 80,
    };
    Ok(Target {
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path,
        tls,
    })
}

/// Time left before `deadline`, or an error naming what timed out.
fn remaining(deadline: Instant, url: &str, what: &str) -> anyhow::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("{url}: timed out {what}");
    }
    Ok(left)
}

/// Connects to the first address of the target that accepts, within the
/// deadline.
fn connect(target: &Target, url: &str, deadline: Instant) -> anyhow::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {}", target.host))?
        .collect();
    let mut last = None;
    for addr in addrs {
        let left = remaining(deadline, url, "connecting")?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(anyhow!("{url}: cannot connect to {addr}: {e}")),
        None => Err(anyhow!("{url}: {} has no address", target.host)),
    }
}

/// How an https probe treats the server's certificate.
#[derive(Debug, Default)]
pub(crate) struct TlsCheck {
    ca: Option<PathBuf>,
    server_name: Option<String>,
}

/// Accepts any certificate (the probe's default for https, as Kubernetes'
/// HTTPS probes): signatures are still checked, so the handshake is a real
/// one; only the certificate's issuer and name are not.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS session over `tcp` to `target`, as `check` says.
fn tls_stream(
    target: &Target,
    check: &TlsCheck,
    tcp: TcpStream,
) -> anyhow::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    // ring, named: every rustls user in Vigil picks it explicitly.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match &check.ca {
        Some(ca) => {
            let pem =
                std::fs::read(ca).with_context(|| format!("reading --ca {}", ca.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| format!("--ca {}: not PEM", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("--ca {}: not a usable certificate", ca.display()))?;
            }
            if roots.is_empty() {
                bail!("--ca {}: no certificate in it", ca.display());
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    }
    .with_no_client_auth();
    let name = check.server_name.as_deref().unwrap_or(&target.host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|e| anyhow!("{name:?} is not a server name: {e}"))?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), server_name).context("starting TLS")?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// The status code and reason of the answer to one GET of `url`.
fn get_status(url: &str, timeout: Duration, check: &TlsCheck) -> anyhow::Result<(u16, String)> {
    let target = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let tcp = connect(&target, url, deadline)?;
    tcp.set_write_timeout(Some(remaining(deadline, url, "connecting")?))?;
    let (mut plain, mut secure);
    let stream: &mut dyn ReadWrite = if target.tls {
        tcp.set_read_timeout(Some(remaining(deadline, url, "connecting")?))?;
        secure = tls_stream(&target, check, tcp.try_clone()?)?;
        &mut secure
    } else {
        plain = tcp.try_clone()?;
        &mut plain
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vigil-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("{url}: sending the request"))?;

    // Read until the status line is complete; the rest is not needed.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0_u8; 512];
    while !head.contains(&b'\n') {
        tcp.set_read_timeout(Some(remaining(deadline, url, "waiting for the answer")?))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("{url}: timed out waiting for the answer")
            }
            Err(e) => return Err(anyhow!("{url}: reading the answer: {e}")),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 8192 {
            break;
        }
    }
    if head.is_empty() {
        bail!("{url}: the connection closed without an answer");
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().trim_end();
    let mut parts = line.splitn(3, ' ');
    let (version, code, reason) = (parts.next(), parts.next(), parts.next());
    match (version, code.and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            Ok((code, reason.unwrap_or_default().to_owned()))
        }
        _ => bail!("{url}: not an HTTP answer: {line:?}"),
    }
}

/// A byte stream, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Probes once: `Ok` on a 2xx answer, an error saying why otherwise.
fn check(args: &ProbeArgs) -> anyhow::Result<(u16, String)> {
    let tls = TlsCheck {
        ca: args.ca.clone(),
        server_name: args.server_name.clone(),
    };
    let (code, reason) = get_status(&args.url, Duration::from_secs_f64(args.timeout), &tls)?;
    if (200..300).contains(&code) {
        Ok((code, reason))
    } else {
        bail!("{}: answered {code} {reason}", args.url)
    }
}

/// Runs the probe: prints the status and returns on a 2xx answer; prints
/// the reason on stderr and exits 1 otherwise (one line, never a
/// backtrace, whatever RUST_BACKTRACE says: health-check logs keep it).
pub fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    match check(args) {
        Ok((code, reason)) => {
            outln!("{} {code} {reason}", args.url)?;
            Ok(())
        }
        Err(e) => {
            eprintln!("vigil probe: {e:#}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let t = parse_url("http://127.0.0.1:8080/readyz").expect("valid");
        assert_eq!(
            t,
            Target {
                authority: "127.0.0.1:8080".into(),
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/readyz".into(),
                tls: false,
            }
        );
        let t = parse_url("http://localhost").expect("valid");
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = parse_url("https://localhost/healthz").expect("valid");
        assert_eq!((t.port, t.tls, t.path.as_str()), (443, true, "/healthz"));
        let t = parse_url("http://[::1]:9/x?y=1").expect("valid");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/x?y=1")
        );
        let t = parse_url("http://h:1?q").expect("valid");
        assert_eq!(t.path, "/?q");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, says) in [
            ("ftp://127.0.0.1/", "only http:// and https://"),
            ("127.0.0.1:8080", "only http:// and https://"),
            ("http://:8080/", "no host"),
            ("http://h:port/", "not a port"),
            ("http://h:70000/", "not a port"),
            ("http://[::1/", "unclosed"),
        ] {
            let e = parse_url(url).expect_err(url).to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn timeouts_must_be_positive() {
        assert_eq!(parse_timeout("0.5"), Ok(0.5));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("inf").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
