//! The ingest service: its HTTP endpoints, topics and producer, the
//! session adoptions (`adopt.rs`), and the MQTT → Kafka pipeline
//! (`pipeline.rs`) until shutdown.

use std::time::Duration;

use vigil_schemas::topics::DeviceChannel;
use vigil_service::bridge::{self, Forward as _};
use vigil_service::kafka::{self, TopicSpec};
use vigil_service::subscription::{Subscription, SubscriptionConfig};
use vigil_service::{bootstrap, mqtt, Bootstrap, Shutdown};

use crate::adopt;
use crate::config::IngestArgs;
use crate::metrics::IngestMetrics;
use crate::pipeline::{max_packet_size, Pipeline};

/// Runs ingest until `shutdown`, then drains in-flight deliveries (bounded
/// by `--shutdown-timeout-secs`), acknowledges them and disconnects.
pub async fn run(args: IngestArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let boot = Bootstrap::new(&[mqtt::DEPENDENCY, kafka::DEPENDENCY])?;
    let readiness = boot.readiness.clone();
    let metrics = IngestMetrics::register(&boot.registry)?;
    metrics.in_flight_limit.set(i64::from(args.max_in_flight));
    boot.serve(&args.http, axum::Router::new(), &shutdown)
        .await?;

    let kafka_topics = args.kafka.topics();
    let specs = [
        TopicSpec::delete(&kafka_topics.telemetry),
        TopicSpec::delete(&kafka_topics.dlq),
    ];
    bootstrap::ensure_topics(&args.kafka, &specs, &shutdown).await;
    let window = usize::from(args.max_in_flight);
    let producer = bridge::reliable_producer(
        &args.kafka,
        "vigil-ingest",
        &args.compression,
        args.linger_ms,
        window,
        &readiness,
        &shutdown,
    )?;

    let pipeline = Pipeline::new(&args, producer.clone(), metrics.clone());
    let drain_timeout = Duration::from_secs(args.shutdown_timeout_secs);
    let adoptions = adopt::all(&args, &pipeline, &readiness, &shutdown);
    if args.adopt_only {
        let failed = adoptions.await;
        let _ = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, Duration::from_secs(5))
        })
        .await;
        anyhow::ensure!(
            failed == 0,
            "{failed} session(s) could not be adopted; see the log"
        );
        return Ok(());
    }
    let options = mqtt::options(&args.mqtt, Pipeline::SERVICE)?;
    let subscription = Subscription::start(
        options,
        SubscriptionConfig {
            filter: pipeline
                .mqtt_topics
                .shared(&args.group, DeviceChannel::Telemetry),
            window: args.max_in_flight,
            session_expiry_secs: args.session_expiry_secs,
            max_packet_bytes: max_packet_size(args.max_payload_bytes),
            label: "telemetry",
            adopt: None,
        },
        readiness.clone(),
        metrics.subscription(),
    );
    let serving = bridge::serve(
        &pipeline,
        subscription,
        producer,
        window,
        &shutdown,
        drain_timeout,
    );
    // Adoptions run beside the replica's own work; one that fails leaves
    // the session as it was (logged) and the replica carries on.
    tokio::join!(serving, adoptions);
    bootstrap::stop(&shutdown, "ingest").await;
    Ok(())
}
