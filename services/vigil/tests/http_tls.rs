//! HTTPS on the services' HTTP server, against the real `vigil` binary:
//! `vigil audit --api-only` with a self-signed certificate made here (none
//! is committed) answers `/healthz` over TLS to a client trusting that
//! certificate, its query API 401 without a token and 200 with one;
//! plain HTTP and a client trusting another certificate get nothing;
//! `vigil probe https://…` answers 0 (with and without `--ca`) and 1 with
//! another CA or over plain HTTP; a
//! SIGTERM with a TLS connection open still stops it cleanly. Half a
//! configuration, a key of another certificate and a key others may read
//! are refused at start.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::run_vigil;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vigil_testkit::clients::eventually;

/// A self-signed certificate for `localhost` and its key, written with
/// the modes a deployment would use (key 0600).
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn pair(dir: &Path, name: &str) -> anyhow::Result<Pair> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem())?;
    write_private(&key, &made.signing_key.serialize_pem())?;
    Ok(Pair {
        cert,
        key,
        der: made.cert.der().clone(),
    })
}

/// A TLS client configuration trusting only `cert`.
fn trusting(cert: &rustls::pki_types::CertificateDer<'static>) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One HTTP/1.1 connection over TLS to `addr` (as `localhost`).
struct Https {
    sender: hyper::client::conn::http1::SendRequest<String>,
}

impl Https {
    async fn connect(addr: &str, tls: &TlsConnector) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let stream = tls.connect(ServerName::try_from("localhost")?, tcp).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// GET `path` (with `token` as bearer): the status code.
    async fn get(&mut self, path: &str, token: Option<&str>) -> anyhow::Result<u16> {
        let mut request = hyper::Request::get(path).header("host", "localhost");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .sender
            .send_request(request.body(String::new())?)
            .await?;
        Ok(response.status().as_u16())
    }
}

/// `vigil audit --api-only` over HTTPS on a free loopback port.
struct Server {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, pair: &Pair, tokens: &Path) -> anyhow::Result<Self> {
        let addr = format!("127.0.0.1:{}", vigil_testkit::free_port()?);
        let log = dir.join("vigil.log");
        let file = std::fs::File::create(&log)?;
        let store = format!("sqlite://{}", common::path(&dir.join("audit.db")));
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "audit",
                "--api-only",
                "--store",
                &store,
                "--http-addr",
                &addr,
            ])
            .arg("--api-tokens-file")
            .arg(tokens)
            .env("VIGIL_HTTP_TLS_CERT", &pair.cert)
            .env("VIGIL_HTTP_TLS_KEY", &pair.key)
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(Self {
            child: Some(child),
            addr,
            log,
        })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()?.code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `read` token of a tokens file `vigil tokens new` wrote.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(scopes, _)| *scopes == "read")
        .map(|(_, t)| t.to_owned())
        .ok_or_else(|| anyhow::anyhow!("no read token in {text}"))
}

