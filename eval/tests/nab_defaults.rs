//! The default detector (the product's own decisions: a release trained as
//! `vigil train --csv` trains one, its alarms) on the whole NAB corpus and
//! on both fixed halves of `eval/nab-split.txt`, scored with the project's
//! NAB scorer: the figures `eval/NAB.md` reports, as floors a change must
//! not fall below; and the novelty detector alone, which the product
//! combines with the release's score. The defaults were chosen on `tune`;
//! `holdout` is the honest figure. Each file's release is told the file's
//! input range as NAB tells every detector (`InputRange::Nab`, the default
//! since session 31); the strict figures, with no range declared, are
//! floors too.

use vigil_eval::nab::{DetectorConfig, Family, InputRange, Subset};

mod common;
use common::{nab_dir, run_corpus};

/// Standard, reward_low_FP_rate and reward_low_FN_rate scores of the
/// defaults on `subset`.
fn scores(subset: Subset, family: Family) -> [f64; 3] {
    scores_with(subset, family, InputRange::default())
}

fn scores_with(subset: Subset, family: Family, input_range: InputRange) -> [f64; 3] {
    let config = DetectorConfig {
        family,
        input_range,
        ..DetectorConfig::default()
    };
    let (report, _out) = run_corpus(&nab_dir(), subset, config);
    let score = &report.detectors["vigil"];
    ["standard", "reward_low_FP_rate", "reward_low_FN_rate"].map(|p| {
        score
            .profile(p)
            .unwrap_or_else(|| panic!("{p} scored"))
            .score
    })
}

fn at_least(what: &str, got: [f64; 3], floor: [f64; 3]) {
    for ((g, f), p) in got.iter().zip(floor).zip(["standard", "low FP", "low FN"]) {
        assert!(*g >= f, "{what} {p}: {g:.2} < {f:.2} (all: {got:?})");
    }
}

#[test]
fn whole_corpus() {
    // eval/NAB.md, session 33: 68.71, 59.26, 75.23 (the issue asks 65,
    // 50, 70: all three met).
    at_least(
        "whole",
        scores(Subset::All, Family::Release),
        [68.7, 59.2, 75.2],
    );
}

#[test]
fn held_out_half() {
    // eval/NAB.md, session 33: 60.29, 51.41, 65.58 (the issue asks 60
    // here; 58.90 before rule 37).
    at_least(
        "holdout",
        scores(Subset::Holdout, Family::Release),
        [60.2, 51.4, 65.5],
    );
}

#[test]
fn tuning_half() {
    // eval/NAB.md, session 33: 77.92, 67.55, 85.28.
    at_least(
        "tune",
        scores(Subset::Tune, Family::Release),
        [77.9, 67.5, 85.2],
    );
}

#[test]
fn strict_figures_with_no_range_declared() {
    // eval/NAB.md, session 33: tune 73.85, 60.30, 81.62; holdout 61.58,
    // 49.79, 68.18; whole 67.08, 53.93, 74.29.
    for (subset, floor) in [
        (Subset::Tune, [73.8, 60.3, 81.6]),
        (Subset::Holdout, [61.5, 49.7, 68.1]),
        (Subset::All, [67.0, 53.9, 74.2]),
    ] {
        at_least(
            &format!("strict {subset:?}"),
            scores_with(subset, Family::Release, InputRange::None),
            floor,
        );
    }
}

#[test]
fn novelty_alone() {
    // eval/NAB.md, session 33 (the product's novelty level, 11 bits a
    // resolution for one metric; 65.21 / 59.82 standard at the 12 bits it
    // was chosen with alone): 63.66, 49.27, 71.17 whole; 57.90, 44.47,
    // 65.15 holdout.
    at_least(
        "novelty whole",
        scores(Subset::All, Family::Novelty),
        [63.6, 49.2, 71.1],
    );
    at_least(
        "novelty holdout",
        scores(Subset::Holdout, Family::Novelty),
        [57.9, 44.4, 65.1],
    );
}
