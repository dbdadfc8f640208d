//! `vigil-demo`: the whole Vigil stack in one command.
//!
//! ```text
//!  fleet (vigil-loadgen lib) ─┐                                 ┌─► vigil score ─► verdicts ─► vigil audit (SQLite)
//!  edge agents (vigil-edge) ──┴─MQTT─► mosquitto ─► vigil ingest ─► tansu ─┤
//!        ▲                                                          └─► vigil train (after warm-up, then periodic)
//!        ├── retained vigil/models/default ◄── vigil push ◄── vigil.models ◄──┘
//!        └── retained device status ──────────► vigil push ─► vigil.device-status
//! ```
//!
//! Every service runs in this process through the `run(args, shutdown)`
//! function the `vigil` binary calls, its arguments parsed from flags
//! ([`services`]); the brokers are child processes ([`brokers`] says why).
//! The demo prints a status line every few seconds ([`status`], [`watch`])
//! and, when the fleet stops (`--duration`) or on Ctrl-C, shuts everything
//! down in data-flow order and prints a summary ([`summary`]): records,
//! verdicts, loss, latency, detection precision/recall against the
//! injected anomalies, and the model versions rolled out.
//!
//! Layout: [`config`] (flags), [`brokers`], [`services`], [`fleet`] (the
//! load generator and the edge agents), [`watch`] (what the devices see
//! and report over MQTT), [`status`], [`summary`].

pub mod brokers;
pub mod config;
pub mod fleet;
pub mod memory;
pub mod services;
pub mod status;
pub mod summary;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_service::config::{KafkaArgs, MqttArgs};
use vigil_service::kafka::TopicSpec;
use vigil_service::Shutdown;

use crate::brokers::Broker;
use crate::config::DemoArgs;
use crate::services::{free_addr, http_flags, kafka_flags, mqtt_flags, parse, Service};
use crate::summary::{StoppedBy, Summary};

pub use config::Cli;

/// The model the demo trains, scores and pushes.
pub const MODEL: &str = "default";
/// How long the edge agents may take to flush their queues at the end.
const EDGE_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The services a record passes through, which must be ready before the
/// fleet starts.
const DATA_PATH: [&str; 4] = ["ingest", "score", "audit", "push"];
/// How long the data path may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the demo keeps its state: a temporary directory removed at exit,
/// or `--data-dir`.
#[derive(Debug)]
enum DataDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn open(dir: Option<&Path>) -> anyhow::Result<Self> {
        match dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("creating --data-dir {}", d.display()))?;
                Ok(Self::Kept(std::path::absolute(d)?))
            }
            None => Ok(Self::Temp(
                tempfile::Builder::new()
                    .prefix("vigil-demo-")
                    .tempdir()
                    .context("creating a temporary data directory")?,
            )),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Kept(p) => p,
        }
    }
}

/// Runs the demo until the fleet's `--duration` ends or `shutdown` (Ctrl-C);
/// returns the summary (also written to `--summary`).
pub async fn run(args: DemoArgs, shutdown: Shutdown) -> anyhow::Result<Summary> {
    args.validate()?;
    let started = Instant::now();
    let data = DataDir::open(args.data_dir.as_deref())?;
    let dir = data.path().to_owned();

    // Keys: kept across runs with --data-dir, so old releases still verify.
    let keys = dir.join("keys");
    let signing_key = keys.join("signing.key");
    let verify_key = keys.join("verify.pub");
    if !verify_key.exists() || !signing_key.exists() {
        vigil_model::keygen(&keys).context("generating the release signing keys")?;
    }

    let kafka = Broker::tansu(&dir.join("kafka")).await?;
    let mqtt = match Broker::mosquitto(&dir.join("mqtt")).await {
        Ok(m) => m,
        Err(e) => {
            kafka.stop().await;
            return Err(e);
        }
    };
    let mut brokers = Brokers { kafka, mqtt };
    let result = run_stack(
        &args,
        &dir,
        &signing_key,
        &verify_key,
        &mut brokers,
        &shutdown,
        started,
    )
    .await;
    brokers.mqtt.stop().await;
    brokers.kafka.stop().await;
    let mut summary = result?;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.data_dir = match &data {
        DataDir::Kept(p) => Some(p.display().to_string()),
        DataDir::Temp(_) => None,
    };
    if let Some(path) = &args.summary {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing --summary {}", path.display()))?;
    }
    Ok(summary)
}

