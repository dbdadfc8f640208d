//! The chaos suite's edge case: a `vigil-edge` agent (the binary beside
//! `vigil`, built with `--features sim`) scoring on the device and sending
//! its verdicts through Mosquitto, `vigil push` and Kafka to the audit
//! store, is cut off from the broker (a relay closed) for the profile's
//! offline time, killed with SIGKILL at the end of it (the power cut: its
//! buffered verdicts unsent) and started again after a "reboot" (a new
//! boot id) on the network. Every (device, seq) it took before the cut and
//! after it must be in the audit store once; a conflict (another record
//! under a stored seq) counts as a loss.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::producer::{FutureProducer, FutureRecord};
use vigil_schemas::Message as _;
use vigil_testkit::clients::{eventually, scrape};
use vigil_testkit::link::Link;

use crate::stack::Stack;
use crate::Profile;

/// The agent's device id (outside the load generator's prefix).
pub const DEVICE: &str = "edge-powercut-1";
/// Its model (not the scorer's, which keeps scoring with no model).
const MODEL: &str = "chaos-edge";
/// Verdicts audited before the outage.
const BEFORE: usize = 100;
/// Samples taken after the restart.
const AFTER: u64 = 100;

/// What the case found: (loss, note).
pub async fn power_cut(stack: &Stack, profile: &Profile) -> Result<(u64, Duration, String)> {
    let dir = stack.dir().join("edge");
    std::fs::create_dir_all(&dir)?;
    let model = dir.join("release.json");
    let release = release(&stack.signing_key)?;
    std::fs::write(&model, release.encode()?)?;
    publish_release(&stack.kafka.brokers(), &release).await?;
    let boot_id = dir.join("boot_id");
    std::fs::write(&boot_id, "boot-1\n")?;

    let mut link = Link::start(stack.mqtt.port()).await?;
    let agent = Agent {
        bin: stack.bin.with_file_name("vigil-edge"),
        dir: dir.clone(),
        url: link.url(),
        verify: stack.verify_key.clone(),
        model,
        boot_id: boot_id.clone(),
    };
    anyhow::ensure!(
        agent.bin.is_file(),
        "{} is missing: cargo build -p vigil-edge --features sim",
        agent.bin.display()
    );
    let mut child = agent.spawn(&[])?;
    let mut exited = None;
    eventually(
        "the agent's first verdicts audited",
        Duration::from_secs(60),
        || {
            exited = exited.or_else(|| child.try_wait().ok().flatten());
            let got = stored(&stack.store).map(|s| s.len()).unwrap_or(0);
            let done = got >= BEFORE || exited.is_some();
            async move { done }
        },
    )
    .await
    .and_then(|()| match exited {
        Some(status) => anyhow::bail!("the agent exited with {status}"),
        None => Ok(()),
    })
    .with_context(|| format!("{}\n{}", agent.log(), stack.tails(&["push", "audit"])))?;

    // Offline: it keeps sampling into its queue.
    link.cut().await;
    tokio::time::sleep(profile.edge_offline).await;
    let taken = last_seq(&dir.join("state").join("status.json")).unwrap_or(0);
    // The power cut, then the reboot, back on the network.
    let _ = child.kill();
    let _ = child.wait();
    let reserved = reserved_through(&dir.join("state").join("seq.json"))?;
    std::fs::write(&boot_id, "boot-2\n")?;
    link.restore().await?;
    let back = Instant::now();
    let last = (reserved + AFTER).to_string();
    let mut child = agent.spawn(&["--stop-after-seq", &last])?;

    // Everything it took before the cut (at least what its status said)
    // and after it, in the store.
    let expected_after: BTreeSet<u64> = (reserved + 1..=reserved + AFTER).collect();
    let complete = |got: &BTreeSet<u64>| {
        (1..=last_before(got, reserved, taken)).all(|s| got.contains(&s))
            && expected_after.iter().all(|s| got.contains(s))
    };
    let _ = eventually("every edge verdict audited", profile.audit_timeout, || {
        let done = stored(&stack.store).is_ok_and(|got| complete(&got));
        async move { done }
    })
    .await;
    let recovered = back.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    link.cut().await;

    let got = stored(&stack.store)?;
    let before_max = last_before(&got, reserved, taken);
    let missing_before = (1..=before_max).filter(|s| !got.contains(s)).count() as u64;
    let missing_after = expected_after.iter().filter(|s| !got.contains(s)).count() as u64;
    let audit = stack.role_http("audit")?;
    let conflicts = scrape(&audit, "vigil_audit_conflicts_total")
        .await
        .ok()
        .flatten()
        .unwrap_or(0.0) as u64;
    let loss = missing_before + missing_after + conflicts;
    let note = format!(
        "edge: {before_max} taken before the cut (status said {taken}), {AFTER} after (from {}), \
         {} audited; missing {missing_before} before, {missing_after} after; {conflicts} conflicts",
        reserved + 1,
        got.len()
    );
    if loss > 0 {
        eprintln!("{note}\n{}", agent.log());
    }
    Ok((loss, recovered, note))
}