#[tokio::test]
async fn the_api_speaks_https_only_and_keeps_its_tokens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("api-tokens");
    let (code, out, err) = run_vigil(&["tokens", "new", "--out", &common::path(&tokens)], None)?;
    assert_eq!(code, 0, "{out}{err}");
    let read = read_token(&tokens)?;
    let good = pair(dir.path(), "server")?;
    let stranger = pair(dir.path(), "stranger")?;
    let mut server = Server::start(dir.path(), &good, &tokens)?;
    let tls = trusting(&good.der)?;

    let addr = server.addr.clone();
    eventually(
        "vigil answers /healthz over HTTPS",
        Duration::from_secs(30),
        || {
            let tls = tls.clone();
            let addr = addr.clone();
            async move {
                match Https::connect(&addr, &tls).await {
                    Ok(mut c) => matches!(c.get("/healthz", None).await, Ok(200)),
                    Err(_) => false,
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log_text()))?;
    assert!(
        server.log_text().contains("https=true"),
        "{}",
        server.log_text()
    );

    // `vigil probe`, the containers' health check, speaks HTTPS too: by
    // default without checking the certificate (as Kubernetes' probes),
    // with --ca checking it; plain HTTP gets no answer from this server.
    let url = format!("https://{}/healthz", server.addr);
    let (code, out, err) = run_vigil(&["probe", &url], None)?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("200"), "{out}");
    let good_ca = common::path(&good.cert);
    let checked = [
        "probe",
        "--ca",
        &good_ca,
        "--server-name",
        "localhost",
        &url,
    ];
    let (code, out, err) = run_vigil(&checked, None)?;
    assert_eq!(code, 0, "{out}{err}");
    let wrong_ca = common::path(&stranger.cert);
    let (code, _, err) = run_vigil(
        &[
            "probe",
            "--ca",
            &wrong_ca,
            "--server-name",
            "localhost",
            &url,
        ],
        None,
    )?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("certificate"), "{err}");
    let plain = format!("http://{}/healthz", server.addr);
    let (code, _, err) = run_vigil(&["probe", &plain], None)?;
    assert_eq!(code, 1, "plain HTTP to an HTTPS server must fail: {err}");

    let mut https = Https::connect(&server.addr, &tls).await?;
    assert_eq!(https.get("/healthz", None).await?, 200);
    assert_eq!(https.get("/metrics", None).await?, 200, "metrics stay open");
    assert_eq!(https.get("/v1/models", None).await?, 401, "no token");
    assert_eq!(
        https
            .get("/v1/models", Some("not-a-valid-token-at-all"))
            .await?,
        401,
        "a wrong token"
    );
    assert_eq!(
        https.get("/v1/models", Some(&read)).await?,
        200,
        "the token"
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // A client that trusts another certificate refuses the server.
    let refused = Https::connect(&server.addr, &trusting(&stranger.der)?).await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");
    // The server still serves after both.
    let mut again = Https::connect(&server.addr, &tls).await?;
    assert_eq!(again.get("/healthz", None).await?, 200);

    // A SIGTERM with TLS connections open (idle, keep-alive) stops the
    // server cleanly: graceful shutdown closes them rather than waiting.
    let code = tokio::task::spawn_blocking(move || {
        let code = server.terminate();
        (code, server.log_text())
    })
    .await?;
    assert_eq!(code.0, Some(0), "{}", code.1);
    drop((https, again));
    Ok(())
}

#[tokio::test]
async fn bad_tls_configurations_do_not_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = pair(dir.path(), "server")?;
    let other = pair(dir.path(), "other")?;
    let store = format!("sqlite://{}", common::path(&dir.path().join("audit.db")));
    let cert = common::path(&good.cert);
    let key = common::path(&good.key);
    let other_key = common::path(&other.key);
    let missing = common::path(&dir.path().join("missing.key"));
    let base = [
        "audit",
        "--api-only",
        "--store",
        &store,
        "--http-addr",
        "127.0.0.1:0",
    ];
    let refused = |extra: &[&str], expected: &str| -> anyhow::Result<()> {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, out, err) = run_vigil(&args, None)?;
        assert_ne!(code, 0, "{extra:?} started: {out}{err}");
        assert!(err.contains(expected), "{extra:?}: {err}");
        Ok(())
    };
    refused(&["--http-tls-cert", &cert], "--http-tls-key")?;
    refused(&["--http-tls-key", &key], "--http-tls-cert")?;
    refused(
        &["--http-tls-cert", &cert, "--http-tls-key", &other_key],
        "does not match",
    )?;
    refused(
        &["--http-tls-cert", &cert, "--http-tls-key", &missing],
        "missing.key",
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&good.key, std::fs::Permissions::from_mode(0o644))?;
        refused(
            &["--http-tls-cert", &cert, "--http-tls-key", &key],
            "readable by others",
        )?;
    }
    Ok(())
}
