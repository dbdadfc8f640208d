//! The file workflow of issue 16, through the real binary and with no
//! broker: `vigil train --csv FILE --out release.json` on the first 400
//! rows of a one-device CSV with `;` separators, decimal commas and an
//! ISO-8601 datetime column; the release verifies with the public key;
//! `vigil models score --csv` scores the rest of the file, one verdict per
//! row, carrying the release's version. Kafka is pointed at a port nothing
//! listens on, with a short timeout, so any attempt to reach a broker
//! fails the test.

use std::path::Path;
use std::process::{Command, Output};

/// Rows the release is trained on; the file holds `TRAIN_ROWS + REST`.
const TRAIN_ROWS: usize = 400;
const REST: usize = 200;
/// 1-based data row with a gross spike, among the scored rows.
const SPIKE_ROW: usize = 520;

fn vigil(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(dir)
        .env("VIGIL_KAFKA_BROKERS", "127.0.0.1:9")
        .env("VIGIL_TRAIN_KAFKA_TIMEOUT_SECS", "2")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running vigil")
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pump: temperature and pressure following one daily-ish cycle plus
/// deterministic noise, one row a minute from 2024-03-01 00:00:00, written
/// the way a European spreadsheet exports it.
fn write_csv(path: &Path) {
    write_pump(path, &SENSORS[..2], |i, values| {
        if i + 1 == SPIKE_ROW {
            values[0] += 25.0;
            values[1] -= 3.0;
        }
    });
}

/// `vigil models verify` of `release.json` with `keys/verify.pub`.
const VERIFY_RELEASE: [&str; 6] = [
    "models",
    "verify",
    "--file",
    "release.json",
    "--verify-key",
    "keys/verify.pub",
];

/// A folder holding a signing key pair under `keys/` and the pump's CSV
/// (`pump.csv`, [`write_csv`]).
fn keyed_pump() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(
        &vigil(dir.path(), &["models", "keygen", "--out", "keys"]),
        "keygen",
    );
    write_csv(&dir.path().join("pump.csv"));
    dir
}

/// A pump's sensors: name, level, cycle amplitude, noise.
const SENSORS: [(&str, f64, f64, f64); 8] = [
    ("temperature", 60.0, 3.0, 0.3),
    ("pressure", 4.0, 0.4, 0.04),
    ("current", 12.0, 1.5, 0.1),
    ("vibration", 0.30, 0.05, 0.01),
    ("flow", 40.0, 4.0, 0.5),
    ("voltage", 230.0, -1.0, 0.4),
    ("thermocouple", 30.0, 2.0, 0.2),
    ("accelerometer", 0.20, 0.03, 0.008),
];

/// `sensors` following one cycle plus deterministic noise, one row a
/// minute from 2024-03-01 00:00:00, `;`-separated with decimal commas;
/// `fault(row, values)` may change a row's values (0-based row).
fn write_pump(path: &Path, sensors: &[(&str, f64, f64, f64)], fault: impl Fn(usize, &mut [f64])) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = || {
        // Sum of four uniforms in [-0.5, 0.5): mean 0, sd ~0.58.
        (0..4)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .sum::<f64>()
    };
    let names: Vec<&str> = sensors.iter().map(|s| s.0).collect();
    let mut text = format!("datetime;{}\n", names.join(";"));
    let mut values = vec![0.0; sensors.len()];
    for i in 0..TRAIN_ROWS + REST {
        let phase = i as f64 / 40.0;
        for (v, (_, level, cycle, sd)) in values.iter_mut().zip(sensors) {
            *v = level + cycle * phase.sin() + sd * noise();
        }
        fault(i, &mut values);
        let (day, minute) = (1 + i / 1440, i % 1440);
        let mut row = format!("2024-03-{day:02} {:02}:{:02}:00", minute / 60, minute % 60);
        for (v, (name, ..)) in values.iter().zip(sensors) {
            let decimals = if *name == "temperature" { 3 } else { 4 };
            row.push_str(&format!(";{v:.decimals$}"));
        }
        row.push('\n');
        text.push_str(&row.replace('.', ","));
    }
    std::fs::write(path, text).expect("writing the csv");
}

const FORMAT: [&str; 4] = ["--time-column", "datetime", "--device-id", "pump-7"];

