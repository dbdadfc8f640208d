//! The demo's incidents: `vigil actions` with the default rules
//! (`demo/actions-rules.toml`), a small webhook receiver on 127.0.0.1 that
//! counts deliveries, and the figures the summary reports (incidents
//! opened and resolved, actions taken, command results, webhook
//! deliveries, beside the anomalous verdicts they came from).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The default rules, as shipped.
pub const DEFAULT_RULES: &str = include_str!("../actions-rules.toml");
/// What the rules file says where the receiver's address goes.
const RECEIVER_PLACEHOLDER: &str = "http://demo-receiver";

/// Writes the default rules into `dir` with the receiver at `receiver`;
/// the file's path.
pub fn write_rules(dir: &Path, receiver: SocketAddr) -> anyhow::Result<PathBuf> {
    let path = dir.join("actions-rules.toml");
    let text = DEFAULT_RULES.replace(RECEIVER_PLACEHOLDER, &format!("http://{receiver}"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Deliveries the receiver took.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Deliveries {
    /// Requests received.
    pub requests: u64,
    /// Distinct `Idempotency-Key`s among them (one per action).
    pub distinct: u64,
}

/// A webhook receiver on 127.0.0.1 answering 200 to every request and
/// counting them.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<(u64, BTreeSet<String>)>>,
}

impl Receiver {
    /// Starts it; it runs until the process ends.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen: Arc<Mutex<(u64, BTreeSet<String>)>> = Arc::default();
        let counts = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = Arc::clone(&counts);
                tokio::spawn(answer(stream, counts));
            }
        });
        Ok(Self { addr, seen })
    }

    /// Deliveries so far.
    pub fn deliveries(&self) -> Deliveries {
        self.seen
            .lock()
            .map(|c| Deliveries {
                requests: c.0,
                distinct: c.1.len() as u64,
            })
            .unwrap_or_default()
    }
}

/// Reads one HTTP/1.1 request (headers and a `Content-Length` body),
/// counts it with its `Idempotency-Key` (before answering, so a sender
/// that got its 200 is counted), answers 200 and closes.
async fn answer(
    mut stream: tokio::net::TcpStream,
    counts: Arc<Mutex<(u64, BTreeSet<String>)>>,
) -> Option<()> {
    const MAX: usize = 1024 * 1024;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length.min(MAX) {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let key = header(&head, "idempotency-key")
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut c) = counts.lock() {
        c.0 += 1;
        c.1.insert(key);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
        .ok()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// What the actions role did, from its `/metrics`, and the deliveries.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct IncidentsSummary {
    /// Incidents opened and resolved (events written).
    pub opened: u64,
    pub resolved: u64,
    /// Actions by kind/status (`command/sent`, `webhook/delivered`, …).
    pub actions: BTreeMap<String, u64>,
    /// Command results joined, by outcome (`ok`, `failed`, `refused`, …).
    pub results: BTreeMap<String, u64>,
    /// Requests the demo's webhook receiver took.
    pub webhook_deliveries: Deliveries,
    /// Anomalous verdicts of the run, for comparison: an incident groups
    /// many.
    pub anomalous_verdicts: u64,
}

impl IncidentsSummary {
    /// From the actions role's metrics text.
    pub fn from_metrics(text: &str, deliveries: Deliveries, anomalous_verdicts: u64) -> Self {
        let mut s = IncidentsSummary {
            webhook_deliveries: deliveries,
            anomalous_verdicts,
            ..Self::default()
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let n = value as u64;
            let label = |name: &str| {
                let key = format!("{name}=\"");
                let start = series.find(&key)? + key.len();
                series[start..].split('"').next()
            };
            if series.starts_with("vigil_actions_incident_events_total{") {
                match label("state") {
                    Some("opened") => s.opened += n,
                    Some("resolved") => s.resolved += n,
                    _ => {}
                }
            } else if series.starts_with("vigil_actions_actions_total{") {
                if let (Some(kind), Some(status)) = (label("kind"), label("status")) {
                    *s.actions.entry(format!("{kind}/{status}")).or_default() += n;
                }
            } else if series.starts_with("vigil_actions_command_results_total{") {
                if let Some(outcome) = label("outcome") {
                    *s.results.entry(outcome.to_owned()).or_default() += n;
                }
            }
        }
        s
    }

    /// One line for the terminal.
    pub fn human(&self) -> String {
        format!(
            "  incidents opened {} | resolved {} (from {} anomalous verdicts) | actions {:?} | command results {:?} | webhook deliveries {}",
            self.opened,
            self.resolved,
            self.anomalous_verdicts,
            self.actions,
            self.results,
            self.webhook_deliveries.requests
        )
    }
}

/// The actions role's `/metrics` text ("" when it does not answer).
pub async fn scrape(addr: SocketAddr) -> String {
    match reqwest::get(format!("http://{addr}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_are_valid_with_the_receiver_in_place() {
        let dir = tempfile::tempdir().expect("dir");
        let addr: SocketAddr = "127.0.0.1:18999".parse().expect("addr");
        let path = write_rules(dir.path(), addr).expect("written");
        let rules = vigil_actions::rules::Rules::load(&path).expect("valid");
        let hook = rules
            .rules
            .iter()
            .flat_map(|r| &r.webhooks)
            .next()
            .expect("a webhook");
        assert_eq!(hook.url, "http://127.0.0.1:18999/incidents");
        assert!(rules.rules.iter().any(|r| !r.commands.is_empty()));
    }

    #[test]
    fn figures_come_from_the_metrics() {
        let text = "# HELP x\n\
            vigil_actions_incident_events_total{state=\"opened\"} 3\n\
            vigil_actions_incident_events_total{state=\"updated\"} 9\n\
            vigil_actions_incident_events_total{state=\"resolved\"} 2\n\
            vigil_actions_actions_total{kind=\"command\",status=\"sent\"} 2\n\
            vigil_actions_command_results_total{outcome=\"refused\"} 2\n";
        let s = IncidentsSummary::from_metrics(text, Deliveries::default(), 40);
        assert_eq!((s.opened, s.resolved, s.anomalous_verdicts), (3, 2, 40));
        assert_eq!(s.actions.get("command/sent"), Some(&2));
        assert_eq!(s.results.get("refused"), Some(&2));
    }

    #[tokio::test]
    async fn the_receiver_counts_deliveries_and_actions() {
        let r = Receiver::start().await.expect("starts");
        let client = reqwest::Client::new();
        for key in ["a", "a", "b"] {
            let status = client
                .post(format!("http://{}/incidents", r.addr))
                .header("idempotency-key", key)
                .body("{\"x\":1}")
                .send()
                .await
                .expect("answered")
                .status();
            assert_eq!(status, 200);
        }
        assert_eq!(
            r.deliveries(),
            Deliveries {
                requests: 3,
                distinct: 2
            }
        );
    }
}
