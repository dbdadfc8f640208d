//! Model push to the edge devices: every release of the demo's model that
//! `vigil.models` accepts is published retained on `vigil/models/{model}`,
//! where the edge agents (and devices that connect later) pick it up.
//!
//! STAND-IN: this is the part of `vigil push` (services/push, built on
//! another branch) that the demo needs. At merge, [`start`] is replaced by
//! a call to `vigil_push::run(PushArgs, Shutdown)` parsed from flags like
//! the other services, which also bridges device status to Kafka.
//!
//! It uses the scorer's accept rule ([`vigil_releases::feed::follow`]:
//! verified with the public key, strictly newer), so devices are never
//! offered what the cloud refused, and it records when each version was
//! pushed for the summary.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use vigil_releases::feed::{self, FeedEvent};
use vigil_releases::Offer;
use vigil_schemas::Message as _;
use vigil_service::config::{KafkaArgs, MqttArgs};
use vigil_service::{now_ms, Shutdown};

/// A release pushed to the devices.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    pub version: u64,
    /// When it was published retained, ms since the Unix epoch.
    pub pushed_ms: u64,
}

/// Versions pushed so far, oldest first.
pub type PushLog = Arc<Mutex<Vec<Pushed>>>;

/// Follows `vigil.models` and mirrors accepted releases to MQTT until
/// `shutdown`.
pub async fn start(
    kafka: &KafkaArgs,
    mqtt: &MqttArgs,
    model: &str,
    verify_key: &std::path::Path,
    log: PushLog,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let key = vigil_model::load_verify_key(verify_key)
        .with_context(|| format!("loading {}", verify_key.display()))?;
    let mut events = feed::follow(kafka, model, key, "vigil-demo-push", &shutdown).await?;
    let options = vigil_service::mqtt::options(mqtt, "demo-push")?;
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let topic = mqtt.topics().model(model);
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                polled = eventloop.poll() => if let Err(e) = polled {
                    tracing::warn!(error = %e, "model push: mqtt connection lost; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = events.recv() => e,
        };
        let Some(event) = event else { break };
        let FeedEvent::Offer {
            offer: Offer::Accepted(model),
            ..
        } = event
        else {
            continue;
        };
        let payload = model.release().encode().context("encoding the release")?;
        client
            .publish(topic.clone(), QoS::AtLeastOnce, true, payload)
            .await
            .context("publishing the release to MQTT")?;
        tracing::info!(version = model.version(), topic = %topic, "release pushed to the devices");
        if let Ok(mut log) = log.lock() {
            log.push(Pushed {
                version: model.version(),
                pushed_ms: now_ms(),
            });
        }
    }
    let _ = client.disconnect().await;
    shutdown.trigger();
    shutdown.wait().await;
    Ok(())
}
