//! Key rotation (issue 18) against real tansu and Mosquitto: a scorer and
//! `vigil push` given a key ring with the old and the new key accept the
//! new key's release after the old key's, and the old key's releases still
//! verify; `vigil train`, switched to the new key with the ring, continues
//! the numbering; once the ring retires the old key id, the old key's
//! releases — the one each consumer kept on disk included — are refused as
//! `retired_key` and counted, and the consumers serve the newest release of
//! the new key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{new_keys, path, produce_all, release, run_vigil, Keys, VigilProcess};
use vigil_fleet_sim::{Fleet, FleetConfig};
use vigil_model::keyring::RETIRED_PREFIX;
use vigil_schemas::{Message, ModelRelease, Telemetry};
use vigil_testkit::clients::eventually;
use vigil_testkit::{Mosquitto, Tansu};

const WAIT: Duration = Duration::from_secs(60);
const RETAINED: &str = "vigil/models/default";

fn write_ring(ring: &Path, keys: &[&Keys], retired: Option<&str>) -> anyhow::Result<()> {
    let mut text = String::from("# verify keys, newest first\n");
    for k in keys {
        text.push_str(&std::fs::read_to_string(&k.verify)?);
    }
    if let Some(id) = retired {
        text.push_str(&format!("{RETIRED_PREFIX}{id}\n"));
    }
    Ok(std::fs::write(ring, text)?)
}

fn key_id_of(keys: &Keys) -> anyhow::Result<String> {
    Ok(vigil_model::key_id(&vigil_model::load_verify_key(
        &keys.verify,
    )?))
}

async fn publish(brokers: &str, release: &ModelRelease) -> anyhow::Result<()> {
    produce_all(
        brokers,
        "vigil.models",
        &[("default".to_owned(), release.encode()?)],
    )
    .await
}

async fn start_scorer(brokers: &str, ring: &str, kept: &str) -> anyhow::Result<VigilProcess> {
    let args = [
        "score",
        "--kafka-brokers",
        brokers,
        "--verify-key",
        ring,
        "--release-dir",
        kept,
        "--kafka-option",
        "topic.metadata.refresh.interval.ms=1000",
    ];
    let scorer = VigilProcess::start(&args).await?;
    scorer.wait_ready().await?;
    Ok(scorer)
}

async fn start_push(
    mqtt: &Mosquitto,
    brokers: &str,
    ring: &str,
    kept: &str,
) -> anyhow::Result<VigilProcess> {
    VigilProcess::push(
        &mqtt.url(),
        brokers,
        ring,
        "push-rotation",
        &["--release-dir", kept],
    )
    .await
}

/// Waits until `process` reports `value` for the metric `name`.
async fn metric_is(process: &VigilProcess, name: &str, value: f64) -> anyhow::Result<()> {
    eventually(&format!("{name} = {value}"), WAIT, || async {
        process.metric(name).await == value
    })
    .await
    .map_err(|e| process.failure(e))
}

/// Waits until the release retained for the agents is `version`.
async fn retained_is(mqtt: &Mosquitto, push: &VigilProcess, version: u64) -> anyhow::Result<()> {
    eventually(&format!("v{version} retained"), WAIT, || async {
        retained_version(mqtt.port()).await == Some(version)
    })
    .await
    .map_err(|e| push.failure(e))
}

/// The version of the release retained on [`RETAINED`] now, if one is.
async fn retained_version(port: u16) -> Option<u64> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let options = MqttOptions::new("rotation-retained-reader", "127.0.0.1", port);
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    client.subscribe(RETAINED, QoS::AtLeastOnce).await.ok()?;
    let payload = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.retain => return Some(p.payload),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    let _ = client.disconnect().await;
    ModelRelease::decode(&payload?).ok().map(|r| r.version)
}