/// The two broker processes.
#[derive(Debug)]
struct Brokers {
    kafka: Broker,
    mqtt: Broker,
}

impl Brokers {
    fn check(&mut self) -> anyhow::Result<()> {
        self.kafka.check()?;
        self.mqtt.check()
    }
}

/// Starts the services, the fleet and the edge agents, prints the status
/// until the end, then stops them in data-flow order.
#[allow(clippy::too_many_lines)]
async fn run_stack(
    args: &DemoArgs,
    dir: &Path,
    signing_key: &Path,
    verify_key: &Path,
    brokers: &mut Brokers,
    shutdown: &Shutdown,
    started: Instant,
) -> anyhow::Result<Summary> {
    let kafka_brokers = format!("127.0.0.1:{}", brokers.kafka.port());
    let mqtt_url = format!("mqtt://127.0.0.1:{}", brokers.mqtt.port());
    let kafka_args: KafkaArgs = parse("kafka", &kafka_flags(&kafka_brokers))?;
    let mqtt_args: MqttArgs = parse("mqtt", &["--mqtt-url".into(), mqtt_url.clone()])?;
    create_topics(&kafka_args, args.kafka_retention, shutdown).await;
    let key = |p: &Path| p.display().to_string();

    let (exits_tx, mut exits) = mpsc::channel(16);
    let mut running: Vec<Service> = Vec::new();

    // Downstream first, so nothing produced is waiting for a consumer.
    let audit_addr = free_addr()?;
    let audit_args: vigil_audit::AuditArgs = parse(
        "vigil audit",
        &[
            kafka_flags(&kafka_brokers),
            http_flags(audit_addr),
            vec![
                "--store".into(),
                audit_store_uri(&dir.join("audit.db")),
                "--verify-key".into(),
                key(verify_key),
            ],
        ]
        .concat(),
    )?;
    running.push(Service::spawn("audit", Some(audit_addr), &exits_tx, |sd| {
        vigil_audit::run(audit_args, sd)
    }));

    let score_addr = free_addr()?;
    let score_args: vigil_score::ScoreArgs = parse(
        "vigil score",
        &[
            kafka_flags(&kafka_brokers),
            http_flags(score_addr),
            vec![
                "--model".into(),
                MODEL.into(),
                "--verify-key".into(),
                key(verify_key),
            ],
        ]
        .concat(),
    )?;
    running.push(Service::spawn("score", Some(score_addr), &exits_tx, |sd| {
        vigil_score::run(score_args, sd)
    }));

    let ingest_addr = free_addr()?;
    let ingest_args: vigil_ingest::IngestArgs = parse(
        "vigil ingest",
        &[
            mqtt_flags(&mqtt_url, "vigil-demo-ingest"),
            kafka_flags(&kafka_brokers),
            http_flags(ingest_addr),
        ]
        .concat(),
    )?;
    running.push(Service::spawn(
        "ingest",
        Some(ingest_addr),
        &exits_tx,
        |sd| vigil_ingest::run(ingest_args, sd),
    ));

    let train_addr = free_addr()?;
    let mut train_flags = [
        kafka_flags(&kafka_brokers),
        http_flags(train_addr),
        vec![
            "--model".into(),
            MODEL.into(),
            "--signing-key".into(),
            key(signing_key),
            "--interval".into(),
            humantime::format_duration(args.retrain_every).to_string(),
            "--window".into(),
            humantime::format_duration(args.train_window).to_string(),
            // Enough for the demo's fleet after a minute; the production
            // defaults assume hours of data.
            "--min-records".into(),
            "1000".into(),
            "--min-device-records".into(),
            "50".into(),
            "--max-records".into(),
            "300000".into(),
            "--progress".into(),
            "false".into(),
        ],
    ]
    .concat();
    if !args.train_gate {
        train_flags.push("--force".into());
    }
    let train_args: vigil_train::TrainArgs = parse("vigil train", &train_flags)?;
    let warmup = args.warmup;
    running.push(Service::spawn(
        "train",
        Some(train_addr),
        &exits_tx,
        move |sd| async move {
            // The first training waits for the warm-up's data.
            tokio::select! {
                _ = sd.cancelled() => return Ok(()),
                _ = tokio::time::sleep(warmup) => {}
            }
            vigil_train::run(train_args, sd).await
        },
    ));

    let push_addr = free_addr()?;
    let push_args: vigil_push::PushArgs = parse(
        "vigil push",
        &[
            mqtt_flags(&mqtt_url, "vigil-demo-push"),
            vec![
                "--model".into(),
                MODEL.into(),
                "--verify-key".into(),
                key(verify_key),
            ],
            kafka_flags(&kafka_brokers),
            http_flags(push_addr),
        ]
        .concat(),
    )?;
    running.push(Service::spawn("push", Some(push_addr), &exits_tx, |sd| {
        vigil_push::run(push_args, sd)
    }));
    if let Some(dashboard) =
        start_dashboard(args, &kafka_brokers, &dir.join("audit.db"), &exits_tx)?
    {
        running.push(dashboard);
    }

    // No device publishes before the data path is up: ingest subscribed,
    // the scorer caught up with the model log, the audit store open.
    let path: Vec<&Service> = running
        .iter()
        .filter(|s| DATA_PATH.contains(&s.name))
        .collect();
    if let Err(e) = services::wait_ready(&path, &mut exits, READY_TIMEOUT).await {
        for s in running {
            s.stop().await;
        }
        return Err(e);
    }

    let edge_view: watch::SharedEdgeView = Arc::default();
    let watch_shutdown = Shutdown::new();
    watch::start(&mqtt_args, MODEL, Arc::clone(&edge_view), &watch_shutdown).await?;

    let edge_stop = CancellationToken::new();
    let edge_agents = fleet::start_edge(
        args,
        args.edge_devices(),
        &mqtt_url,
        verify_key,
        &dir.join("edge"),
        &edge_stop,
    )?;
    // Ctrl-C stops publishing and still waits for the verdicts in flight;
    // a failure aborts the fleet at once.
    let fleet_publishing = CancellationToken::new();
    let fleet_stop = CancellationToken::new();
    let mut fleet_task = tokio::spawn(fleet::run_cloud(
        fleet::loadgen_args(args, &mqtt_url, &kafka_brokers)?,
        fleet_publishing.clone(),
        fleet_stop.clone(),
    ));

    banner(args, dir, &running, &kafka_brokers, &mqtt_url);
    let scraper = status::Scraper::new(ingest_addr, score_addr, audit_addr)?;
    let devices = (args.cloud_devices(), args.edge_devices());
    let mut memory_log = args
        .memory_log
        .as_deref()
        .map(memory::Log::create)
        .transpose()?;
    let mut tick = tokio::time::interval(args.status_every);
    tick.tick().await;
    let mut failure: Option<anyhow::Error> = None;
    let mut stopped_by = StoppedBy::Duration;
    let fleet_result = loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = brokers.check() {
                    failure = Some(e);
                    fleet_stop.cancel();
                    break fleet_task.await;
                }
                let cloud = scraper.scrape().await;
                let edge = edge_view.lock().map(|v| v.clone()).unwrap_or_default();
                let mem = memory::Sample::take(brokers.kafka.pid(), brokers.mqtt.pid());
                if let Some(log) = &mut memory_log {
                    log.append(started.elapsed().as_secs(), &mem);
                }
                println!(
                    "{} | {}",
                    status::line(started.elapsed(), devices, &cloud, &edge),
                    mem.brief()
                );
            }
            _ = shutdown.cancelled() => {
                stopped_by = StoppedBy::Signal;
                println!(
                    "stopping: waiting up to {} for the verdicts in flight, then every service flushes (Ctrl-C again does not hurry it)",
                    humantime::format_duration(args.drain_timeout)
                );
                fleet_publishing.cancel();
                break fleet_task.await;
            }
            joined = &mut fleet_task => break joined,
            Some(exit) = exits.recv() => {
                failure = Some(match exit.result {
                    Ok(()) => anyhow::anyhow!("{} stopped by itself", exit.name),
                    Err(e) => e.context(format!("{} failed", exit.name)),
                });
                fleet_stop.cancel();
                break fleet_task.await;
            }
        }
    };

    // The figures as they stand, before anything stops.
    let cloud = scraper.scrape().await;
    let mem = memory::Sample::take(brokers.kafka.pid(), brokers.mqtt.pid());
    fleet::stop_edge(edge_agents, &edge_stop, EDGE_STOP_TIMEOUT).await;
    let edge = edge_view.lock().map(|v| v.clone()).unwrap_or_default();
    // Stop order follows the data: no new input, then ingest flushes to
    // Kafka, the scorer its verdicts, the audit sink its last batch.
    for name in ["train", "ingest", "score", "push", "dashboard", "audit"] {
        if let Some(i) = running.iter().position(|s| s.name == name) {
            running.remove(i).stop().await;
        }
    }
    for s in running {
        s.stop().await;
    }
    watch_shutdown.trigger();
    watch_shutdown.wait().await;

    if let Some(e) = failure {
        return Err(e);
    }
    let report = fleet_result
        .context("fleet task panicked")?
        .context("running the fleet")?;
    let mut summary = Summary::new(stopped_by, devices, report, cloud, edge);
    summary.memory = mem;
    Ok(summary)
}

