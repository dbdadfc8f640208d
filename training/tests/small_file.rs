//! Calibration that holds on a small training set (issue 16, item 3): a
//! model trained on 400 rows of one device, as `vigil train --csv FILE
//! --rows 400` does, then run over the next 2,000 records of the same
//! device, as `vigil models score --csv --after-row 400` does.
//!
//! The bound: the fraction of normal records whose judged score (the
//! score the alarm compares with the threshold, after the device's own
//! level; `vigil_model::alarm`) reaches the threshold is at most 2× the
//! 0.1 % target, over ten devices (20,000 normal records; the
//! `small_train` example's report devices measured 0.16 % over forty).
//! Without the device's own level the same devices flag ~0.5 %, so the
//! test fails if the adjustment stops working. Seeds 2000.. are the
//! example's report devices: nothing was chosen on them.

mod common;

use vigil_model::Scratch;
use vigil_training::{fit, TrainConfig};

const TRAIN: usize = 400;
const AFTER: usize = 2_000;

/// (normal records after training, of those judged at/above threshold,
/// of those with the raw score at/above threshold)
fn run(seed: u64) -> (u64, u64, u64) {
    let records = common::clean_device(seed, (TRAIN + AFTER) as u64);
    let tc = TrainConfig {
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    let model = fit(&records[..TRAIN], &tc, |_| {})
        .expect("400 rows train")
        .model;
    assert!(
        model.payload().alarm.baseline_raw > 0.0,
        "the trainer sets the baseline"
    );
    // 400 rows at 0.1 % could show 0.4 exceedances: 4 % of the whole
    // bound, below what a release keeping its 0.1 % promise can show, so
    // the release's own alerts get that (TrustPolicy::for_calibration).
    let policy = vigil_model::combine::TrustPolicy::default();
    let bound = model
        .payload()
        .novelty
        .as_ref()
        .expect("a novelty policy")
        .trust
        .release_onsets;
    let promise = policy.promised_onsets(tc.target_false_alarm_rate);
    assert!(
        promise > 0.0 && promise < policy.release_onsets,
        "the promise {promise} against the whole bound {}",
        policy.release_onsets
    );
    assert_eq!(bound, promise, "a 400-row release's bound");
    // Its alarms are sustained a little below that uncertain threshold
    // (vigil_model::alarm, "Sustain"): at most 4 % of a full
    // calibration's evidence puts the ratio between 0.8 and 0.808.
    let sustain = model.payload().alarm.sustain_ratio;
    assert!((0.8..=0.808).contains(&sustain), "sustain ratio {sustain}");
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    let (mut normal, mut judged, mut raw) = (0, 0, 0);
    for (i, r) in records.iter().enumerate() {
        let s = model.score_record(&mut state, r, &mut scratch);
        if i >= TRAIN {
            normal += 1;
            judged += u64::from(s.judged >= model.threshold());
            raw += u64::from(s.score.score >= model.threshold());
        }
    }
    (normal, judged, raw)
}

#[test]
fn a_model_of_400_rows_of_one_device_holds_its_false_alarm_rate() {
    let (mut normal, mut judged, mut raw) = (0, 0, 0);
    for seed in 2_000..2_010 {
        let (n, j, r) = run(seed);
        normal += n;
        judged += j;
        raw += r;
    }
    let rate = judged as f64 / normal as f64;
    let unadjusted = raw as f64 / normal as f64;
    eprintln!("judged {judged} / {normal} = {rate:.5}; unadjusted {unadjusted:.5}");
    assert!(
        rate <= 0.002,
        "realised rate {rate:.5} is over 2x the 0.001 target"
    );
    assert!(
        unadjusted > rate,
        "the device's own level changed nothing ({unadjusted:.5})"
    );
}
