//! Edge decisions reach the log and the audit trail, against real
//! Mosquitto and tansu with the built binaries:
//!
//! - a live `vigil-edge` scoring with a model `vigil push` pushed: every
//!   verdict it publishes is on `vigil.verdicts` with `scored_at = edge`
//!   (its anomalies on `vigil.anomalies`) and in the audit store, and the
//!   cloud scorer gives no second verdict for the records it scored;
//! - verdicts naming a release never published or refused, sent on another
//!   device's topic or claiming the cloud scored them land in the DLQ
//!   with their reason, and are counted;
//! - an agent cut off from the broker (its link closed, the broker and
//!   the cloud untouched) for `VIGIL_EDGE_OUTAGE_SECS` (3 s by default,
//!   60 in the acceptance run), then reconnected: its buffered verdicts are
//!   all audited, once;
//! - an agent power-cut (`kill -9`, its unsynced queue tail cut off, a new
//!   boot id) and restarted: every verdict published before the cut and
//!   after it is stored once, and no sequence number names two records.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::edge::Agent;
use common::{new_keys, path, produce_all, Keys, VigilProcess};
use serde_json::Value;
use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_schemas::{DlqRecord, Message, ModelRelease, ScoredAt, Telemetry, Verdict};
use vigil_testkit::clients::{eventually, publish_all, read_until, Record};
use vigil_testkit::link::Link;
use vigil_testkit::{Mosquitto, Tansu};

const WAIT: Duration = Duration::from_secs(45);

/// Release `version` of `default`, fitted on a small simulated fleet and
/// signed with the key at `signing`.
fn release(signing: &std::path::Path, version: u64) -> anyhow::Result<ModelRelease> {
    let config = FleetConfig {
        day_ms: 600_000,
        ..FleetConfig::clean(8, 7)
    };
    let records = common::sim_records(&mut Fleet::new(config)?, 300);
    common::release(signing, &records, version)
}

async fn publish_release(brokers: &str, release: &ModelRelease) -> anyhow::Result<()> {
    produce_all(
        brokers,
        "vigil.models",
        &[(release.model.clone(), release.encode()?)],
    )
    .await
}

async fn start_push(
    mqtt: &Mosquitto,
    brokers: &str,
    keys: &Keys,
    extra: &[&str],
) -> anyhow::Result<VigilProcess> {
    let verify = path(&keys.verify);
    VigilProcess::push(&mqtt.url(), brokers, &verify, "push-edge-test", extra).await
}

/// `vigil ingest`: the subscriber of the agents' telemetry. An agent keeps
/// a record (telemetry and verdict together) queued until the broker
/// routed both, so edge verdicts flow only where ingest runs too, as in
/// every deployment.
async fn start_ingest(mqtt: &Mosquitto, brokers: &str) -> anyhow::Result<VigilProcess> {
    VigilProcess::ingest(&mqtt.url(), brokers, "ingest-edge-test", &[]).await
}

async fn start_audit(brokers: &str, store: &str) -> anyhow::Result<VigilProcess> {
    let audit = VigilProcess::start(&[
        "audit",
        "--kafka-brokers",
        brokers,
        "--store",
        store,
        "--group",
        "audit-edge-test",
    ])
    .await?;
    audit.wait_ready().await?;
    Ok(audit)
}

/// The model version of the edge verdict for `seq` (None: unscored, or
/// no such verdict).
fn edge_version(edge: &[Verdict], seq: u64) -> Option<Option<u64>> {
    edge.iter().find(|v| v.seq == seq).map(|v| v.model_version)
}

/// Verdicts of `device` on a topic, decoded.
fn verdicts_of(records: &[Record], device: &str) -> Vec<Verdict> {
    records
        .iter()
        .filter(|r| r.key == device)
        .filter_map(|r| Verdict::decode(&r.payload).ok())
        .collect()
}

/// Every verdict of `device` in the audit store, over its API.
async fn audited(http: &str, device: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut route = format!("/v1/devices/{device}/verdicts?limit=1000");
    loop {
        let page: Value = reqwest::get(format!("http://{http}{route}"))
            .await?
            .json()
            .await?;
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => route = format!("/v1/devices/{device}/verdicts?limit=1000&cursor={c}"),
            None => return Ok(out),
        }
    }
}

