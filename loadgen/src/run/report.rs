//! The run report: a versioned JSON document (schema in
//! `loadgen/REPORT.md`) and the human summary printed at the end.
//!
//! Version 1 always has the fields ARCHITECTURE.md promises other tools
//! (`sent`, `verdicted`, `lost`, `duplicates`, `offered_rate`,
//! `achieved_rate`, `latency_ms.{p50,p90,p99,p999,max}`,
//! `detection.{precision,recall,f1,by_kind}`); measurement fields are
//! `null` when nothing was measured (`--publish-only`) and detection
//! figures are `null` without ground truth (a replay). Fields may be added
//! within a version, never renamed or removed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use vigil_eval_core::Evaluation;

/// Version of the report layout.
pub const REPORT_SCHEMA: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Layout version, [`REPORT_SCHEMA`].
    pub schema: u32,
    /// `vigil-loadgen` version that wrote it.
    pub tool_version: String,
    /// When publishing started, ms since the epoch (the first intended
    /// send time).
    pub started_ms: u64,
    /// What was run.
    pub config: RunSummary,
    /// Messages handed to MQTT.
    pub sent: u64,
    /// Send slots left empty because the device was silent (missing-data
    /// episodes); the offered rate counts them.
    #[serde(default)]
    pub silent_slots: u64,
    /// Of those, acknowledged by the broker (QoS 1) or written (QoS 0).
    pub acked: u64,
    /// PUBACKs with an error reason.
    pub rejected: u64,
    /// PUBACKs saying "no matching subscribers": the broker dropped the
    /// message (counted in `acked` too).
    #[serde(default)]
    pub unrouted: u64,
    /// MQTT connection errors.
    pub publish_errors: u64,
    /// Intended messages per second.
    pub offered_rate: f64,
    /// Messages sent per second of publishing.
    pub achieved_rate: f64,
    /// Seconds from the first intended send time to the last send.
    pub publish_seconds: f64,
    /// How late the generator handed messages over, ms after their
    /// intended send time.
    pub send_lag_ms: Percentiles,
    /// Sent records with a verdict (null: not measured).
    pub verdicted: Option<u64>,
    /// Sent records without a verdict.
    pub lost: Option<u64>,
    /// Extra verdicts of a record already verdicted.
    pub duplicates: Option<u64>,
    /// Records whose first verdict was read after a later record's of the
    /// same device (absent in reports written before it was counted).
    #[serde(default)]
    pub out_of_order: Option<u64>,
    /// Verdicted records of the run's devices that were never sent.
    pub unexpected: Option<u64>,
    /// The first lost records.
    pub lost_examples: Vec<LostRecord>,
    /// Verdicts per second, first to last verdict read.
    pub verdict_rate: Option<f64>,
    /// Seconds spent waiting for verdicts after the last send.
    pub drain_seconds: Option<f64>,
    /// Verdict counters by kind of stray.
    pub verdicts: Option<VerdictCounts>,
    /// Verdict read time − intended send time, ms.
    pub latency_ms: Option<Percentiles>,
    /// Scorer's scored_ts − intended send time, ms.
    pub scored_latency_ms: Option<Percentiles>,
    /// Where the time goes, hop by hop (verdicts with `ingest_ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops_ms: Option<Hops>,
    /// Verdict read time − intended send time by the minute of the run
    /// the record was sent in (its `ts`), the first 120 minutes; empty
    /// when nothing was measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_by_minute_ms: Vec<MinuteLatency>,
    /// Detection quality against the injected anomalies.
    pub detection: Option<Detection>,
}

/// One minute of the run's latency: the records sent in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinuteLatency {
    /// Minutes from the start of the run (0: the first).
    pub minute: u64,
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl MinuteLatency {
    /// The figures of minute `minute`'s histogram (ms).
    pub fn of(minute: u64, h: &Histogram<u64>) -> Self {
        Self {
            minute,
            count: h.len(),
            p50: h.value_at_quantile(0.5) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            max: h.max() as f64,
        }
    }
}

/// The run's settings, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `fleet` or `replay`.
    pub source: String,
    pub devices: u64,
    pub connections: u64,
    pub qos: u8,
    /// Fleet: send slots scheduled; replay: records.
    pub intended: u64,
    /// Fleet: time between two records of one device, ms.
    pub device_interval_ms: Option<f64>,
    pub seed: Option<u64>,
    pub replay_files: Vec<String>,
    pub speedup: Option<f64>,
    /// `kafka`, `mqtt`, `both`, or null with --publish-only.
    pub verdict_source: Option<String>,
}

/// A lost record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRecord {
    pub device_id: String,
    pub seq: u64,
}

