//! `vigil probe URL`: a health check for containers whose image has no
//! curl. It sends one plain HTTP/1.1 GET over a TCP connection and exits
//! 0 when the answer's status is 2xx within the timeout, or fails with a
//! message saying what went wrong (no connection, a timeout, another
//! status, not HTTP). Only `http://` URLs: the services' health endpoints
//! are plain HTTP on the pod or container itself.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// Arguments of `vigil probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The URL to GET, http://HOST[:PORT][/PATH] (for example
    /// http://127.0.0.1:8080/readyz).
    pub url: String,

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
}

fn parse_url(url: &str) -> anyhow::Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{url}: only http:// URLs can be probed"))?;
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
        None => 80,
    };
    Ok(Target {
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path,
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

/// The status code and reason of the answer to one GET of `url`.
fn get_status(url: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let target = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let mut stream = connect(&target, url, deadline)?;
    stream.set_write_timeout(Some(remaining(deadline, url, "connecting")?))?;
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
        stream.set_read_timeout(Some(remaining(deadline, url, "waiting for the answer")?))?;
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

/// Probes once: `Ok` on a 2xx answer, an error saying why otherwise.
fn check(args: &ProbeArgs) -> anyhow::Result<(u16, String)> {
    let (code, reason) = get_status(&args.url, Duration::from_secs_f64(args.timeout))?;
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
            println!("{} {code} {reason}", args.url);
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
                path: "/readyz".into()
            }
        );
        let t = parse_url("http://localhost").expect("valid");
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
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
            ("https://127.0.0.1/", "only http://"),
            ("127.0.0.1:8080", "only http://"),
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