fn records() -> anyhow::Result<Vec<Telemetry>> {
    let config = FleetConfig {
        day_ms: 600_000,
        start_ms: common::now_ms() - 400 * 1_000,
        interval_ms: 1_000,
        ..FleetConfig::clean(10, 5)
    };
    Ok(Fleet::new(config)?.generate(300).into_telemetry())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_accepts_the_new_key_keeps_the_old_until_it_is_retired() -> anyhow::Result<()> {
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let mqtt = Mosquitto::start()?;
    let (old, new) = (new_keys()?, new_keys()?);
    let old_id = key_id_of(&old)?;
    let dir = tempfile::tempdir()?;
    let ring = dir.path().join("verify-keys.pub");
    let ring_arg = path(&ring);
    let (score_kept, push_kept) = (dir.path().join("score"), dir.path().join("push"));
    let (score_kept, push_kept) = (path(&score_kept), path(&push_kept));
    let data = records()?;
    let sign = |keys: &Keys, version: u64| release(&keys.signing, &data, version);

    // Step 1 of the rotation: every consumer trusts both keys.
    write_ring(&ring, &[&new, &old], None)?;
    publish(&brokers, &sign(&old, 1)?).await?;
    let mut scorer = start_scorer(&brokers, &ring_arg, &score_kept).await?;
    let mut push = start_push(&mqtt, &brokers, &ring_arg, &push_kept).await?;
    metric_is(&scorer, "vigil_score_model_version", 1.0).await?;
    retained_is(&mqtt, &push, 1).await?;

    // The new key's release is accepted after the old key's ...
    publish(&brokers, &sign(&new, 2)?).await?;
    metric_is(&scorer, "vigil_score_model_version", 2.0).await?;
    retained_is(&mqtt, &push, 2).await?;
    // ... and the old key's releases still verify.
    publish(&brokers, &sign(&old, 3)?).await?;
    metric_is(&scorer, "vigil_score_model_version", 3.0).await?;
    retained_is(&mqtt, &push, 3).await?;

    // Step 2: the trainer signs with the new key; given the ring, its
    // release follows the old key's v3.
    let telemetry: Vec<(String, Vec<u8>)> = data
        .iter()
        .map(|t| Ok((t.device_id.clone(), t.encode()?)))
        .collect::<anyhow::Result<_>>()?;
    produce_all(&brokers, "vigil.telemetry", &telemetry).await?;
    let signing = path(&new.signing);
    let (code, _, err) = run_vigil(
        &[
            "train",
            "--once",
            "--force",
            "--kafka-brokers",
            &brokers,
            "--signing-key",
            &signing,
            "--verify-key",
            &ring_arg,
            "--window",
            "1d",
            "--min-records",
            "1000",
            "--min-device-records",
            "50",
        ],
        None,
    )?;
    assert_eq!(code, 0, "vigil train: {err}");
    metric_is(&scorer, "vigil_score_model_version", 4.0).await?;
    retained_is(&mqtt, &push, 4).await?;
    // A late release of the old key, kept by both consumers.
    publish(&brokers, &sign(&old, 5)?).await?;
    metric_is(&scorer, "vigil_score_model_version", 5.0).await?;
    retained_is(&mqtt, &push, 5).await?;
    let rejected = r#"vigil_score_releases_total{outcome="retired_key"}"#;
    let none_yet = scorer.metric(rejected).await;
    assert!(none_yet.is_nan() || none_yet == 0.0, "{none_yet}");
    scorer.terminate();
    push.terminate();

    // Step 3: the old key id retired. v1, v3 and v5 (old key; v5 also the
    // release each consumer kept) are refused; the new key's v4 is live.
    write_ring(&ring, &[&new, &old], Some(&old_id))?;
    let scorer = start_scorer(&brokers, &ring_arg, &score_kept).await?;
    metric_is(&scorer, "vigil_score_model_version", 4.0).await?;
    metric_is(&scorer, rejected, 4.0).await?;
    let push = start_push(&mqtt, &brokers, &ring_arg, &push_kept).await?;
    // The retained v5 (old key) is replaced by the live v4.
    retained_is(&mqtt, &push, 4).await?;
    let push_rejected = r#"vigil_push_releases_rejected_total{reason="retired_key"}"#;
    metric_is(&push, push_rejected, 4.0).await?;

    // Another old-key release is refused; the new key's next one is taken.
    publish(&brokers, &sign(&old, 6)?).await?;
    metric_is(&scorer, rejected, 5.0).await?;
    metric_is(&push, push_rejected, 5.0).await?;
    publish(&brokers, &sign(&new, 7)?).await?;
    metric_is(&scorer, "vigil_score_model_version", 7.0).await?;
    retained_is(&mqtt, &push, 7).await?;

    // The kept release is now the new key's v7: a restart starts on it.
    let kept = std::fs::read(Path::new(&score_kept).join("default.release.json"))?;
    assert_eq!(ModelRelease::decode(&kept)?.version, 7);
    Ok(())
}
