//! NAB scoring checked against NAB's published results for the windowed
//! Gaussian detector (shared/datasets/nab, never copied into the repo).
//! Set VIGIL_NAB_DIR to use a dataset elsewhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use vigil_eval::nab::{
    load_data_dir, read_detector_results, result_path, score_detector, score_results,
    write_result_file, FileScores, Labels, Profile, ScoreOptions, Subset,
};

mod common;
use common::nab_dir;

/// Published normalised scores of windowedGaussian (NAB v1.1).
const PUBLISHED: [(&str, f64); 3] = [
    ("standard", 39.65),
    ("reward_low_FP_rate", 20.87),
    ("reward_low_FN_rate", 47.41),
];

struct Nab {
    dir: PathBuf,
    labels: Labels,
    profiles: Vec<Profile>,
}

fn nab() -> Nab {
    let dir = nab_dir();
    Nab {
        labels: Labels::load(&dir.join("labels/combined_windows.json")).expect("labels load"),
        profiles: Profile::load_all(&dir.join("config/profiles.json")).expect("profiles load"),
        dir,
    }
}

fn windowed_gaussian(nab: &Nab) -> BTreeMap<String, FileScores> {
    read_detector_results(
        &nab.dir.join("results/windowedGaussian"),
        "windowedGaussian",
        &nab.labels,
    )
    .expect("published results load")
}

#[test]
fn windowed_gaussian_reproduces_the_published_scores() {
    let nab = nab();
    assert_eq!(nab.labels.files.len(), 58);
    let scores =
        score_detector(&nab.labels, &windowed_gaussian(&nab), &nab.profiles).expect("scores");
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(nab.dir.join("results/final_results.json"))
            .expect("final_results.json"),
    )
    .expect("final_results.json parses");
    for (profile, want) in PUBLISHED {
        let got = scores.profile(profile).expect("profile scored");
        assert!(
            (got.score - want).abs() < 0.1,
            "{profile}: {} vs published {want}",
            got.score
        );
        let exact = published["windowedGaussian"][profile]
            .as_f64()
            .expect("published number");
        assert!(
            (got.score - exact).abs() < 1e-6,
            "{profile}: {} vs {exact}",
            got.score
        );
        assert_eq!(got.threshold, 1.0, "{profile} threshold");
        assert_eq!(got.windows, 116);
    }
}

/// NAB's per-file score tables: File, Threshold, Score, TP, TN, FP, FN.
fn published_file_scores(nab: &Nab, profile: &str) -> BTreeMap<String, (f64, [u64; 4])> {
    let path = nab.dir.join(format!(
        "results/windowedGaussian/windowedGaussian_{profile}_scores.csv"
    ));
    let text = std::fs::read_to_string(&path).expect("per-file scores");
    text.lines()
        .skip(1)
        .filter(|l| !l.starts_with("Totals"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<u64>().expect("count");
            (
                f[2].to_owned(),
                (f[4].parse().expect("score"), [n(5), n(6), n(7), n(8)]),
            )
        })
        .collect()
}

#[test]
fn every_file_matches_nabs_own_per_file_scores() {
    let nab = nab();
    let scores =
        score_detector(&nab.labels, &windowed_gaussian(&nab), &nab.profiles).expect("scores");
    for p in &scores.0 {
        let published = published_file_scores(&nab, &p.profile);
        assert_eq!(published.len(), p.files.len());
        for f in &p.files {
            let (raw, counts) = published[&f.file];
            assert!(
                (f.raw - raw).abs() < 1e-6,
                "{} {}: {} vs {raw}",
                p.profile,
                f.file,
                f.raw
            );
            let c = f.counts;
            assert_eq!(
                [c.tp, c.tn, c.fp, c.fn_],
                counts,
                "{} {}",
                p.profile,
                f.file
            );
        }
    }
}

#[test]
fn a_detector_that_never_fires_scores_zero_and_a_perfect_one_scores_100() {
    let nab = nab();
    let data = load_data_dir(&nab.dir.join("data"), &nab.labels).expect("data loads");
    let silent: BTreeMap<String, FileScores> = data
        .iter()
        .map(|(f, d)| {
            (
                f.clone(),
                FileScores {
                    timestamps: d.timestamps.clone(),
                    scores: vec![0.0; d.timestamps.len()],
                },
            )
        })
        .collect();
    let scores = score_detector(&nab.labels, &silent, &nab.profiles).expect("scores");
    for p in &scores.0 {
        assert!(p.score.abs() < 1e-9, "{}: {}", p.profile, p.score);
    }
    // Fire exactly at each window's first row.
    let perfect: BTreeMap<String, FileScores> = data
        .iter()
        .map(|(f, d)| {
            let starts: Vec<_> = nab.labels.files[f].iter().map(|w| w.start).collect();
            let scores = d
                .timestamps
                .iter()
                .map(|t| if starts.contains(t) { 1.0 } else { 0.0 })
                .collect();
            (
                f.clone(),
                FileScores {
                    timestamps: d.timestamps.clone(),
                    scores,
                },
            )
        })
        .collect();
    let scores = score_detector(&nab.labels, &perfect, &nab.profiles).expect("scores");
    for p in &scores.0 {
        assert!((p.score - 100.0).abs() < 1e-6, "{}: {}", p.profile, p.score);
    }
}

