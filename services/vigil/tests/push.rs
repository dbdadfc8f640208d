//! `vigil push` against real Mosquitto and tansu brokers, with the real
//! `vigil-edge` agent on the device side: releases on vigil.models reach
//! the agent through the retained MQTT topic, the agent's status comes back
//! through vigil.device-status, and the rollout view shows who runs what.
//!
//! The agent binary is found next to the `vigil` binary under test (the
//! same target directory). `cargo nextest run --workspace` builds it; when
//! running this file alone, build it first:
//! `cargo build -p vigil-edge --features sim && cargo nextest run -p vigil --test push`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::edge::Agent;
use common::{produce_all, VigilProcess};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_model::SigningKey;
use vigil_schemas::{DeviceState, DeviceStatus, DlqRecord, Message, ModelRelease};
use vigil_testkit::clients::{eventually, publish_all, read_until, scrape};
use vigil_testkit::{Mosquitto, Tansu};
use vigil_training::TrainConfig;

const MODELS: &str = "vigil.models";
const DEVICE: &str = "edge-push-1";
const WAIT: Duration = Duration::from_secs(60);

/// A key pair in a temp dir.
struct Keys {
    _dir: tempfile::TempDir,
    signing: SigningKey,
    verify: PathBuf,
}

fn keys() -> anyhow::Result<Keys> {
    let dir = tempfile::tempdir()?;
    let generated = vigil_model::keygen(dir.path())?;
    Ok(Keys {
        signing: vigil_model::load_signing_key(&generated.signing_key)?,
        verify: generated.verify_key,
        _dir: dir,
    })
}

/// Release `version` of model `default`, trained on a small simulated
/// fleet (`seed` varies the data) and signed with `key`.
fn release(key: &SigningKey, version: u64, seed: u64) -> anyhow::Result<ModelRelease> {
    let config = FleetConfig {
        day_ms: 600_000,
        ..FleetConfig::clean(8, seed)
    };
    let records: Vec<_> = Fleet::new(config)?.generate(300).into_telemetry();
    let train = TrainConfig {
        version,
        created_ts: 1_795_000_000_000 + version,
        source: format!("push-test:seed={seed}"),
        min_records: 1_000,
        ..TrainConfig::default()
    };
    let trained = vigil_training::fit(&records, &train, |_| {})?;
    Ok(vigil_model::sign(&trained.payload, key)?)
}

async fn publish_release(brokers: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    produce_all(brokers, MODELS, &[("default".to_owned(), bytes)]).await
}

async fn start_push(mqtt: &Mosquitto, brokers: &str, keys: &Keys) -> anyhow::Result<VigilProcess> {
    start_push_with(mqtt, brokers, keys, &[]).await
}

async fn start_push_with(
    mqtt: &Mosquitto,
    brokers: &str,
    keys: &Keys,
    extra: &[&str],
) -> anyhow::Result<VigilProcess> {
    let verify = keys.verify.display().to_string();
    let mut args = vec!["--offline-after-ms", "3000"];
    args.extend_from_slice(extra);
    VigilProcess::push(&mqtt.url(), brokers, &verify, "push-under-test", &args).await
}

async fn get_json(url: &str) -> Option<(u16, Value)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// `/v1/rollout` of model `default`.
async fn rollout(push: &VigilProcess) -> Value {
    get_json(&format!("http://{}/v1/rollout?model=default", push.http))
        .await
        .map_or(Value::Null, |(_, v)| v["models"][0].clone())
}

/// Waits until the rollout of `default` satisfies `check`.
async fn rollout_until(
    push: &VigilProcess,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let check = &check;
    eventually(what, WAIT, || async move { check(&rollout(push).await) })
        .await
        .map_err(|e| push.failure(e))?;
    Ok(rollout(push).await)
}

