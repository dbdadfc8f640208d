//! Acceptance: a sample file scored by the agent's offline path
//! (`vigil-edge score`, the built binary) and by the cloud scoring code
//! (`vigil_model::Scorer` with `ScoredAt::Cloud`, as `vigil score` and
//! `vigil models score` run it) gives byte-identical verdicts.
//!
//! What is compared: every verdict's JSON line, byte for byte, after
//! changing the cloud's `"scored_at":"cloud"` to `"scored_at":"edge"` —
//! the only field that legitimately differs. `scored_ts` is made equal by
//! stamping both with the record's event time (`--scored-ts-from-event` on
//! the edge side, `now_ms = record.ts` on the cloud side); `ingest_ts` is
//! absent on both (`null`). So score, threshold, anomaly flag,
//! contributions, model name and version, seq and timestamps all match
//! exactly.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use vigil_model::Scorer;
use vigil_schemas::{Message, ScoredAt, Verdict};

#[test]
fn edge_and_cloud_verdicts_are_byte_identical() {
    let keys = common::keys();
    let release = common::release(&keys.signing, 3, 11);
    let dir = tempfile::tempdir().expect("tempdir");
    let model_path = dir.path().join("release.json");
    std::fs::write(&model_path, common::bytes(&release)).expect("write release");

    let records = common::faulty_fleet(6, 600, 5);
    let input = common::json_lines(&records);

    // The edge: the real binary.
    let mut child = Command::new(common::BIN)
        .args(["score", "--scored-ts-from-event", "--model"])
        .arg(&model_path)
        .arg("--verify-key")
        .arg(&keys.verify_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vigil-edge score");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("vigil-edge score runs");
    writer.join().expect("writer").expect("input written");
    assert!(
        output.status.success(),
        "vigil-edge score failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let edge = String::from_utf8(output.stdout).expect("utf8");

    // The cloud: the shared scorer, as the cloud services call it.
    let model = vigil_model::decode_and_verify(
        &std::fs::read(&model_path).expect("read"),
        &keys.signing.verifying_key(),
    )
    .expect("verify");
    let mut scorer = Scorer::new("default", 100_000);
    scorer.install(Arc::new(model)).expect("install");
    let mut cloud = String::new();
    for r in &records {
        let v = scorer.score(r, None, r.ts, ScoredAt::Cloud);
        cloud.push_str(&String::from_utf8(v.encode().expect("encode")).expect("utf8"));
        cloud.push('\n');
    }

    let edge_lines: Vec<&str> = edge.lines().collect();
    let cloud_lines: Vec<String> = cloud
        .lines()
        .map(|l| l.replace("\"scored_at\":\"cloud\"", "\"scored_at\":\"edge\""))
        .collect();
    assert_eq!(edge_lines.len(), records.len());
    for (i, (e, c)) in edge_lines.iter().zip(&cloud_lines).enumerate() {
        assert_eq!(*e, c.as_str(), "verdict {i} differs");
    }

    // The comparison covered real decisions: scored by v3, with anomalies.
    let verdicts: Vec<Verdict> = edge_lines
        .iter()
        .map(|l| Verdict::decode(l.as_bytes()).expect("valid verdict"))
        .collect();
    assert!(verdicts.iter().all(|v| v.model_version == Some(3)));
    assert!(verdicts.iter().all(|v| v.scored_at == ScoredAt::Edge));
    let anomalies = verdicts.iter().filter(|v| v.anomaly).count();
    assert!(anomalies > 10, "{anomalies} anomalies");
    assert!(verdicts.iter().any(|v| !v.contributions.is_empty()));
}

#[test]
fn a_release_that_does_not_verify_is_refused() {
    let keys = common::keys();
    let other = common::keys();
    let release = common::release(&other.signing, 1, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let model_path = dir.path().join("release.json");
    std::fs::write(&model_path, common::bytes(&release)).expect("write release");
    let output = Command::new(common::BIN)
        .args(["score", "--model"])
        .arg(&model_path)
        .arg("--verify-key")
        .arg(&keys.verify_path)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("unknown_key") || err.contains("signed by key"),
        "{err}"
    );
}
