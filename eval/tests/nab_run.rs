//! `vigil-eval nab` end to end on a few small corpus files: NAB's results
//! layout, one row per data row, labels from the windows, and scores.json
//! with all three profiles. The full corpus runs in release (see NAB.md).

use std::collections::BTreeMap;
use std::process::Command;

use vigil_eval::nab::{probation_rows, DataFile, Labels};

mod common;
use common::nab_dir;

const FILES: [&str; 3] = [
    "realTraffic/speed_7578.csv",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
    "realAdExchange/exchange-3_cpc_results.csv",
];
const PROFILES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

#[test]
fn runner_writes_nab_layout_and_scores_three_profiles() {
    let nab = nab_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    // A labels file naming only FILES makes them the corpus.
    let all: BTreeMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(nab.join("labels/combined_windows.json")).expect("labels"),
    )
    .expect("labels parse");
    let subset: BTreeMap<&str, &serde_json::Value> = FILES.iter().map(|f| (*f, &all[*f])).collect();
    let labels_path = tmp.path().join("windows.json");
    std::fs::write(&labels_path, serde_json::to_string(&subset).expect("json")).expect("write");
    let out = tmp.path().join("out");

    let run = Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
        .arg("nab")
        .arg("--data")
        .arg(nab.join("data"))
        .arg("--labels")
        .arg(&labels_path)
        .arg("--profiles")
        .arg(nab.join("config/profiles.json"))
        .arg("--out")
        .arg(&out)
        // The fitted detector alerts on each of these files; the default
        // (novelty) is run on the whole corpus by tests/nab_defaults.rs.
        .args(["--method", "pca", "--refractory-rows", "144"])
        .env_remove("VIGIL_NAB_DIR")
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for p in PROFILES {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("vigil") && l.contains(p)),
            "{p} missing from\n{stdout}"
        );
    }

    let labels = Labels::load(&labels_path).expect("subset labels load");
    for file in FILES {
        let data = DataFile::load(&nab.join("data").join(file)).expect("data");
        let (category, name) = file.split_once('/').expect("category/file");
        let path = out
            .join("vigil")
            .join(category)
            .join(format!("vigil_{name}"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("timestamp,value,anomaly_score,label"),
            "{file}"
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(
            rows.len(),
            data.values.len(),
            "{file}: one row per data row"
        );
        let probation = probation_rows(rows.len());
        let mut labelled = 0;
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), 4, "{file} row {i}");
            assert_eq!(row[0], data.raw_timestamps[i], "{file} row {i}");
            let score: f64 = row[2].parse().expect("anomaly_score");
            assert!((0.0..=1.0).contains(&score), "{file} row {i}: {score}");
            if i < probation {
                assert_eq!(score, 0.0, "{file}: probationary row {i} scored");
            }
            let inside = labels.files[file]
                .iter()
                .any(|w| w.start <= data.timestamps[i] && data.timestamps[i] <= w.end);
            assert_eq!(row[3], if inside { "1" } else { "0" }, "{file} row {i}");
            labelled += usize::from(inside);
        }
        assert!(labelled > 0, "{file} has labelled rows");
        assert!(
            rows[probation..].iter().any(|r| r[2] != "0"),
            "{file}: the detector scored nothing after probation"
        );
    }

    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scores.json")).expect("scores"))
            .expect("scores.json parses");
    for p in PROFILES {
        let s = scores["vigil"][p]["score"].as_f64().expect("profile score");
        assert!(s.is_finite() && s <= 100.0, "{p}: {s}");
        assert!(scores["vigil"][p]["threshold"].is_number(), "{p}");
    }
}