/// Creates the high-volume topics with a retention, so the broker's store
/// stays bounded however long the demo runs; the services create the rest
/// (and would create these too, with the broker's default retention).
async fn create_topics(kafka: &KafkaArgs, retention: Duration, shutdown: &Shutdown) {
    let topics = kafka.topics();
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let specs: Vec<TopicSpec> = [
        &topics.telemetry,
        &topics.verdicts,
        &topics.anomalies,
        &topics.incidents,
        &topics.dlq,
    ]
    .into_iter()
    .map(|name| TopicSpec {
        retention_ms: Some(retention_ms),
        ..TopicSpec::delete(name)
    })
    .chain([
        TopicSpec::compact(&topics.models),
        TopicSpec::compact(&topics.device_status),
    ])
    .collect();
    vigil_service::kafka::ensure_topics_retrying(kafka, &specs, shutdown).await;
}

/// The demo's audit store, with memory bounds that do not grow with the
/// file: a 16 MiB writer cache (the service's default is 64) and no memory
/// map (the default maps 256 MiB per connection, and every mapped page a
/// query touches counts as the demo's resident memory).
fn audit_store_uri(path: &Path) -> String {
    format!("sqlite://{}?cache_mib=16&mmap_mib=0", path.display())
}

/// The dashboard (`vigil api`) on `--http-addr`: reads the topics itself
/// and tops device pages up from the demo's audit store.
fn start_dashboard(
    args: &DemoArgs,
    kafka_brokers: &str,
    audit_store: &Path,
    exits: &mpsc::Sender<services::Exit>,
) -> anyhow::Result<Option<Service>> {
    let api_args: vigil_api::ApiArgs = parse(
        "vigil api",
        &[
            kafka_flags(kafka_brokers),
            http_flags(args.http_addr),
            vec!["--audit-store".into(), audit_store_uri(audit_store)],
        ]
        .concat(),
    )?;
    Ok(Some(Service::spawn(
        "dashboard",
        Some(args.http_addr),
        exits,
        |sd| vigil_api::run(api_args, sd),
    )))
}

