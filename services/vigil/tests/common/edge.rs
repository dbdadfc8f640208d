//! A live `vigil-edge` agent for the `vigil` binary's integration tests
//! (the binary beside `vigil`, built with `--features vigil-edge/sim`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil_testkit::clients::eventually;

/// The `vigil-edge` binary beside the `vigil` binary under test.
pub fn edge_binary() -> anyhow::Result<PathBuf> {
    let bin = Path::new(env!("CARGO_BIN_EXE_vigil")).with_file_name("vigil-edge");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p vigil-edge --features sim` (the workspace test run does)",
        bin.display()
    );
    Ok(bin)
}

/// A running `vigil-edge` agent, killed when dropped.
pub struct Agent {
    child: Option<Child>,
    log: PathBuf,
    state: tempfile::TempDir,
}

impl Agent {
    /// A simulated device sampling every 500 ms.
    pub fn start(device: &str, mqtt_url: &str, verify: &Path) -> anyhow::Result<Agent> {
        Self::start_with(device, mqtt_url, verify, &["--interval-ms", "500"])
    }

    /// A simulated device with `extra` options (`--interval-ms` among
    /// them).
    pub fn start_with(
        device: &str,
        mqtt_url: &str,
        verify: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Agent> {
        let state = tempfile::tempdir()?;
        let log = state.path().join("agent.log");
        let child = spawn(state.path(), &log, device, mqtt_url, verify, extra)?;
        Ok(Agent {
            child: Some(child),
            log,
            state,
        })
    }

    /// Starts the agent again on the same state directory (after
    /// [`Agent::kill9`]), its log appended to the same file.
    pub fn restart_with(
        &mut self,
        device: &str,
        mqtt_url: &str,
        verify: &Path,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        self.kill9();
        let child = spawn(
            self.state.path(),
            &self.log,
            device,
            mqtt_url,
            verify,
            extra,
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// The agent's `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.state.path().join("state")
    }

    /// SIGKILL, waited for: the process dies between any two instructions.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the agent logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent's `status.json` says it took sample `seq`.
    pub async fn seq_reached(&self, seq: u64, timeout: Duration) -> anyhow::Result<()> {
        let path = self.state.path().join("state").join("status.json");
        eventually("the agent's status.json reaches the seq", timeout, || {
            let path = path.clone();
            async move {
                std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["seq"].as_u64())
                    .is_some_and(|s| s >= seq)
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log_text()))
    }

    /// SIGTERM; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()?.code()
    }
}

/// Starts `vigil-edge run` on `{state}/state`, appending its log to `log`.
fn spawn(
    state: &Path,
    log: &Path,
    device: &str,
    mqtt_url: &str,
    verify: &Path,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Command::new(edge_binary()?)
        .arg("run")
        .arg("--state-dir")
        .arg(state.join("state"))
        .args(["--device-id", device, "--mqtt-url", mqtt_url])
        .arg("--verify-key")
        .arg(verify)
        .args(["--source", "sim"])
        .args(["--status-interval-ms", "500", "--reconnect-max-ms", "1000"])
        .args(extra)
        .env("VIGIL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()?)
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
