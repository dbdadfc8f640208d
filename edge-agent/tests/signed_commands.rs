//! Signed cloud commands through the real binary and a real Mosquitto:
//! unsigned, foreign-key, wrong-device, expired and replayed commands are
//! refused (never reaching the handler) and counted per reason in
//! `status.json`; valid ones run and report their result; the replay
//! high-water mark survives a restart.

mod common;

use std::time::{Duration, Instant};

use vigil_schemas::{CommandOutcome, CommandResult, Message};
use vigil_testkit::Mosquitto;

const WAIT: Duration = Duration::from_secs(60);
const DEVICE: &str = "edge-signed";

/// Starts the agent with both keys and a handler appending
/// `$VIGIL_COMMAND` to `log`; returns once its command subscription is
/// in place (its online status, published after subscribing, arrived).
async fn start(
    broker: &Mosquitto,
    state: &std::path::Path,
    keys: &common::Keys,
    command_key: Option<&std::path::Path>,
    log: &std::path::Path,
) -> anyhow::Result<common::Agent> {
    let mut status = common::Subscriber::start(
        broker.port(),
        &format!("status-tap-{}", common::now_ms()),
        &format!("vigil/devices/{DEVICE}/status"),
        true,
    )
    .await?;
    let mut args = common::base_args(DEVICE, &broker.url(), &keys.verify_path);
    args.extend(common::args(&[
        "--source",
        "stdin",
        "--interval-ms",
        "0",
        "--command-handler",
        &format!("echo \"$VIGIL_COMMAND\" >> {}", log.display()),
    ]));
    if let Some(key) = command_key {
        args.extend(common::args(&[
            "--command-verify-key",
            key.to_str().expect("utf8"),
        ]));
    }
    let agent = common::Agent::start(state, &args, true)?;
    status
        .until(WAIT, |m| {
            m.iter()
                .any(|(_, p)| String::from_utf8_lossy(p).contains("\"online\""))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_tail()))?;
    Ok(agent)
}

/// Waits until `status.json` satisfies `done`.
fn status_when(
    agent: &common::Agent,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = agent.status().filter(|s| done(s)) {
            return Ok(s);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "status.json never matched: {:?}\n{}",
            agent.status(),
            agent.log_tail()
        );
        // The agent rewrites it every 200 ms (--status-interval-ms).
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_signed_commands_run_and_each_refusal_is_counted() -> anyhow::Result<()> {
    let broker = Mosquitto::start()?;
    let keys = common::keys();
    let command_keys = common::command_keys();
    let foreign = common::command_keys();
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let log = dir.path().join("handled");
    let topic = format!("vigil/devices/{DEVICE}/commands");
    let mut results = common::Subscriber::start(
        broker.port(),
        "results-tap",
        &format!("vigil/devices/{DEVICE}/command-results"),
        true,
    )
    .await?;
    let mut agent = start(
        &broker,
        &state,
        &keys,
        Some(&command_keys.verify_path),
        &log,
    )
    .await?;

    let key = &command_keys.signing;
    let base = common::now_ms() * 1000;
    let first = common::signed_command(
        key,
        DEVICE,
        base + 10,
        r#"{"command":"first","command_id":"i:1/r/0","incident_id":"i:1"}"#,
    );
    let now = common::now_ms();
    let expired = vigil_model::sign_command(
        key,
        DEVICE,
        base + 20,
        now - 120_000,
        now - 60_000,
        br#"{"command":"expired"}"#,
    )?;
    let sends: Vec<Vec<u8>> = vec![
        first.clone(),
        // The old, unsigned format.
        br#"{"command":"unsigned","command_id":"x"}"#.to_vec(),
        common::signed_command(
            &foreign.signing,
            DEVICE,
            base + 30,
            r#"{"command":"foreign"}"#,
        ),
        common::signed_command(key, "someone-else", base + 40, r#"{"command":"elsewhere"}"#),
        expired,
        // The first one again, byte for byte.
        first.clone(),
        common::signed_command(key, DEVICE, base + 50, r#"{"command":"second"}"#),
        // Signed in order, but overtaken by the one above.
        common::signed_command(key, DEVICE, base + 45, r#"{"command":"late"}"#),
    ];
    for payload in sends {
        common::publish(broker.port(), &topic, payload, false).await?;
    }
    let counted = status_when(&agent, |s| s["commands"] == 8 && s["actions_run"] == 2)?;
    let refused = &counted["commands_refused"];
    for (reason, n) in [
        ("unsigned", 1),
        ("foreign_key", 1),
        ("wrong_device", 1),
        ("expired", 1),
        ("replayed", 2),
        ("bad_signature", 0),
        ("malformed", 0),
        ("no_key", 0),
    ] {
        assert_eq!(
            refused[reason],
            n,
            "{reason}: {refused}\n{}",
            agent.log_tail()
        );
    }
    // Results come after the handler exited.
    results.until(WAIT, |m| m.len() >= 2).await?;
    assert_eq!(
        std::fs::read_to_string(&log)?,
        "first\nsecond\n",
        "only the valid commands reached the handler"
    );
    agent.wait_for(&["cloud command refused", "foreign_key"], WAIT)?;
    let first_result = CommandResult::decode(&results.messages[0].1)?;
    assert_eq!(first_result.command, "first");
    assert_eq!(first_result.command_id.as_deref(), Some("i:1/r/0"));
    assert_eq!(first_result.status, CommandOutcome::Ok);

    // After a restart the high-water mark still holds: the newest command
    // replayed is refused, a newer one runs.
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    let mut agent = start(
        &broker,
        &state,
        &keys,
        Some(&command_keys.verify_path),
        &log,
    )
    .await?;
    let second = common::signed_command(key, DEVICE, base + 50, r#"{"command":"second"}"#);
    common::publish(broker.port(), &topic, second, false).await?;
    let third = common::signed_command(key, DEVICE, base + 60, r#"{"command":"third"}"#);
    common::publish(broker.port(), &topic, third, false).await?;
    let counted = status_when(&agent, |s| s["commands"] == 2 && s["actions_run"] == 1)?;
    assert_eq!(counted["commands_refused"]["replayed"], 1);
    results.until(WAIT, |m| m.len() >= 3).await?;
    assert_eq!(std::fs::read_to_string(&log)?, "first\nsecond\nthird\n");
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_command_key_every_command_is_refused() -> anyhow::Result<()> {
    let broker = Mosquitto::start()?;
    let keys = common::keys();
    let command_keys = common::command_keys();
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("handled");
    let agent = start(&broker, &dir.path().join("state"), &keys, None, &log).await?;
    agent.wait_for(&["no --command-verify-key"], WAIT)?;
    let topic = format!("vigil/devices/{DEVICE}/commands");
    let seq = common::now_ms() * 1000;
    let payload = common::signed_command(&command_keys.signing, DEVICE, seq, r#"{"command":"x"}"#);
    common::publish(broker.port(), &topic, payload, false).await?;
    let counted = status_when(&agent, |s| s["commands"] == 1)?;
    assert_eq!(counted["commands_refused"]["no_key"], 1);
    assert_eq!(counted["actions_run"], 0);
    agent.wait_for(&["cloud command refused", "no_key"], WAIT)?;
    assert!(!log.exists(), "the handler never ran");
    Ok(())
}
