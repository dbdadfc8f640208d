//! Local corrective action and cloud commands through the real binary and
//! a real Mosquitto, and the `--check` self-test.

mod common;

use std::process::Command;
use std::time::Duration;

use vigil_schemas::{Message, Verdict};
use vigil_testkit::Mosquitto;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_run_the_action_and_cloud_commands_the_handler() -> anyhow::Result<()> {
    const DEVICE: &str = "edge-actions";
    let broker = Mosquitto::start()?;
    let keys = common::keys();
    let command_keys = common::command_keys();
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("v1.json");
    std::fs::write(
        &model,
        common::bytes(&common::release(&keys.signing, 1, 41)),
    )?;
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out)?;

    let mut args = common::base_args(DEVICE, &broker.url(), &keys.verify_path);
    args.extend(common::args(&[
        "--source",
        "stdin",
        "--interval-ms",
        "0",
        "--initial-model",
        model.to_str().expect("utf8"),
        "--action-command",
        &format!(
            "cat > {0}/verdict.json; echo \"$VIGIL_TRIGGER\" > {0}/trigger",
            out.display()
        ),
        "--command-handler",
        &format!(
            "echo \"$VIGIL_COMMAND $VIGIL_DEVICE_ID\" >> {}/commands",
            out.display()
        ),
        "--command-verify-key",
        command_keys.verify_path.to_str().expect("utf8"),
    ]));
    let mut agent = common::Agent::start(&dir.path().join("state"), &args, true)?;
    agent.wait_for(&["connected to the broker"], WAIT)?;
    let mut results = common::Subscriber::start(
        broker.port(),
        "results-tap",
        &format!("vigil/devices/{DEVICE}/command-results"),
        true,
    )
    .await?;

    agent.feed(&common::json_lines(&common::faulty_fleet(1, 400, 3)))?;
    agent.wait_for(&["local action ran"], WAIT)?;
    let verdict = Verdict::decode(std::fs::read(out.join("verdict.json"))?.trim_ascii())?;
    assert!(verdict.anomaly, "the action got the anomalous verdict");
    assert_eq!(verdict.device_id, DEVICE);
    assert_eq!(
        std::fs::read_to_string(out.join("trigger"))?.trim(),
        "anomaly"
    );
    assert!(
        agent.count("local action ran") == 1,
        "debounced: one action per minute\n{}",
        agent.log_tail()
    );

    common::publish(
        broker.port(),
        &format!("vigil/devices/{DEVICE}/commands"),
        common::signed_command(
            &command_keys.signing,
            DEVICE,
            common::now_ms() * 1000,
            r#"{"command":"reduce-speed","command_id":"x:1/r/0","incident_id":"x:1"}"#,
        ),
        false,
    )
    .await?;
    agent.wait_for(&["cloud command received", "reduce-speed"], WAIT)?;
    common::publish(
        broker.port(),
        &format!("vigil/devices/{DEVICE}/commands"),
        b"not json".to_vec(),
        false,
    )
    .await?;
    agent.wait_for(&["cloud command refused", "malformed"], WAIT)?;
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(out.join("commands")).is_ok_and(|c| c.contains('\n')) {
        assert!(std::time::Instant::now() < deadline, "handler did not run");
        // The handler is a separate process writing a file: poll it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(out.join("commands"))?,
        format!("reduce-speed {DEVICE}\n")
    );
    // The outcome comes back on the device's command-results topic.
    results.until(WAIT, |m| !m.is_empty()).await?;
    let result = vigil_schemas::CommandResult::decode(&results.messages[0].1)?;
    assert_eq!(result.device_id, DEVICE);
    assert_eq!(result.command, "reduce-speed");
    assert_eq!(result.command_id.as_deref(), Some("x:1/r/0"));
    assert_eq!(result.incident_id.as_deref(), Some("x:1"));
    assert_eq!(result.status, vigil_schemas::CommandOutcome::Ok);
    assert_eq!(result.exit_status, Some(0));
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    Ok(())
}

#[test]
fn check_reports_each_item_and_fails_on_a_bad_key() {
    let keys = common::keys();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"pump-7\"\nverify_key = \"{}\"\nstate_dir = \"{}\"\nsource = \"sim\"\nmqtt_url = \"mqtt://127.0.0.1:1\"\n",
            keys.verify_path.display(),
            dir.path().join("state").display()
        ),
    )
    .expect("write");
    let ok = Command::new(common::BIN)
        .args(["--check", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    for item in [
        "ok   config",
        "ok   verify key",
        "ok   state dir",
        "ok   source",
        "info model",
        "info broker",
    ] {
        assert!(text.contains(item), "{item} missing:\n{text}");
    }

    std::fs::write(dir.path().join("bad.pub"), "not a key\n").expect("write");
    let bad = Command::new(common::BIN)
        .args(["--check", "--config"])
        .arg(&config)
        .arg("--verify-key")
        .arg(dir.path().join("bad.pub"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL verify key"), "{text}");
}
