//! The drift watch (`vigil_model::combine::drift`, payload format 9) in
//! the product: a release trained on 400 rows of one device, as `vigil
//! train --csv FILE --rows 400` does, then run over the device's stream.
//!
//! The drifts are the four of `long_faults tune` (seeds 3016, 3026, 3037
//! and 3039, the 60-s day) that had no record in alarm before the watch
//! (eval/NAB.md, session 27): the release's features, its device level
//! and the novelty all learn a slow drift as it creeps. With the watch
//! switched off in the same release, they have none again, so the test
//! fails if the watch stops working. Clean devices (the `small_train`
//! report seeds) bound what it costs: the records it makes hot.

mod common;

use vigil_fleet_sim::{AnomalyConfig, AnomalyKind, Episode, Fleet, FleetConfig};
use vigil_model::combine::drift::DriftPolicy;
use vigil_model::{Model, Scratch};
use vigil_schemas::Telemetry;
use vigil_training::{fit, TrainConfig};

const TRAIN: usize = 400;

/// One device of `long_faults`' 60-s day: its records and its fault.
fn long_fault(seed: u64) -> (Vec<Telemetry>, Episode) {
    let ticks_per_day = 120.0;
    let anomalies = AnomalyConfig {
        rate_per_device_day: ticks_per_day / 200.0,
        kinds: vec![
            AnomalyKind::LevelShift,
            AnomalyKind::Drift,
            AnomalyKind::StuckAt,
            AnomalyKind::NoiseBurst,
            AnomalyKind::BrokenCorrelation,
        ],
        quiet_start_ticks: TRAIN as u64 + 100,
        min_gap_ticks: 1_150,
        severity: 1.0,
        duration_scale: 4.0,
    };
    let cfg = common::one_device(seed, anomalies);
    let (records, episodes) = Fleet::new(cfg).expect("fleet").generate(1_150).into_parts();
    let fault = episodes
        .into_iter()
        .find(|e| e.kind != AnomalyKind::Missing)
        .expect("a fault");
    (records, fault)
}

fn train(records: &[Telemetry]) -> Model {
    let tc = TrainConfig {
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    fit(&records[..TRAIN], &tc, |_| {})
        .expect("400 rows train")
        .model
}

/// `model` with the drift watch switched off.
fn without_watch(model: &Model) -> Model {
    let mut payload = model.payload().clone();
    payload.novelty.as_mut().expect("a novelty policy").drift = DriftPolicy::off();
    Model::from_payload(payload).expect("still a valid release")
}

/// Records in alarm inside `fault`.
fn alarmed_inside(model: &Model, records: &[Telemetry], fault: &Episode) -> usize {
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    records
        .iter()
        .filter(|r| {
            let s = model.score_record(&mut state, r, &mut scratch);
            s.anomaly && (fault.first_seq..=fault.last_seq).contains(&r.seq)
        })
        .count()
}

#[test]
fn slow_drifts_the_rest_of_the_product_learns_raise_an_alarm() {
    for seed in [3_016, 3_026, 3_037, 3_039] {
        let (records, fault) = long_fault(seed);
        assert_eq!(fault.kind, AnomalyKind::Drift, "seed {seed}");
        let model = train(&records);
        assert_eq!(
            model.payload().novelty.as_ref().map(|n| n.drift),
            Some(DriftPolicy::default()),
            "the trainer writes the default watch"
        );
        let with = alarmed_inside(&model, &records, &fault);
        let without = alarmed_inside(&without_watch(&model), &records, &fault);
        assert!(with > 0, "seed {seed}: the drift has no record in alarm");
        assert_eq!(without, 0, "seed {seed}: caught without the watch");
    }
}

#[test]
fn on_clean_devices_the_watch_makes_almost_nothing_hot() {
    for (interval_ms, day_ms) in [(500, 60_000), (1_000, 3_600_000)] {
        let (mut normal, mut with, mut without) = (0u64, 0u64, 0u64);
        for seed in 2_000..2_010 {
            let cfg = FleetConfig {
                devices: 1,
                seed,
                interval_ms,
                day_ms,
                anomalies: AnomalyConfig {
                    rate_per_device_day: 0.0,
                    ..AnomalyConfig::default()
                },
                ..FleetConfig::default()
            };
            let generated = Fleet::new(cfg).expect("fleet").generate(2_400);
            let records: Vec<Telemetry> = generated.into_telemetry();
            let model = train(&records);
            let off = without_watch(&model);
            for (m, hot) in [(&model, &mut with), (&off, &mut without)] {
                let mut state = m.extractor().new_state();
                let mut scratch = Scratch::default();
                for r in &records {
                    let s = m.score_record(&mut state, r, &mut scratch);
                    *hot += u64::from(s.hot && r.seq as usize >= TRAIN);
                }
            }
            normal += (records.len() - TRAIN) as u64;
        }
        // At most 0.05 % of the normal records more (the rule's bound).
        assert!(
            with <= without + normal / 2_000,
            "day {day_ms} ms: {with} hot with the watch, {without} without, of {normal}"
        );
    }
}