fn train(dir: &Path, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--csv",
        "pump.csv",
        "--rows",
        "400",
        "--signing-key",
        "keys/signing.key",
        "--out",
        out,
    ];
    args.extend(FORMAT);
    args.extend(extra);
    vigil(dir, &args)
}

/// `vigil models score` of `pump.csv` with `release`, then `extra`.
fn score_args<'a>(release: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "models",
        "score",
        "--model",
        release,
        "--verify-key",
        "keys/verify.pub",
        "--csv",
        "pump.csv",
    ];
    args.extend(FORMAT);
    args.extend(extra);
    args
}

fn score(dir: &Path, release: &str) -> Vec<serde_json::Value> {
    let out = vigil(dir, &score_args(release, &["--after-row", "400"]));
    ok(&out, "vigil models score");
    String::from_utf8(out.stdout)
        .expect("utf-8 verdicts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a verdict per line"))
        .collect()
}

#[test]
fn a_csv_trains_without_a_broker_and_its_release_scores_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(&vigil(d, &["models", "keygen", "--out", "keys"]), "keygen");
    ok(&vigil(d, &["models", "keygen", "--out", "other"]), "keygen");
    write_csv(&d.join("pump.csv"));

    // The documented command: version 1 by default.
    ok(&train(d, "release.json", &[]), "vigil train --csv");
    let bytes = std::fs::read(d.join("release.json")).expect("release written");
    let key = vigil_model::load_verify_key(&d.join("keys/verify.pub")).expect("key");
    let model = vigil_model::decode_and_verify(&bytes, &key).expect("verifies");
    assert_eq!((model.name(), model.version()), ("default", 1));
    let other = vigil_model::load_verify_key(&d.join("other/verify.pub")).expect("key");
    assert!(vigil_model::decode_and_verify(&bytes, &other).is_err());
    let verify = vigil(d, &VERIFY_RELEASE);
    ok(&verify, "vigil models verify");

    let verdicts = score(d, "release.json");
    assert_eq!(verdicts.len(), REST, "one verdict per remaining row");
    for (i, v) in verdicts.iter().enumerate() {
        assert_eq!(v["seq"], (TRAIN_ROWS + i + 1) as u64, "{v}");
        assert_eq!(v["device_id"], "pump-7");
        assert_eq!(v["model_version"], 1);
    }
    let spike = &verdicts[SPIKE_ROW - TRAIN_ROWS - 1];
    assert_eq!(spike["anomaly"], true, "the spike is flagged: {spike}");

    // An explicit version travels into the release and its verdicts.
    ok(
        &train(d, "v5.json", &["--version", "5"]),
        "vigil train --version 5",
    );
    let verdicts = score(d, "v5.json");
    assert_eq!(verdicts.len(), REST);
    assert!(verdicts.iter().all(|v| v["model_version"] == 5));
}

/// 0-based rows of the eight-sensor pump's valve fault, among the scored
/// rows.
const VALVE_FAULT: std::ops::Range<usize> = 480..560;

