//! Acceptance, against a real Mosquitto: store-and-forward.
//!
//! - The broker is stopped while 5,000 samples are taken (simulated
//!   device, 1 ms interval); the agent is `kill -9`ed in the middle of the
//!   outage and restarted; when the broker is back, all 5,000 samples and
//!   their verdicts arrive, in per-device order.
//! - With a queue too small for the outage, the oldest records are dropped
//!   and the drop count in the retained DeviceStatus equals the shortfall
//!   exactly; what arrives is the newest, contiguous.
//! - A torn last record in the on-disk queue is skipped with a log line and
//!   the rest is delivered.
//!
//! The test subscriber holds a persistent session, so the broker keeps what
//! arrives while it reconnects after the broker restart.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use vigil_schemas::{DeviceStatus, Message, Telemetry, Verdict};
use vigil_testkit::clients::eventually;
use vigil_testkit::Mosquitto;

const WAIT: Duration = Duration::from_secs(120);
const SAMPLES: u64 = 5_000;

/// seqs of the verdicts and telemetry received, in arrival order.
fn seqs(sub: &common::Subscriber) -> (Vec<u64>, Vec<u64>) {
    let v = sub
        .on("/verdicts")
        .into_iter()
        .map(|p| Verdict::decode(p).expect("valid verdict").seq)
        .collect();
    let t = sub
        .on("/telemetry")
        .into_iter()
        .map(|p| Telemetry::decode(p).expect("valid telemetry").seq)
        .collect();
    (v, t)
}

/// First arrivals of each seq, checked to be strictly increasing (a
/// message sent again after a lost acknowledgement may repeat an earlier
/// one; nothing may overtake).
fn in_order(arrivals: &[u64]) -> Vec<u64> {
    let mut seen = HashSet::new();
    let firsts: Vec<u64> = arrivals
        .iter()
        .copied()
        .filter(|s| seen.insert(*s))
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "per-device order broken: {:?}",
        firsts.windows(2).find(|w| w[0] >= w[1])
    );
    firsts
}

fn distinct(arrivals: &[u64]) -> usize {
    arrivals.iter().collect::<HashSet<_>>().len()
}

async fn seq_reached(state: &Path, seq: u64) -> anyhow::Result<()> {
    let path = state.join("status.json");
    eventually("the agent's status.json reaches the seq", WAIT, || {
        let path = path.clone();
        async move {
            std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["seq"].as_u64())
                .is_some_and(|s| s >= seq)
        }
    })
    .await
}