/// The release retained on `topic` now (the broker sends it on subscribe).
async fn retained(port: u16, topic: &str) -> anyhow::Result<ModelRelease> {
    let options = MqttOptions::new(
        format!("retained-reader-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    client.subscribe(topic, QoS::AtLeastOnce).await?;
    let payload = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.retain => return Ok(p.payload),
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("reading {topic}: {e}")),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no retained message on {topic}"))??;
    let _ = client.disconnect().await;
    Ok(ModelRelease::decode(&payload)?)
}

async fn metric(push: &VigilProcess, name: &str) -> f64 {
    scrape(&push.http, name).await.ok().flatten().unwrap_or(0.0)
}

fn status_payload(device: &str, version: Option<u64>) -> Vec<u8> {
    DeviceStatus {
        schema: 1,
        device_id: device.into(),
        ts: common::now_ms(),
        state: DeviceState::Online,
        agent_version: "0.0.9".into(),
        model: "default".into(),
        model_version: version,
        buffered_records: 0,
        buffered_bytes: 0,
        dropped_records: 0,
        last_uplink_ts: None,
    }
    .encode()
    .expect("status encodes")
}

fn on_version(device: &str, version: u64) -> impl Fn(&Value) -> bool + '_ {
    move |m: &Value| {
        m["live_version"] == version
            && m["retained_version"] == version
            && m["versions"][version.to_string()].as_u64() >= Some(1)
            && !m["stale_devices"]
                .as_array()
                .is_some_and(|l| l.iter().any(|d| d["device_id"] == device))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_reach_the_agent_and_the_rollout_shows_it() -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = keys()?;
    let v1 = release(&keys.signing, 1, 31)?;
    let v2 = release(&keys.signing, 2, 32)?;
    let v3 = release(&keys.signing, 3, 33)?.encode()?;
    let text = String::from_utf8(v3)?;
    let tampered = text.replacen("\"threshold\":0.", "\"threshold\":1.", 1);
    assert_ne!(text, tampered, "the signed payload was changed");

    let mut push = start_push(&mqtt, &brokers, &keys).await?;
    let mut agent = Agent::start(DEVICE, &mqtt.url(), &keys.verify)?;

    // The agent reports in before any release exists.
    let m = rollout_until(&push, "the agent appears without a model", |m| {
        m["versions"]["none"] == 1 && m["live_version"].is_null()
    })
    .await?;
    assert_eq!(m["devices"], 1, "{m}");

    // v1 on the log → retained on MQTT → the agent runs it → its status
    // says so → the rollout shows it.
    publish_release(&brokers, v1.encode()?).await?;
    let m = rollout_until(&push, "the agent runs v1", on_version(DEVICE, 1)).await?;
    assert_eq!(
        (m["current"].as_u64(), m["stale"].as_u64()),
        (Some(1), Some(0)),
        "{m}"
    );
    assert_eq!(
        retained(mqtt.port(), "vigil/models/default").await?.version,
        1
    );

    // v2 while it runs: it switches without a restart.
    publish_release(&brokers, v2.encode()?).await?;
    rollout_until(&push, "the agent runs v2", on_version(DEVICE, 2)).await?;
    assert!(
        agent.log_text().contains("version=2"),
        "the agent logged its switch to v2:\n{}",
        agent.log_text()
    );

    // A tampered v3 is refused and never mirrored: v2 stays retained.
    publish_release(&brokers, tampered.into_bytes()).await?;
    let rejected = r#"vigil_push_releases_rejected_total{reason="bad_checksum"}"#;
    eventually("push rejects the tampered release", WAIT, || async {
        metric(&push, rejected).await >= 1.0
    })
    .await
    .map_err(|e| push.failure(e))?;
    assert_eq!(
        retained(mqtt.port(), "vigil/models/default").await?.version,
        2
    );
    let mirrored = r#"vigil_push_releases_mirrored_total{model="default"}"#;
    assert_eq!(metric(&push, mirrored).await, 2.0, "v1 and v2 only");
    let m = rollout(&push).await;
    assert_eq!(m["live_version"], 2, "{m}");

    // The agent's status is on vigil.device-status, keyed by its id.
    let records = read_until(&brokers, "vigil.device-status", WAIT, |r| {
        r.iter().any(|r| {
            r.key == DEVICE
                && DeviceStatus::decode(&r.payload).is_ok_and(|s| s.model_version == Some(2))
        })
    })
    .await?;
    assert!(
        records.iter().all(|r| r.key == DEVICE),
        "only the agent reported"
    );

    // Malformed and spoofed statuses go to the DLQ with their reasons.
    publish_all(
        mqtt.port(),
        "bad-devices",
        vec![
            (
                "vigil/devices/ghost/status".into(),
                b"{\"schema\":1,".to_vec(),
            ),
            (
                "vigil/devices/spoofer/status".into(),
                status_payload(DEVICE, Some(9)),
            ),
        ],
        WAIT,
    )
    .await?;
    let dlq = read_until(&brokers, "vigil.dlq", WAIT, |r| r.len() >= 2).await?;
    let mut reasons: Vec<(String, String)> = dlq
        .iter()
        .map(|r| DlqRecord::decode(&r.payload).expect("dlq record"))
        .map(|d| {
            assert_eq!(d.service, "push");
            (d.source, d.reason)
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "mqtt:vigil/devices/ghost/status".to_owned(),
                "malformed_json".to_owned()
            ),
            (
                "mqtt:vigil/devices/spoofer/status".to_owned(),
                "device_mismatch".to_owned()
            ),
        ]
    );
    let m = rollout(&push).await;
    assert_eq!(
        m["devices"], 1,
        "rejected statuses stay out of the view: {m}"
    );

    // A device still on v1 is stale; once silent for --offline-after-ms it
    // is offline too.
    publish_all(
        mqtt.port(),
        "old-device",
        vec![(
            "vigil/devices/old-pump/status".into(),
            status_payload("old-pump", Some(1)),
        )],
        WAIT,
    )
    .await?;
    let m = rollout_until(&push, "old-pump is stale", |m| {
        m["stale_devices"].as_array().is_some_and(|l| {
            l.iter()
                .any(|d| d["device_id"] == "old-pump" && d["model_version"] == 1)
        })
    })
    .await?;
    assert_eq!(
        (m["devices"].as_u64(), m["stale"].as_u64()),
        (Some(2), Some(1)),
        "{m}"
    );
    let m = rollout_until(&push, "old-pump goes silent", |m| {
        m["offline_devices"].as_array().is_some_and(|l| {
            l.iter()
                .any(|d| d["device_id"] == "old-pump" && d["offline"] == "silent")
        })
    })
    .await?;
    assert_eq!(
        m["offline"], 1,
        "the agent keeps reporting and stays online: {m}"
    );
    let stale_gauge = r#"vigil_push_devices_stale{model="default"}"#;
    eventually("the stale gauge follows", WAIT, || async {
        metric(&push, stale_gauge).await == 1.0
    })
    .await?;

    // The agent stops cleanly: its status says offline.
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_text());
    rollout_until(&push, "the agent is reported offline", |m| {
        m["offline_devices"].as_array().is_some_and(|l| {
            l.iter()
                .any(|d| d["device_id"] == DEVICE && d["offline"] == "reported")
        })
    })
    .await?;
    let (code, device) = get_json(&format!("http://{}/v1/devices/{DEVICE}/status", push.http))
        .await
        .ok_or_else(|| anyhow::anyhow!("device endpoint"))?;
    assert_eq!(code, 200);
    assert_eq!(device["status"]["state"], "offline", "{device}");
    assert_eq!(device["status"]["model_version"], 2, "{device}");
    assert_eq!(device["standing"], "current", "{device}");
    let (code, _) = get_json(&format!("http://{}/v1/devices/nobody/status", push.http))
        .await
        .ok_or_else(|| anyhow::anyhow!("device endpoint"))?;
    assert_eq!(code, 404);

    // A restart re-reads both logs: the view is whole again at once (it
    // comes from vigil.device-status, not from MQTT), and v2, already
    // retained, is not sent to the fleet again.
    assert_eq!(push.terminate(), Some(0), "{}", push.log_text());
    let push = start_push(&mqtt, &brokers, &keys).await?;
    let m = rollout(&push).await;
    assert_eq!(m["devices"], 2, "the view after a restart: {m}");
    assert_eq!(m["live_version"], 2, "{m}");
    rollout_until(&push, "the retained release is seen again", |m| {
        m["retained_version"] == 2
    })
    .await?;
    assert_eq!(metric(&push, mirrored).await, 0.0, "nothing republished");
    assert_eq!(
        retained(mqtt.port(), "vigil/models/default").await?.version,
        2
    );
    Ok(())
}

