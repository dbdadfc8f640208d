//! Command results come back, against real Mosquitto and tansu with the
//! built binaries: an injected anomaly episode on a live `vigil-edge`'s
//! device opens an incident in `vigil actions`, the rule's command reaches
//! the agent, its `--command-handler` runs, `vigil push` bridges the
//! result to `vigil.command-results`, and the result (status, exit status,
//! duration) is on the incident, which resolves, the only incident of the
//! device (one per episode); a command to a device that never answers
//! is marked `timed_out`; a result published on another device's topic
//! lands in the DLQ with its reason.

mod common;

use std::time::Duration;

use common::edge::Agent;
use common::{new_keys, path, produce_all, VigilProcess};
use vigil_schemas::{
    ActionStatus, Alarm, AlarmState, CommandOutcome, CommandResult, Contribution, DlqRecord,
    Incident, IncidentState, Message, ScoredAt, Verdict,
};
use vigil_testkit::clients::{eventually, publish_all, read_until};
use vigil_testkit::{Mosquitto, Tansu};

const WAIT: Duration = Duration::from_secs(45);
const LIVE: &str = "edge-act-live";
const GHOST: &str = "edge-act-ghost";
/// Far above the seqs the live agent's own (calm) verdicts reach, so
/// those never touch the injected episode.
const FIRST_SEQ: u64 = 1_000_000;

/// An anomaly episode of `device`: an alarm open for `len` records, then
/// closed. Event times start at `base`.
fn episode(device: &str, base: u64, len: u64) -> Vec<Verdict> {
    (0..=len)
        .map(|i| {
            let seq = FIRST_SEQ + i;
            let state = match i {
                0 => AlarmState::Opened,
                i if i == len => AlarmState::Closed,
                _ => AlarmState::Ongoing,
            };
            let anomaly = state != AlarmState::Closed;
            Verdict {
                schema: 1,
                device_id: device.into(),
                seq,
                event_ts: base + i * 100,
                ingest_ts: None,
                scored_ts: base + i * 100,
                model: "default".into(),
                model_version: Some(1),
                score: if anomaly { 0.97 } else { 0.1 },
                threshold: 0.5,
                anomaly,
                alarm: Some(Alarm {
                    id: Alarm::id_for(device, FIRST_SEQ),
                    opened_seq: FIRST_SEQ,
                    opened_ts: base,
                    state,
                }),
                contributions: vec![Contribution {
                    metric: "temperature_c".into(),
                    share: 0.9,
                }],
                scored_at: ScoredAt::Cloud,
                unscored: None,
            }
        })
        .collect()
}

async fn inject(brokers: &str, verdicts: &[Verdict]) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut anomalous = Vec::new();
    for v in verdicts {
        let record = (v.device_id.clone(), v.encode()?);
        if v.anomaly {
            anomalous.push(record.clone());
        }
        all.push(record);
    }
    produce_all(brokers, "vigil.verdicts", &all).await?;
    produce_all(brokers, "vigil.anomalies", &anomalous).await
}

