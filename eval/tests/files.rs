//! `vigil-eval files` on a folder shaped like the industrial benchmark of
//! issue 16 (one pump per file, eight sensors, `;`-separated, a datetime
//! column, `anomaly` and `changepoint` label columns): each file's first
//! 400 rows train a release, the rest are counted point-wise, and the
//! counts add up.

use std::path::Path;

use vigil_eval::files::{evaluate_files, FilesOptions};
use vigil_training::WideCsvOptions;

/// Sensors: name, level, noise.
const SENSORS: [(&str, f64, f64); 8] = [
    ("Accelerometer1RMS", 0.21, 0.005),
    ("Accelerometer2RMS", 0.27, 0.005),
    ("Current", 1.5, 0.3),
    ("Pressure", 0.05, 0.2),
    ("Temperature", 70.0, 0.3),
    ("Thermocouple", 25.0, 0.05),
    ("Voltage", 230.0, 2.0),
    ("Volume Flow RateRMS", 32.0, 0.5),
];

/// A recording of `rows` rows, one a second, with a fault on `fault`
/// rows: pressure up 3 noise deviations, flow down 6.
fn write_pump(path: &Path, rows: usize, fault: std::ops::Range<usize>, seed: u64) {
    let mut rng = vigil_fleet_sim::Rng::new(seed);
    let names: Vec<&str> = SENSORS.iter().map(|s| s.0).collect();
    let mut text = format!("datetime;{};anomaly;changepoint\n", names.join(";"));
    for i in 0..rows {
        let inside = fault.contains(&i);
        let mut row = format!(
            "2020-03-09 {:02}:{:02}:{:02}",
            10 + i / 3600,
            (i / 60) % 60,
            i % 60
        );
        for (name, level, sd) in SENSORS {
            let mut v = level + sd * rng.normal();
            if inside && name == "Pressure" {
                v += 3.0 * sd;
            }
            if inside && name == "Volume Flow RateRMS" {
                v -= 6.0 * sd;
            }
            row.push_str(&format!(";{v:.6}"));
        }
        let change = i == fault.start || i == fault.end;
        row.push_str(&format!(
            ";{};{}\n",
            if inside { "1.0" } else { "0.0" },
            if change { "1.0" } else { "0.0" }
        ));
        text.push_str(&row);
    }
    std::fs::write(path, text).expect("write");
}

fn options() -> FilesOptions {
    FilesOptions {
        rows: 400,
        csv: WideCsvOptions {
            separator: None,
            time_column: Some("datetime".into()),
            device_id: None,
            label_column: Some("anomaly".into()),
        },
        max_rows: 100_000,
    }
}

#[test]
fn every_file_is_trained_on_its_first_rows_and_the_counts_add_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("valve1")).expect("mkdir");
    write_pump(&dir.path().join("valve1/0.csv"), 1_100, 600..900, 7);
    write_pump(&dir.path().join("valve1/1.csv"), 1_000, 500..700, 8);
    write_pump(&dir.path().join("short.csv"), 300, 250..260, 9);
    let report = evaluate_files(dir.path(), &options()).expect("evaluated");

    let names: Vec<String> = report
        .files
        .iter()
        .map(|f| f.file.display().to_string())
        .collect();
    assert_eq!(names, ["short.csv", "valve1/0.csv", "valve1/1.csv"]);
    let short = &report.files[0];
    assert!(short.counts.is_none());
    assert!(
        short
            .why
            .as_deref()
            .unwrap_or("")
            .contains("none after the 400"),
        "{:?}",
        short.why
    );

    let scored: Vec<_> = report.files[1..]
        .iter()
        .map(|f| f.counts.expect("scored"))
        .collect();
    assert_eq!(scored[0].records, 700);
    assert_eq!(scored[0].positives, 300);
    assert_eq!(scored[1].records, 600);
    assert_eq!(scored[1].positives, 200);
    let sum = |f: fn(&vigil_training::PointCounts) -> u64| scored.iter().map(f).sum::<u64>();
    assert_eq!(report.total.records, sum(|c| c.records));
    assert_eq!(report.total.positives, sum(|c| c.positives));
    assert_eq!(report.total.hits, sum(|c| c.hits));
    assert_eq!(report.total.false_hits, sum(|c| c.false_hits));
    // A fault of this size is found, and the alarms are mostly in it.
    let (_, precision, _) = report.total.f1();
    assert!(report.total.hits > 0 && precision > 0.8, "{report:?}");

    let table = report.table();
    assert!(table.contains("| valve1/0.csv | 700 | 300 |"), "{table}");
    assert!(
        table.contains("| **all 2 scored files** | 1300 | 500 |"),
        "{table}"
    );
    assert!(table.contains("not trained: 300 rows"), "{table}");
}

#[test]
fn a_file_whose_labels_cannot_be_read_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.csv"),
        "datetime;flow;anomaly\n2020-03-09 10:00:00;1.5;maybe\n",
    )
    .expect("write");
    let err = evaluate_files(dir.path(), &options()).expect_err("unreadable label");
    let text = err.to_string();
    assert!(
        text.contains("bad.csv") && text.contains("\"maybe\""),
        "{text}"
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let err = evaluate_files(empty.path(), &options()).expect_err("no files");
    assert!(err.to_string().contains("no .csv file"), "{err}");
}
