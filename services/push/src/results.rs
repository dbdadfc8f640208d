//! The command-result bridge: what devices report for the commands
//! `vigil actions` sent them, from MQTT to `vigil.command-results`, where
//! the actions role joins each result to its incident.
//!
//! ```text
//! vigil-edge ──QoS1──► broker ──$share/<group>/vigil/devices/+/command-results──► bridge
//!                                                                                  │ validate (topic = device, schema)
//!                     PUBACK only after Kafka confirmed ◄──────────────────────────┤
//!                           vigil.command-results ◄────────────────────────────────┤ valid: original bytes, key=device_id
//!                                       vigil.dlq ◄────────────────────────────────┘ invalid, with the reason
//! ```
//!
//! The shape of the status and verdict bridges ([`vigil_service::bridge`]):
//! a persistent shared subscription on a connection of its own, messages
//! validated and handed to Kafka in arrival order, each acknowledged once
//! Kafka confirmed it; the result goes on as the device sent it. A
//! redelivered result reaches Kafka twice; the actions role records a
//! result once (it is joined by `command_id`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use rumqttc::v5::mqttbytes::v5::Publish;
use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::MqttTopics;
use vigil_service::bridge::{self, Counters, Delivery, Destination, Forward};
use vigil_service::kafka::VigilContext;
use vigil_service::subscription::{Subscription, SubscriptionMetrics};
use vigil_service::{Readiness, Shutdown};

use crate::config::PushArgs;
use crate::metrics::{PushMetrics, ResultMetrics};
use crate::validate::validate_result;

/// The result bridge's handling of one message.
pub(crate) struct ResultBridge {
    pub producer: FutureProducer<VigilContext>,
    pub counters: Counters,
    pub metrics: ResultMetrics,
    pub push_metrics: PushMetrics,
    pub mqtt_topics: MqttTopics,
    pub max_bytes: usize,
    pub results_topic: Arc<str>,
    pub dlq_topic: Arc<str>,
}

impl Forward for ResultBridge {
    const SERVICE: &'static str = "push";

    fn start(&self, publish: Publish) -> Delivery {
        self.metrics.received.inc();
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        match validate_result(&self.mqtt_topics, &topic, &publish.payload, self.max_bytes) {
            Ok(result) => {
                let payload: Arc<[u8]> = Arc::from(&publish.payload[..]);
                self.send(
                    publish,
                    Destination::Record,
                    self.results_topic.clone(),
                    result.device_id,
                    payload,
                )
            }
            Err(rejection) => self.reject(publish, rejection),
        }
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn count_rejection(&self, reason: &'static str) {
        self.metrics.rejected.with_label_values(&[reason]).inc();
    }

    fn send_dlq(&self, publish: Publish, key: String, payload: Vec<u8>) -> Delivery {
        let topic = self.dlq_topic.clone();
        self.send(publish, Destination::Dlq, topic, key, Arc::from(payload))
    }
}

impl ResultBridge {
    /// Hands the record to Kafka now; the future of its confirmed delivery
    /// settles `publish`.
    fn send(
        &self,
        publish: Publish,
        dest: Destination,
        topic: Arc<str>,
        key: String,
        payload: Arc<[u8]>,
    ) -> Delivery {
        let sent =
            crate::bridge::send_timed(&self.producer, &self.push_metrics, topic, key, payload);
        Box::pin(async move {
            let result = sent.await;
            (publish, dest, result)
        })
    }
}

/// Starts the result bridge: subscribes to
/// `$share/<group>/vigil/devices/+/command-results` on a connection of
/// its own (client id `<client id>-results`) and bridges until
/// `shutdown`.
///
/// Its connection does not gate push's `/readyz` (the status bridge's
/// connection to the same broker does): a broker whose ACL does not give
/// push the command-results topics refuses the subscription (logged as an
/// error) without taking model mirroring and the other bridges out of
/// service.
pub(crate) fn spawn(
    bridge: ResultBridge,
    args: &PushArgs,
    disconnects: prometheus::IntCounter,
    shutdown: &Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let readiness = Readiness::new(&prometheus::Registry::new())?;
    let (options, config) = crate::bridge_subscription(
        args,
        "-results",
        DeviceChannel::CommandResults,
        args.results_max_in_flight,
        args.max_result_bytes,
        "command_results",
    )?;
    let window = usize::from(args.results_max_in_flight);
    let drain = Duration::from_secs(args.shutdown_timeout_secs);
    let shutdown = shutdown.clone();
    let metrics = SubscriptionMetrics {
        disconnects,
        pauses: bridge.metrics.read_pauses.clone(),
        paused: bridge.metrics.read_paused.clone(),
    };
    Ok(tokio::spawn(async move {
        let subscription = Subscription::start(options, config, readiness, metrics);
        let producer = bridge.producer.clone();
        bridge::serve(&bridge, subscription, producer, window, &shutdown, drain).await;
    }))
}
