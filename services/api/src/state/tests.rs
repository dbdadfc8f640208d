//! Aggregation rules of the dashboard's state.

use std::collections::BTreeMap;

use vigil_schemas::{
    Contribution, DeviceState, DeviceStatus, DlqRecord, ModelRelease, ReleaseHeader, ScoredAt,
    Telemetry, TrainingWindow, ValidationMetrics, Verdict,
};

use super::*;

const NOW: u64 = 1_800_000_000_000;

fn verdict(device: &str, seq: u64, score: f64, version: Option<u64>) -> Verdict {
    Verdict {
        alarm: None,
        schema: 1,
        device_id: device.to_owned(),
        seq,
        event_ts: NOW - 1_000 + seq,
        ingest_ts: Some(NOW - 500),
        scored_ts: NOW - 400,
        model: "default".to_owned(),
        model_version: version,
        score,
        threshold: 0.8,
        anomaly: score >= 0.8,
        contributions: if score >= 0.8 {
            vec![
                Contribution {
                    metric: "temperature_c".into(),
                    share: 0.75,
                },
                Contribution {
                    metric: "current_a".into(),
                    share: 0.25,
                },
            ]
        } else {
            Vec::new()
        },
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

fn status(device: &str, version: Option<u64>, state: DeviceState, ts: u64) -> DeviceStatus {
    DeviceStatus {
        schema: 1,
        device_id: device.to_owned(),
        ts,
        state,
        agent_version: "0.1.0".to_owned(),
        model: "default".to_owned(),
        model_version: version,
        buffered_records: 3,
        buffered_bytes: 300,
        dropped_records: 0,
        last_uplink_ts: Some(ts),
    }
}

fn limits() -> Limits {
    Limits {
        max_devices: 3,
        device_history: 5,
        telemetry_history: 4,
        max_metrics_per_device: 2,
        anomaly_history: 3,
        stale_ms: 60_000,
    }
}

#[test]
fn duplicate_verdicts_change_nothing_and_anomalies_are_pushed_once() {
    let mut s = State::new(limits());
    assert!(s
        .apply_verdict(&verdict("a", 1, 0.1, Some(1)), 0, false, NOW)
        .is_none());
    let first = s.apply_verdict(&verdict("a", 2, 0.9, Some(1)), 0, false, NOW);
    assert!(matches!(first, Some(Event::Anomaly(ref a)) if a.seq == 2));
    // The same anomaly from vigil.anomalies, and a redelivery: no event.
    assert!(s
        .apply_verdict(&verdict("a", 2, 0.9, Some(1)), 0, true, NOW)
        .is_none());
    assert!(s
        .apply_verdict(&verdict("a", 2, 0.9, Some(1)), 0, false, NOW)
        .is_none());
    let d = s.device_detail("a", NOW).expect("known device");
    assert_eq!(d.points.len(), 2);
    assert_eq!(d.summary.verdicts, 2);
    assert_eq!(d.summary.anomalies, 1);
    assert_eq!(d.summary.status, "anomalous");
    assert_eq!(s.anomalies(10).len(), 1);
    let p = s.pipeline(NOW);
    assert_eq!(p.series.iter().map(|x| x.verdicts).sum::<u64>(), 2);
    // vigil.anomalies may deliver an anomaly before vigil.verdicts does:
    // it still counts once in throughput and latency.
    assert!(s
        .apply_verdict(&verdict("a", 3, 0.9, Some(1)), 0, true, NOW)
        .is_some());
    assert!(s
        .apply_verdict(&verdict("a", 3, 0.9, Some(1)), 0, false, NOW)
        .is_none());
    assert!(s
        .apply_verdict(&verdict("a", 3, 0.9, Some(1)), 0, false, NOW)
        .is_none());
    let p = s.pipeline(NOW);
    assert_eq!(p.series.iter().map(|x| x.verdicts).sum::<u64>(), 3);
    assert_eq!(p.series.iter().map(|x| x.anomalies).sum::<u64>(), 2);
    assert_eq!(p.e2e_latency_ms.samples, 3);
}

#[test]
fn device_history_is_bounded_ordered_and_keeps_the_newest() {
    let mut s = State::new(limits());
    for seq in [3, 1, 2, 9, 8, 7, 6, 5, 4] {
        s.apply_verdict(&verdict("a", seq, 0.1, Some(1)), 0, false, NOW);
    }
    let d = s.device_detail("a", NOW).expect("known");
    let seqs: Vec<u64> = d.points.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![5, 6, 7, 8, 9]);
    // A record older than everything kept does not enter a full history.
    s.apply_verdict(&verdict("a", 1, 0.95, Some(1)), 0, false, NOW);
    let d = s.device_detail("a", NOW).expect("known");
    assert_eq!(d.points.first().map(|p| p.seq), Some(5));
    // The latest verdict is the highest seq, whatever the arrival order.
    assert_eq!(d.summary.score, Some(0.1));
}

#[test]
fn a_newer_version_replaces_the_same_record_in_the_chart() {
    let mut s = State::new(limits());
    s.apply_verdict(&verdict("a", 1, 0.2, Some(1)), 0, false, NOW);
    s.apply_verdict(&verdict("a", 1, 0.3, Some(2)), 0, false, NOW);
    s.apply_verdict(&verdict("a", 1, 0.1, Some(1)), 0, false, NOW);
    let d = s.device_detail("a", NOW).expect("known");
    assert_eq!(d.points.len(), 1);
    assert_eq!(d.points[0].model_version, Some(2));
    assert_eq!(d.points[0].score, 0.3);
}

#[test]
fn devices_beyond_the_bound_evict_the_least_recently_seen() {
    let mut s = State::new(limits());
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let mut v = verdict(id, 1, 0.1, Some(1));
        v.scored_ts = NOW - 10_000 + i as u64;
        s.apply_verdict(&v, 0, false, NOW);
    }
    // "a" is heard from again: "b" is now the least recently seen.
    let mut v = verdict("a", 2, 0.1, Some(1));
    v.scored_ts = NOW - 100;
    s.apply_verdict(&v, 0, false, NOW);
    s.apply_verdict(&verdict("d", 1, 0.1, Some(1)), 0, false, NOW);
    assert_eq!(s.device_count(), 3);
    assert_eq!(s.evicted(), 1);
    assert!(s.device_detail("b", NOW).is_none());
    assert!(s.device_detail("a", NOW).is_some());
    assert_eq!(s.overview(NOW, 10).evicted, 1);
}