/// The shape of the industrial benchmark: eight sensors, trained
/// on the first 400 rows of one pump (33 features from 288 rows after
/// warm-up and holdout), with the documented command and no --force; the
/// file's own label columns (`anomaly`, `changepoint`: 0 over the
/// training rows) are left out of the model and named; a sustained fault
/// in the rest is flagged, by the sensors.
#[test]
fn an_eight_sensor_pump_trains_on_400_rows_and_its_fault_is_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(&vigil(d, &["models", "keygen", "--out", "keys"]), "keygen");
    let mut columns = SENSORS.to_vec();
    columns.extend([("anomaly", 0.0, 0.0, 0.0), ("changepoint", 0.0, 0.0, 0.0)]);
    write_pump(&d.join("pump.csv"), &columns, |i, v| {
        if VALVE_FAULT.contains(&i) {
            // A valve closing: pressure and flow fall, the motor works
            // harder and shakes.
            v[1] *= 0.75;
            v[4] *= 0.6;
            v[2] *= 1.1;
            v[3] *= 1.5;
            v[8] = 1.0;
        }
        if i == VALVE_FAULT.start || i == VALVE_FAULT.end {
            v[9] = 1.0;
        }
    });
    let out = train(d, "release.json", &[]);
    ok(&out, "vigil train --csv (eight sensors, 400 rows)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("left out of the model") && stderr.contains("anomaly, changepoint"),
        "{stderr}"
    );
    let verdicts = score(d, "release.json");
    assert_eq!(verdicts.len(), REST);
    for v in &verdicts {
        let named = v["contributions"].to_string();
        assert!(
            !named.contains("anomaly") && !named.contains("changepoint"),
            "{v}"
        );
    }
    let flagged = |rows: std::ops::Range<usize>| {
        rows.filter(|&i| verdicts[i - TRAIN_ROWS]["anomaly"] == true)
            .count()
    };
    let in_fault = flagged(VALVE_FAULT);
    let before = flagged(TRAIN_ROWS..VALVE_FAULT.start);
    // Measured: all 80 fault rows in alarm, none of the 80 before it.
    assert!(
        in_fault >= VALVE_FAULT.len() * 3 / 4,
        "{in_fault} fault rows flagged"
    );
    assert!(before <= 8, "{before} normal rows flagged before the fault");

    // The file's label column, named: the score says how the verdicts
    // compare with it, point-wise, beside flagging every row.
    let args = score_args(
        "release.json",
        &["--after-row", "400", "--label-column", "anomaly"],
    );
    let out = vigil(d, &args);
    ok(&out, "vigil models score --label-column");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = format!(
        "against label column anomaly: {REST} rows scored, {} labelled anomalous, {} flagged",
        VALVE_FAULT.len(),
        verdicts.iter().filter(|v| v["anomaly"] == true).count()
    );
    assert!(stderr.contains(&summary), "{summary:?} missing: {stderr}");
    let f1: f64 = stderr
        .split("F1 ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .expect("an F1 in the summary");
    assert!(f1 >= 0.8, "{stderr}");
    assert!(
        stderr.contains("(flagging every row: F1 0.571)"),
        "{stderr}"
    );
}

/// `vigil models score … | head`: the reader leaves after one verdict;
/// the program ends quietly and successfully, as Unix tools do, instead
/// of failing with a broken pipe.
#[test]
fn a_reader_that_stops_early_ends_the_scoring_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = keyed_pump();
    let d = dir.path();
    ok(&train(d, "release.json", &[]), "vigil train --csv");
    // Every row scored: far more than a pipe's buffer holds.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(score_args("release.json", &[]))
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running vigil");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a first verdict");
    assert!(first.contains("\"seq\":1,"), "{first}");
    // The reader is gone (dropped with its BufReader).
    let out = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// `vigil models verify --file … | true`: the reader is gone before the