/// Publishes one retained message at QoS 1 and waits for the PUBACK.
async fn publish_retained(port: u16, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
    let options = MqttOptions::new(
        format!("retainer-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await?;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publishing to {topic}: {e}")),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no PUBACK on {topic}"))??;
    let _ = client.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_release_never_regresses_and_replicas_share_the_view() -> anyhow::Result<()> {
    const TOPIC: &str = "vigil/models/default";
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = keys()?;
    let v2 = release(&keys.signing, 2, 41)?;
    let v3 = release(&keys.signing, 3, 42)?;
    let v4 = release(&keys.signing, 4, 43)?.encode()?;
    let v9 = release(&keys.signing, 9, 44)?;
    let tampered_v4 = String::from_utf8(v4)?.replacen("\"threshold\":0.", "\"threshold\":1.", 1);

    // The broker retains garbage; the log holds v2: push replaces it.
    publish_retained(mqtt.port(), TOPIC, b"not a release".to_vec()).await?;
    publish_release(&brokers, v2.encode()?).await?;
    let a = start_push(&mqtt, &brokers, &keys).await?;
    eventually("v2 replaces the invalid retained message", WAIT, || async {
        retained(mqtt.port(), TOPIC)
            .await
            .is_ok_and(|r| r.version == 2)
    })
    .await
    .map_err(|e| a.failure(e))?;

    // A newer verified release retained on the broker (another replica
    // ahead, or a model log that lost data) is never overwritten by an
    // older one from the log.
    publish_retained(mqtt.port(), TOPIC, v9.encode()?).await?;
    rollout_until(&a, "push sees v9 retained", |m| m["retained_version"] == 9).await?;
    publish_release(&brokers, v3.encode()?).await?;
    // The mirror handles log records in order: once the tampered v4 after
    // v3 is refused, v3 has been judged (and would have been sent).
    publish_release(&brokers, tampered_v4.into_bytes()).await?;
    let rejected = r#"vigil_push_releases_rejected_total{reason="bad_checksum"}"#;
    eventually("push has read v3 and the tampered v4", WAIT, || async {
        metric(&a, rejected).await >= 1.0
    })
    .await
    .map_err(|e| a.failure(e))?;
    let m = rollout(&a).await;
    assert_eq!(
        (m["live_version"].as_u64(), m["retained_version"].as_u64()),
        (Some(3), Some(9)),
        "{m}"
    );
    assert_eq!(
        retained(mqtt.port(), TOPIC).await?.version,
        9,
        "the retained release did not move back"
    );
    assert!(
        a.log_text().contains("newer verified release"),
        "{}",
        a.log_text()
    );

    // A second replica in the same group: the shared subscription splits
    // the statuses between the two bridges, yet each one's view (read from
    // vigil.device-status) holds every device.
    let url = mqtt.url();
    let verify = keys.verify.display().to_string();
    let b = VigilProcess::start(&[
        "push",
        "--mqtt-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--verify-key",
        &verify,
        "--mqtt-client-id",
        "push-replica-b",
        "--kafka-option",
        "topic.metadata.refresh.interval.ms=1000",
    ])
    .await?;
    b.wait_ready().await?;
    let statuses: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let device = format!("dev-{i:02}");
            (
                format!("vigil/devices/{device}/status"),
                status_payload(&device, Some(3)),
            )
        })
        .collect();
    publish_all(mqtt.port(), "fleet", statuses, WAIT).await?;
    for push in [&a, &b] {
        rollout_until(push, "every replica sees all 40 devices", |m| {
            m["devices"] == 40 && m["current"] == 40
        })
        .await?;
    }
    // A record can be in the log a moment before its bridge counts it.
    let bridged = || async {
        (
            metric(&a, "vigil_push_statuses_bridged_total").await,
            metric(&b, "vigil_push_statuses_bridged_total").await,
        )
    };
    eventually("each status bridged once", WAIT, || async {
        let (x, y) = bridged().await;
        x + y == 40.0
    })
    .await?;
    let (bridged_a, bridged_b) = bridged().await;
    assert!(
        bridged_a > 0.0 && bridged_b > 0.0,
        "split: {bridged_a} + {bridged_b}"
    );

    // Clearing a device's retained status removes it from every view.
    publish_all(
        mqtt.port(),
        "decommission",
        vec![("vigil/devices/dev-07/status".into(), Vec::new())],
        WAIT,
    )
    .await?;
    for push in [&a, &b] {
        rollout_until(push, "the cleared device is gone", |m| m["devices"] == 39).await?;
        let (code, _) = get_json(&format!("http://{}/v1/devices/dev-07/status", push.http))
            .await
            .ok_or_else(|| anyhow::anyhow!("device endpoint"))?;
        assert_eq!(code, 404);
    }
    Ok(())
}

