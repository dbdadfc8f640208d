//! Acceptance, against a real Mosquitto: the agent takes release v1 from
//! the retained vigil/models/default, scores samples and publishes
//! verdicts; v2 published while it runs is used for the samples after it
//! without a restart; a tampered release, an older one and one signed by
//! another key are refused with their reasons and v2 stays — in memory, in
//! the retained status, and on disk for the next start (offline).

mod common;

use std::time::Duration;

use vigil_schemas::{DeviceState, DeviceStatus, Message, Verdict};
use vigil_testkit::Mosquitto;

const DEVICE: &str = "edge-models";
const WAIT: Duration = Duration::from_secs(60);

fn verdicts(sub: &common::Subscriber) -> Vec<Verdict> {
    sub.on("/verdicts")
        .into_iter()
        .map(|p| Verdict::decode(p).expect("valid verdict"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_are_verified_hot_swapped_and_refused() -> anyhow::Result<()> {
    let broker = Mosquitto::start()?;
    let keys = common::keys();
    let stranger = common::keys();
    let v1 = common::release(&keys.signing, 1, 21);
    let v2 = common::release(&keys.signing, 2, 22);
    let v3_other_key = common::release(&stranger.signing, 3, 23);
    // A valid v3 with one changed character in its signed payload.
    let v3 = common::bytes(&common::release(&keys.signing, 3, 24));
    let text = String::from_utf8(v3).expect("utf8");
    let tampered = text.replacen("\"threshold\":0.", "\"threshold\":1.", 1);
    assert_ne!(text, tampered, "the payload was changed");

    let model_topic = "vigil/models/default";
    common::publish(broker.port(), model_topic, common::bytes(&v1), true).await?;
    let mut sub = common::Subscriber::start(
        broker.port(),
        "models-test-sub",
        &format!("vigil/devices/{DEVICE}/+"),
        true,
    )
    .await?;

    let state = tempfile::tempdir()?;
    let mut args = common::base_args(DEVICE, &broker.url(), &keys.verify_path);
    args.extend(common::args(&["--source", "stdin", "--interval-ms", "0"]));
    let mut agent = common::Agent::start(state.path(), &args, true)?;
    agent.wait_for(&["release verified and persisted", "version=1"], WAIT)?;

    let samples = common::faulty_fleet(1, 90, 8);
    agent.feed(&common::json_lines(&samples[..30]))?;
    sub.until(WAIT, |m| {
        m.iter().filter(|(t, _)| t.ends_with("/verdicts")).count() >= 30
    })
    .await?;
    let first = verdicts(&sub);
    assert!(
        first.iter().all(|v| v.model_version == Some(1)),
        "{first:?}"
    );
    assert_eq!(
        first.iter().map(|v| v.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert!(first
        .iter()
        .all(|v| v.device_id == DEVICE && v.unscored.is_none()));

    // v2 while running: used for every later sample, no restart.
    common::publish(broker.port(), model_topic, common::bytes(&v2), true).await?;
    agent.wait_for(&["release verified and persisted", "version=2"], WAIT)?;
    agent.feed(&common::json_lines(&samples[30..60]))?;
    sub.until(WAIT, |m| {
        m.iter().filter(|(t, _)| t.ends_with("/verdicts")).count() >= 60
    })
    .await?;
    let second = &verdicts(&sub)[30..];
    assert!(
        second.iter().all(|v| v.model_version == Some(2)),
        "{second:?}"
    );

    // Tampered, older, foreign key: each refused with its reason.
    common::publish(broker.port(), model_topic, tampered.into_bytes(), true).await?;
    agent.wait_for(&["release rejected", "reason=\"bad_checksum\""], WAIT)?;
    common::publish(broker.port(), model_topic, common::bytes(&v1), true).await?;
    agent.wait_for(&["release rejected", "reason=\"older_version\""], WAIT)?;
    common::publish(
        broker.port(),
        model_topic,
        common::bytes(&v3_other_key),
        true,
    )
    .await?;
    agent.wait_for(&["release rejected", "reason=\"unknown_key\""], WAIT)?;

    agent.feed(&common::json_lines(&samples[60..90]))?;
    sub.until(WAIT, |m| {
        m.iter().filter(|(t, _)| t.ends_with("/verdicts")).count() >= 90
    })
    .await?;
    let third = &verdicts(&sub)[60..];
    assert!(
        third.iter().all(|v| v.model_version == Some(2)),
        "{third:?}"
    );
    assert_eq!(
        verdicts(&sub).iter().map(|v| v.seq).collect::<Vec<_>>(),
        (1..=90).collect::<Vec<_>>(),
        "every sample once, in order"
    );

    // The retained status names v2.
    sub.until(WAIT, |m| {
        m.iter()
            .rev()
            .filter(|(t, _)| t.ends_with("/status"))
            .any(|(_, p)| {
                DeviceStatus::decode(p)
                    .is_ok_and(|s| s.model_version == Some(2) && s.buffered_records == 0)
            })
    })
    .await?;

    // Issue 18: the older v1 retained last, then a restart with the
    // broker up: the agent starts on its persisted v2 and refuses v1.
    common::publish(broker.port(), model_topic, common::bytes(&v1), true).await?;
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    // A clean stop leaves its own offline status retained, naming v2: it
    // disconnects, so the broker does not publish the last will after it
    // (fixed when the agent connected, before its first model).
    let mut after = common::Subscriber::start(
        broker.port(),
        "models-test-after-stop",
        &format!("vigil/devices/{DEVICE}/status"),
        true,
    )
    .await?;
    after.until(WAIT, |m| !m.is_empty()).await?;
    let retained = DeviceStatus::decode(after.on("/status")[0]).expect("valid status");
    assert_eq!(
        (retained.state, retained.model_version),
        (DeviceState::Offline, Some(2)),
        "{retained:?}"
    );
    let mut agent = common::Agent::start(state.path(), &args, true)?;
    agent.wait_for(&["scoring with the persisted release", "version=2"], WAIT)?;
    agent.wait_for(&["release rejected", "reason=\"older_version\""], WAIT)?;

    // A clean stop exits 0; the next start, with the broker gone, scores
    // with the persisted v2.
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    drop(broker);
    let mut agent = common::Agent::start(state.path(), &args, true)?;
    agent.wait_for(&["scoring with the persisted release", "version=2"], WAIT)?;
    agent.feed(&common::json_lines(&samples[..1]))?;
    agent.wait_for(&["broker unreachable"], WAIT)?;
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    Ok(())
}