#[test]
fn eviction_at_the_bound_frees_a_batch_of_the_oldest() {
    let mut s = State::new(Limits {
        max_devices: 640,
        ..Limits::default()
    });
    for i in 0..640u64 {
        let mut v = verdict(&format!("d{i:04}"), 1, 0.1, Some(1));
        v.scored_ts = NOW - 100_000 + i;
        s.apply_verdict(&v, 0, false, NOW);
    }
    s.apply_verdict(&verdict("new", 1, 0.1, Some(1)), 0, false, NOW);
    // 640 / 64 = 10 forgotten at once: d0000..d0009.
    assert_eq!(s.evicted(), 10);
    assert_eq!(s.device_count(), 631);
    assert!(s.device_detail("d0009", NOW).is_none());
    assert!(s.device_detail("d0010", NOW).is_some());
    assert!(s.device_detail("new", NOW).is_some());
}

#[test]
fn the_feed_is_newest_first_and_bounded() {
    let mut s = State::new(limits());
    for seq in 1..=5 {
        s.apply_verdict(&verdict("a", seq, 0.9, Some(1)), 0, true, NOW);
    }
    let feed: Vec<u64> = s.anomalies(10).iter().map(|a| a.seq).collect();
    assert_eq!(feed, vec![5, 4, 3]);
    // Late and older than everything in a full feed: not pushed.
    assert!(s
        .apply_verdict(&verdict("b", 1, 0.9, Some(1)), 0, true, NOW)
        .is_none());
    // Something evicted from the feed can come back only if it is newer
    // than the oldest kept; the key set follows the feed.
    assert_eq!(s.feed_keys.len(), 3);
}

