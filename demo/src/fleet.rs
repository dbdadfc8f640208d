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
//!   queues on disk, and sends telemetry and verdicts up over MQTT. Each
//!   agent answers the cloud's commands with [`command_handler`]: it
//!   acknowledges the demo rules' commands (`throttle`, `recalibrate`,
//!   `reduce-load`) by appending them to `commands.jsonl` in its state
//!   directory, so their results come back `ok` onto the incident.

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
    command_verify_key: &Path,
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
        run.command_verify_key = Some(command_verify_key.to_owned());
        run.state_dir = state_root.join(&id);
        run.source = SourceKind::Sim;
        run.sim_seed = demo.seed.wrapping_add(1 + u64::from(i));
        run.sim_anomaly_rate = demo.anomaly_rate;
        run.sim_day_ms = (demo.day_secs * 1000.0).round() as u64;
        run.interval_ms = demo.device_interval_ms;
        run.status_interval_ms = EDGE_STATUS_INTERVAL_MS;
        run.command_handler = Some(command_handler(&run.state_dir.join(COMMAND_LOG)));
        let token = stop.child_token();
        agents.spawn(async move {
            let result = vigil_edge::agent::run(run, token).await;
            (id, result)
        });
    }
    Ok(agents)
}

/// The file in an agent's state directory where its handler records the
/// commands it acknowledged, one JSON document a line.
pub const COMMAND_LOG: &str = "commands.jsonl";

/// Commands the demo's agents acknowledge; any other fails (exit 64), so
/// a rule naming a command the device does not know shows `failed`.
pub const KNOWN_COMMANDS: [&str; 3] = ["throttle", "recalibrate", "reduce-load"];

/// The shell command (`/bin/sh -c`, the agent's `--command-handler`) the
/// demo's edge agents run for a cloud command: a known command is
/// acknowledged by appending its JSON (stdin: name, parameters, ids) to
/// `log`; an unknown one exits 64 with a message on stderr. Harmless: it
/// writes nothing but that file.
pub fn command_handler(log: &Path) -> String {
    format!(
        "case \"$VIGIL_COMMAND\" in {known}) cat >> {log} ;; \
         *) echo \"vigil-demo: $VIGIL_DEVICE_ID does not know command $VIGIL_COMMAND\" >&2; exit 64 ;; esac",
        known = KNOWN_COMMANDS.join("|"),
        log = shell_quoted(&log.to_string_lossy()),
    )
}

/// `s` as one single-quoted shell word.
fn shell_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `handler` as the agent does: `/bin/sh -c`, the command JSON on
    /// stdin, `VIGIL_COMMAND` set; its exit code.
    fn run(handler: &str, command: &str) -> Option<i32> {
        use std::io::Write as _;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(handler)
            .env("VIGIL_COMMAND", command)
            .env("VIGIL_DEVICE_ID", "edge-00001")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sh starts");
        let json = format!("{{\"command\":\"{command}\",\"params\":{{\"level\":2}}}}\n");
        // A handler that does not read its stdin closes the pipe: as the
        // agent does, the write's error is not the handler's outcome.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(json.as_bytes());
        child.wait().expect("sh ends").code()
    }

    #[test]
    fn the_handler_acknowledges_known_commands_and_fails_others() {
        // A path a shell would split or unquote if it were not quoted.
        let dir = tempfile::tempdir().expect("dir");
        let state = dir.path().join("it's a dir");
        std::fs::create_dir(&state).expect("created");
        let log = state.join(COMMAND_LOG);
        let handler = command_handler(&log);
        assert_eq!(run(&handler, "throttle"), Some(0));
        assert_eq!(run(&handler, "reduce-load"), Some(0));
        assert_eq!(run(&handler, "reboot"), Some(64));
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
            .expect("log written")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        let names: Vec<&str> = lines.iter().filter_map(|l| l["command"].as_str()).collect();
        assert_eq!(names, ["throttle", "reduce-load"]);
        assert_eq!(lines[0]["params"]["level"], 2);
    }
}
