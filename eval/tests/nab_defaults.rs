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
    // eval/NAB.md, session 31: 67.87, 58.88, 74.28 (the issue asks 65,
    // 50, 70: all three met).
    at_least(
        "whole",
        scores(Subset::All, Family::Release),
        [67.8, 58.8, 74.2],
    );
}

#[test]
fn held_out_half() {
    // eval/NAB.md, session 31: 58.90, 49.94, 64.54 (the issue asks 60
    // here: not met).
    at_least(
        "holdout",
        scores(Subset::Holdout, Family::Release),
        [58.9, 49.9, 64.5],
    );
}

#[test]
fn tuning_half() {
    // eval/NAB.md, session 31: 77.51, 69.95, 84.42.
    at_least(
        "tune",
        scores(Subset::Tune, Family::Release),
        [77.5, 69.9, 84.4],
    );
}

#[test]
fn strict_figures_with_no_range_declared() {
    // eval/NAB.md, sessions 26 and 28: tune 75.81, 61.85, 82.70; holdout
    // 58.74, 46.16, 65.37; whole 66.15, 53.37, 73.33.
    for (subset, floor) in [
        (Subset::Tune, [75.8, 61.8, 82.6]),
        (Subset::Holdout, [58.7, 46.1, 65.3]),
        (Subset::All, [66.1, 53.3, 73.3]),
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
    // eval/NAB.md: 65.21, 52.28, 71.63 whole; 59.82, 47.70, 65.87 holdout.
    at_least(
        "novelty whole",
        scores(Subset::All, Family::Novelty),
        [65.2, 52.2, 71.6],
    );
    at_least(
        "novelty holdout",
        scores(Subset::Holdout, Family::Novelty),
        [59.8, 47.6, 65.8],
    );
}