/// The newest event of incident `id` on vigil.incidents once `done` holds
/// for it.
async fn incident_when(
    brokers: &str,
    id: &str,
    done: impl Fn(&Incident) -> bool,
) -> anyhow::Result<Incident> {
    let newest = |records: &[vigil_testkit::clients::Record]| {
        records
            .iter()
            .filter_map(|r| Incident::decode(&r.payload).ok())
            .filter(|i| i.incident_id == id)
            .max_by_key(|i| i.revision)
    };
    let records = read_until(brokers, "vigil.incidents", WAIT, |records| {
        newest(records).is_some_and(|i| done(&i))
    })
    .await?;
    newest(&records).ok_or_else(|| anyhow::anyhow!("no event of {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_result_comes_back_onto_its_incident() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = new_keys()?;
    let url = mqtt.url();
    let verify = path(&keys.verify);
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[rule]]
name = "cool"
devices = "{LIVE}"
[[rule.command]]
name = "throttle"
params = {{ level = 2 }}
result_timeout = "30s"

[[rule]]
name = "ghost"
devices = "{GHOST}"
[[rule.command]]
name = "throttle"
result_timeout = "1s"
"#
        ),
    )?;
    let push = VigilProcess::push(&url, &brokers, &verify, "push-results-test", &[]).await?;
    let actions = VigilProcess::start(&[
        "actions",
        "--mqtt-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--mqtt-client-id",
        "actions-results-test",
        "--rules",
        &path(&rules),
        "--quiet-period",
        "1s",
        "--commit-interval-ms",
        "100",
        "--command-signing-key",
        &path(&keys.command_signing),
    ])
    .await?;
    actions.wait_ready().await?;

    let out = dir.path().join("commands");
    let handler = format!(
        "cat > {0}.json; echo \"$VIGIL_COMMAND $VIGIL_DEVICE_ID\" >> {0}",
        out.display()
    );
    let agent = Agent::start_with(
        LIVE,
        &url,
        &keys.verify,
        &[
            "--interval-ms",
            "500",
            "--command-handler",
            &handler,
            "--command-verify-key",
            &path(&keys.command_verify),
        ],
    )?;
    // The agent subscribes to its commands right after connecting, before
    // it publishes anything: once one of its verdicts is bridged, the
    // broker holds its subscription.
    eventually("the agent's first verdict is bridged", WAIT, || async {
        push.metric("vigil_push_edge_verdicts_bridged_total").await >= 1.0
    })
    .await
    .map_err(|e| anyhow::anyhow!("{}\n{}", push.failure(e), agent.log_text()))?;

    let base = common::now_ms();
    let mut verdicts = episode(LIVE, base, 5);
    verdicts.extend(episode(GHOST, base, 5));
    inject(&brokers, &verdicts).await?;

    // The live device ran the command and its result is on the incident.
    let live_id = Incident::id_for(LIVE, FIRST_SEQ);
    let live = incident_when(&brokers, &live_id, |i| {
        i.actions
            .iter()
            .any(|a| a.result.is_some() || a.status == ActionStatus::TimedOut)
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{}\n--- agent ---\n{}",
            actions.failure(e),
            agent.log_text()
        )
    })?;
    let action = &live.actions[0];
    assert_eq!(action.id, format!("{live_id}/cool/0"));
    assert_eq!(action.status, ActionStatus::Succeeded, "{action:?}");
    let result = action.result.as_ref().expect("a result");
    assert_eq!(result.status, CommandOutcome::Ok);
    assert_eq!(result.exit_status, Some(0));
    assert_eq!(
        std::fs::read_to_string(&out)?,
        format!("throttle {LIVE}\n"),
        "the handler ran once"
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("json"))?)?;
    assert_eq!(sent["command_id"], action.id.as_str());
    assert_eq!(sent["params"]["level"], 2);

    // The episode's incident resolves (the quiet period passed on the wall
    // clock), and it is the only incident the device got: one opening,
    // one resolution (later resolved events only record outcomes).
    let resolved = incident_when(&brokers, &live_id, |i| {
        i.state == IncidentState::Resolved && i.actions.first().is_some_and(|a| a.result.is_some())
    })
    .await
    .map_err(|e| actions.failure(e))?;
    assert_eq!(resolved.actions[0].status, ActionStatus::Succeeded);
    // Read up to that event: the device's events share its partition, so
    // every earlier one is read too.
    let seen = |records: &[vigil_testkit::clients::Record]| {
        records.iter().any(|r| {
            Incident::decode(&r.payload)
                .is_ok_and(|i| i.incident_id == live_id && i.revision == resolved.revision)
        })
    };
    let events: Vec<Incident> = read_until(&brokers, "vigil.incidents", WAIT, seen)
        .await?
        .iter()
        .filter_map(|r| Incident::decode(&r.payload).ok())
        .filter(|i| i.device_id == LIVE)
        .collect();
    let opened: Vec<&str> = events
        .iter()
        .filter(|i| i.state == IncidentState::Opened)
        .map(|i| i.incident_id.as_str())
        .collect();
    assert_eq!(opened, [live_id.as_str()], "one incident for the episode");
    let resolutions = events
        .iter()
        .filter(|i| i.state == IncidentState::Resolved && i.reason.as_deref() != Some("action"))
        .count();
    assert_eq!(resolutions, 1, "{events:?}");
    assert!(resolved.resolved_ts.is_some_and(|t| t <= resolved.ts));

    // The result as bridged, keyed by the device.
    let bridged = read_until(&brokers, "vigil.command-results", WAIT, |r| !r.is_empty()).await?;
    assert_eq!(bridged[0].key, LIVE);
    let r = CommandResult::decode(&bridged[0].payload)?;
    assert_eq!(r.command_id.as_deref(), Some(action.id.as_str()));

    // No device answers for the ghost: its command times out.
    let ghost_id = Incident::id_for(GHOST, FIRST_SEQ);
    let ghost = incident_when(&brokers, &ghost_id, |i| {
        i.actions.iter().any(|a| a.status == ActionStatus::TimedOut)
    })
    .await
    .map_err(|e| actions.failure(e))?;
    assert!(ghost.actions[0].result.is_none());

    // A result on one device's topic claiming another device: DLQ.
    let forged = CommandResult {
        device_id: GHOST.into(),
        command_id: Some(format!("{ghost_id}/ghost/0")),
        ..r.clone()
    };
    publish_all(
        mqtt.port(),
        "forger",
        vec![(
            format!("vigil/devices/{LIVE}/command-results"),
            forged.encode()?,
        )],
        WAIT,
    )
    .await?;
    let dlq = read_until(&brokers, "vigil.dlq", WAIT, |records| {
        records
            .iter()
            .any(|r| DlqRecord::decode(&r.payload).is_ok_and(|d| d.reason == "device_mismatch"))
    })
    .await
    .map_err(|e| push.failure(e))?;
    assert!(dlq
        .iter()
        .filter_map(|r| DlqRecord::decode(&r.payload).ok())
        .any(|d| d.source.contains("command-results")));
    // The forged result never reached Kafka: the only result bridged is
    // the live device's.
    assert_eq!(
        push.metric("vigil_push_command_results_bridged_total")
            .await,
        1.0
    );
    assert_eq!(
        push.metric("vigil_push_command_results_rejected_total{reason=\"device_mismatch\"}")
            .await,
        1.0
    );
    Ok(())
}