fn banner(args: &DemoArgs, dir: &Path, running: &[Service], kafka: &str, mqtt: &str) {
    let dashboard = running.iter().find(|s| s.name == "dashboard");
    match dashboard.and_then(|d| d.http) {
        Some(addr) => println!("dashboard: http://{addr}/"),
        None => println!(
            "dashboard: not started (would be http://{}/); audit API below",
            args.http_addr
        ),
    }
    println!("kafka: {kafka}   mqtt: {mqtt}   data: {}", dir.display());
    for s in running {
        if let Some(addr) = s.http {
            println!("  {:<7} http://{addr}/metrics", s.name);
        }
    }
    if let Some(audit) = running
        .iter()
        .find(|s| s.name == "audit")
        .and_then(|s| s.http)
    {
        println!(
            "  audit API: http://{audit}/v1/models  http://{audit}/v1/devices/{}-00000/anomalies",
            fleet::CLOUD_PREFIX
        );
    }
    println!(
        "fleet: {} devices ({} edge), one record each per {} ms; first model after {}, then every {}",
        args.devices,
        args.edge_devices(),
        args.device_interval_ms,
        humantime::format_duration(args.warmup),
        humantime::format_duration(args.retrain_every)
    );
    match args.duration {
        Some(d) => println!(
            "running for {}; Ctrl-C stops earlier",
            humantime::format_duration(d)
        ),
        None => println!("Ctrl-C stops"),
    }
}
