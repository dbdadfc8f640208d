//! A retrain of a small deployment on more rows (as `vigil train` does on
//! its next run) keeps what each device has learnt: the trainer scales two
//! trust values with its calibration rows (`TrustPolicy::for_calibration`),
//! and neither may make a hot swap drop the devices' novelty state
//! (eval/NAB.md, session 30: refitting NAB's files as their rows doubled
//! cost 6.2 points on the tuning half while it did). Any other field a
//! trainer derives from its data and the swap rule compares fails here.

mod common;

use std::sync::Arc;

use vigil_model::{sign, verify, Installed, Scorer, SigningKey, VerifiedModel};
use vigil_schemas::ScoredAt;
use vigil_training::{fit, TrainConfig};

fn release(records: &[vigil_schemas::Telemetry], version: u64) -> Arc<VerifiedModel> {
    let tc = TrainConfig {
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    let mut payload = fit(records, &tc, |_| {}).expect("trains").payload;
    payload.header.version = version;
    let key = SigningKey::from_bytes(&[7; 32]);
    let signed = sign(&payload, &key).expect("sign");
    Arc::new(verify(&signed, &key.verifying_key()).expect("verify"))
}

#[test]
fn a_retrain_on_more_rows_keeps_each_devices_learnt_state() {
    let records = common::clean_device(30, 8_000);
    // Calibrations on a few thousand rows: the novelty's starting rate
    // lies between its floor and the fleet's (it is at the floor below
    // about 2,500 rows).
    let first = release(&records[..3_000], 1);
    let second = release(&records[..6_000], 2);
    let trust = |m: &VerifiedModel| {
        m.model()
            .payload()
            .novelty
            .as_ref()
            .expect("a novelty policy")
            .trust
    };
    // The two calibrations rest on different evidence, so the trainer
    // wrote different trust values: the case the swap rule must allow.
    assert_ne!(
        trust(&first).novelty_start,
        trust(&second).novelty_start,
        "the fixture must retrain on a different calibration share"
    );

    let mut scorer = Scorer::new("default", 16);
    scorer.install(first).expect("v1");
    for r in &records[..6_000] {
        scorer.score(r, None, 0, ScoredAt::Cloud);
    }
    let device = records[0].device_id.clone();
    let learnt = scorer.device_state(&device).cloned().expect("state");
    assert!(learnt.novelty.is_some(), "the novelty learnt the device");
    assert_eq!(scorer.install(second).expect("v2"), Installed::StateKept);
    assert!(
        scorer
            .device_state(&device)
            .is_some_and(|s| s.novelty.is_some()),
        "the swap dropped the device's novelty state"
    );
    assert_eq!(
        scorer.device_state(&device),
        Some(&learnt),
        "the swap kept the device's features, alarm and novelty state"
    );
}