/// Verdicts that were read but not counted, and kinds of counted ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    /// Every verdict read.
    pub received: u64,
    /// Event time before the run started (an earlier run).
    pub stale: u64,
    /// Not one of the run's devices, or a seq it cannot have sent.
    pub foreign: u64,
    /// Not a valid verdict message.
    pub undecodable: u64,
    /// Counted verdicts with no score (no model yet).
    pub unscored: u64,
    /// Counted verdicts scored on the device.
    pub edge: u64,
}

/// Latency by hop, ms. Each is a difference of two clocks: the device's
/// (`ts`, for the first hop) and the services' (`ingest_ts`, `scored_ts`),
/// and the load generator's read time; on one machine they are one clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hops {
    /// `ingest_ts − ts`: MQTT publish, broker, ingest's receive.
    pub event_to_ingest: Percentiles,
    /// `scored_ts − ingest_ts`: Kafka produce and fetch, scoring.
    pub ingest_to_scored: Percentiles,
    /// Read time − `scored_ts`: verdict produce and the reader's fetch.
    pub scored_to_read: Percentiles,
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of values in `unit`s, scaled by `to_ms`.
    pub fn of(h: &Histogram<u64>, to_ms: f64) -> Self {
        let q = |q: f64| h.value_at_quantile(q) as f64 * to_ms;
        Self {
            count: h.len(),
            mean: h.mean() * to_ms,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 * to_ms,
        }
    }
}

/// Detection quality. Event-wise: a ground-truth episode counts once
/// (detected when any of its records is flagged), and a run of
/// consecutive flagged records is one alarm event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Injected episodes wholly inside the scored records.
    pub episodes: u64,
    /// Of those, detected.
    pub detected: u64,
    /// Episodes the scored range cuts (begun before the first model, or
    /// still running at the end); not in recall.
    #[serde(default)]
    pub cut_episodes: u64,
    /// Of those, detected in their scored part.
    #[serde(default)]
    pub cut_detected: u64,
    /// True alarm events / all alarm events (outside grace periods).
    pub precision: Option<f64>,
    /// detected / episodes.
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// Record-wise: flagged episode records / all flagged records.
    pub record_precision: Option<f64>,
    /// Alarm events that touch an episode.
    pub alarm_events: u64,
    /// Alarm events outside every episode.
    pub false_alarm_events: u64,
    /// Flagged normal records / normal records.
    pub false_alarm_rate: f64,
    /// Device-hours of telemetry sent.
    pub device_hours: f64,
    /// false_alarm_events / device_hours.
    pub false_alarms_per_device_hour: Option<f64>,
    /// Mean records from an episode's first record to its first flag.
    pub mean_delay_records: Option<f64>,
    /// The same in ms (records × the device interval; fleet only).
    pub mean_delay_ms: Option<f64>,
    /// Per anomaly kind.
    pub by_kind: BTreeMap<String, KindDetection>,
}

/// Detection of one anomaly kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindDetection {
    pub episodes: u64,
    pub detected: u64,
    pub recall: f64,
    /// This kind's true alarm events against all false alarm events.
    pub precision: f64,
    pub f1: f64,
    pub alarm_events: u64,
    pub mean_delay_records: Option<f64>,
    pub mean_delay_ms: Option<f64>,
}

