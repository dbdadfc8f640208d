//! Acceptance, against a real Mosquitto: a record the broker acknowledged
//! with MQTT 5 reason 16, "no matching subscribers", is not lost.
//!
//! This is what Mosquitto does after a restart that lost the ingest
//! replicas' shared subscription: it acknowledges every publish and drops
//! it until they subscribe again. Here nothing subscribes to the device's
//! topics while the agent publishes its samples; then a shared
//! subscription (`$share/…`, as ingest holds) appears. Every sample taken
//! during the window arrives, and `status.json` counted the refusals. The
//! old agent (MQTT 3.1.1, any PUBACK taken as delivered) removed those
//! records from its queue, so nothing arrived.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use vigil_schemas::{Message, Telemetry};
use vigil_testkit::clients::eventually;
use vigil_testkit::Mosquitto;

const WAIT: Duration = Duration::from_secs(90);
const SAMPLES: u64 = 300;
const DEVICE: &str = "edge-unrouted";

fn status(state: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(state.join("status.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn telemetry_seqs(sub: &common::Subscriber) -> HashSet<u64> {
    sub.on("/telemetry")
        .into_iter()
        .map(|p| Telemetry::decode(p).expect("valid telemetry").seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_refused_for_want_of_a_subscriber_are_sent_again() -> anyhow::Result<()> {
    let broker = Mosquitto::start()?;
    let keys = common::keys();
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let mut args = common::base_args(DEVICE, &broker.url(), &keys.verify_path);
    args.extend(common::args(&[
        "--source",
        "sim",
        "--interval-ms",
        "2",
        "--sim-day-ms",
        "600000",
        "--stop-after-seq",
        &SAMPLES.to_string(),
    ]));
    let mut agent = common::Agent::start(&state, &args, false)?;

    // Nobody subscribes: the broker answers reason 16 and drops.
    agent.wait_for(&["connected to the broker"], WAIT)?;
    agent.wait_for(
        &[
            "the broker did not take an uplink record",
            "no_matching_subscribers",
        ],
        WAIT,
    )?;
    eventually(
        "every sample is taken while nothing subscribes",
        WAIT,
        || {
            let s = status(&state);
            async move {
                s.and_then(|s| s["seq"].as_u64())
                    .is_some_and(|q| q >= SAMPLES)
            }
        },
    )
    .await?;
    let before = status(&state).expect("status.json");
    let refused = before["uplink_refused"]["no_matching_subscribers"]
        .as_u64()
        .expect("the refusal count");
    assert!(refused > 0, "refusals counted: {before}");
    assert!(
        before["status"]["buffered_records"].as_u64() > Some(0),
        "the refused records are still queued: {before}"
    );

    // The shared subscription (what ingest holds) comes back.
    let mut sub = common::Subscriber::start(
        broker.port(),
        "unrouted-test-ingest",
        &format!("$share/ingest/vigil/devices/{DEVICE}/+"),
        true,
    )
    .await?;
    let arrived = sub
        .until(WAIT, |messages| {
            let seqs: HashSet<u64> = messages
                .iter()
                .filter(|(t, _)| t.ends_with("/telemetry"))
                .filter_map(|(_, p)| Telemetry::decode(p).ok().map(|t| t.seq))
                .collect();
            seqs.len() as u64 >= SAMPLES
        })
        .await;
    let seqs = telemetry_seqs(&sub);
    assert_eq!(
        seqs.len() as u64,
        SAMPLES,
        "every sample taken while nothing subscribed arrived (missing: {:?})\n{}",
        (1..=SAMPLES)
            .filter(|s| !seqs.contains(s))
            .take(20)
            .collect::<Vec<_>>(),
        agent.log_tail()
    );
    arrived?;
    eventually("the queue drains", WAIT, || {
        let s = status(&state);
        async move { s.and_then(|s| s["status"]["buffered_records"].as_u64()) == Some(0) }
    })
    .await?;
    let after = status(&state).expect("status.json");
    assert!(
        after["uplink_refused"]["no_matching_subscribers"].as_u64() >= Some(refused),
        "{after}"
    );
    assert_eq!(after["uplink_refused"]["not_authorized"], 0, "{after}");
    agent.terminate();
    Ok(())
}