/// one line is written; the program still ends quietly and successfully,
/// as with `models score`, instead of panicking in `println!` (status
/// 101). The pipe is `true`'s stdin, so its read end is closed (`true`
/// has exited) before vigil starts.
#[cfg(unix)]
#[test]
fn a_reader_gone_before_the_first_line_ends_a_printing_command_quietly() {
    use std::process::Stdio;
    let dir = keyed_pump();
    let d = dir.path();
    ok(&train(d, "release.json", &[]), "vigil train --csv");
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("running true");
    let write_end = reader.stdin.take().expect("a pipe to true");
    assert!(reader.wait().expect("true ends").success());
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(VERIFY_RELEASE)
        .current_dir(d)
        .env("RUST_BACKTRACE", "0")
        .stdout(write_end)
        .output()
        .expect("running vigil");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// A label column is a column of a CSV file, and one source of labels.
#[test]
fn label_options_that_cannot_work_are_refused_with_the_reason() {
    let dir = keyed_pump();
    let d = dir.path();
    let cases: [(&[&str], &str); 3] = [
        (
            &["train", "--once", "--label-column", "anomaly"],
            "--csv <CSV>",
        ),
        (
            &[
                "models",
                "score",
                "--model",
                "release.json",
                "--verify-key",
                "keys/verify.pub",
                "--label-column",
                "anomaly",
            ],
            "--csv <CSV>",
        ),
        (
            &[
                "train",
                "--csv",
                "pump.csv",
                "--out",
                "r.json",
                "--label-column",
                "anomaly",
                "--labels",
                "labels.csv",
            ],
            "--labels and --label-column both give labels",
        ),
    ];
    for (extra, why) in cases {
        let mut args = extra.to_vec();
        if args[0] == "train" {
            args.extend(["--signing-key", "keys/signing.key"]);
        }
        let out = vigil(d, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(why), "{why:?} missing: {stderr}");
    }
}

#[test]
fn without_a_holdout_or_with_too_few_rows_nothing_is_written_and_the_error_says_why() {
    let dir = keyed_pump();
    let d = dir.path();

    let out = train(d, "none.json", &["--holdout", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot validate") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(!stderr.contains("false-alarm rate 0.0"), "{stderr}");
    assert!(!d.join("none.json").exists());
    ok(
        &train(d, "forced.json", &["--holdout", "0", "--force"]),
        "--holdout 0 --force",
    );

    let mut args = vec![
        "train",
        "--csv",
        "pump.csv",
        "--rows",
        "60",
        "--signing-key",
        "keys/signing.key",
        "--out",
        "short.json",
    ];
    args.extend(FORMAT);
    let out = vigil(d, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for part in ["feature rows", "warm-up", "holdout", "features x 5"] {
        assert!(stderr.contains(part), "{part:?} missing: {stderr}");
    }
    assert!(!d.join("short.json").exists());

    // A file that is not there: named, with the system's reason said once.
    let out = vigil(
        d,
        &[
            "train",
            "--csv",
            "absent.csv",
            "--signing-key",
            "keys/signing.key",
            "--out",
            "absent.json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("absent.csv"), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_signing_key_others_can_read_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = keyed_pump();
    let d = dir.path();
    std::fs::set_permissions(
        d.join("keys/signing.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let out = train(d, "shared.json", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("readable by others") && stderr.contains("mode 644"),
        "{stderr}"
    );
    assert!(!d.join("shared.json").exists());
    // The override lets a group read the key, never others.
    let out = train(d, "shared.json", &["--allow-shared-key-file"]);
    assert!(!out.status.success(), "others may read it");
    std::fs::set_permissions(
        d.join("keys/signing.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    ok(
        &train(d, "shared.json", &["--allow-shared-key-file"]),
        "--allow-shared-key-file",
    );
}

/// `--range METRIC=LOW:HIGH` widens that metric's value range in the
/// release's novelty (and nothing else), the release scores as any other;
/// a range for a metric the release does not model, an empty span or a
/// metric declared twice is refused with the reason, and nothing is
/// written.
#[test]
fn a_declared_range_travels_in_the_release_and_wrong_ones_are_refused() {
    let dir = keyed_pump();
    let d = dir.path();
    let value_ranges = |file: &str| {
        let bytes = std::fs::read(d.join(file)).expect("release written");
        let key = vigil_model::load_verify_key(&d.join("keys/verify.pub")).expect("key");
        let model = vigil_model::decode_and_verify(&bytes, &key).expect("verifies");
        let payload = model.model().payload();
        let names: Vec<String> = payload
            .features
            .metrics
            .iter()
            .map(|m| m.name.clone())
            .collect();
        let ranges = payload
            .novelty
            .as_ref()
            .and_then(|n| n.training_ranges.clone())
            .expect("the release carries ranges");
        names.into_iter().zip(ranges).collect::<Vec<_>>()
    };
    ok(&train(d, "plain.json", &[]), "vigil train --csv");
    ok(
        &train(d, "ranged.json", &["--range", "temperature=0:150"]),
        "vigil train --csv --range",
    );
    let (plain, ranged) = (value_ranges("plain.json"), value_ranges("ranged.json"));
    assert_eq!(plain.len(), 2);
    for ((name, p), (_, r)) in plain.iter().zip(&ranged) {
        if name == "temperature" {
            assert!(p.value.low > 50.0 && p.value.width < 20.0, "{p:?}");
            assert_eq!((r.value.low, r.value.width), (0.0, 150.0));
            assert_eq!(r.smooth, p.smooth);
        } else {
            assert_eq!(r, p, "{name} was not declared");
        }
    }
    assert_eq!(score(d, "ranged.json").len(), REST);

    let cases: [(&str, &str); 4] = [
        (
            "flow=0:100",
            "\"flow\" has a declared range but the release does not model it",
        ),
        ("temperature=90:10", "is empty"),
        ("temperature:0:10", "expected METRIC=LOW:HIGH"),
        (
            "temperature=0:10,temperature=0:20",
            "declares \"temperature\" twice",
        ),
    ];
    for (range, why) in cases {
        let out = train(d, "refused.json", &["--range", range]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{range}: {stderr}");
        assert!(stderr.contains(why), "{range}: {why:?} missing: {stderr}");
        assert!(
            !d.join("refused.json").exists(),
            "{range}: a release was written"
        );
    }
}
