//! The edge-verdict bridge: decisions made on devices, from MQTT to
//! `vigil.verdicts` and `vigil.anomalies`, so the audit trail, the
//! dashboard and the anomaly handler see them like the cloud's.
//!
//! ```text
//! vigil-edge ──QoS1──► broker ──$share/<group>/vigil/devices/+/verdicts──► bridge
//!                                                                          │ validate (topic = device, schema,
//!                                                                          │ scored_at = edge, release published)
//!             PUBACK only after Kafka confirmed every record ◄─────────────┤
//!                                   vigil.verdicts ◄───────────────────────┤ valid: original bytes, key=device_id
//!                                   vigil.anomalies ◄──────────────────────┤ … and again when anomaly = true
//!                                   vigil.dlq ◄────────────────────────────┘ invalid, with the reason
//! ```
//!
//! The shape of `vigil ingest` and of the status bridge
//! ([`vigil_service::bridge`]): a persistent shared subscription, messages
//! validated and handed to Kafka in arrival order, each acknowledged once
//! Kafka confirmed its records. The verdict goes on as the device sent it
//! (fields a newer agent adds survive).
//!
//! **Why in `vigil push`.** Checking that a verdict names a release that
//! was really published needs the model log read and verified with the
//! release key. Push already follows `vigil.models` with the shared accept
//! rule and holds the key, and it is already the cloud side of the edge
//! agents (it mirrors their models and bridges their statuses); ingest
//! would need the key and a model-log follower on the telemetry path.
//!
//! **Published releases.** [`crate::known`] holds the versions the mirror's
//! feed accepted (and those it refused, with why). The subscription starts
//! only once every model's log was read to its end, so a verdict is never
//! judged against a half-read log. A verdict naming a version newer than
//! any read yet may be from a release another push replica mirrored a
//! moment before this replica read it: it is held (its acknowledgement
//! and those after it wait) until the feed brings that version or
//! `--release-wait-ms` passes, then bridged or refused. Such a verdict can
//! reach Kafka after a later one of its device; verdicts are identified
//! by (device_id, seq), so consumers do not depend on that order.
//! A version at or below the newest published that the log does not hold
//! is refused at once (`unknown_model_version`), as is one the log holds
//! but refused (`refused_model_version`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use rumqttc::v5::mqttbytes::v5::Publish;
use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{MqttTopics, Verdict};
use vigil_service::bridge::{self, Counters, Delivery, Destination, Forward};
use vigil_service::dlq::Rejection;
use vigil_service::kafka::VigilContext;
use vigil_service::subscription::{Subscription, SubscriptionMetrics};
use vigil_service::{Readiness, Shutdown};

use crate::config::PushArgs;
use crate::known::{Known, KnownReleases, Lookup};
use crate::metrics::{PushMetrics, VerdictMetrics};
use crate::validate::{check_release, validate_verdict};

/// Where the bridge writes.
#[derive(Debug, Clone)]
pub(crate) struct VerdictTopics {
    pub verdicts: Arc<str>,
    pub anomalies: Arc<str>,
    pub dlq: Arc<str>,
}

/// The verdict bridge's handling of one message. Cheap to clone: a held
/// verdict's delivery carries a copy.
#[derive(Clone)]
pub(crate) struct VerdictBridge {
    pub producer: FutureProducer<VigilContext>,
    pub counters: Counters,
    pub metrics: VerdictMetrics,
    pub push_metrics: PushMetrics,
    pub mqtt_topics: MqttTopics,
    pub max_bytes: usize,
    pub topics: VerdictTopics,
    pub known: KnownReleases,
    pub release_wait: Duration,
}

/// Whether the release `verdict` names may still appear in the log: a
/// version above every one read so far, or a log not read to its end.
fn may_still_arrive(verdict: &Verdict, known: &Known) -> bool {
    let Some(version) = verdict.model_version else {
        return false;
    };
    match known.lookup(&verdict.model, version) {
        Lookup::NotRead => true,
        Lookup::Unknown { newest } => newest.is_none_or(|n| version > n),
        _ => false,
    }
}

impl Forward for VerdictBridge {
    const SERVICE: &'static str = "push";

    fn start(&self, publish: Publish) -> Delivery {
        self.metrics.received.inc();
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let verdict =
            match validate_verdict(&self.mqtt_topics, &topic, &publish.payload, self.max_bytes) {
                Ok(v) => v,
                Err(rejection) => return self.reject(publish, rejection),
            };
        let (decided, wait) = {
            let known = self.known.subscribe();
            let known = known.borrow();
            (
                check_release(&verdict, &known),
                may_still_arrive(&verdict, &known),
            )
        };
        match decided {
            Ok(true) => self.forward(publish, &verdict),
            Err(rejection) if !wait => self.reject(publish, rejection),
            _ => self.held(publish, verdict),
        }
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn count_rejection(&self, reason: &'static str) {
        self.metrics.rejected.with_label_values(&[reason]).inc();
    }

    fn send_dlq(&self, publish: Publish, key: String, payload: Vec<u8>) -> Delivery {
        let sent = self.send(self.topics.dlq.clone(), key, Arc::from(payload));
        Box::pin(async move { (publish, Destination::Dlq, sent.await) })
    }
}

impl VerdictBridge {
    /// Hands the record to Kafka now; the future of its confirmed delivery.
    fn send(
        &self,
        topic: Arc<str>,
        key: String,
        payload: Arc<[u8]>,
    ) -> impl std::future::Future<Output = Result<(), rdkafka::error::KafkaError>> + Send + 'static
    {
        crate::bridge::send_timed(&self.producer, &self.push_metrics, topic, key, payload)
    }