/// (seq → count) of `device`'s edge verdicts in the audit store.
async fn audited_edge_seqs(http: &str, device: &str) -> BTreeMap<u64, usize> {
    let mut seqs = BTreeMap::new();
    for v in audited(http, device).await.unwrap_or_default() {
        if v["scored_at"] == "edge" {
            if let Some(seq) = v["seq"].as_u64() {
                *seqs.entry(seq).or_default() += 1;
            }
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_agents_verdicts_are_bridged_audited_and_not_scored_again() -> anyhow::Result<()> {
    const DEVICE: &str = "edge-bridge-1";
    const SAMPLES: u64 = 120;
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = new_keys()?;
    publish_release(&brokers, &release(&keys.signing, 1)?).await?;
    let store_dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", store_dir.path().join("audit.db").display());
    let url = mqtt.url();
    let verify = path(&keys.verify);

    let push = start_push(&mqtt, &brokers, &keys, &[]).await?;
    let ingest = start_ingest(&mqtt, &brokers).await?;
    let score = VigilProcess::start(&[
        "score",
        "--kafka-brokers",
        &brokers,
        "--verify-key",
        &verify,
        "--group",
        "score-edge-test",
    ])
    .await?;
    score.wait_ready().await?;
    let audit = start_audit(&brokers, &store).await?;
    // The release is retained on the broker before the agent starts, so
    // it arrives with the agent's first connection.
    eventually("push mirrored v1", WAIT, || async {
        push.metric("vigil_push_releases_mirrored_total").await >= 1.0
    })
    .await
    .map_err(|e| push.failure(e))?;

    let samples = SAMPLES.to_string();
    let agent = Agent::start_with(
        DEVICE,
        &url,
        &keys.verify,
        &[
            "--interval-ms",
            "20",
            "--sim-day-ms",
            "20000",
            "--sim-anomaly-rate",
            "20",
            "--stop-after-seq",
            &samples,
        ],
    )?;
    agent.seq_reached(SAMPLES, WAIT).await?;

    // Every sample's verdict reaches vigil.verdicts as the edge's.
    let verdicts = read_until(&brokers, "vigil.verdicts", WAIT, |records| {
        let seqs: BTreeSet<u64> = verdicts_of(records, DEVICE)
            .iter()
            .filter(|v| v.scored_at == ScoredAt::Edge)
            .map(|v| v.seq)
            .collect();
        seqs.len() as u64 == SAMPLES
    })
    .await
    .map_err(|e| push.failure(e))?;
    let edge: Vec<Verdict> = verdicts_of(&verdicts, DEVICE)
        .into_iter()
        .filter(|v| v.scored_at == ScoredAt::Edge)
        .collect();
    let seqs: BTreeSet<u64> = edge.iter().map(|v| v.seq).collect();
    assert_eq!(seqs, (1..=SAMPLES).collect(), "one edge verdict per sample");
    let scored: BTreeSet<u64> = edge
        .iter()
        .filter(|v| v.model_version == Some(1))
        .map(|v| v.seq)
        .collect();
    assert!(
        scored.len() as u64 > SAMPLES / 2,
        "most samples scored with the pushed model: {} of {SAMPLES}\n{}",
        scored.len(),
        agent.log_text()
    );

    // Every record says the edge decided about it, and the cloud scorer
    // read every one and left it alone.
    let telemetry = read_until(&brokers, "vigil.telemetry", WAIT, |records| {
        let seqs: BTreeSet<u64> = records
            .iter()
            .filter(|r| r.key == DEVICE)
            .filter_map(|r| Telemetry::decode(&r.payload).ok())
            .map(|t| t.seq)
            .collect();
        seqs.len() as u64 == SAMPLES
    })
    .await?;
    let marked: BTreeSet<u64> = telemetry
        .iter()
        .filter_map(|r| Telemetry::decode(&r.payload).ok())
        .filter(|t| t.device_id == DEVICE)
        .filter(|t| t.edge.as_ref().map(|e| e.model_version) == edge_version(&edge, t.seq))
        .map(|t| t.seq)
        .collect();
    assert_eq!(marked, seqs, "each record names the edge's decision");
    eventually(
        "the scorer skipped every record of the edge agent",
        WAIT,
        || async { score.metric("vigil_score_edge_records_skipped_total").await >= SAMPLES as f64 },
    )
    .await
    .map_err(|e| score.failure(e))?;
    let verdicts = read_until(&brokers, "vigil.verdicts", WAIT, |records| {
        verdicts_of(records, DEVICE).len() as u64 >= SAMPLES
    })
    .await?;
    let second: Vec<u64> = verdicts_of(&verdicts, DEVICE)
        .iter()
        .filter(|v| v.scored_at == ScoredAt::Cloud)
        .map(|v| v.seq)
        .collect();
    assert!(
        second.is_empty(),
        "cloud verdicts for the edge agent's records: {second:?}"
    );
    for counter in [
        "vigil_score_records_scored_total",
        "vigil_score_records_unscored_total",
    ] {
        assert_eq!(score.metric(counter).await, 0.0, "{counter}");
    }

    // Anomalies the edge flagged are on vigil.anomalies too.
    let flagged: BTreeSet<u64> = edge.iter().filter(|v| v.anomaly).map(|v| v.seq).collect();
    let anomalies = read_until(&brokers, "vigil.anomalies", WAIT, |records| {
        let seen: BTreeSet<u64> = verdicts_of(records, DEVICE)
            .iter()
            .filter(|v| v.scored_at == ScoredAt::Edge)
            .map(|v| v.seq)
            .collect();
        seen.is_superset(&flagged)
    })
    .await?;
    let on_anomalies: BTreeSet<u64> = verdicts_of(&anomalies, DEVICE)
        .iter()
        .filter(|v| v.scored_at == ScoredAt::Edge)
        .map(|v| v.seq)
        .collect();
    assert_eq!(on_anomalies, flagged, "exactly the anomalous edge verdicts");

    // The audit store holds every edge verdict.
    let http = audit.http.clone();
    eventually("every edge verdict audited", WAIT, || {
        let http = http.clone();
        async move { audited_edge_seqs(&http, DEVICE).await.len() as u64 == SAMPLES }
    })
    .await
    .map_err(|e| audit.failure(e))?;
    let rows = audited_edge_seqs(&audit.http, DEVICE).await;
    assert!(rows.values().all(|&n| n == 1), "{rows:?}");
    assert_eq!(
        push.metric("vigil_push_edge_verdicts_rejected_total")
            .await
            .max(0.0),
        0.0,
        "nothing refused"
    );
    drop(ingest);
    Ok(())
}

/// An edge verdict for `device` on `topic_device`'s topic.
fn edge_verdict(
    topic_device: &str,
    device: &str,
    version: Option<u64>,
    at: &str,
) -> (String, Vec<u8>) {
    let now = common::now_ms();
    // A scored verdict opens an alarm; an unscored one says why.
    let decision = match version {
        Some(v) => format!(
            r#""model_version":{v},"score":0.9,"threshold":0.5,"anomaly":true,"alarm":{{"id":"{device}@7","opened_seq":7,"opened_ts":{now},"state":"opened"}}"#
        ),
        None => {
            r#""model_version":null,"score":0,"threshold":0,"anomaly":false,"unscored":"no_model""#
                .to_owned()
        }
    };
    (
        format!("vigil/devices/{topic_device}/verdicts"),
        format!(
            r#"{{"schema":1,"device_id":"{device}","seq":7,"event_ts":{now},"scored_ts":{now},"model":"default",{decision},"scored_at":"{at}"}}"#
        )
        .into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_for_unpublished_releases_or_other_devices_go_to_the_dlq() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = new_keys()?;
    let forger = new_keys()?;
    // v1 genuine; v2 on the log but signed with another key: refused.
    publish_release(&brokers, &release(&keys.signing, 1)?).await?;
    publish_release(&brokers, &release(&forger.signing, 2)?).await?;
    let push = start_push(&mqtt, &brokers, &keys, &["--release-wait-ms", "300"]).await?;

    let messages = vec![
        edge_verdict("dev-a", "dev-a", Some(1), "edge"),
        edge_verdict("dev-a", "dev-a", Some(9), "edge"),
        edge_verdict("dev-a", "dev-a", Some(2), "edge"),
        edge_verdict("dev-a", "dev-b", Some(1), "edge"),
        edge_verdict("dev-a", "dev-a", Some(1), "cloud"),
        edge_verdict("dev-c", "dev-c", None, "edge"),
    ];
    publish_all(mqtt.port(), "edge-forger", messages, WAIT).await?;

    let dlq = read_until(&brokers, "vigil.dlq", WAIT, |r| r.len() >= 4)
        .await
        .map_err(|e| push.failure(e))?;
    let reasons: BTreeSet<String> = dlq
        .iter()
        .filter_map(|r| DlqRecord::decode(&r.payload).ok())
        .filter(|d| d.source.contains("/verdicts"))
        .map(|d| d.reason)
        .collect();
    let expected: BTreeSet<String> = [
        "unknown_model_version",
        "refused_model_version",
        "device_mismatch",
        "not_edge_scored",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(reasons, expected);
    for reason in &expected {
        let name = format!("vigil_push_edge_verdicts_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(push.metric(&name).await, 1.0, "{name}");
    }

    // The valid ones (v1, and an unscored verdict) are bridged, the
    // anomalous one to vigil.anomalies as well; nothing refused is.
    let verdicts = read_until(&brokers, "vigil.verdicts", WAIT, |r| r.len() >= 2).await?;
    let devices: Vec<&str> = verdicts.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(
        BTreeSet::from_iter(devices),
        BTreeSet::from(["dev-a", "dev-c"])
    );
    let anomalies = read_until(&brokers, "vigil.anomalies", WAIT, |r| !r.is_empty()).await?;
    let anomalous: Vec<Verdict> = verdicts_of(&anomalies, "dev-a");
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalous[0].model_version, Some(1));
    assert_eq!(
        push.metric("vigil_push_edge_verdicts_bridged_total").await,
        2.0
    );
    assert_eq!(
        push.metric("vigil_push_edge_anomalies_bridged_total").await,
        1.0
    );
    Ok(())
}

/// Length of the offline test's outage: `VIGIL_EDGE_OUTAGE_SECS` (the
/// acceptance run uses 60), 3 s by default to keep the suite short.
fn outage() -> Duration {
    let secs = std::env::var("VIGIL_EDGE_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(3);
    Duration::from_secs(secs.max(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cut_off_then_back_has_its_buffered_verdicts_audited_once() -> anyhow::Result<()> {
    const DEVICE: &str = "edge-offline-1";
    const INTERVAL_MS: u64 = 10;
    const BEFORE: u64 = 50;
    let outage = outage();
    // Samples while cut off: the outage at the sampling interval.
    let samples = BEFORE + outage.as_millis() as u64 / INTERVAL_MS;
    let wait = WAIT + outage * 2;
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let mut link = Link::start(mqtt.port()).await?;
    let keys = new_keys()?;
    let v1 = release(&keys.signing, 1)?;
    publish_release(&brokers, &v1).await?;
    let model_dir = tempfile::tempdir()?;
    let model = model_dir.path().join("v1.json");
    std::fs::write(&model, v1.encode()?)?;
    let store_dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", store_dir.path().join("audit.db").display());
    let push = start_push(&mqtt, &brokers, &keys, &[]).await?;
    let _ingest = start_ingest(&mqtt, &brokers).await?;
    let audit = start_audit(&brokers, &store).await?;

    let stop = samples.to_string();
    let interval = INTERVAL_MS.to_string();
    let agent = Agent::start_with(
        DEVICE,
        &link.url(),
        &keys.verify,
        &[
            "--interval-ms",
            &interval,
            "--stop-after-seq",
            &stop,
            "--drain-rate",
            "2000",
            "--initial-model",
            &path(&model),
        ],
    )?;
    agent.seq_reached(BEFORE, wait).await?;
    link.cut().await;
    let cut_at = std::time::Instant::now();
    // The agent keeps sampling into its queue while it is cut off, for
    // the whole outage (the sampling interval paces it).
    agent.seq_reached(samples, wait).await?;
    let offline = cut_at.elapsed();
    link.restore().await?;
    eprintln!("outage {offline:?} (asked {outage:?}), {samples} samples");
    assert!(
        offline >= outage.mul_f64(0.9),
        "outage too short: {offline:?}"
    );

    let http = audit.http.clone();
    let audited_all = eventually("every buffered verdict audited", wait, || {
        let http = http.clone();
        async move { audited_edge_seqs(&http, DEVICE).await.len() as u64 == samples }
    })
    .await;
    if let Err(e) = audited_all {
        let got = audited_edge_seqs(&audit.http, DEVICE).await.len();
        let bridged = push.metric("vigil_push_edge_verdicts_bridged_total").await;
        let tail: String = agent
            .log_text()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n");
        return Err(push.failure(audit.failure(anyhow::anyhow!(
            "{e}: {got} audited, {bridged} bridged\nagent (last lines first):\n{tail}"
        ))));
    }
    let rows = audited_edge_seqs(&audit.http, DEVICE).await;
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (1..=samples).collect::<Vec<_>>()
    );
    assert!(
        rows.values().all(|&n| n == 1),
        "each verdict once: {rows:?}"
    );
    assert_eq!(audit.metric("vigil_audit_conflicts_total").await, 0.0);
    Ok(())
}

/// (seq → event times) of `device`'s edge verdicts on `vigil.verdicts`.
fn bridged_edge(records: &[Record], device: &str) -> BTreeMap<u64, BTreeSet<u64>> {
    let mut out: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for v in verdicts_of(records, device) {
        if v.scored_at == ScoredAt::Edge {
            out.entry(v.seq).or_default().insert(v.event_ts);
        }
    }
    out
}

/// (seq → event times) of `device`'s edge verdicts in the audit store.
async fn audited_edge(http: &str, device: &str) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for v in audited(http, device).await.unwrap_or_default() {
        if v["scored_at"] == "edge" {
            if let (Some(seq), Some(ts)) = (v["seq"].as_u64(), v["event_ts"].as_u64()) {
                out.entry(seq).or_default().push(ts);
            }
        }
    }
    out
}

/// The edge power cut: an agent whose queue is never fsynced (so any
/// unsynced tail may vanish) is `kill -9`ed after its verdicts reached
/// the audit store, its newest queue segment is cut in half (what the
/// power loss takes: records already sent among them), and it starts
/// again after a "reboot" (a new boot id). Every verdict published before
/// the cut and every one after it is stored once; no sequence number names
/// two records (before the reservation, the agent took the lost numbers
/// again and the store dropped the new verdicts as duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_power_cut_no_seq_is_reused_and_every_verdict_is_stored_once() -> anyhow::Result<()>
{
    const DEVICE: &str = "edge-powercut-1";
    const AFTER: u64 = 60;
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = new_keys()?;
    let v1 = release(&keys.signing, 1)?;
    publish_release(&brokers, &v1).await?;
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("v1.json");
    std::fs::write(&model, v1.encode()?)?;
    let boot_id = dir.path().join("boot_id");
    std::fs::write(&boot_id, "boot-1\n")?;
    let store = format!("sqlite://{}", dir.path().join("audit.db").display());
    let push = start_push(&mqtt, &brokers, &keys, &[]).await?;
    let _ingest = start_ingest(&mqtt, &brokers).await?;
    let audit = start_audit(&brokers, &store).await?;
    let url = mqtt.url();
    let (model_arg, boot_arg) = (path(&model), path(&boot_id));
    let mut args = vec![
        "--interval-ms",
        "10",
        "--queue-fsync-ms",
        "3600000",
        "--seq-block",
        "100",
        "--initial-model",
        &model_arg,
        "--boot-id-file",
        &boot_arg,
    ];
    let mut agent = Agent::start_with(DEVICE, &url, &keys.verify, &args)?;

    // Verdicts are in the store: they were sent, acknowledged, bridged.
    let http = audit.http.clone();
    eventually("the first verdicts audited", WAIT, || {
        let http = http.clone();
        async move { audited_edge(&http, DEVICE).await.len() >= 120 }
    })
    .await
    .map_err(|e| audit.failure(anyhow::anyhow!("{e}\nagent:\n{}", agent.log_text())))?;
    agent.kill9();
    let state = agent.state_dir();
    let mut segments: Vec<_> = std::fs::read_dir(state.join("queue"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let newest = segments
        .last()
        .ok_or_else(|| anyhow::anyhow!("no queue segment"))?;
    let len = std::fs::metadata(newest)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(newest)?
        .set_len(len / 2)?;
    let reservation: Value = serde_json::from_slice(&std::fs::read(state.join("seq.json"))?)?;
    let reserved = reservation["reserved_through"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no reservation: {reservation}"))?;

    // The reboot, then sampling resumes above the reservation.
    std::fs::write(&boot_id, "boot-2\n")?;
    let last = (reserved + AFTER).to_string();
    args.extend(["--stop-after-seq", &last]);
    agent.restart_with(DEVICE, &url, &keys.verify, &args)?;
    agent.seq_reached(reserved + AFTER, WAIT).await?;

    // Everything published, before the cut and after, is on the log; the
    // store holds each of them once, with the same event time.
    let published = read_until(&brokers, "vigil.verdicts", WAIT, |records| {
        bridged_edge(records, DEVICE).contains_key(&(reserved + AFTER))
    })
    .await
    .map_err(|e| push.failure(e))?;
    let published = bridged_edge(&published, DEVICE);
    let reused: Vec<u64> = published
        .iter()
        .filter(|(_, ts)| ts.len() > 1)
        .map(|(seq, _)| *seq)
        .collect();
    assert!(reused.is_empty(), "seqs naming two records: {reused:?}");
    let after: Vec<u64> = published
        .keys()
        .copied()
        .filter(|s| *s > reserved)
        .collect();
    assert_eq!(after, (reserved + 1..=reserved + AFTER).collect::<Vec<_>>());
    let before = published.len() - after.len();
    assert!(before >= 120, "{before} verdicts published before the cut");
    // The cut took records that had been sent: the queue's last record
    // after it is below the highest seq published before it.
    let log = agent.log_text();
    let last_queued: u64 = log
        .split("last_queued=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no last_queued in the log:\n{log}"))?;
    let sent_before = published.keys().filter(|s| **s <= reserved).max().copied();
    assert!(
        sent_before.is_some_and(|s| s > last_queued),
        "the cut lost no sent record: last queued {last_queued}, sent up to {sent_before:?}"
    );
    let expected: BTreeMap<u64, Vec<u64>> = published
        .into_iter()
        .map(|(seq, ts)| (seq, ts.into_iter().collect()))
        .collect();
    let http = audit.http.clone();
    let want = expected.clone();
    let stored = eventually("every published verdict audited", WAIT, || {
        let (http, want) = (http.clone(), want.clone());
        async move { audited_edge(&http, DEVICE).await == want }
    })
    .await;
    if let Err(e) = stored {
        let got = audited_edge(&audit.http, DEVICE).await;
        let missing: Vec<_> = expected.keys().filter(|s| !got.contains_key(s)).collect();
        return Err(audit.failure(anyhow::anyhow!(
            "{e}: {} stored, {} published; missing {missing:?}",
            got.len(),
            expected.len()
        )));
    }
    assert_eq!(audit.metric("vigil_audit_conflicts_total").await, 0.0);
    assert!(
        agent
            .log_text()
            .contains("seq resumes above its durable reservation"),
        "{}",
        agent.log_text()
    );
    eprintln!("power cut: {before} verdicts before, {AFTER} after, resumed above {reserved}");
    Ok(())
}
