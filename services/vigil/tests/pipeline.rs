//! The whole cloud path with the real brokers: telemetry published over
//! MQTT → `vigil ingest` → `vigil.telemetry` → `vigil score` → verdicts →
//! `vigil audit` → looked up with `GET /v1/records/{device_id}/{seq}`,
//! across a model change from v1 to v2.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{new_keys, path, produce_all, release, sim_records, VigilProcess};
use serde_json::Value;
use vigil_fleet_sim::{AnomalyConfig, AnomalyKind, Fleet, FleetConfig};
use vigil_schemas::{Message, Telemetry};
use vigil_testkit::clients::{eventually, publish_all};
use vigil_testkit::{Mosquitto, Tansu};

const INTERVAL_MS: u64 = 1_000;

async fn get(http: &str, path: &str) -> anyhow::Result<Value> {
    let response = reqwest::get(format!("http://{http}{path}")).await?;
    anyhow::ensure!(
        response.status() == 200,
        "GET {path}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// How many records release `version` scored, as the audit store counts
/// them (exact under replays).
async fn records_scored(audit: &VigilProcess, version: u64) -> u64 {
    match get(&audit.http, &format!("/v1/models/default/{version}")).await {
        Ok(body) => body["records_scored"].as_u64().unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until the audit store holds `count` records scored by `version`.
async fn audited(audit: &VigilProcess, version: u64, count: usize) -> anyhow::Result<()> {
    eventually(
        &format!("audit holds {count} records scored by v{version}"),
        Duration::from_secs(120),
        || async { records_scored(audit, version).await == count as u64 },
    )
    .await
    .map_err(|e| {
        audit.failure(anyhow::anyhow!(
            "{e}\n(scoring and ingest logs are printed by their own failures)"
        ))
    })
}

/// Publishes `records` over MQTT as devices would, QoS 1.
async fn publish_over_mqtt(mqtt: &Mosquitto, records: &[Telemetry]) -> anyhow::Result<()> {
    let messages = records
        .iter()
        .map(|t| {
            let topic = format!("vigil/devices/{}/telemetry", t.device_id);
            Ok((topic, t.encode()?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    publish_all(
        mqtt.port(),
        "pipeline-fleet",
        messages,
        Duration::from_secs(60),
    )
    .await
}

/// Every record of `records` has exactly one verdict in the audit store,
/// by `version` of the default model. Returns how many were anomalies.
async fn check_lookups(
    audit: &VigilProcess,
    records: &[Telemetry],
    version: u64,
) -> anyhow::Result<usize> {
    let mut anomalies = 0;
    for t in records {
        let path = format!("/v1/records/{}/{}", t.device_id, t.seq);
        let body = get(&audit.http, &path).await?;
        assert_eq!(body["device_id"], t.device_id.as_str(), "{path}: {body}");
        assert_eq!(body["seq"], t.seq, "{path}: {body}");
        let verdicts = body["verdicts"].as_array().expect("a verdicts array");
        assert_eq!(verdicts.len(), 1, "{path}: one verdict expected: {body}");
        let verdict = &verdicts[0];
        assert_eq!(verdict["model"], "default", "{path}: {body}");
        assert_eq!(verdict["model_version"], version, "{path}: {body}");
        assert_eq!(verdict["event_ts"], t.ts, "{path}: {body}");
        assert!(verdict["score"].is_number(), "{path}: no score: {body}");
        assert!(
            verdict["threshold"].is_number(),
            "{path}: no threshold: {body}"
        );
        if verdict["anomaly"] == true {
            anomalies += 1;
        }
    }
    Ok(anomalies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_over_mqtt_are_audited_with_the_model_version_that_scored_them(
) -> anyhow::Result<()> {
    let mqtt = Mosquitto::start()?;
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = new_keys()?;
    let (verify, store_dir) = (path(&keys.verify), tempfile::tempdir()?);
    let store = format!("sqlite://{}", store_dir.path().join("audit.db").display());

    let (devices, training_ticks, ticks_per_phase) = (20, 300, 40);
    let mut sim = Fleet::new(FleetConfig {
        devices,
        seed: 23,
        start_ms: common::now_ms() - (training_ticks + 2 * ticks_per_phase + 60) * INTERVAL_MS,
        interval_ms: INTERVAL_MS,
        day_ms: 1_440 * INTERVAL_MS,
        anomalies: AnomalyConfig {
            quiet_start_ticks: training_ticks,
            ..AnomalyConfig::only(&[AnomalyKind::Spike], 20.0)
        },
        ..FleetConfig::default()
    })?;
    let training = sim_records(&mut sim, training_ticks);
    let v1 = release(&keys.signing, &training, 1)?;
    let v2 = release(&keys.signing, &training, 2)?;
    produce_all(
        &brokers,
        "vigil.models",
        &[("default".to_owned(), v1.encode()?)],
    )
    .await?;

    let url = mqtt.url();
    let ingest = VigilProcess::ingest(&url, &brokers, "pipeline-ingest", &[]).await?;
    let scorer = VigilProcess::start(&[
        "score",
        "--kafka-brokers",
        &brokers,
        "--verify-key",
        &verify,
        "--kafka-option",
        "topic.metadata.refresh.interval.ms=1000",
    ])
    .await?;
    scorer.wait_ready().await?;
    let audit = VigilProcess::start(&[
        "audit",
        "--kafka-brokers",
        &brokers,
        "--store",
        &store,
        "--verify-key",
        &verify,
        "--batch-max-ms",
        "50",
    ])
    .await?;
    audit.wait_ready().await?;

    // Phase 1: scored by v1, every record audited.
    let first = sim_records(&mut sim, ticks_per_phase);
    publish_over_mqtt(&mqtt, &first).await?;
    audited(&audit, 1, first.len())
        .await
        .map_err(|e| scorer.failure(ingest.failure(e)))?;

    // The model changes while the pipeline runs.
    produce_all(
        &brokers,
        "vigil.models",
        &[("default".to_owned(), v2.encode()?)],
    )
    .await?;
    eventually("the scorer runs v2", Duration::from_secs(60), || async {
        scorer.metric("vigil_score_model_version").await == 2.0
    })
    .await
    .map_err(|e| scorer.failure(e))?;

    // Phase 2: scored by v2.
    let second = sim_records(&mut sim, ticks_per_phase);
    publish_over_mqtt(&mqtt, &second).await?;
    audited(&audit, 2, second.len())
        .await
        .map_err(|e| scorer.failure(ingest.failure(e)))?;

    // No record of phase 1 was re-scored: v1's count is unchanged.
    assert_eq!(records_scored(&audit, 1).await, first.len() as u64);
    let anomalies =
        check_lookups(&audit, &first, 1).await? + check_lookups(&audit, &second, 2).await?;
    assert!(anomalies > 0, "injected spikes were flagged");

    // Each anomalous verdict is also in its device's anomaly history.
    let mut listed = 0;
    let device_ids: BTreeSet<&str> = first.iter().map(|t| t.device_id.as_str()).collect();
    assert_eq!(device_ids.len(), devices);
    for device in device_ids {
        let page = get(
            &audit.http,
            &format!("/v1/devices/{device}/anomalies?limit=1000"),
        )
        .await?;
        listed += page["items"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(listed, anomalies, "anomalies listed per device");
    eprintln!(
        "pipeline: {} + {} records audited by v1 and v2; {anomalies} anomalies",
        first.len(),
        second.len()
    );
    Ok(())
}