    /// Writes the verdict as sent to `vigil.verdicts`, and to
    /// `vigil.anomalies` too when it is anomalous; settles once Kafka
    /// confirmed both.
    fn forward(&self, publish: Publish, verdict: &Verdict) -> Delivery {
        let payload: Arc<[u8]> = Arc::from(&publish.payload[..]);
        let key = verdict.device_id.clone();
        let to_verdicts = self.send(self.topics.verdicts.clone(), key.clone(), payload.clone());
        let to_anomalies = verdict
            .anomaly
            .then(|| self.send(self.topics.anomalies.clone(), key, payload));
        let anomalies = self.metrics.anomalies.clone();
        Box::pin(async move {
            let mut result = to_verdicts.await;
            if let Some(to_anomalies) = to_anomalies {
                let second = to_anomalies.await;
                if second.is_ok() {
                    anomalies.inc();
                }
                result = result.and(second);
            }
            (publish, Destination::Record, result)
        })
    }

    /// Waits (at most `--release-wait-ms`) for the model log to bring the
    /// release `verdict` names, then forwards or refuses it.
    fn held(&self, publish: Publish, verdict: Verdict) -> Delivery {
        self.metrics.release_waits.inc();
        let this = self.clone();
        Box::pin(async move {
            let mut known = this.known.subscribe();
            let arrived = tokio::time::timeout(
                this.release_wait,
                known.wait_for(|k| !may_still_arrive(&verdict, k)),
            )
            .await
            .is_ok();
            let decided = check_release(&verdict, &known.borrow());
            let delivery = match decided {
                Ok(true) => this.forward(publish, &verdict),
                Err(rejection) => this.reject(publish, rejection),
                Ok(false) => this.reject(
                    publish,
                    Rejection::new(
                        "unknown_model_version",
                        format!(
                            "model {:?} version {:?}: the model log was not read that far within {} ms (arrived: {arrived})",
                            verdict.model,
                            verdict.model_version,
                            this.release_wait.as_millis()
                        ),
                    ),
                ),
            };
            delivery.await
        })
    }
}

/// Starts the verdict bridge: once every followed model's log was read to
/// its end, subscribes to `$share/<group>/vigil/devices/+/verdicts` on a
/// connection of its own (client id `<client id>-verdicts`) and bridges
/// until `shutdown`.
pub(crate) fn spawn(
    bridge: VerdictBridge,
    args: &PushArgs,
    readiness: Readiness,
    disconnects: prometheus::IntCounter,
    shutdown: &Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (options, config) = crate::bridge_subscription(
        args,
        "-verdicts",
        DeviceChannel::Verdicts,
        args.verdicts_max_in_flight,
        args.max_verdict_bytes,
        "verdicts",
    )?;
    let window = usize::from(args.verdicts_max_in_flight);
    let drain = Duration::from_secs(args.shutdown_timeout_secs);
    let shutdown = shutdown.clone();
    Ok(tokio::spawn(async move {
        let mut known = bridge.known.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = known.wait_for(Known::caught_up) => {}
        }
        tracing::info!("model log read; bridging edge verdicts");
        let metrics = SubscriptionMetrics {
            disconnects,
            pauses: bridge.metrics.read_pauses.clone(),
            paused: bridge.metrics.read_paused.clone(),
        };
        let subscription = Subscription::start(options, config, readiness, metrics);
        let producer = bridge.producer.clone();
        bridge::serve(&bridge, subscription, producer, window, &shutdown, drain).await;
    }))
}

#[cfg(test)]
mod tests {
    use vigil_schemas::{Message as _, ScoredAt};

    use super::*;

    fn verdict(version: Option<u64>) -> Verdict {
        Verdict::decode(
            format!(
                r#"{{"schema":1,"device_id":"d","seq":4,"event_ts":5,"scored_ts":6,"model":"m","model_version":{},"score":0.1,"threshold":0.5,"anomaly":false,"scored_at":"edge"}}"#,
                version.map_or("null".to_owned(), |v| v.to_string())
            )
            .as_bytes(),
        )
        .expect("valid")
    }

    #[test]
    fn only_versions_above_the_newest_are_waited_for() {
        let mut known = Known::new(&["m".to_owned()]);
        assert!(may_still_arrive(&verdict(Some(1)), &known), "log not read");
        known.read_to_end("m");
        assert!(
            may_still_arrive(&verdict(Some(1)), &known),
            "nothing published"
        );
        known.accept("m", 3);
        assert!(may_still_arrive(&verdict(Some(4)), &known));
        assert!(!may_still_arrive(&verdict(Some(2)), &known));
        assert!(!may_still_arrive(&verdict(Some(3)), &known));
        assert!(!may_still_arrive(&verdict(None), &known));
        assert_eq!(verdict(None).scored_at, ScoredAt::Edge);
    }
}
