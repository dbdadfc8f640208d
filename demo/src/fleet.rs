//! The simulated fleet, in two parts:
//!
//! - **Cloud-scored devices**: `vigil-loadgen run` (the load generator's
//!   library, [`vigil_loadgen::run::run`]) publishes the simulated fleet
//!   with injected anomalies over MQTT at QoS 1, reads every verdict back
//!   from `vigil.verdicts`, and measures loss, duplicates, latency and
//!   detection against the injected ground truth.
//! - **Edge devices**: one `vigil-edge` agent per device
//!   ([`vigil_edge::agent::run`], the device binary's own code path) with
//!   the simulated source. Each scores its samples on the device with the
//!   model it receives on the retained `vigil/models/{model}` topic,
//!   queues on disk, and sends telemetry and verdicts up over MQTT.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vigil_edge::config::{RunArgs as EdgeArgs, SourceKind};
use vigil_loadgen::run::{ProgressMode, Report, RunArgs};
use vigil_service::broker_auth::Credentials;

use crate::config::DemoArgs;
use crate::{roles, services};

/// Longest run the load generator accepts; the demo without `--duration`
/// runs until Ctrl-C, at most this long.
const MAX_RUN_SECS: u64 = 86_400;
/// How often edge agents refresh their retained status (the rollout view).
const EDGE_STATUS_INTERVAL_MS: u64 = 5_000;

/// Cloud-scored device ids are `pump-NNNNN`, edge ones `edge-NNNNN`.
pub const CLOUD_PREFIX: &str = "pump";
/// Prefix of edge device ids.
pub const EDGE_PREFIX: &str = "edge";

/// The id of edge agent `i`.
pub fn edge_device_id(i: u32) -> String {
    format!("{EDGE_PREFIX}-{i:05}")
}

/// The load generator's arguments for the cloud-scored part of the fleet,
/// publishing as the broker's gateway user `gateway`.
pub fn loadgen_args(
    demo: &DemoArgs,
    mqtt_url: &str,
    gateway: &Credentials,
    kafka: &str,
) -> anyhow::Result<RunArgs> {
    let devices = demo.cloud_devices();
    let duration = demo
        .duration
        .map_or(MAX_RUN_SECS, |d| d.as_secs().clamp(1, MAX_RUN_SECS));
    let mut args: RunArgs = roles::defaults("vigil-loadgen run")?;
    args.mqtt.mqtt_url = mqtt_url.to_owned();
    args.mqtt.mqtt_client_id = Some("vigil-demo-fleet".to_owned());
    args.mqtt.mqtt_username = Some(gateway.username.clone());
    args.mqtt.mqtt_password = Some(gateway.password.clone());
    args.kafka.kafka_brokers = kafka.to_owned();
    args.kafka.kafka_options.push((
        "queued.max.messages.kbytes".to_owned(),
        services::CONSUMER_PREFETCH_KIB.to_string(),
    ));
    args.devices = devices as usize;
    args.rate = f64::from(devices) * 1000.0 / demo.device_interval_ms as f64;
    args.duration = Some(duration as f64);
    args.connections = 4;
    args.seed = demo.seed;
    args.device_prefix = CLOUD_PREFIX.to_owned();
    args.anomaly_rate = demo.anomaly_rate;
    args.day_secs = demo.day_secs;
    args.drain_timeout = demo.drain_timeout.as_secs_f64().max(1.0);
    args.progress = ProgressMode::None;
    args.plot_devices = 0;
    Ok(args)
}

/// Runs the cloud-scored fleet until its duration ends or `publishing`
/// (Ctrl-C), then waits up to the drain timeout for the verdicts of what
/// it sent; `abort` returns at once with what was measured.
pub async fn run_cloud(
    args: RunArgs,
    publishing: CancellationToken,
    abort: CancellationToken,
) -> anyhow::Result<Report> {
    let config = args.validate().context("fleet options")?;
    vigil_loadgen::run::run_draining(config, publishing, abort).await
}

/// Starts an edge agent for each enrolled device (`edge-00000`, …, each
/// with its own broker credentials); they run until `stop`.
pub fn start_edge(
    demo: &DemoArgs,
    devices: &HashMap<String, Credentials>,
    mqtt_url: &str,
    verify_key: &Path,
    state_root: &Path,
    stop: &CancellationToken,
) -> anyhow::Result<JoinSet<(String, anyhow::Result<()>)>> {
    let mut agents = JoinSet::new();
    let mut ids: Vec<&String> = devices.keys().collect();
    ids.sort();
    for (i, id) in ids.into_iter().enumerate() {
        let i = i as u32;
        let id = id.clone();
        let credentials = &devices[&id];
        let mut run: EdgeArgs = roles::defaults("vigil-edge run")?;
        run.device_id = Some(id.clone());
        run.mqtt.mqtt_url = mqtt_url.to_owned();
        run.mqtt.mqtt_username = Some(credentials.username.clone());
        run.mqtt.mqtt_password = Some(credentials.password.clone());
        run.verify_key = Some(verify_key.to_owned());
        run.state_dir = state_root.join(&id);
        run.source = SourceKind::Sim;
        run.sim_seed = demo.seed.wrapping_add(1 + u64::from(i));
        run.sim_anomaly_rate = demo.anomaly_rate;
        run.sim_day_ms = (demo.day_secs * 1000.0).round() as u64;
        run.interval_ms = demo.device_interval_ms;
        run.status_interval_ms = EDGE_STATUS_INTERVAL_MS;
        let token = stop.child_token();
        agents.spawn(async move {
            let result = vigil_edge::agent::run(run, token).await;
            (id, result)
        });
    }
    Ok(agents)
}

/// Stops the edge agents and waits for them to flush their queues.
pub async fn stop_edge(
    mut agents: JoinSet<(String, anyhow::Result<()>)>,
    stop: &CancellationToken,
    timeout: Duration,
) {
    stop.cancel();
    let drained = tokio::time::timeout(timeout, async {
        while let Some(joined) = agents.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(e))) => {
                    tracing::warn!(device = %id, error = %format!("{e:#}"), "edge agent failed")
                }
                Err(e) => tracing::warn!(error = %e, "edge agent task panicked"),
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("edge agents did not stop within {timeout:?}; abandoned");
        agents.abort_all();
    }
}
