//! Local corrective action: what the device does by itself, without the
//! cloud, when it sees an anomaly — and what it does when the cloud sends a
//! command on `vigil/devices/{id}/commands`.
//!
//! Both run an operator-configured shell command (`/bin/sh -c`), with the
//! verdict or command JSON on stdin and `VIGIL_TRIGGER` (`anomaly` or
//! `command`), `VIGIL_DEVICE_ID` and, for commands, `VIGIL_COMMAND` in its
//! environment. Its output goes to the agent's own stdout/stderr (the
//! journal). A command still running after `--action-timeout-ms` is killed.
//! Anomaly actions are debounced: at most one per `--action-debounce-ms`
//! (the first anomaly of a burst acts; the rest are counted in
//! `actions_skipped`). A timed-out command is killed with its whole
//! process group. Cloud commands are not debounced. Triggers wait in a
//! bounded queue and run one at a time, so a storm of anomalies or commands
//! never forks a storm of processes.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::status::Stats;

/// Triggers waiting to run.
pub const ACTION_QUEUE: usize = 16;

/// Why an action runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A local anomaly: the verdict JSON.
    Anomaly(Vec<u8>),
    /// A cloud command: its name and JSON.
    Command { name: String, payload: Vec<u8> },
}

/// What runs for each trigger.
#[derive(Debug, Clone)]
pub struct ActionConfig {
    /// Device id, passed to the command.
    pub device_id: String,
    /// Shell command for anomalies.
    pub on_anomaly: Option<String>,
    /// Shell command for cloud commands.
    pub on_command: Option<String>,
    /// Kill after this long.
    pub timeout: Duration,
    /// At most one anomaly action per this long.
    pub debounce: Duration,
}

/// Runs triggers until `shutdown` (the running action is allowed to finish
/// within its timeout).
pub async fn run(
    config: ActionConfig,
    mut triggers: mpsc::Receiver<Trigger>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let mut last_anomaly_action: Option<Instant> = None;
    loop {
        let trigger = tokio::select! {
            _ = shutdown.cancelled() => return,
            t = triggers.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        let (command, payload, env) = match trigger {
            Trigger::Anomaly(verdict) => {
                let Some(command) = &config.on_anomaly else {
                    continue;
                };
                if last_anomaly_action.is_some_and(|t| t.elapsed() < config.debounce) {
                    Stats::bump(&stats.actions_skipped);
                    tracing::debug!("anomaly within the debounce window; no action");
                    continue;
                }
                last_anomaly_action = Some(Instant::now());
                (
                    command.clone(),
                    verdict,
                    vec![("VIGIL_TRIGGER", "anomaly".to_owned())],
                )
            }
            Trigger::Command { name, payload } => {
                let Some(command) = config.on_command.as_ref().or(config.on_anomaly.as_ref())
                else {
                    tracing::warn!(command = %name, "cloud command received but no --command-handler or --action-command is configured; ignored");
                    continue;
                };
                (
                    command.clone(),
                    payload,
                    vec![
                        ("VIGIL_TRIGGER", "command".to_owned()),
                        ("VIGIL_COMMAND", name),
                    ],
                )
            }
        };
        Stats::bump(&stats.actions_run);
        if let Err(why) = execute(&command, &payload, &env, &config).await {
            Stats::bump(&stats.actions_failed);
            tracing::warn!(command = %command, why, "local action failed");
        }
    }
}

async fn execute(
    command: &str,
    stdin: &[u8],
    env: &[(&str, String)],
    config: &ActionConfig,
) -> Result<(), String> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("VIGIL_DEVICE_ID", &config.device_id)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting /bin/sh: {e}"))?;
    let outcome = tokio::time::timeout(config.timeout, async {
        if let Some(mut input) = child.stdin.take() {
            // A command that does not read its stdin is fine.
            let _ = input.write_all(stdin).await;
            let _ = input.write_all(b"\n").await;
        }
        child.wait().await
    })
    .await;
    match outcome {
        Ok(Ok(status)) if status.success() => {
            tracing::info!(
                command,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "local action ran"
            );
            Ok(())
        }
        Ok(Ok(status)) => Err(format!("exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for it: {e}")),
        Err(_) => {
            if let Some(pid) = child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            Err(format!("still running after {:?}; killed", config.timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, debounce_ms: u64, timeout_ms: u64) -> ActionConfig {
        ActionConfig {
            device_id: "dev-1".into(),
            on_anomaly: Some(format!(
                "cat >> {}/anomaly.log; echo \"$VIGIL_TRIGGER $VIGIL_DEVICE_ID\" >> {}/anomaly.log",
                dir.display(),
                dir.display()
            )),
            on_command: Some(format!(
                "echo \"$VIGIL_COMMAND\" >> {}/commands.log; [ \"$VIGIL_COMMAND\" != slow ] || sleep 5",
                dir.display()
            )),
            timeout: Duration::from_millis(timeout_ms),
            debounce: Duration::from_millis(debounce_ms),
        }
    }

    #[tokio::test]
    async fn anomalies_are_debounced_and_commands_run_with_a_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(ACTION_QUEUE);
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(run(
            config(dir.path(), 60_000, 500),
            rx,
            Arc::clone(&stats),
            shutdown.clone(),
        ));
        for i in 0..3 {
            tx.send(Trigger::Anomaly(format!("{{\"seq\":{i}}}").into_bytes()))
                .await
                .expect("send");
        }
        for name in ["slow", "reboot"] {
            tx.send(Trigger::Command {
                name: name.into(),
                payload: b"{}".to_vec(),
            })
            .await
            .expect("send");
        }
        drop(tx);
        runner.await.expect("runner ends when the senders are gone");

        let log = std::fs::read_to_string(dir.path().join("anomaly.log")).expect("action ran");
        assert_eq!(
            log, "{\"seq\":0}\nanomaly dev-1\n",
            "only the first anomaly acted"
        );
        let commands = std::fs::read_to_string(dir.path().join("commands.log")).expect("ran");
        assert_eq!(commands, "slow\nreboot\n");
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&stats.actions_run), 3);
        assert_eq!(get(&stats.actions_skipped), 2);
        assert_eq!(get(&stats.actions_failed), 1, "the slow command was killed");
    }
}
