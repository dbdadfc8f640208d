//! `--adopt-session CLIENT_ID`: taking over the persistent session of an
//! ingest replica that is gone, so the messages it holds reach Kafka and
//! the broker stops routing the group's messages to it.
//!
//! A replica's session outlives the replica (`--session-expiry-secs`), and
//! Mosquitto keeps handing the departed member its share of the shared
//! subscription's messages, which nothing reads (RELIABILITY.md, "A
//! replaced ingest replica"). A StatefulSet pod that restarts under its
//! own name resumes its session; a scale-down or a renamed pod does not.
//! Adopting the session ends it without loss, in two steps:
//!
//! 1. Connect as the departed client id, resuming its session
//!    (`clean_start = false`), and empty it: leave the group, forward
//!    everything the session holds through the same pipeline as the
//!    replica's own messages (each acknowledged only once Kafka confirmed
//!    it), until a marker published after leaving comes back (see
//!    [`vigil_service::subscription`]). The session keeps its expiry here,
//!    so if this step fails (interrupted, taken over, Kafka down past the
//!    shutdown timeout) what was not acknowledged stays with the broker.
//! 2. Only when step 1 emptied it: the same again with session expiry 0,
//!    so the broker discards the session at the disconnect and routes
//!    nothing to that client id any more. Normally this pass finds the
//!    session empty; it is a full pass (not a clean start, which would
//!    discard whatever is there) so that a replica that came back in
//!    between loses nothing either. Only a crash of this process during
//!    this pass can lose what the session held then, which is nothing
//!    unless the departed replica came back.
//!
//! Adopting the id of a replica that is still running disconnects it (the
//! broker allows one connection per client id): its unacknowledged
//! messages stay in the session and are adopted (duplicates in Kafka, not
//! loss); it reconnects by itself a second later, either taking the
//! session back (the adoption then fails with "connection lost", and the
//! replica carries on) or, once the session was ended, starting a new one
//! and rejoining the group. Nothing is lost either way (tested), but it
//! disturbs a healthy replica: operators adopt only ids of replicas that
//! are gone.

use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use vigil_schemas::topics::DeviceChannel;
use vigil_service::bridge::{self, Forward as _};
use vigil_service::subscription::{Adoption, Subscription, SubscriptionConfig};
use vigil_service::{mqtt, Readiness, Shutdown};

use crate::config::IngestArgs;
use crate::pipeline::{max_packet_size, Pipeline};

/// Adopts every `--adopt-session` id at once; returns how many failed
/// (each logged and counted).
pub(crate) async fn all(
    args: &IngestArgs,
    pipeline: &Pipeline,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> usize {
    let adoptions = args.adopt_sessions.iter().map(|id| async move {
        match adopt(args, id, pipeline, readiness, shutdown).await {
            Ok(taken) => {
                pipeline.metrics.sessions_adopted.inc();
                tracing::info!(client_id = %id, messages = taken,
                    "adopted the session: emptied into kafka and ended");
                0
            }
            Err(e) => {
                pipeline.metrics.session_adoptions_failed.inc();
                tracing::error!(client_id = %id, error = format!("{e:#}"),
                    "could not adopt the session; it is left with the broker as it was");
                1
            }
        }
    });
    join_all(adoptions).await.into_iter().sum()
}

/// Empties and ends the session of `client_id` (see the module docs);
/// returns how many messages it held.
async fn adopt(
    args: &IngestArgs,
    client_id: &str,
    pipeline: &Pipeline,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> anyhow::Result<u64> {
    let own = mqtt::options(&args.mqtt, Pipeline::SERVICE)?;
    anyhow::ensure!(
        args.adopt_only || own.client_id() != client_id,
        "refusing to adopt this replica's own client id {client_id}"
    );
    let taken = empty(
        args,
        client_id,
        args.session_expiry_secs,
        pipeline,
        readiness,
        shutdown,
    )
    .await
    .context("emptying the session")?;
    let late = empty(args, client_id, 0, pipeline, readiness, shutdown)
        .await
        .context("ending the emptied session")?;
    if late > 0 {
        tracing::warn!(
            client_id,
            messages = late,
            "the session held messages again when it was ended: was that replica still running?"
        );
    }
    Ok(taken + late)
}

/// One pass over the session of `client_id`: resume it with
/// `expiry_secs`, leave the group, forward everything it holds until the
/// marker comes back, acknowledge, disconnect. With `expiry_secs` 0 the
/// broker discards the session at the disconnect. Returns how many
/// messages it held.
async fn empty(
    args: &IngestArgs,
    client_id: &str,
    expiry_secs: u32,
    pipeline: &Pipeline,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> anyhow::Result<u64> {
    let mut mqtt_args = args.mqtt.clone();
    mqtt_args.mqtt_client_id = Some(client_id.to_owned());
    let options = mqtt::options(&mqtt_args, Pipeline::SERVICE)?;
    let token = marker_token(client_id);
    let config = SubscriptionConfig {
        filter: pipeline
            .mqtt_topics
            .shared(&args.group, DeviceChannel::Telemetry),
        window: args.max_in_flight,
        session_expiry_secs: expiry_secs,
        max_packet_bytes: max_packet_size(args.max_payload_bytes),
        label: "adopted",
        adopt: Some(Adoption {
            marker_topic: marker_topic(pipeline.mqtt_topics.prefix(), &token),
            marker: token.into_bytes(),
        }),
    };
    let mut subscription = Subscription::start(
        options,
        config,
        readiness.clone(),
        pipeline.metrics.subscription(),
    );
    let left = bridge::run_window(
        pipeline,
        &subscription.acker(),
        subscription.messages(),
        usize::from(args.max_in_flight),
        shutdown,
        Duration::from_secs(args.shutdown_timeout_secs),
    )
    .await;
    let end = subscription.finish().await;
    pipeline.metrics.adopted_messages.inc_by(end.forwarded);
    if let Some(error) = end.error {
        anyhow::bail!("{error}");
    }
    anyhow::ensure!(
        end.drained,
        "stopped before the session was empty ({} messages taken)",
        end.forwarded
    );
    anyhow::ensure!(
        left == 0 && end.late == 0,
        "{left} messages left unacknowledged and {} arrived after the marker; the session keeps them",
        end.late
    );
    Ok(end.forwarded)
}

/// `{prefix}ingest/adopt/{token}`: a topic no device channel matches.
fn marker_topic(prefix: &str, token: &str) -> String {
    format!("{prefix}ingest/adopt/{token}")
}

/// A token unique to this attempt (process, client id, time), usable as a
/// topic level.
fn marker_token(client_id: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    client_id.hash(&mut hasher);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}-{nanos:x}", std::process::id(), hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_topic_is_outside_the_device_channels() {
        let topics = vigil_schemas::MqttTopics::default();
        let a = marker_token("ingest-0");
        let topic = marker_topic(topics.prefix(), &a);
        assert!(!topic.contains('+') && !topic.contains('#'));
        assert_eq!(topics.device_id_of(&topic, DeviceChannel::Telemetry), None);
    }
}
