//! The end-of-run summary: what the fleet sent and what came back (from
//! the load generator's measurement), what the services counted, and the
//! model versions rolled out to the scorer and the edge devices.

use std::collections::BTreeMap;

use serde::Serialize;
use vigil_loadgen::run::Report;

use crate::status::Cloud;
use crate::watch::{EdgeView, Pushed};

/// Version of the summary's JSON layout.
pub const SUMMARY_SCHEMA: u32 = 1;

/// Why the demo stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoppedBy {
    /// `--duration` ran out (the verdicts were drained).
    Duration,
    /// Ctrl-C / SIGTERM (publishing stopped at once, then the verdicts in
    /// flight were drained as after `--duration`).
    Signal,
}

/// Latency from a record's event time to its verdict read back, ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Detection quality on the cloud-scored devices, against the injected
/// anomalies (event-wise; see loadgen/REPORT.md).
#[derive(Debug, Clone, Serialize)]
pub struct DetectionSummary {
    /// Anomaly episodes injected wholly after the first model and before
    /// the end (see loadgen/REPORT.md).
    pub injected: u64,
    /// Of those, flagged by at least one verdict.
    pub detected: u64,
    /// Episodes the run's edges cut (begun before the first model or still
    /// running at the end): not in recall.
    pub cut_episodes: u64,
    /// Of those, flagged in their scored part.
    pub cut_detected: u64,
    /// Per anomaly kind: (episodes, detected).
    pub by_kind: BTreeMap<String, (u64, u64)>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Alarm events that matched no injected episode.
    pub false_alarm_events: u64,
    /// Normal records (outside episodes and their grace) flagged, as a
    /// fraction of all normal records.
    pub normal_flagged: f64,
}

/// Model versions rolled out.
#[derive(Debug, Clone, Serialize)]
pub struct Models {
    /// Releases pushed to the devices (retained MQTT), in order.
    pub pushed: Vec<Pushed>,
    /// The scorer's live version at the end (0: none).
    pub scorer_version: u64,
    /// Edge devices per model version they reported at the end.
    pub edge_devices_by_version: BTreeMap<String, usize>,
}

/// The summary (`--summary FILE`, and printed at the end).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub stopped_by: StoppedBy,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// Cloud-scored and edge devices.
    pub devices: BTreeMap<&'static str, u32>,
    /// Records the cloud-scored fleet sent (QoS 1, acknowledged).
    pub records: u64,
    /// Of those, records with a verdict read back from vigil.verdicts.
    pub verdicts: u64,
    /// Records sent without a verdict.
    pub loss: u64,
    /// Verdicts read more than once (at-least-once delivery).
    pub duplicates: u64,
    /// Verdicts answered before any model was live.
    pub unscored: u64,
    pub latency_ms: Option<Latency>,
    pub detection: Option<DetectionSummary>,
    pub models: Models,
    /// The edge agents' own verdicts, as published over MQTT.
    pub edge: EdgeView,
    /// Edge verdicts published (seen over MQTT) against those the audit
    /// store holds at the end (None: the store could not be read).
    pub edge_audit: Option<crate::edge_audit::EdgeAudit>,
    /// The services' counters at the end (their /metrics).
    pub services: Cloud,
    /// What `vigil actions` did with the anomalies (None: not measured).
    pub incidents: Option<crate::incidents::IncidentsSummary>,
    /// Memory at the end of the run, before the services stop, KiB
    /// (this process by allocator, and the brokers).
    pub memory: crate::memory::Sample,
    /// The kept data directory (None: a temporary one, removed).
    pub data_dir: Option<String>,
    /// The load generator's full report (loadgen/REPORT.md).
    pub fleet: Report,
}

impl Summary {
    /// Builds the summary from what was measured.
    pub fn new(
        stopped_by: StoppedBy,
        devices: (u32, u32),
        fleet: Report,
        services: Cloud,
        edge: EdgeView,
    ) -> Self {
        let verdicts = fleet.verdicted.unwrap_or(0);
        Self {
            schema: SUMMARY_SCHEMA,
            stopped_by,
            seconds: 0.0,
            devices: BTreeMap::from([("cloud", devices.0), ("edge", devices.1)]),
            records: fleet.sent,
            verdicts,
            loss: fleet.lost.unwrap_or(fleet.sent.saturating_sub(verdicts)),
            duplicates: fleet.duplicates.unwrap_or(0),
            unscored: fleet.verdicts.as_ref().map_or(0, |v| v.unscored),
            latency_ms: fleet.latency_ms.map(|p| Latency {
                p50: p.p50,
                p99: p.p99,
                max: p.max,
            }),
            detection: fleet.detection.as_ref().map(|d| DetectionSummary {
                injected: d.episodes,
                detected: d.detected,
                cut_episodes: d.cut_episodes,
                cut_detected: d.cut_detected,
                by_kind: d
                    .by_kind
                    .iter()
                    .map(|(k, v)| (k.clone(), (v.episodes, v.detected)))
                    .collect(),
                precision: d.precision,
                recall: d.recall,
                false_alarm_events: d.false_alarm_events,
                normal_flagged: d.false_alarm_rate,
            }),
            models: Models {
                pushed: edge.pushed.clone(),
                scorer_version: services.model_version,
                edge_devices_by_version: edge.devices_by_version(),
            },
            edge,
            edge_audit: None,
            services,
            incidents: None,
            memory: crate::memory::Sample::default(),
            data_dir: None,
            fleet,
        }
    }

    /// A few lines for the terminal.
    pub fn human(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
        let mut out = format!(
            "summary ({:.0} s, stopped by {:?}):\n  records {} | verdicts {} | loss {} | duplicates {} | unscored (before v1) {}\n",
            self.seconds, self.stopped_by, self.records, self.verdicts, self.loss, self.duplicates, self.unscored
        );
        if let Some(l) = &self.latency_ms {
            out += &format!(
                "  latency event → verdict read back: p50 {:.0} ms, p99 {:.0} ms\n",
                l.p50, l.p99
            );
        }
        if let Some(d) = &self.detection {
            out += &format!(
                "  anomalies injected {} | detected {} | precision {} | recall {} | normal records flagged {:.2} %\n",
                d.injected,
                d.detected,
                opt(d.precision),
                opt(d.recall),
                d.normal_flagged * 100.0
            );
            let kinds: Vec<String> = d
                .by_kind
                .iter()
                .map(|(k, (n, found))| format!("{k} {found}/{n}"))
                .collect();
            out += &format!(
                "  detected by kind: {}; cut by the run's edges (not in recall): {} of {} detected\n",
                kinds.join(", "),
                d.cut_detected,
                d.cut_episodes
            );
        }
        let versions: Vec<String> = self
            .models
            .pushed
            .iter()
            .map(|p| format!("v{}", p.version))
            .collect();
        out += &format!(
            "  models rolled out: {} | scorer on v{} | edge devices {:?}\n  edge verdicts {} ({} anomalous)",
            if versions.is_empty() { "none".to_owned() } else { versions.join(", ") },
            self.models.scorer_version,
            self.models.edge_devices_by_version,
            self.edge.verdicts,
            self.edge.anomalies
        );
        if let Some(a) = &self.edge_audit {
            out += &format!(
                "\n  edge verdicts published {} | audited {} | missing {}",
                a.published, a.audited, a.missing
            );
        }
        if let Some(i) = &self.incidents {
            out += "\n";
            out += &i.human();
        }
        out
    }
}
