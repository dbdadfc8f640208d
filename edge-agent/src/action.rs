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
//!
//! Each cloud command ends in a [`CommandResult`] (ok, failed or refused,
//! exit status, duration, the command's `command_id` and `incident_id`
//! when it had them) that the uplink publishes on
//! `vigil/devices/{id}/command-results`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use vigil_schemas::{CommandOutcome, CommandResult};

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

/// Results waiting to be published.
pub const RESULT_QUEUE: usize = 16;

/// Largest cloud command accepted.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Why a cloud command's payload was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("cloud command of {0} bytes is larger than {MAX_COMMAND_BYTES} bytes")]
    TooLarge(usize),
    #[error("cloud command is not a JSON object with a \"command\" string: {0}")]
    NotACommand(String),
    #[error("cloud command name {0:?} is empty or holds control characters")]
    BadName(String),
}

impl CommandError {
    /// Short, stable code for logs and tests.
    pub fn reason(&self) -> &'static str {
        match self {
            CommandError::TooLarge(_) => "too_large",
            CommandError::NotACommand(_) => "not_a_command",
            CommandError::BadName(_) => "bad_name",
        }
    }
}

/// The name of the cloud command in `payload` (a JSON object with a
/// `"command"` string; other fields are the handler's). The name becomes
/// `VIGIL_COMMAND` in the handler's environment, so it must be non-empty
/// and free of control characters (a NUL cannot be passed there at all).
pub fn parse_command(payload: &[u8]) -> Result<String, CommandError> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLarge(payload.len()));
    }
    // An object, not any JSON a derived struct would take (`["x"]` reads
    // as a struct too: found by fuzzing).
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).map_err(|e| CommandError::NotACommand(e.to_string()))?;
    let command = match object.get("command") {
        Some(serde_json::Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(CommandError::NotACommand(format!(
                "\"command\" is {other}, not a string"
            )))
        }
        None => return Err(CommandError::NotACommand("no \"command\" field".into())),
    };
    if command.is_empty() || command.chars().any(char::is_control) {
        return Err(CommandError::BadName(command));
    }
    Ok(command)
}

/// The result of cloud command `payload` (its JSON, for the ids) named
/// `name` on `device_id`.
pub fn command_result(
    device_id: &str,
    name: &str,
    payload: &[u8],
    status: CommandOutcome,
    ran: Option<&Execution>,
    detail: Option<String>,
) -> CommandResult {
    #[derive(serde::Deserialize, Default)]
    struct Ids {
        #[serde(default)]
        command_id: Option<String>,
        #[serde(default)]
        incident_id: Option<String>,
    }
    let ids: Ids = serde_json::from_slice(payload).unwrap_or_default();
    CommandResult {
        schema: 1,
        device_id: device_id.to_owned(),
        command: name.to_owned(),
        command_id: ids.command_id,
        incident_id: ids.incident_id,
        status,
        exit_status: ran.and_then(|r| r.exit_status),
        duration_ms: ran.map_or(0, |r| r.duration_ms),
        ts: vigil_base::now_ms(),
        detail,
    }
}

/// Runs triggers until `shutdown` (the running action is allowed to finish
/// within its timeout); the result of each cloud command goes to
/// `results` (dropped with a warning when that queue is full).
pub async fn run(
    config: ActionConfig,
    mut triggers: mpsc::Receiver<Trigger>,
    results: mpsc::Sender<CommandResult>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let report = |result: CommandResult| {
        if results.try_send(result).is_err() {
            tracing::warn!("command result queue full; a result is not published");
        }
    };
    let mut last_anomaly_action: Option<Instant> = None;
    loop {
        let trigger = tokio::select! {
            _ = shutdown.cancelled() => return,
            t = triggers.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        let (command, payload, env, name) = match trigger {
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
                    None,
                )
            }
            Trigger::Command { name, payload } => {
                let Some(command) = config.on_command.as_ref().or(config.on_anomaly.as_ref())
                else {
                    tracing::warn!(command = %name, "cloud command received but no --command-handler or --action-command is configured; ignored");
                    report(command_result(
                        &config.device_id,
                        &name,
                        &payload,
                        CommandOutcome::Refused,
                        None,
                        Some("no command handler is configured on the device".into()),
                    ));
                    continue;
                };
                (
                    command.clone(),
                    payload,
                    vec![
                        ("VIGIL_TRIGGER", "command".to_owned()),
                        ("VIGIL_COMMAND", name.clone()),
                    ],
                    Some(name),
                )
            }
        };
        Stats::bump(&stats.actions_run);
        let ran = execute(&command, &payload, &env, &config).await;
        if let Some(why) = &ran.error {
            Stats::bump(&stats.actions_failed);
            tracing::warn!(command = %command, why, "local action failed");
        }
        if let Some(name) = name {
            let status = if ran.error.is_none() {
                CommandOutcome::Ok
            } else {
                CommandOutcome::Failed
            };
            report(command_result(
                &config.device_id,
                &name,
                &payload,
                status,
                Some(&ran),
                ran.error.clone(),
            ));
        }
    }
}

/// How a shell command ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Its exit status, when it exited by itself.
    pub exit_status: Option<i32>,
    /// How long it ran, ms.
    pub duration_ms: u64,
    /// Why it did not succeed, if it did not.
    pub error: Option<String>,
}

