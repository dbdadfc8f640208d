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
    let mut text = String::from("datetime;temperature;pressure\n");
    for i in 0..TRAIN_ROWS + REST {
        let phase = i as f64 / 40.0;
        let mut temp = 60.0 + 3.0 * phase.sin() + 0.3 * noise();
        let mut pressure = 4.0 + 0.4 * phase.sin() + 0.04 * noise();
        if i + 1 == SPIKE_ROW {
            temp += 25.0;
            pressure -= 3.0;
        }
        let (day, minute) = (1 + i / 1440, i % 1440);
        let row = format!(
            "2024-03-{day:02} {:02}:{:02}:00;{temp:.3};{pressure:.4}\n",
            minute / 60,
            minute % 60
        );
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

fn score(dir: &Path, release: &str) -> Vec<serde_json::Value> {
    let mut args = vec![
        "models",
        "score",
        "--model",
        release,
        "--verify-key",
        "keys/verify.pub",
        "--csv",
        "pump.csv",
        "--after-row",
        "400",
    ];
    args.extend(FORMAT);
    let out = vigil(dir, &args);
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
    let verify = vigil(
        d,
        &[
            "models",
            "verify",
            "--file",
            "release.json",
            "--verify-key",
            "keys/verify.pub",
        ],
    );
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

#[test]
fn without_a_holdout_or_with_too_few_rows_nothing_is_written_and_the_error_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(&vigil(d, &["models", "keygen", "--out", "keys"]), "keygen");
    write_csv(&d.join("pump.csv"));

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
    for part in ["feature rows", "warm-up", "holdout", "features x 10"] {
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
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(&vigil(d, &["models", "keygen", "--out", "keys"]), "keygen");
    write_csv(&d.join("pump.csv"));
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
