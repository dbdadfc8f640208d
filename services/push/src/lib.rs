//! `vigil push`: the cloud side of the edge agents.
//!
//! ```text
//! vigil.models ──(no group, from the beginning, verified)──► mirror ──QoS1 retained──► vigil/models/{model} ──► vigil-edge
//!                                                              ▲ reads back what is retained
//! vigil-edge ──retained status──► $share/<group>/vigil/devices/+/status ──► bridge ──► vigil.device-status (key=device_id)
//!                                                                              └─────► vigil.dlq (invalid)
//! vigil.device-status ──(no group, every replica reads it all)──► rollout view ──► GET /v1/rollout, /v1/devices/{id}/status
//! vigil-edge ──verdicts──► $share/<group>/vigil/devices/+/verdicts ──► verdict bridge ──► vigil.verdicts (+ vigil.anomalies)
//!                                                                          └─────────► vigil.dlq (invalid, unpublished release)
//! vigil-edge ──command results──► $share/<group>/vigil/devices/+/command-results ──► result bridge ──► vigil.command-results
//!                                                                                        └──────────► vigil.dlq (invalid)
//! ```
//!
//! - [`mirror`]: the newest verified release of each model, retained on
//!   MQTT; never moves a retained release backwards.
//! - [`bridge`]: device statuses from MQTT to Kafka, validated,
//!   acknowledged only after Kafka confirmed them (the pattern of
//!   `vigil ingest`).
//! - [`verdicts`]: edge agents' verdicts from MQTT to `vigil.verdicts`
//!   and `vigil.anomalies`, checked against the releases really published
//!   ([`known`]).
//! - [`results`]: devices' results of cloud commands from MQTT to
//!   `vigil.command-results`, for `vigil actions`.
//! - [`view`] and [`rollout`]: the rollout view, built from the
//!   device-status log so that every replica sees the whole fleet.
//! - [`api`]: the HTTP routes of the view.
//! - [`validate`]: what makes a status message acceptable.
//! - [`config`], [`metrics`].
//!
//! `/readyz` lists `mqtt` (status bridge connection), `mqtt_models`
//! (mirror connection), `kafka`, `models` (model log read up to its end at
//! start-up) and `device_status` (device-status log read likewise).

pub mod api;
pub mod bridge;
pub mod config;
pub mod known;
pub mod metrics;
pub mod mirror;
pub mod results;
pub mod rollout;
pub mod validate;
pub mod verdicts;
pub mod view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use vigil_schemas::topics::DeviceChannel;
use vigil_service::bridge::Counters;
use vigil_service::kafka::{self, TopicSpec};
use vigil_service::subscription::{Subscription, SubscriptionConfig};
use vigil_service::{bootstrap, mqtt, Bootstrap, Shutdown};

pub use config::PushArgs;

use crate::known::KnownReleases;
use crate::metrics::{PushMetrics, ResultMetrics, VerdictMetrics};
use crate::rollout::Rollout;