async fn execute(
    command: &str,
    stdin: &[u8],
    env: &[(&str, String)],
    config: &ActionConfig,
) -> Execution {
    let started = Instant::now();
    let (exit_status, error) = run_shell(command, stdin, env, config).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if error.is_none() {
        tracing::info!(command, elapsed_ms = duration_ms, "local action ran");
    }
    Execution {
        exit_status,
        duration_ms,
        error,
    }
}

/// Runs `command`: its exit status (when it exited) and the error, if any.
async fn run_shell(
    command: &str,
    stdin: &[u8],
    env: &[(&str, String)],
    config: &ActionConfig,
) -> (Option<i32>, Option<String>) {
    let spawned = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("VIGIL_DEVICE_ID", &config.device_id)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return (None, Some(format!("starting /bin/sh: {e}"))),
    };
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
        Ok(Ok(status)) if status.success() => (status.code(), None),
        Ok(Ok(status)) => (status.code(), Some(format!("exited with {status}"))),
        Ok(Err(e)) => (None, Some(format!("waiting for it: {e}"))),
        Err(_) => {
            if let Some(pid) = child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            (
                None,
                Some(format!("still running after {:?}; killed", config.timeout)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_with_a_specific_reason() {
        assert_eq!(
            parse_command(br#"{"command":"throttle","rpm":900}"#),
            Ok("throttle".to_owned())
        );
        let reason = |b: &[u8]| parse_command(b).map_err(|e| e.reason());
        assert_eq!(reason(b"not json"), Err("not_a_command"));
        assert_eq!(reason(br#"{"command":7}"#), Err("not_a_command"));
        assert_eq!(reason(br#"["throttle"]"#), Err("not_a_command"));
        assert_eq!(reason(br#"{"command":""}"#), Err("bad_name"));
        // A NUL cannot go into VIGIL_COMMAND: once a handler that never
        // started.
        assert_eq!(reason(br#"{"command":"a\u0000b"}"#), Err("bad_name"));
        let mut big = br#"{"command":"x","pad":""#.to_vec();
        big.resize(MAX_COMMAND_BYTES + 1, b'a');
        assert_eq!(reason(&big), Err("too_large"));
    }

    fn config(dir: &std::path::Path, debounce_ms: u64, timeout_ms: u64) -> ActionConfig {
        ActionConfig {
            device_id: "dev-1".into(),
            on_anomaly: Some(format!(
                "cat >> {}/anomaly.log; echo \"$VIGIL_TRIGGER $VIGIL_DEVICE_ID\" >> {}/anomaly.log",
                dir.display(),
                dir.display()
            )),
            on_command: Some(format!(
                "echo \"$VIGIL_COMMAND\" >> {}/commands.log; [ \"$VIGIL_COMMAND\" != slow ] || sleep 5; [ \"$VIGIL_COMMAND\" != fail ] || exit 3",
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
        let (results_tx, mut results) = mpsc::channel(RESULT_QUEUE);
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(run(
            config(dir.path(), 60_000, 500),
            rx,
            results_tx,
            Arc::clone(&stats),
            shutdown.clone(),
        ));
        for i in 0..3 {
            tx.send(Trigger::Anomaly(format!("{{\"seq\":{i}}}").into_bytes()))
                .await
                .expect("send");
        }
        for name in ["slow", "reboot", "fail"] {
            tx.send(Trigger::Command {
                name: name.into(),
                payload: format!(
                    r#"{{"command":"{name}","command_id":"i:1/r/{name}","incident_id":"i:1"}}"#
                )
                .into_bytes(),
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
        assert_eq!(commands, "slow\nreboot\nfail\n");
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&stats.actions_run), 4);
        assert_eq!(get(&stats.actions_skipped), 2);
        assert_eq!(
            get(&stats.actions_failed),
            2,
            "the slow command was killed, fail failed"
        );
        let mut got = Vec::new();
        while let Ok(r) = results.try_recv() {
            got.push(r);
        }
        let summary: Vec<_> = got
            .iter()
            .map(|r| (r.command.as_str(), r.status, r.exit_status))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("slow", CommandOutcome::Failed, None),
                ("reboot", CommandOutcome::Ok, Some(0)),
                ("fail", CommandOutcome::Failed, Some(3)),
            ]
        );
        assert_eq!(got[1].command_id.as_deref(), Some("i:1/r/reboot"));
        assert_eq!(got[1].incident_id.as_deref(), Some("i:1"));
        assert!(got[0].duration_ms >= 500, "killed at its timeout");
        assert!(got[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("killed")));
    }

    #[tokio::test]
    async fn a_command_without_a_handler_is_refused() {
        let (tx, rx) = mpsc::channel(ACTION_QUEUE);
        let (results_tx, mut results) = mpsc::channel(RESULT_QUEUE);
        let config = ActionConfig {
            device_id: "dev-1".into(),
            on_anomaly: None,
            on_command: None,
            timeout: Duration::from_secs(1),
            debounce: Duration::from_secs(1),
        };
        let runner = tokio::spawn(run(
            config,
            rx,
            results_tx,
            Arc::new(Stats::default()),
            CancellationToken::new(),
        ));
        tx.send(Trigger::Command {
            name: "reboot".into(),
            payload: br#"{"command":"reboot","command_id":"x"}"#.to_vec(),
        })
        .await
        .expect("send");
        drop(tx);
        runner.await.expect("runner ends");
        let r = results.try_recv().expect("a result");
        assert_eq!(r.status, CommandOutcome::Refused);
        assert_eq!(r.command_id.as_deref(), Some("x"));
    }
}
