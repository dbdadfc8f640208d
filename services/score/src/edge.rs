//! Records an edge agent decided about itself: one decision per record.
//!
//! An agent that sends a record's verdict up marks the telemetry
//! ([`EdgeScored`]; also before its first model, when the verdict says
//! `unscored: no_model`); its verdict reaches `vigil.verdicts` through
//! `vigil push`'s verdict bridge and is *the* decision about the record.
//! By default the scorer therefore leaves such records alone: no second
//! verdict, no state update (`vigil_score_edge_records_skipped_total`).
//! Records whose verdict the agent keeps to itself (`--verdicts
//! anomalies` and a calm record) carry no mark and are scored here as
//! usual.
//!
//! `--shadow-edge PATTERN` (device-id globs, `*` matches any run of
//! characters, comma separated) scores the matching devices' edge-scored
//! records anyway (so the cloud's per-device state follows them too) and
//! compares the cloud's decision with the edge's: every comparison is
//! counted in `vigil_score_shadow_records_total` and every disagreement
//! about `anomaly` in `vigil_score_shadow_disagreements_total`, both by
//! model and the edge's model version, so a stale or tampered edge model
//! shows up; disagreements are logged (rate-limited). The shadow verdict
//! itself is not published: the record keeps one decision, the edge's, on
//! `vigil.verdicts`, and the audit store's identity `(device_id, seq,
//! model, model_version)` never has to hold two verdicts of one version
//! for one record.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use vigil_schemas::{EdgeScored, Telemetry, Verdict};

/// What to do with one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Not edge-scored: score it, publish as usual.
    Cloud,
    /// Edge-scored: leave it.
    Skip,
    /// Edge-scored and shadowed: score it and compare, publish nothing.
    Shadow(&'a EdgeScored),
}

/// Device-id globs: `*` matches any run of characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePatterns(Vec<String>);

impl DevicePatterns {
    /// Patterns from a comma-separated list (empty pieces ignored).
    pub fn parse(list: &str) -> Self {
        DevicePatterns(
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether `device` matches one of the patterns.
    pub fn matches(&self, device: &str) -> bool {
        self.0.iter().any(|p| glob(p.as_bytes(), device.as_bytes()))
    }
}

/// `*`-only glob match, iterative (no recursion, linear backtracking).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The scorer's edge policy and its metrics.
#[derive(Debug, Clone)]
pub struct EdgeRecords {
    shadow: DevicePatterns,
    skipped: IntCounter,
    shadowed: IntCounterVec,
    disagreements: IntCounterVec,
}

impl EdgeRecords {
    /// Shadow-scores the devices matching `shadow`; registers the metrics.
    pub fn register(shadow: DevicePatterns, registry: &Registry) -> prometheus::Result<Self> {
        let skipped = IntCounter::new(
            "vigil_score_edge_records_skipped_total",
            "Records an edge agent scored itself, left unscored here (its verdict is the decision)",
        )?;
        let shadowed = IntCounterVec::new(
            Opts::new(
                "vigil_score_shadow_records_total",
                "Edge-scored records scored again here (--shadow-edge), by model and edge model version",
            ),
            &["model", "edge_version"],
        )?;
        let disagreements = IntCounterVec::new(
            Opts::new(
                "vigil_score_shadow_disagreements_total",
                "Shadow-scored records where the cloud's anomaly flag differs from the edge's, by model and edge model version",
            ),
            &["model", "edge_version"],
        )?;
        registry.register(Box::new(skipped.clone()))?;
        registry.register(Box::new(shadowed.clone()))?;
        registry.register(Box::new(disagreements.clone()))?;
        Ok(EdgeRecords {
            shadow,
            skipped,
            shadowed,
            disagreements,
        })
    }

    /// What to do with `record` (counts the skipped ones).
    pub fn decide<'a>(&self, record: &'a Telemetry) -> Decision<'a> {
        match &record.edge {
            None => Decision::Cloud,
            Some(edge) if self.shadow.matches(&record.device_id) => Decision::Shadow(edge),
            Some(_) => {
                self.skipped.inc();
                Decision::Skip
            }
        }
    }

    /// Counts the comparison of the edge's decision about `device`'s
    /// record with the cloud's `verdict`; true when they disagree.
    pub fn compare(&self, device: &str, edge: &EdgeScored, verdict: &Verdict) -> bool {
        let version = edge
            .model_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        let labels = [edge.model.as_str(), version.as_str()];
        self.shadowed.with_label_values(&labels).inc();
        // Only two decisions disagree; an unscored side made none.
        let disagree = edge.model_version.is_some()
            && verdict.model_version.is_some()
            && verdict.anomaly != edge.anomaly;
        if disagree {
            let counter = self.disagreements.with_label_values(&labels);
            counter.inc();
            // The first few, then one in a thousand.
            let n = counter.get();
            if n <= 10 || n % 1000 == 0 {
                tracing::warn!(device, seq = verdict.seq, model = %edge.model,
                    edge_version = edge.model_version, edge_anomaly = edge.anomaly,
                    cloud_version = ?verdict.model_version, cloud_anomaly = verdict.anomaly,
                    disagreements = n, "edge and cloud disagree about a record");
            }
        }
        disagree
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vigil_schemas::ScoredAt;

    use super::*;

    #[test]
    fn globs_match_whole_ids() {
        let p = DevicePatterns::parse("edge-*, pump-1,*-x-*");
        for (id, want) in [
            ("edge-7", true),
            ("edge-", true),
            ("xedge-7", false),
            ("pump-1", true),
            ("pump-12", false),
            ("a-x-b", true),
            ("a-y-b", false),
        ] {
            assert_eq!(p.matches(id), want, "{id}");
        }
        assert!(!DevicePatterns::parse("").matches("anything"));
        assert!(DevicePatterns::parse("*").matches("anything"));
    }

    fn record(device: &str, edge: Option<bool>) -> Telemetry {
        let mut t = Telemetry::new(device, 1, 5, BTreeMap::from([("t".to_owned(), 1.0)]));
        t.edge = edge.map(|anomaly| EdgeScored {
            model: "default".into(),
            model_version: Some(3),
            anomaly,
        });
        t
    }

    #[test]
    fn edge_records_are_skipped_unless_shadowed_and_disagreements_counted() {
        let registry = Registry::new();
        let policy =
            EdgeRecords::register(DevicePatterns::parse("shadow-*"), &registry).expect("register");
        assert_eq!(policy.decide(&record("edge-1", None)), Decision::Cloud);
        assert_eq!(policy.decide(&record("edge-1", Some(true))), Decision::Skip);
        let shadowed = record("shadow-1", Some(true));
        let Decision::Shadow(edge) = policy.decide(&shadowed) else {
            panic!("not shadowed")
        };
        let mut verdict =
            vigil_model::Scorer::new("default", 4).score(&shadowed, None, 9, ScoredAt::Cloud);
        verdict.model_version = Some(3);
        verdict.anomaly = false;
        assert!(policy.compare("shadow-1", edge, &verdict));
        verdict.anomaly = true;
        assert!(!policy.compare("shadow-1", edge, &verdict));
        assert_eq!(policy.skipped.get(), 1);
        assert_eq!(
            policy.shadowed.with_label_values(&["default", "3"]).get(),
            2
        );
        assert_eq!(
            policy
                .disagreements
                .with_label_values(&["default", "3"])
                .get(),
            1
        );
    }
}