impl Detection {
    /// From the shared evaluation; `interval_ms` converts record delays to
    /// time, `device_hours` normalises false alarms.
    pub fn from_evaluation(ev: &Evaluation, interval_ms: Option<f64>, device_hours: f64) -> Self {
        let ms = |records: Option<f64>| Some(records? * interval_ms?);
        Self {
            episodes: ev.episodes,
            detected: ev.detected,
            cut_episodes: ev.cut_episodes,
            cut_detected: ev.cut_detected,
            precision: ev.event_precision,
            recall: ev.detection_rate,
            f1: ev.event_f1(),
            record_precision: ev.precision,
            alarm_events: ev.alarm_events,
            false_alarm_events: ev.false_alarm_events,
            false_alarm_rate: ev.false_alarm_rate,
            device_hours,
            false_alarms_per_device_hour: (device_hours > 0.0)
                .then(|| ev.false_alarm_events as f64 / device_hours),
            mean_delay_records: ev.mean_detection_delay,
            mean_delay_ms: ms(ev.mean_detection_delay),
            by_kind: ev
                .by_kind
                .iter()
                .map(|(kind, k)| {
                    (
                        kind.clone(),
                        KindDetection {
                            episodes: k.episodes,
                            detected: k.detected,
                            recall: k.recall,
                            precision: k.event_precision,
                            f1: k.event_f1,
                            alarm_events: k.alarm_events,
                            mean_delay_records: k.mean_delay,
                            mean_delay_ms: ms(k.mean_delay),
                        },
                    )
                })
                .collect(),
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

impl Report {
    /// The summary printed on stdout.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(
            s,
            "vigil-loadgen run: {} devices ({}), {} connections, QoS {}",
            c.devices, c.source, c.connections, c.qos
        );
        let _ = writeln!(
            s,
            "published  {} sent, {} acked, {} rejected, {} connection errors in {:.1} s",
            self.sent, self.acked, self.rejected, self.publish_errors, self.publish_seconds
        );
        if self.unrouted > 0 {
            let _ = writeln!(
                s,
                "           {} acknowledged with \"no matching subscribers\": dropped by the broker",
                self.unrouted
            );
        }
        if self.silent_slots > 0 {
            let _ = writeln!(
                s,
                "           {} send slots empty (devices silent in missing-data episodes)",
                self.silent_slots
            );
        }
        let _ = writeln!(
            s,
            "throughput offered {:.0} msg/s, achieved {:.0} msg/s; send lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.offered_rate,
            self.achieved_rate,
            self.send_lag_ms.p50,
            self.send_lag_ms.p99,
            self.send_lag_ms.max
        );
        let Some(verdicted) = self.verdicted else {
            let _ = writeln!(s, "verdicts   not measured (--publish-only)");
            return s;
        };
        let _ = writeln!(
            s,
            "verdicts   {verdicted} verdicted, {} lost, {} duplicates, {} out of order, {} unexpected; {} msg/s; drained in {} s",
            self.lost.unwrap_or(0),
            self.duplicates.unwrap_or(0),
            self.out_of_order.unwrap_or(0),
            self.unexpected.unwrap_or(0),
            opt(self.verdict_rate, 0),
            opt(self.drain_seconds, 1),
        );
        if let Some(v) = &self.verdicts {
            if v.stale + v.foreign + v.undecodable + v.unscored > 0 {
                let _ = writeln!(
                    s,
                    "           ignored {} stale, {} foreign, {} undecodable; {} unscored (no model)",
                    v.stale, v.foreign, v.undecodable, v.unscored
                );
            }
        }
        if !self.lost_examples.is_empty() {
            let list: Vec<String> = self
                .lost_examples
                .iter()
                .take(5)
                .map(|l| format!("{}#{}", l.device_id, l.seq))
                .collect();
            let _ = writeln!(s, "           lost e.g. {}", list.join(", "));
        }
        if let Some(l) = &self.latency_ms {
            let _ = writeln!(
                s,
                "latency    publish→verdict ms: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  ({} records)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            );
        }
        if let Some(h) = &self.hops_ms {
            let _ = writeln!(
                s,
                "hops       p50/p99 ms: event→ingest {:.0}/{:.0}  ingest→scored {:.0}/{:.0}  scored→read {:.0}/{:.0}",
                h.event_to_ingest.p50,
                h.event_to_ingest.p99,
                h.ingest_to_scored.p50,
                h.ingest_to_scored.p99,
                h.scored_to_read.p50,
                h.scored_to_read.p99
            );
        }
        if self.latency_by_minute_ms.len() > 1 {
            let minutes: Vec<String> = self
                .latency_by_minute_ms
                .iter()
                .map(|m| format!("{}:{:.0}", m.minute + 1, m.p99))
                .collect();
            let _ = writeln!(s, "per minute p99 ms: {}", minutes.join("  "));
        }
        if let Some(d) = &self.detection {
            let _ = writeln!(
                s,
                "detection  {} of {} episodes (and {} of {} cut by the run's edges); precision {}  recall {}  F1 {}; {} false alarms ({} per device-hour); mean delay {} records",
                d.detected,
                d.episodes,
                d.cut_detected,
                d.cut_episodes,
                opt(d.precision, 3),
                opt(d.recall, 3),
                opt(d.f1, 3),
                d.false_alarm_events,
                opt(d.false_alarms_per_device_hour, 3),
                opt(d.mean_delay_records, 1),
            );
            if !d.by_kind.is_empty() {
                let _ = writeln!(
                    s,
                    "  {:<20} {:>8} {:>8} {:>7} {:>9} {:>7} {:>12}",
                    "kind", "episodes", "detected", "recall", "precision", "F1", "delay (rec)"
                );
                for (kind, k) in &d.by_kind {
                    let _ = writeln!(
                        s,
                        "  {:<20} {:>8} {:>8} {:>7.3} {:>9.3} {:>7.3} {:>12}",
                        kind,
                        k.episodes,
                        k.detected,
                        k.recall,
                        k.precision,
                        k.f1,
                        opt(k.mean_delay_records, 1)
                    );
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut h = Histogram::<u64>::new_with_max(3_600_000, 3).expect("histogram");
        for v in 1..=1000 {
            h.record(v).expect("in range");
        }
        let latency = Percentiles::of(&h, 1.0);
        let mut by_kind = BTreeMap::new();
        by_kind.insert(
            "spike".to_owned(),
            KindDetection {
                episodes: 2,
                detected: 1,
                recall: 0.5,
                precision: 1.0,
                f1: 2.0 / 3.0,
                alarm_events: 1,
                mean_delay_records: Some(0.0),
                mean_delay_ms: Some(0.0),
            },
        );
        Report {
            schema: REPORT_SCHEMA,
            tool_version: "0.1.0".into(),
            started_ms: 1,
            config: RunSummary {
                source: "fleet".into(),
                devices: 10,
                connections: 2,
                qos: 1,
                intended: 100,
                device_interval_ms: Some(100.0),
                seed: Some(1),
                replay_files: Vec::new(),
                speedup: None,
                verdict_source: Some("kafka".into()),
            },
            sent: 100,
            silent_slots: 0,
            acked: 100,
            rejected: 0,
            unrouted: 0,
            publish_errors: 0,
            offered_rate: 100.0,
            achieved_rate: 99.5,
            publish_seconds: 1.0,
            send_lag_ms: latency,
            verdicted: Some(99),
            lost: Some(1),
            duplicates: Some(0),
            out_of_order: Some(0),
            unexpected: Some(0),
            lost_examples: vec![LostRecord {
                device_id: "dev-00001".into(),
                seq: 3,
            }],
            verdict_rate: Some(99.0),
            drain_seconds: Some(0.5),
            verdicts: None,
            latency_ms: Some(latency),
            scored_latency_ms: Some(latency),
            hops_ms: Some(Hops {
                event_to_ingest: latency,
                ingest_to_scored: latency,
                scored_to_read: latency,
            }),
            latency_by_minute_ms: vec![MinuteLatency {
                minute: 0,
                count: 10,
                p50: 5.0,
                p99: 9.0,
                max: 9.0,
            }],
            detection: Some(Detection {
                episodes: 2,
                detected: 1,
                cut_episodes: 1,
                cut_detected: 0,
                precision: Some(1.0),
                recall: Some(0.5),
                f1: Some(2.0 / 3.0),
                record_precision: Some(0.9),
                alarm_events: 1,
                false_alarm_events: 0,
                false_alarm_rate: 0.0,
                device_hours: 0.1,
                false_alarms_per_device_hour: Some(0.0),
                mean_delay_records: Some(0.0),
                mean_delay_ms: Some(0.0),
                by_kind,
            }),
        }
    }

    /// The fields other tools rely on (ARCHITECTURE.md, "Outputs other
    /// tools read"), by their JSON names.
    #[test]
    fn json_has_the_promised_fields() {
        let json = serde_json::to_value(report()).expect("serialises");
        assert_eq!(json["schema"], 1);
        for field in [
            "sent",
            "verdicted",
            "lost",
            "duplicates",
            "offered_rate",
            "achieved_rate",
        ] {
            assert!(json[field].is_number(), "{field}: {json}");
        }
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(json["latency_ms"][p].is_number(), "latency_ms.{p}");
        }
        assert_eq!(json["latency_ms"]["p50"], 500.0);
        assert_eq!(json["latency_by_minute_ms"][0]["p99"], 9.0);
        for f in ["precision", "recall", "f1"] {
            assert!(json["detection"][f].is_number(), "detection.{f}");
        }
        assert_eq!(json["detection"]["by_kind"]["spike"]["recall"], 0.5);
        // And it reads back unchanged.
        let back: Report = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, report());
    }

    #[test]
    fn publish_only_reports_null_measurements() {
        let mut r = report();
        r.verdicted = None;
        r.lost = None;
        r.duplicates = None;
        r.latency_ms = None;
        r.detection = None;
        let json = serde_json::to_value(&r).expect("serialises");
        assert!(json["verdicted"].is_null() && json["latency_ms"].is_null());
        assert!(r.summary().contains("not measured"));
    }

    #[test]
    fn summary_names_the_figures() {
        let s = report().summary();
        assert!(s.contains("1 lost"), "{s}");
        assert!(s.contains("p99.9"), "{s}");
        assert!(s.contains("spike"), "{s}");
        assert!(s.contains("dev-00001#3"), "{s}");
    }
}