/// The last seq taken before the cut: the highest stored at or below the
/// reservation, or what the agent's status said, whichever is higher.
fn last_before(got: &BTreeSet<u64>, reserved: u64, taken: u64) -> u64 {
    let stored = got.range(..=reserved).next_back().copied().unwrap_or(0);
    stored.max(taken)
}

/// How to start the agent.
struct Agent {
    bin: PathBuf,
    dir: PathBuf,
    url: String,
    verify: PathBuf,
    model: PathBuf,
    boot_id: PathBuf,
}

impl Agent {
    fn spawn(&self, extra: &[&str]) -> Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))?;
        Command::new(&self.bin)
            .arg("run")
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .args([
                "--device-id",
                DEVICE,
                "--mqtt-url",
                &self.url,
                "--model",
                MODEL,
            ])
            .arg("--verify-key")
            .arg(&self.verify)
            .arg("--initial-model")
            .arg(&self.model)
            .arg("--boot-id-file")
            .arg(&self.boot_id)
            .args([
                "--source",
                "sim",
                "--interval-ms",
                "20",
                "--seq-block",
                "100",
            ])
            .args(["--status-interval-ms", "200", "--reconnect-max-ms", "1000"])
            .args(extra)
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

/// A release of [`MODEL`] fitted on a small simulated fleet.
fn release(signing: &Path) -> Result<vigil_schemas::ModelRelease> {
    let config = vigil_fleet_sim::FleetConfig {
        day_ms: 600_000,
        ..vigil_fleet_sim::FleetConfig::clean(8, 7)
    };
    let records: Vec<_> = vigil_fleet_sim::Fleet::new(config)?
        .generate(300)
        .into_telemetry();
    let cfg = vigil_training::TrainConfig {
        model: MODEL.to_owned(),
        version: 1,
        created_ts: vigil_service::now_ms(),
        min_records: 1_000,
        min_device_records: 50,
        ..vigil_training::TrainConfig::default()
    };
    let trained = vigil_training::fit(&records, &cfg, |_| {})?;
    let key = vigil_model::load_signing_key(signing)?;
    Ok(vigil_model::sign(&trained.payload, &key)?)
}

async fn publish_release(brokers: &str, release: &vigil_schemas::ModelRelease) -> Result<()> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let payload = release.encode()?;
    producer
        .send(
            FutureRecord::to("vigil.models")
                .key(&release.model)
                .payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("publishing the edge release: {e}"))?;
    Ok(())
}

/// The agent's last sample, from its `status.json`.
fn last_seq(path: &Path) -> Option<u64> {
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    status["seq"].as_u64()
}

/// The top of the agent's durable sequence reservation.
fn reserved_through(path: &Path) -> Result<u64> {
    let reservation: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    reservation["reserved_through"]
        .as_u64()
        .with_context(|| format!("no reservation in {}: {reservation}", path.display()))
}

/// Seqs of [`DEVICE`] in the audit store.
fn stored(store: &Path) -> Result<BTreeSet<u64>> {
    let db =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(Duration::from_secs(5))?;
    let mut query = db.prepare("SELECT seq FROM verdicts WHERE device_id = ?1")?;
    let seqs = query
        .query_map([DEVICE], |row| row.get::<_, i64>(0))?
        .filter_map(|s| s.ok().and_then(|s| u64::try_from(s).ok()))
        .collect();
    Ok(seqs)
}
