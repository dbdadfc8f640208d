//! The scoring contract: unscored before a model, the "training way" and the
//! "scoring way" agree bit for bit, hot swaps, determinism of verdict JSON.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use vigil_model::{
    sign, verify, InstallError, Installed, Model, Scorer, SigningKey, VerifiedModel,
};
use vigil_schemas::{Message, ScoredAt, Telemetry, UnscoredReason};

fn verified(payload: vigil_model::ReleasePayload) -> Arc<VerifiedModel> {
    let key = SigningKey::from_bytes(&[1; 32]);
    let release = sign(&payload, &key).expect("sign");
    Arc::new(verify(&release, &key.verifying_key()).expect("verify"))
}

#[test]
fn records_before_any_model_get_unscored_verdicts() {
    let mut scorer = Scorer::new("default", 16);
    let rec = &common::stream(1, 1, 3)[0];
    let v = scorer.score(rec, Some(5), 9, ScoredAt::Cloud);
    assert_eq!(v.model_version, None);
    assert!(!v.anomaly);
    assert_eq!(v.unscored, Some(UnscoredReason::NoModel));
    assert_eq!(v.model, "default");
    assert_eq!((v.ingest_ts, v.scored_ts, v.event_ts), (Some(5), 9, rec.ts));
    Telemetry::decode(&rec.encode().expect("encode")).expect("valid input");
    vigil_schemas::Verdict::decode(&v.encode().expect("encode")).expect("valid verdict");
    assert_eq!(scorer.stats().unscored, 1);
    assert_eq!(scorer.devices(), 0, "no state without a model");
}

#[test]
fn training_way_and_scoring_way_are_bit_identical() {
    let model = verified(common::payload(1));
    let records = common::stream(5, 400, 42);

    // Scoring way: interleaved devices, one record at a time, through the
    // same Scorer the services use.
    let mut scorer = Scorer::new("default", 64);
    scorer.install(model.clone()).expect("install");
    let mut streamed: HashMap<String, Vec<u64>> = HashMap::new();
    let mut anomalies = 0;
    for r in &records {
        let v = scorer.score(r, None, 0, ScoredAt::Edge);
        anomalies += usize::from(v.anomaly);
        streamed
            .entry(r.device_id.clone())
            .or_default()
            .push(v.score.to_bits());
    }
    assert!(
        anomalies > 0,
        "the fixture has spikes; some must be flagged"
    );

    // Training way: per device, the stored stream as a batch (all features,
    // then all scores), with an independently built model.
    let batch_model = Model::from_payload(common::payload(1)).expect("model");
    let mut by_device: BTreeMap<&str, Vec<&Telemetry>> = BTreeMap::new();
    for r in &records {
        by_device.entry(&r.device_id).or_default().push(r);
    }
    for (device, recs) in by_device {
        let batch: Vec<u64> = batch_model
            .score_series(recs.iter().copied())
            .iter()
            .map(|s| s.score.to_bits())
            .collect();
        assert_eq!(streamed[device], batch, "device {device}");
    }
}