#[test]
fn telemetry_is_bounded_by_samples_and_metrics() {
    let mut s = State::new(limits());
    for seq in 1..=6u64 {
        let metrics: BTreeMap<String, f64> = [
            ("a_metric".to_owned(), seq as f64),
            ("b_metric".to_owned(), 1.0),
            ("c_metric".to_owned(), 2.0),
        ]
        .into();
        let mut t = Telemetry::new("dev", seq, NOW - 100 + seq, metrics);
        t.ingest_ts = Some(NOW - 50);
        s.apply_telemetry(&t, NOW);
    }
    let d = s.device_detail("dev", NOW).expect("known");
    assert_eq!(
        d.telemetry.keys().cloned().collect::<Vec<_>>(),
        vec!["a_metric", "b_metric"]
    );
    let a: Vec<f64> = d.telemetry["a_metric"].iter().map(|(_, v)| *v).collect();
    assert_eq!(a, vec![3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        s.pipeline(NOW)
            .series
            .iter()
            .map(|x| x.telemetry)
            .sum::<u64>(),
        6
    );
}

#[test]
fn status_labels_follow_reports_and_silence() {
    let mut s = State::new(limits());
    s.apply_verdict(&verdict("ok", 1, 0.1, Some(1)), 0, false, NOW);
    let mut old = verdict("quiet", 1, 0.1, Some(1));
    old.scored_ts = NOW - 120_000;
    s.apply_verdict(&old, 0, false, NOW);
    s.apply_status(
        "edge",
        Some(status("edge", Some(2), DeviceState::Online, NOW)),
        NOW,
    );
    s.apply_status(
        "edge",
        Some(status("edge", Some(2), DeviceState::Offline, NOW + 1)),
        NOW + 1,
    );
    // An older report arriving late does not overwrite the newer one.
    assert!(s
        .apply_status(
            "edge",
            Some(status("edge", Some(1), DeviceState::Online, NOW - 5)),
            NOW
        )
        .is_none());
    let o = s.overview(NOW + 1, 10);
    let label = |id: &str| {
        o.devices
            .iter()
            .find(|d| d.device_id == id)
            .map(|d| d.status)
    };
    assert_eq!(label("ok"), Some("ok"));
    assert_eq!(label("quiet"), Some("stale"));
    assert_eq!(label("edge"), Some("offline"));
    assert_eq!(o.counts.total, 3);
    assert_eq!(o.counts.stale, 1);
    assert_eq!(o.counts.offline, 1);
    let edge = o
        .devices
        .iter()
        .find(|d| d.device_id == "edge")
        .expect("edge");
    assert_eq!(edge.scored_at, Some(ScoredAt::Edge));
    assert_eq!(edge.model_version, Some(2));
}

fn release(version: u64) -> ModelRelease {
    let header = ReleaseHeader {
        model: "default".into(),
        version,
        created_ts: NOW - 10_000,
        training: TrainingWindow {
            from_ts: NOW - 100_000,
            to_ts: NOW - 20_000,
            records: 5_000,
            devices: 10,
            source: "kafka:vigil.telemetry".into(),
        },
        validation: ValidationMetrics {
            estimated_false_alarm_rate: None,
            expected_false_alarm_rate: None,
            holdout_records: 1_000,
            false_alarm_rate: 0.01,
            detection_rate: Some(0.9),
            mean_detection_delay: None,
        },
        threshold: 0.8,
    };
    let payload = serde_json::to_string(&header).expect("header encodes");
    ModelRelease {
        schema: 1,
        model: "default".into(),
        version,
        key_id: "k1".into(),
        payload_sha256: "00".into(),
        signature: "sig".into(),
        payload: serde_json::value::RawValue::from_string(payload).expect("raw json"),
    }
}

#[test]
fn rollout_counts_cloud_devices_edge_devices_and_scorer_partitions() {
    let mut s = State::new(Limits::default());
    assert!(s.apply_release(&release(1), Some(NOW - 9_000)).is_some());
    assert!(s.apply_release(&release(2), Some(NOW - 1_000)).is_some());
    // Re-reading the compacted topic after a restart pushes nothing new.
    assert!(s.apply_release(&release(2), Some(NOW - 1_000)).is_none());
    s.apply_verdict(&verdict("c1", 1, 0.1, Some(1)), 0, false, NOW);
    s.apply_verdict(&verdict("c2", 1, 0.1, Some(1)), 1, false, NOW);
    s.apply_verdict(&verdict("c2", 2, 0.1, Some(2)), 1, false, NOW);
    s.apply_status(
        "e1",
        Some(status("e1", Some(2), DeviceState::Online, NOW)),
        NOW,
    );
    s.apply_status(
        "e2",
        Some(status("e2", Some(2), DeviceState::Online, NOW)),
        NOW,
    );
    let rows = s.models();
    let v2 = rows
        .iter()
        .find(|r| r.version == Some(2))
        .expect("version 2");
    let v1 = rows
        .iter()
        .find(|r| r.version == Some(1))
        .expect("version 1");
    assert_eq!(
        rows.first().and_then(|r| r.version),
        Some(2),
        "newest first"
    );
    assert_eq!(
        v2.rollout,
        Rollout {
            cloud_devices: 1,
            edge_devices: 2,
            cloud_partitions: 1
        }
    );
    assert_eq!(
        v1.rollout,
        Rollout {
            cloud_devices: 1,
            edge_devices: 0,
            cloud_partitions: 1
        }
    );
    let provenance = v2.release.as_ref().expect("release known");
    assert_eq!(provenance.threshold, Some(0.8));
    assert_eq!(
        provenance.validation.as_ref().map(|v| v.false_alarm_rate),
        Some(0.01)
    );
}

#[test]
fn pipeline_latency_percentiles_and_rates() {
    let mut s = State::new(Limits::default());
    // 100 verdicts per second for the 10 complete seconds before NOW,
    // each with an event-to-verdict latency of 1..=100 ms.
    let mut seq = 0;
    for sec in 1..=10u64 {
        for i in 1..=100u64 {
            seq += 1;
            let mut v = verdict(&format!("d{}", i % 7), seq, 0.1, Some(1));
            v.scored_ts = NOW - sec * 1_000;
            v.event_ts = v.scored_ts - i;
            v.ingest_ts = Some(v.scored_ts - 2);
            s.apply_verdict(&v, 0, false, NOW);
        }
    }
    let p = s.pipeline(NOW);
    assert_eq!(p.series.len(), WINDOW_SECS as usize);
    assert!(
        (p.verdicts_per_sec - 100.0).abs() < 1e-9,
        "{}",
        p.verdicts_per_sec
    );
    assert_eq!(p.e2e_latency_ms.samples, 1_000);
    assert_eq!(p.e2e_latency_ms.p50, Some(50));
    assert_eq!(p.e2e_latency_ms.p99, Some(99));
    assert_eq!(p.e2e_latency_ms.max, Some(100));
    assert_eq!(p.scoring_latency_ms.p50, Some(2));
    // Event → ingest: the whole minus the 2 ms after ingest.
    assert_eq!(p.ingest_latency_ms.samples, 1_000);
    assert_eq!(p.ingest_latency_ms.p50, Some(48));
    assert_eq!(p.ingest_latency_ms.max, Some(98));
    // Verdicts older than the window are not counted in it.
    let mut old = verdict("d0", 1_000_000, 0.1, Some(1));
    old.scored_ts = NOW - (WINDOW_SECS + 5) * 1_000;
    s.apply_verdict(&old, 0, false, NOW);
    assert_eq!(s.pipeline(NOW).e2e_latency_ms.samples, 1_000);
    // An edge verdict buffered through an outage counts as a verdict, not
    // as scoring latency.
    let mut edge = verdict("edge-1", 1, 0.1, Some(1));
    edge.scored_at = ScoredAt::Edge;
    edge.scored_ts = NOW - 2_000;
    edge.event_ts = edge.scored_ts;
    s.apply_verdict(&edge, 0, false, NOW);
    let p = s.pipeline(NOW);
    assert_eq!(p.e2e_latency_ms.samples, 1_000);
    assert_eq!(p.e2e_latency_ms.max, Some(100));
    assert!(p.verdicts_per_sec > 100.0, "{}", p.verdicts_per_sec);
}

#[test]
fn dlq_reasons_are_counted_and_bounded() {
    let mut s = State::new(Limits::default());
    for i in 0..(MAX_DLQ_REASONS + 10) {
        let r = DlqRecord::new(
            "ingest",
            "mqtt:x".into(),
            &format!("reason_{i}"),
            "detail".into(),
            NOW - 10,
            b"{}",
        );
        s.apply_dlq(&r, NOW);
    }
    let r = DlqRecord::new(
        "ingest",
        "mqtt:x".into(),
        "reason_0",
        "why".into(),
        NOW,
        b"{}",
    );
    s.apply_dlq(&r, NOW);
    let p = s.pipeline(NOW);
    assert_eq!(p.dlq_read, MAX_DLQ_REASONS as u64 + 11);
    assert_eq!(p.dlq.len(), MAX_DLQ_REASONS + 1);
    // Most first: the overflow bucket, then the reason seen twice.
    assert_eq!(p.dlq[0].reason, "other");
    assert_eq!(p.dlq[0].count, 10);
    assert_eq!(p.dlq[1].reason, "reason_0");
    assert_eq!(p.dlq[1].count, 2);
    assert_eq!(p.dlq[1].last_detail, "why");
}

#[test]
fn contributions_are_averaged_over_recent_anomalies() {
    let mut s = State::new(Limits::default());
    s.apply_verdict(&verdict("a", 1, 0.9, Some(1)), 0, false, NOW);
    let mut v = verdict("a", 2, 0.95, Some(1));
    v.contributions = vec![Contribution {
        metric: "current_a".into(),
        share: 1.0,
    }];
    s.apply_verdict(&v, 0, false, NOW);
    let d = s.device_detail("a", NOW).expect("known");
    assert_eq!(d.contributions[0].metric, "current_a");
    assert!((d.contributions[0].share - 0.625).abs() < 1e-9);
    assert_eq!(d.contributions[0].anomalies, 2);
    assert!((d.contributions[1].share - 0.375).abs() < 1e-9);
    assert_eq!(d.anomalies_recent.first().map(|a| a.seq), Some(2));
}

#[test]
fn history_from_the_audit_store_fills_in_older_verdicts() {
    let limits = Limits {
        device_history: 4,
        ..Limits::default()
    };
    let mut s = State::new(limits.clone());
    s.apply_verdict(&verdict("a", 5, 0.1, Some(1)), 0, false, NOW);
    s.apply_verdict(&verdict("a", 6, 0.9, Some(1)), 0, false, NOW);
    let history: Vec<Verdict> = (1..=6)
        .map(|seq| verdict("a", seq, if seq == 2 { 0.95 } else { 0.2 }, Some(1)))
        .collect();
    let live = s.device_detail("a", NOW);
    let d = with_history(live, "a", &history, &limits).expect("known");
    let seqs: Vec<u64> = d.points.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6], "newest 4 by seq");
    // The live verdict for seq 6 (an anomaly) is kept, not the store's copy.
    assert!(d.points[3].anomaly);
    let anomalies: Vec<u64> = d.anomalies_recent.iter().map(|a| a.seq).collect();
    assert_eq!(anomalies, vec![6, 2], "newest first, from both");
    assert_eq!(d.summary.status, "anomalous");

    // A device only the store knows.
    let d = with_history(None, "gone", &[verdict("gone", 9, 0.3, Some(2))], &limits)
        .expect("from history");
    assert_eq!(d.summary.status, "stale");
    assert_eq!(d.summary.model_version, Some(2));
    assert_eq!(d.points.len(), 1);
    assert!(with_history(None, "none", &[], &limits).is_none());
}

