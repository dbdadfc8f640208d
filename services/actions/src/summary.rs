//! What an incident says about its records: counts, scores, the models
//! and where they scored, the top contributing metrics, and the severity
//! derived from score and duration. Pure functions of the verdicts
//! absorbed; no I/O.

use std::collections::BTreeMap;

use vigil_schemas::{Contribution, Incident, ModelRef, Severity, Verdict};

/// Most model versions an incident lists.
const MAX_MODELS: usize = 8;
/// Most metrics whose shares an incident sums.
const MAX_METRICS: usize = 64;
/// Metrics listed in `top_metrics`.
pub const TOP_METRICS: usize = 3;
/// Durations (event time) at which the severity rises to medium, high,
/// critical whatever the score.
pub const SEVERITY_DURATIONS_MS: [u64; 3] = [60_000, 600_000, 3_600_000];

/// Per-metric sums of shares over an incident's anomalous records.
#[derive(Debug, Clone, Default)]
pub struct MetricShares {
    sums: BTreeMap<String, f64>,
}

impl MetricShares {
    /// Shares as they stand in `incident` (mean × records), for an
    /// incident rebuilt from its last event.
    pub fn from_incident(incident: &Incident) -> Self {
        let n = incident.anomalies.max(1) as f64;
        MetricShares {
            sums: incident
                .top_metrics
                .iter()
                .map(|c| (c.metric.clone(), c.share * n))
                .collect(),
        }
    }

    fn add(&mut self, contributions: &[Contribution]) {
        for c in contributions {
            if !c.share.is_finite() {
                continue;
            }
            if let Some(sum) = self.sums.get_mut(&c.metric) {
                *sum += c.share;
            } else if self.sums.len() < MAX_METRICS {
                self.sums.insert(c.metric.clone(), c.share);
            }
        }
    }

    fn top(&self, records: u64) -> Vec<Contribution> {
        let n = records.max(1) as f64;
        let mut all: Vec<Contribution> = self
            .sums
            .iter()
            .map(|(metric, sum)| Contribution {
                metric: metric.clone(),
                share: sum / n,
            })
            .collect();
        all.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.metric.cmp(&b.metric)));
        all.truncate(TOP_METRICS);
        all
    }
}

/// Adds the anomalous verdict `v` to `incident`; true when the severity
/// rose.
pub fn absorb(incident: &mut Incident, shares: &mut MetricShares, v: &Verdict) -> bool {
    let before = incident.severity;
    incident.anomalies += 1;
    incident.last_seq = incident.last_seq.max(v.seq);
    incident.last_ts = incident.last_ts.max(v.event_ts);
    if v.score.is_finite() && v.score > incident.max_score {
        incident.max_score = v.score;
    }
    incident.model.clone_from(&v.model);
    incident.model_version = v.model_version;
    let model = ModelRef {
        model: v.model.clone(),
        version: v.model_version,
    };
    if !incident.models.contains(&model) && incident.models.len() < MAX_MODELS {
        incident.models.push(model);
    }
    if !incident.scored_at.contains(&v.scored_at) {
        incident.scored_at.push(v.scored_at);
    }
    shares.add(&v.contributions);
    incident.top_metrics = shares.top(incident.anomalies);
    incident.severity = incident.severity.max(severity(
        incident.max_score,
        v.threshold,
        incident.duration_ms(),
    ));
    incident.severity > before
}

/// Severity from the highest score (by its margin over the threshold:
/// under a third of the way to 1 is low, under two thirds medium, else
/// high) and the duration ([`SEVERITY_DURATIONS_MS`]), whichever is
/// higher.
pub fn severity(max_score: f64, threshold: f64, duration_ms: u64) -> Severity {
    let margin = if threshold < 1.0 && threshold.is_finite() {
        ((max_score - threshold) / (1.0 - threshold)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let by_score = if margin < 1.0 / 3.0 {
        Severity::Low
    } else if margin < 2.0 / 3.0 {
        Severity::Medium
    } else {
        Severity::High
    };
    let [medium, high, critical] = SEVERITY_DURATIONS_MS;
    let by_duration = if duration_ms >= critical {
        Severity::Critical
    } else if duration_ms >= high {
        Severity::High
    } else if duration_ms >= medium {
        Severity::Medium
    } else {
        Severity::Low
    };
    by_score.max(by_duration)
}

#[cfg(test)]
mod tests {
    use vigil_schemas::ScoredAt;

    use super::*;

    fn verdict(seq: u64, ts: u64, score: f64, metric: &str) -> Verdict {
        Verdict {
            schema: 1,
            device_id: "d".into(),
            seq,
            event_ts: ts,
            ingest_ts: None,
            scored_ts: ts,
            model: "m".into(),
            model_version: Some(seq / 10),
            score,
            threshold: 0.4,
            anomaly: true,
            alarm: None,
            contributions: vec![Contribution {
                metric: metric.into(),
                share: 1.0,
            }],
            scored_at: ScoredAt::Cloud,
            unscored: None,
        }
    }

    #[test]
    fn severity_rises_with_score_and_duration() {
        assert_eq!(severity(0.45, 0.4, 0), Severity::Low);
        assert_eq!(severity(0.7, 0.4, 0), Severity::Medium);
        assert_eq!(severity(0.95, 0.4, 0), Severity::High);
        assert_eq!(severity(0.45, 0.4, 61_000), Severity::Medium);
        assert_eq!(severity(0.45, 0.4, 3_600_000), Severity::Critical);
        assert_eq!(severity(f64::NAN, 1.0, 0), Severity::Low);
    }

    #[test]
    fn absorbing_counts_models_and_metrics() {
        let mut i = Incident {
            opened_ts: 1_000,
            ..Incident::default()
        };
        let mut shares = MetricShares::default();
        assert!(!absorb(&mut i, &mut shares, &verdict(5, 1_000, 0.5, "a")));
        assert!(absorb(&mut i, &mut shares, &verdict(12, 2_000, 0.99, "b")));
        absorb(&mut i, &mut shares, &verdict(13, 70_000, 0.5, "b"));
        assert_eq!(i.anomalies, 3);
        assert_eq!((i.last_seq, i.last_ts), (13, 70_000));
        assert_eq!(i.max_score, 0.99);
        assert_eq!(i.models.len(), 2);
        assert_eq!(i.top_metrics[0].metric, "b");
        assert!((i.top_metrics[0].share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(i.severity, Severity::High);
        let rebuilt = MetricShares::from_incident(&i);
        assert_eq!(rebuilt.top(3), i.top_metrics);
    }
}