#[test]
fn verdict_json_is_reproducible_byte_for_byte() {
    let run = || {
        let mut scorer = Scorer::new("default", 64);
        scorer
            .install(verified(common::payload(1)))
            .expect("install");
        common::stream(3, 300, 7)
            .iter()
            .map(|r| scorer.score(r, Some(r.ts + 1), r.ts + 2, ScoredAt::Edge))
            .map(|v| v.encode().expect("encode"))
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    // A flagged verdict carries contributions whose shares are rounded.
    let flagged = a
        .iter()
        .map(|b| vigil_schemas::Verdict::decode(b).expect("valid"))
        .find(|v| v.anomaly)
        .expect("some anomaly");
    assert!(!flagged.contributions.is_empty());
    let total: f64 = flagged.contributions.iter().map(|c| c.share).sum();
    assert!(total <= 1.0 + 1e-9 && total > 0.0);
}

#[test]
fn hot_swap_keeps_state_when_compatible_and_resets_when_not() {
    let mut scorer = Scorer::new("default", 64);
    assert_eq!(
        scorer.install(verified(common::payload(1))).expect("v1"),
        Installed::First
    );
    let records = common::stream(2, 100, 9);
    for r in &records {
        assert_eq!(
            scorer.score(r, None, 0, ScoredAt::Cloud).model_version,
            Some(1)
        );
    }
    let before = scorer.device_state("dev-0").expect("state").clone();

    // Same spec, new detector: state carries over, verdicts say v2.
    let mut p2 = common::payload(2);
    if let vigil_model::Detector::Pca { raw_scale, .. } = &mut p2.detector {
        *raw_scale = 80.0;
    }
    assert_eq!(
        scorer.install(verified(p2)).expect("v2"),
        Installed::StateKept
    );
    assert_eq!(scorer.device_state("dev-0"), Some(&before));
    let next = Telemetry::new("dev-0", 101, 101_000, records[0].metrics.clone());
    assert_eq!(
        scorer.score(&next, None, 0, ScoredAt::Cloud).model_version,
        Some(2)
    );
    let before = scorer.device_state("dev-0").expect("state").clone();

    // Older or equal versions and other models are refused; v2 stays.
    let err = scorer
        .install(verified(common::payload(2)))
        .expect_err("must fail");
    assert!(matches!(err, InstallError::NotNewer(_)), "{err}");
    let mut other = common::payload(9);
    other.header.model = "other".into();
    assert!(matches!(
        scorer.install(verified(other)),
        Err(InstallError::WrongModel { .. })
    ));
    assert_eq!(scorer.model().map(|m| m.version()), Some(2));

    // One metric fewer, same windows: remaining metrics keep their state.
    let mut p3 = common::payload(3);
    p3.features.metrics.remove(0);
    if let Some(r) = p3.novelty.as_mut().and_then(|n| n.training_ranges.as_mut()) {
        r.remove(0);
    }
    let dim = p3.features.dim();
    p3.detector = vigil_model::Detector::RobustZ {
        center: vec![0.0; dim],
        scale: vec![1.0; dim],
        raw_scale: 9.0,
    };
    assert_eq!(
        scorer.install(verified(p3)).expect("v3"),
        Installed::StateKept
    );
    let after = scorer.device_state("dev-0").expect("state");
    assert_eq!(after.metrics.len(), 7);
    assert_eq!(after.metrics[..], before.metrics[1..]);

    // Different windows: everyone starts cold.
    let mut p4 = common::payload(4);
    p4.features.slow_window = 512;
    assert_eq!(
        scorer.install(verified(p4)).expect("v4"),
        Installed::StateReset
    );
    assert_eq!(scorer.devices(), 0);
    assert_eq!(scorer.stats().state_resets, 1);
}

#[test]
fn a_retrained_release_keeps_each_devices_novelty_and_new_settings_reset_it() {
    let mut scorer = Scorer::new("default", 64);
    scorer.install(verified(common::payload(1))).expect("v1");
    for r in &common::stream(2, 50, 5) {
        scorer.score(r, None, 0, ScoredAt::Cloud);
    }
    let learnt = scorer
        .device_state("dev-0")
        .and_then(|s| s.novelty.clone())
        .expect("the novelty learnt dev-0");
    // A retrain: the same settings, other training ranges. Each device
    // keeps its counts and the ranges they were learnt on.
    // Its release bound and the novelty's starting rate differ too, as a
    // retrain on another number of rows writes them
    // (TrustPolicy::for_calibration): a bound on the rate each device
    // keeps, and the rate a device seen for the first time starts at, so
    // the rates of the devices already seen carry over.
    let mut p2 = common::payload(2);
    if let Some(n) = p2.novelty.as_mut() {
        n.trust.release_onsets /= 2.0;
        n.trust.novelty_start /= 2.0;
        for m in n.training_ranges.iter_mut().flatten() {
            m.value.width *= 2.0;
        }
    }
    assert_eq!(
        scorer.install(verified(p2)).expect("v2"),
        Installed::StateKept
    );
    assert_eq!(
        scorer
            .device_state("dev-0")
            .and_then(|s| s.novelty.as_ref()),
        Some(&learnt)
    );
    // Other trust settings: the counts and rates start again.
    let mut p3 = common::payload(3);
    if let Some(n) = p3.novelty.as_mut() {
        n.trust.window = 512;
    }
    scorer.install(verified(p3)).expect("v3");
    assert!(scorer
        .device_state("dev-0")
        .is_some_and(|s| s.novelty.is_none()));
}

#[test]
fn device_table_is_bounded_and_counts_evictions() {
    let mut scorer = Scorer::new("default", 3);
    scorer
        .install(verified(common::payload(1)))
        .expect("install");
    for r in &common::stream(10, 5, 1) {
        scorer.score(r, None, 0, ScoredAt::Cloud);
        assert!(scorer.devices() <= 3);
    }
    assert!(scorer.stats().evictions >= 7);
}

#[test]
fn replaying_history_with_observe_rebuilds_the_same_state() {
    let records = common::stream(3, 200, 11);
    let (history, live) = records.split_at(450);
    let mut original = Scorer::new("default", 8);
    original
        .install(verified(common::payload(1)))
        .expect("install");
    for r in history {
        original.score(r, None, 0, ScoredAt::Cloud);
    }
    // A restarted scorer replays the log before scoring live records.
    let mut restarted = Scorer::new("default", 8);
    assert!(!restarted.observe(&history[0]), "no model, no state");
    restarted
        .install(verified(common::payload(1)))
        .expect("install");
    for r in history {
        assert!(restarted.observe(r));
    }
    assert!(!restarted.observe(&history[0]), "already applied");
    assert_eq!(restarted.stats().scored, 0);
    for r in live {
        let a = original.score(r, None, 0, ScoredAt::Cloud);
        let b = restarted.score(r, None, 0, ScoredAt::Cloud);
        assert_eq!(a, b);
    }
}

#[test]
fn duplicates_are_scored_without_advancing_state() {
    let mut scorer = Scorer::new("default", 8);
    scorer
        .install(verified(common::payload(1)))
        .expect("install");
    let records = common::stream(1, 50, 5);
    for r in &records {
        scorer.score(r, None, 0, ScoredAt::Cloud);
    }
    let state = scorer.device_state("dev-0").cloned();
    let again = scorer.score(&records[10], None, 0, ScoredAt::Cloud);
    assert_eq!(again.seq, records[10].seq);
    assert_eq!(scorer.device_state("dev-0").cloned(), state);
    assert_eq!(scorer.stats().stale, 1);
}