/// Runs push until `shutdown`, then drains the statuses in flight (bounded
/// by `--shutdown-timeout-secs`), acknowledges them and disconnects.
pub async fn run(args: PushArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    args.validate()?;
    let key = vigil_model::load_key_ring(&args.verify_key).with_context(|| {
        format!(
            "--verify-key / VIGIL_VERIFY_KEY {}",
            args.verify_key.display()
        )
    })?;
    tracing::info!(verify_keys = %key.summary(), "model releases are verified with");
    let boot = Bootstrap::new(&[
        mqtt::DEPENDENCY,
        mirror::MQTT_DEPENDENCY,
        kafka::DEPENDENCY,
        mirror::MODELS_DEPENDENCY,
        view::DEPENDENCY,
    ])?;
    let readiness = boot.readiness.clone();
    let metrics = PushMetrics::register(&boot.registry)?;
    let verdict_metrics = VerdictMetrics::register(&boot.registry)?;
    let result_metrics = ResultMetrics::register(&boot.registry)?;
    let known = KnownReleases::new(&args.models);
    let rollout = Arc::new(Mutex::new(Rollout::new(
        args.device_capacity,
        args.offline_after_ms,
        &args.models,
    )));
    boot.serve(&args.http, api::router(rollout.clone()), &shutdown)
        .await?;

    let kafka_topics = args.kafka.topics();
    let specs = [
        TopicSpec::compact(&kafka_topics.models),
        TopicSpec::compact(&kafka_topics.device_status),
        TopicSpec::delete(&kafka_topics.verdicts),
        TopicSpec::delete(&kafka_topics.anomalies),
        TopicSpec::delete(&kafka_topics.command_results),
        TopicSpec::delete(&kafka_topics.dlq),
    ];
    if !bootstrap::ensure_topics(&args.kafka, &specs, &shutdown).await {
        return Ok(());
    }
    let window = usize::from(args.max_in_flight);
    let verdict_window = usize::from(args.verdicts_max_in_flight);
    let result_window = usize::from(args.results_max_in_flight);
    let producer = vigil_service::bridge::reliable_producer(
        &args.kafka,
        "vigil-push",
        "lz4",
        args.linger_ms,
        window + verdict_window * 2 + result_window,
        &readiness,
        &shutdown,
    )?;

    view::start(
        args.kafka.clone(),
        args.models.clone(),
        rollout.clone(),
        readiness.clone(),
        metrics.clone(),
        &shutdown,
    );
    let mirror_config = mirror::MirrorConfig {
        mqtt: args.mqtt.clone(),
        kafka: args.kafka.clone(),
        models: args.models.clone(),
        key,
        settle: Duration::from_millis(args.retained_settle_ms),
        release_dir: args.release_dir.clone(),
        known: known.clone(),
    };
    if let Err(e) = mirror::start(
        mirror_config,
        rollout,
        readiness.clone(),
        metrics.clone(),
        &shutdown,
    )
    .await
    {
        if shutdown.is_triggered() {
            shutdown.wait().await;
            return Ok(());
        }
        return Err(e);
    }

    let mqtt_topics = args.mqtt.topics();
    let verdict_bridge = verdicts::VerdictBridge {
        producer: producer.clone(),
        counters: Counters {
            confirmed: verdict_metrics.bridged.clone(),
            dlq_confirmed: metrics.dlq_produced.clone(),
            dlq_refused: metrics.dlq_refused.clone(),
            in_flight: verdict_metrics.in_flight.clone(),
        },
        metrics: verdict_metrics,
        push_metrics: metrics.clone(),
        mqtt_topics: mqtt_topics.clone(),
        max_bytes: args.max_verdict_bytes,
        topics: verdicts::VerdictTopics {
            verdicts: Arc::from(kafka_topics.verdicts.as_str()),
            anomalies: Arc::from(kafka_topics.anomalies.as_str()),
            dlq: Arc::from(kafka_topics.dlq.as_str()),
        },
        known,
        release_wait: Duration::from_millis(args.release_wait_ms),
    };
    let verdicts_task = verdicts::spawn(
        verdict_bridge,
        &args,
        readiness.clone(),
        metrics.mqtt_disconnects.with_label_values(&["verdicts"]),
        &shutdown,
    )?;
    let result_bridge = results::ResultBridge {
        producer: producer.clone(),
        counters: Counters {
            confirmed: result_metrics.bridged.clone(),
            dlq_confirmed: metrics.dlq_produced.clone(),
            dlq_refused: metrics.dlq_refused.clone(),
            in_flight: result_metrics.in_flight.clone(),
        },
        metrics: result_metrics,
        push_metrics: metrics.clone(),
        mqtt_topics: mqtt_topics.clone(),
        max_bytes: args.max_result_bytes,
        results_topic: Arc::from(kafka_topics.command_results.as_str()),
        dlq_topic: Arc::from(kafka_topics.dlq.as_str()),
    };
    let results_task = results::spawn(
        result_bridge,
        &args,
        metrics
            .mqtt_disconnects
            .with_label_values(&["command_results"]),
        &shutdown,
    )?;
    let (options, config) = bridge_subscription(
        &args,
        "",
        DeviceChannel::Status,
        args.max_in_flight,
        args.max_status_bytes,
        "status",
    )?;
    let subscription =
        Subscription::start(options, config, readiness.clone(), metrics.subscription());
    let pipeline = bridge::Pipeline {
        producer: producer.clone(),
        counters: Counters {
            confirmed: metrics.statuses_bridged.clone(),
            dlq_confirmed: metrics.dlq_produced.clone(),
            dlq_refused: metrics.dlq_refused.clone(),
            in_flight: metrics.in_flight.clone(),
        },
        metrics,
        topics: mqtt_topics,
        max_status_bytes: args.max_status_bytes,
        status_topic: Arc::from(kafka_topics.device_status.as_str()),
        dlq_topic: Arc::from(kafka_topics.dlq.as_str()),
    };
    vigil_service::bridge::serve(
        &pipeline,
        subscription,
        producer,
        window,
        &shutdown,
        Duration::from_secs(args.shutdown_timeout_secs),
    )
    .await;
    let _ = verdicts_task.await;
    let _ = results_task.await;
    bootstrap::stop(&shutdown, "push").await;
    Ok(())
}

/// The MQTT client options and shared subscription of one of push's
/// bridges: `channel` of every device in push's share group, on a
/// connection of its own (client id `<client id><suffix>`, the status
/// bridge's with no suffix), `window` messages in flight, packets up to
/// twice `max_payload` (at least 64 KiB) so an oversized payload reaches
/// the validator and the DLQ instead of being cut by the client.
pub(crate) fn bridge_subscription(
    args: &config::PushArgs,
    suffix: &str,
    channel: DeviceChannel,
    window: u16,
    max_payload: usize,
    label: &'static str,
) -> anyhow::Result<(rumqttc::v5::MqttOptions, SubscriptionConfig)> {
    let mut options = mqtt::options(&args.mqtt, "push")?;
    if !suffix.is_empty() {
        let client_id = format!("{}{suffix}", options.client_id());
        options.set_client_id(client_id);
    }
    let config = SubscriptionConfig {
        filter: args.mqtt.topics().shared(&args.group, channel),
        window,
        session_expiry_secs: args.session_expiry_secs,
        max_packet_bytes: u32::try_from(max_payload.saturating_mul(2).max(64 * 1024))
            .unwrap_or(u32::MAX),
        label,
        adopt: None,
    };
    Ok((options, config))
}
