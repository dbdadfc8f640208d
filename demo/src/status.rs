//! The one-line status the demo prints every few seconds, read from the
//! services' own `/metrics` (as Prometheus would) and from what the edge
//! devices report over MQTT.

use std::net::SocketAddr;
use std::time::Duration;

use crate::watch::EdgeView;

/// Figures scraped from the services.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Cloud {
    /// Telemetry records ingest got confirmed by Kafka.
    pub ingested: u64,
    /// Verdicts the scorer produced (scored and answered unscored).
    pub verdicts: u64,
    /// Anomalous verdicts.
    pub anomalies: u64,
    /// The scorer's live model version (0: none yet).
    pub model_version: u64,
    /// Records the audit store holds (verdicts written).
    pub audited: u64,
}

/// Scrapes the services' `/metrics`; a service that does not answer
/// leaves its figures at 0.
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    ingest: SocketAddr,
    score: SocketAddr,
    audit: SocketAddr,
}

impl Scraper {
    /// A scraper of the three services' endpoints.
    pub fn new(ingest: SocketAddr, score: SocketAddr, audit: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
            ingest,
            score,
            audit,
        })
    }

    async fn text(&self, addr: SocketAddr) -> String {
        let url = format!("http://{addr}/metrics");
        match self.client.get(&url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Current figures.
    pub async fn scrape(&self) -> Cloud {
        let (ingest, score, audit) = tokio::join!(
            self.text(self.ingest),
            self.text(self.score),
            self.text(self.audit)
        );
        Cloud {
            ingested: sum(&ingest, "vigil_ingest_messages_produced_total") as u64,
            verdicts: (sum(&score, "vigil_score_records_scored_total")
                + sum(&score, "vigil_score_records_unscored_total")) as u64,
            anomalies: sum(&score, "vigil_score_anomalies_total") as u64,
            model_version: sum(&score, "vigil_score_model_version") as u64,
            audited: sum_labelled(&audit, "vigil_audit_rows_written_total", "verdict") as u64,
        }
    }
}

/// Sum of every sample of metric `name` in Prometheus text format.
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).map(|(_, v)| v).sum()
}

/// Sum of the samples of `name` whose labels mention `label_value`.
fn sum_labelled(text: &str, name: &str, label_value: &str) -> f64 {
    let quoted = format!("\"{label_value}\"");
    samples(text, name)
        .filter(|(labels, _)| labels.contains(&quoted))
        .map(|(_, v)| v)
        .sum()
}

fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = if let Some(labelled) = rest.strip_prefix('{') {
            let (labels, value) = labelled.split_once('}')?;
            (labels, value)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            return None;
        };
        Some((labels, value.split_whitespace().next()?.parse().ok()?))
    })
}

/// The status line.
pub fn line(elapsed: Duration, devices: (u32, u32), cloud: &Cloud, edge: &EdgeView) -> String {
    let model = if cloud.model_version == 0 {
        "none yet (warming up)".to_owned()
    } else {
        format!("v{}", cloud.model_version)
    };
    let by_version: Vec<String> = edge
        .devices_by_version()
        .iter()
        .map(|(v, n)| format!("{v}:{n}"))
        .collect();
    format!(
        "[{:>5}s] devices {} cloud + {} edge | records {} | verdicts {} | anomalies {} | audited {} | scorer model {} | edge models {} | edge verdicts {} ({} anomalous)",
        elapsed.as_secs(),
        devices.0,
        devices.1,
        cloud.ingested,
        cloud.verdicts,
        cloud.anomalies,
        cloud.audited,
        model,
        if by_version.is_empty() { "-".to_owned() } else { by_version.join(" ") },
        edge.verdicts,
        edge.anomalies,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x y\n\
        vigil_score_records_scored_total 120\n\
        vigil_score_records_scored_total_extra 7\n\
        vigil_score_model_version{model=\"default\"} 2\n\
        vigil_audit_rows_written_total{kind=\"verdict\"} 10\n\
        vigil_audit_rows_written_total{kind=\"anomaly\"} 3\n";

    #[test]
    fn samples_are_summed_by_exact_name() {
        assert_eq!(sum(TEXT, "vigil_score_records_scored_total"), 120.0);
        assert_eq!(sum(TEXT, "vigil_score_model_version"), 2.0);
        assert_eq!(sum(TEXT, "vigil_missing"), 0.0);
        assert_eq!(
            sum_labelled(TEXT, "vigil_audit_rows_written_total", "verdict"),
            10.0
        );
    }
}