/// The published windowed Gaussian's scores of `subset`'s files, written
/// as detector `copycat` under `dir` (NAB's results layout).
fn write_copycat(nab: &Nab, dir: &std::path::Path, subset: Subset) {
    let data = load_data_dir(&nab.dir.join("data"), &nab.labels).expect("data loads");
    let published = windowed_gaussian(nab);
    for (file, d) in data.iter().filter(|(f, _)| subset.contains(f)) {
        let path = result_path(dir, "copycat", file).expect("corpus name");
        write_result_file(&path, d, &published[file].scores, &nab.labels.files[file])
            .expect("write");
    }
}

#[test]
fn written_results_score_the_same_and_missing_files_are_named() {
    let nab = nab();
    let tmp = tempfile::tempdir().expect("tempdir");
    let det_dir = tmp.path().join("results/copycat");
    write_copycat(&nab, &det_dir, Subset::All);
    let options = ScoreOptions {
        results: tmp.path().join("results"),
        data: Some(nab.dir.join("data")),
        labels: nab.dir.join("labels/combined_windows.json"),
        profiles: nab.dir.join("config/profiles.json"),
        out: None,
        subset: Subset::All,
    };
    let report = score_results(&options).expect("scores");
    let standard = report.detectors["copycat"]
        .profile("standard")
        .expect("standard");
    assert!(
        (standard.score - 39.6495).abs() < 1e-3,
        "{}",
        standard.score
    );
    assert!(report.scores_path.ends_with("results/scores.json") && report.scores_path.is_file());

    let gone = det_dir.join("realTweets/copycat_Twitter_volume_AAPL.csv");
    std::fs::remove_file(&gone).expect("remove one result");
    let err = score_results(&options).expect_err("a file is missing");
    assert!(
        err.to_string()
            .contains("realTweets/Twitter_volume_AAPL.csv"),
        "{err}"
    );
}

#[test]
fn cli_prints_the_table_and_writes_scores_json() {
    let nab = nab_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("scores.json");
    let run = Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
        .args(["nab", "--score-only", "--results"])
        .arg(nab.join("results"))
        .arg("--out")
        .arg(&out)
        .env("VIGIL_NAB_DIR", &nab)
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (profile, want) in PUBLISHED {
        // The results folder may hold other published detectors too.
        let line = stdout
            .lines()
            .find(|l| l.contains(profile) && l.contains("windowedGaussian"))
            .expect("profile row");
        assert!(
            line.contains(&format!("{want:.2}")) && line.contains("windowedGaussian"),
            "{line}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("scores.json")).expect("json");
    let standard = json["windowedGaussian"]["standard"]["score"]
        .as_f64()
        .expect("score");
    assert!((standard - 39.65).abs() < 0.01);

    // A directory as --out gets scores.json inside it.
    let run = Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
        .args(["nab", "--score-only", "--results"])
        .arg(nab.join("results/windowedGaussian"))
        .arg("--out")
        .arg(tmp.path().join("outdir"))
        .env("VIGIL_NAB_DIR", &nab)
        .output()
        .expect("binary runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(tmp.path().join("outdir/scores.json").is_file());

    let run = Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
        .args(["nab", "--score-only"])
        .env_remove("VIGIL_NAB_RESULTS")
        .output()
        .expect("binary runs");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--results"));
}

#[test]
fn one_half_scores_from_its_own_results_alone() {
    let nab = nab();
    let tmp = tempfile::tempdir().expect("tempdir");
    write_copycat(&nab, &tmp.path().join("all/copycat"), Subset::All);
    write_copycat(&nab, &tmp.path().join("tune/copycat"), Subset::Tune);
    let score = |root: &str, subset: Subset| {
        let options = ScoreOptions {
            results: tmp.path().join(root),
            data: Some(nab.dir.join("data")),
            labels: nab.dir.join("labels/combined_windows.json"),
            profiles: nab.dir.join("config/profiles.json"),
            out: None,
            subset,
        };
        score_results(&options)
    };
    let standard = |report: vigil_eval::nab::Report| {
        report.detectors["copycat"]
            .profile("standard")
            .expect("standard")
            .clone()
    };
    let whole = standard(score("all", Subset::All).expect("every file scores"));
    let from_all = standard(score("all", Subset::Tune).expect("the tune half scores"));
    let alone = standard(score("tune", Subset::Tune).expect("the half's own files suffice"));
    // The half is scored on its own windows with its own threshold: the
    // same whether the other half's results are there or not.
    assert_eq!(
        (alone.score, alone.threshold),
        (from_all.score, from_all.threshold)
    );
    let tune_windows: usize = nab
        .labels
        .files
        .iter()
        .filter(|(f, _)| Subset::Tune.contains(f))
        .map(|(_, w)| w.len())
        .sum();
    assert_eq!((alone.windows, whole.windows), (tune_windows, 116));
    assert_ne!(alone.score, whole.score);
    // Without the subset, the other half's missing results are named.
    let err = score("tune", Subset::All).expect_err("the held-out results are missing");
    assert!(err.to_string().contains("no results for"), "{err}");
}