fn sim_args(device: &str, broker: &Mosquitto, keys: &common::Keys, model: &Path) -> Vec<String> {
    let mut args = common::base_args(device, &broker.url(), &keys.verify_path);
    args.extend(common::args(&[
        "--source",
        "sim",
        "--interval-ms",
        "1",
        "--sim-day-ms",
        "600000",
        "--stop-after-seq",
        &SAMPLES.to_string(),
        "--initial-model",
        model.to_str().expect("utf8"),
    ]));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_a_crash_loses_nothing() -> anyhow::Result<()> {
    const DEVICE: &str = "edge-outage";
    let mut broker = Mosquitto::start()?;
    let keys = common::keys();
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("v1.json");
    std::fs::write(
        &model,
        common::bytes(&common::release(&keys.signing, 1, 31)),
    )?;
    let mut sub = common::Subscriber::start(
        broker.port(),
        "outage-test-sub",
        &format!("vigil/devices/{DEVICE}/+"),
        false,
    )
    .await?;
    broker.stop();

    let state = dir.path().join("state");
    let args = sim_args(DEVICE, &broker, &keys, &model);
    let mut agent = common::Agent::start(&state, &args, false)?;
    agent.wait_for(&["broker unreachable"], WAIT)?;
    seq_reached(&state, 1_500).await?;
    agent.kill9();

    let mut agent = common::Agent::start(&state, &args, false)?;
    agent.wait_for(
        &["sample limit reached", &format!("last_seq={SAMPLES}")],
        WAIT,
    )?;
    assert!(
        agent.count("connected to the broker") == 0,
        "the broker was down the whole time"
    );

    broker.restart()?;
    // Decode each message once (the condition runs per message).
    let (mut v, mut t, mut done) = (HashSet::new(), HashSet::new(), 0);
    sub.until(WAIT, |m| {
        for (topic, p) in &m[done..] {
            if topic.ends_with("/verdicts") {
                v.insert(Verdict::decode(p).map(|v| v.seq).unwrap_or(0));
            } else if topic.ends_with("/telemetry") {
                t.insert(Telemetry::decode(p).map(|t| t.seq).unwrap_or(0));
            }
        }
        done = m.len();
        v.len() as u64 == SAMPLES && t.len() as u64 == SAMPLES
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_tail()))?;

    let (verdicts, telemetry) = seqs(&sub);
    let all: Vec<u64> = (1..=SAMPLES).collect();
    assert_eq!(in_order(&verdicts), all);
    assert_eq!(in_order(&telemetry), all);
    let duplicates = verdicts.len() - distinct(&verdicts);
    eprintln!(
        "{} verdicts received for {SAMPLES} samples ({duplicates} repeats)",
        verdicts.len()
    );

    // The agent reports an empty queue and no drops.
    sub.until(WAIT, |m| {
        m.last().is_some_and(|(t, p)| {
            t.ends_with("/status")
                && DeviceStatus::decode(p).is_ok_and(|s| {
                    s.buffered_records == 0 && s.dropped_records == 0 && s.last_uplink_ts.is_some()
                })
        })
    })
    .await?;
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_queue_drops_the_oldest_and_reports_the_shortfall_exactly() -> anyhow::Result<()> {
    const DEVICE: &str = "edge-small";
    let mut broker = Mosquitto::start()?;
    let keys = common::keys();
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("v1.json");
    std::fs::write(
        &model,
        common::bytes(&common::release(&keys.signing, 1, 32)),
    )?;
    let mut sub = common::Subscriber::start(
        broker.port(),
        "small-test-sub",
        &format!("vigil/devices/{DEVICE}/+"),
        false,
    )
    .await?;
    broker.stop();

    let state = dir.path().join("state");
    let mut args = sim_args(DEVICE, &broker, &keys, &model);
    args.extend(common::args(&["--queue-max-bytes", "65536"]));
    let agent = common::Agent::start(&state, &args, false)?;
    agent.wait_for(&["sample limit reached"], WAIT)?;
    agent.wait_for(&["uplink queue full"], WAIT)?;

    broker.restart()?;
    // The retained status after the drain: empty queue, drops counted.
    let mut dropped = None;
    sub.until(WAIT, |m| {
        dropped = m
            .last()
            .filter(|(t, _)| t.ends_with("/status"))
            .and_then(|(_, p)| DeviceStatus::decode(p).ok())
            .filter(|s| s.buffered_records == 0 && s.last_uplink_ts.is_some())
            .map(|s| s.dropped_records);
        dropped.is_some()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_tail()))?;
    let dropped = dropped.unwrap_or_default();

    let (verdicts, telemetry) = seqs(&sub);
    let verdicts = in_order(&verdicts);
    let telemetry = in_order(&telemetry);
    assert!(dropped > 0, "the queue was too small for the outage");
    assert_eq!(
        SAMPLES - verdicts.len() as u64,
        dropped,
        "reported drops equal the shortfall"
    );
    assert_eq!(
        verdicts,
        (dropped + 1..=SAMPLES).collect::<Vec<_>>(),
        "the newest survive"
    );
    assert_eq!(telemetry, verdicts);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("status.json"))?)?;
    assert_eq!(status["status"]["dropped_records"].as_u64(), Some(dropped));
    assert!(status["queue_file_bytes"].as_u64().unwrap_or(u64::MAX) <= 65_536);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_queue_tail_is_skipped_and_the_rest_delivered() -> anyhow::Result<()> {
    const DEVICE: &str = "edge-torn";
    const N: u64 = 100;
    let mut broker = Mosquitto::start()?;
    let keys = common::keys();
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("v1.json");
    std::fs::write(
        &model,
        common::bytes(&common::release(&keys.signing, 1, 33)),
    )?;
    let mut sub = common::Subscriber::start(
        broker.port(),
        "torn-test-sub",
        &format!("vigil/devices/{DEVICE}/+"),
        false,
    )
    .await?;
    broker.stop();

    let state = dir.path().join("state");
    let mut args = sim_args(DEVICE, &broker, &keys, &model);
    let limit = args
        .iter()
        .position(|a| a == "--stop-after-seq")
        .expect("flag")
        + 1;
    args[limit] = N.to_string();
    let mut agent = common::Agent::start(&state, &args, false)?;
    agent.wait_for(&["sample limit reached"], WAIT)?;
    assert_eq!(agent.terminate(), Some(0));

    // A power loss in the middle of writing the last record.
    let mut segments: Vec<_> = std::fs::read_dir(state.join("queue"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment");
    let len = std::fs::metadata(last)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)?
        .set_len(len - 50)?;

    broker.restart()?;
    let agent = common::Agent::start(&state, &args, false)?;
    let warning = agent.wait_for(&["damaged queue record"], WAIT)?;
    assert!(warning.contains("WARN"), "{warning}");
    sub.until(WAIT, |m| {
        m.last().is_some_and(|(t, p)| {
            t.ends_with("/verdicts") && Verdict::decode(p).is_ok_and(|v| v.seq == N)
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_tail()))?;
    let (verdicts, _) = seqs(&sub);
    // Records 1..N-1 came from the queue; the torn sample N was lost, so
    // the restarted agent took seq N again (from the last intact record).
    assert_eq!(in_order(&verdicts), (1..=N).collect::<Vec<_>>());
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("status.json"))?)?;
    assert_eq!(status["queue_corrupt_regions"].as_u64(), Some(1));
    Ok(())
}