#[test]
fn the_feed_has_one_entry_per_alarm() {
    use vigil_schemas::{Alarm, AlarmState};
    let mut s = State::new(limits());
    let in_alarm = |seq: u64, state: AlarmState| {
        let mut v = verdict(
            "a",
            seq,
            if state == AlarmState::Closed {
                0.1
            } else {
                0.9
            },
            Some(1),
        );
        v.anomaly = state != AlarmState::Closed;
        v.alarm = Some(Alarm {
            id: Alarm::id_for("a", 10),
            opened_seq: 10,
            opened_ts: NOW,
            state,
        });
        v
    };
    let opened = s.apply_verdict(&in_alarm(10, AlarmState::Opened), 0, false, NOW);
    assert!(matches!(opened, Some(Event::Anomaly(ref a)) if a.alarm_id.as_deref() == Some("a@10")));
    for seq in 11..=13 {
        assert!(s
            .apply_verdict(&in_alarm(seq, AlarmState::Ongoing), 0, false, NOW)
            .is_none());
    }
    assert!(s
        .apply_verdict(&in_alarm(14, AlarmState::Closed), 0, false, NOW)
        .is_none());
    assert_eq!(s.anomalies(10).len(), 1);
    let d = s.device_detail("a", NOW).expect("known device");
    assert_eq!(d.summary.anomalies, 1, "alarms, not records");
    assert_eq!(d.summary.status, "ok", "the last verdict closed the alarm");
}