/// Issue 18: push restarted where the model log offers only an older
/// release (compaction can leave one last) keeps mirroring the newer one
/// it kept in `--release-dir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_push_keeps_its_newer_release_when_the_log_offers_an_older_one(
) -> anyhow::Result<()> {
    const TOPIC: &str = "vigil/models/default";
    let keys = keys()?;
    let kept = tempfile::tempdir()?;
    let dir = kept.path().display().to_string();
    let v2 = release(&keys.signing, 2, 51)?;
    let v3 = release(&keys.signing, 3, 52)?;
    {
        let mqtt = Mosquitto::start()?;
        let kafka = Tansu::start()?;
        let brokers = kafka.brokers();
        common::create_topics(&brokers).await?;
        publish_release(&brokers, v3.encode()?).await?;
        let mut push = start_push_with(&mqtt, &brokers, &keys, &["--release-dir", &dir]).await?;
        rollout_until(&push, "v3 live", |m| m["live_version"] == 3).await?;
        push.terminate();
    }
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    publish_release(&brokers, v2.encode()?).await?;
    let push = start_push_with(&mqtt, &brokers, &keys, &["--release-dir", &dir]).await?;
    eventually("v3 retained from the kept release", WAIT, || async {
        retained(mqtt.port(), TOPIC)
            .await
            .is_ok_and(|r| r.version == 3)
    })
    .await
    .map_err(|e| push.failure(e))?;
    let older = r#"vigil_push_releases_rejected_total{reason="older_version"}"#;
    eventually("the log's v2 refused as older", WAIT, || async {
        metric(&push, older).await >= 1.0
    })
    .await
    .map_err(|e| push.failure(e))?;
    assert_eq!(rollout(&push).await["live_version"], 3);
    Ok(())
}
