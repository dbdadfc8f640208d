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
//! function the `vigil` binary calls, with its typed arguments built
//! field by field ([`roles`], [`services`]); the brokers are child processes ([`brokers`] says why).
//! The demo prints a status line every few seconds ([`status`], [`watch`])
//! and, when the fleet stops (`--duration`) or on Ctrl-C, shuts everything
//! down in data-flow order and prints a summary ([`summary`]): records,
//! verdicts, loss, latency, detection precision/recall against the
//! injected anomalies, and the model versions rolled out.
//!
//! Layout: [`config`] (flags), [`brokers`], [`roles`] (each service's
//! arguments), [`services`], [`fleet`] (the
//! load generator and the edge agents), [`watch`] (what the devices see
//! and report over MQTT), [`status`], [`summary`].

pub mod brokers;
pub mod config;
pub mod edge_audit;
pub mod fleet;
pub mod incidents;
pub mod memory;
pub mod roles;
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
use vigil_service::config::KafkaArgs;
use vigil_service::kafka::TopicSpec;
use vigil_service::Shutdown;

use crate::brokers::Broker;
use crate::config::DemoArgs;
use crate::roles::Wiring;
use crate::services::{free_addr, Service};
use crate::summary::{StoppedBy, Summary};

pub use config::Cli;
pub use roles::MODEL;

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
    // The command key pair, separate from the release key: the signing
    // half only to `vigil actions`, the verify half to the edge agents.
    let key_files = KeyFiles {
        signing: signing_key,
        verify: verify_key,
        command_signing: keys.join(vigil_model::command_sig::COMMAND_SIGNING_KEY_FILE),
        command_verify: keys.join(vigil_model::command_sig::COMMAND_VERIFY_KEY_FILE),
    };
    if !key_files.command_signing.exists() || !key_files.command_verify.exists() {
        vigil_model::command_keygen(&keys).context("generating the command signing keys")?;
    }

    let edge_ids: Vec<String> = (0..args.edge_devices())
        .map(fleet::edge_device_id)
        .collect();
    let users = brokers::enrol(&dir.join("mqtt-auth"), &edge_ids)?;
    let kafka = Broker::tansu(&dir.join("kafka")).await?;
    let mqtt = match Broker::mosquitto(&dir.join("mqtt"), &users.access).await {
        Ok(m) => m,
        Err(e) => {
            kafka.stop().await;
            return Err(e);
        }
    };
    let mut brokers = Brokers { kafka, mqtt, users };
    let result = run_stack(&args, &dir, &key_files, &mut brokers, &shutdown, started).await;
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

/// The key files: the release pair and the command pair.
#[derive(Debug)]
struct KeyFiles {
    signing: PathBuf,
    verify: PathBuf,
    command_signing: PathBuf,
    command_verify: PathBuf,
}

/// The two broker processes.
#[derive(Debug)]
struct Brokers {
    kafka: Broker,
    mqtt: Broker,
    /// Who the MQTT broker admits, and as what.
    users: brokers::MqttUsers,
}

impl Brokers {
    fn check(&mut self) -> anyhow::Result<()> {
        self.kafka.check()?;
        self.mqtt.check()
    }
}

/// Starts the services, the fleet and the edge agents, prints the status
/// until the end, then stops them in data-flow order.
async fn run_stack(
    args: &DemoArgs,
    dir: &Path,
    keys: &KeyFiles,
    brokers: &mut Brokers,
    shutdown: &Shutdown,
    started: Instant,
) -> anyhow::Result<Summary> {
    let users = &brokers.users.clone();
    let kafka_brokers = format!("127.0.0.1:{}", brokers.kafka.port());
    let mqtt_url = format!("mqtt://127.0.0.1:{}", brokers.mqtt.port());
    let token = args
        .api_token
        .clone()
        .unwrap_or_else(vigil_service::http_auth::new_token);
    roles::write_api_tokens(dir, &token)?;
    let wiring = Wiring::new(&kafka_brokers, &mqtt_url, dir, &keys.signing, &keys.verify)?
        .with_users(users)
        .with_command_signing_key(&keys.command_signing);
    create_topics(&wiring.kafka, args.kafka_retention, shutdown).await;

    let (exits_tx, mut exits) = mpsc::channel(16);
    let receiver = incidents::Receiver::start().await?;
    let rules = incidents::write_rules(dir, receiver.addr)?;
    let (running, scraper) = start_services(args, &wiring, &rules, &exits_tx)?;
    // No device publishes before the data path is up: ingest subscribed,
    // the scorer caught up with the model log, the audit store open.
    let path: Vec<&Service> = running
        .iter()
        .filter(|s| DATA_PATH.contains(&s.name))
        .collect();
    if let Err(e) = services::wait_ready(&path, &mut exits, READY_TIMEOUT).await {
        stop_in_order(running).await;
        return Err(e);
    }

    let edge_view: watch::SharedEdgeView = Arc::default();
    let watch_shutdown = Shutdown::new();
    watch::start(
        &wiring.mqtt_with(&users.observer),
        MODEL,
        Arc::clone(&edge_view),
        &watch_shutdown,
    )
    .await?;

    let edge_stop = CancellationToken::new();
    let edge_agents = fleet::start_edge(
        args,
        &users.devices,
        &mqtt_url,
        &keys.verify,
        &keys.command_verify,
        &dir.join("edge"),
        &edge_stop,
    )?;
    // Ctrl-C stops publishing and still waits for the verdicts in flight;
    // a failure aborts the fleet at once.
    let publishing = CancellationToken::new();
    let abort = CancellationToken::new();
    let task = tokio::spawn(fleet::run_cloud(
        fleet::loadgen_args(args, &mqtt_url, &users.gateway, &kafka_brokers)?,
        publishing.clone(),
        abort.clone(),
    ));
    let cloud_fleet = CloudFleet {
        publishing,
        abort,
        task,
    };

    banner(args, dir, &running, &kafka_brokers, &mqtt_url, &token);
    let devices = (args.cloud_devices(), args.edge_devices());
    let watching = Watching {
        args,
        scraper: &scraper,
        edge_view: &edge_view,
        devices,
        started,
    };
    let ended = watching
        .until_end(brokers, cloud_fleet, &mut exits, shutdown)
        .await?;

    // The figures as they stand, before anything stops.
    let cloud = scraper.scrape().await;
    let actions = match running
        .iter()
        .find(|s| s.name == "actions")
        .and_then(|s| s.http)
    {
        Some(addr) => incidents::scrape(addr).await,
        None => String::new(),
    };
    let mem = memory::Sample::take(brokers.kafka.pid(), brokers.mqtt.pid());
    fleet::stop_edge(edge_agents, &edge_stop, EDGE_STOP_TIMEOUT).await;
    let edge = edge_view.lock().map(|v| v.clone()).unwrap_or_default();
    stop_in_order(running).await;
    watch_shutdown.trigger();
    watch_shutdown.wait().await;

    if let Some(e) = ended.failure {
        return Err(e);
    }
    let report = ended
        .fleet
        .context("fleet task panicked")?
        .context("running the fleet")?;
    // The audit sink has stopped: every edge verdict it will write is in
    // the store.
    let edge_audit = match edge_audit::check(&dir.join("audit.db"), &edge).await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot check the edge verdicts in the audit store");
            None
        }
    };
    let anomalous = cloud.anomalies + edge.anomalies;
    let mut summary = Summary::new(ended.stopped_by, devices, report, cloud, edge);
    summary.incidents = Some(incidents::IncidentsSummary::from_metrics(
        &actions,
        receiver.deliveries(),
        anomalous,
    ));
    summary.memory = mem;
    summary.edge_audit = edge_audit;
    Ok(summary)
}

/// Starts every service, downstream first so nothing produced waits for a
/// consumer, each with its typed arguments ([`roles`]); returns them and
/// the scraper of the status line.
fn start_services(
    args: &DemoArgs,
    wiring: &Wiring,
    rules: &Path,
    exits: &mpsc::Sender<services::Exit>,
) -> anyhow::Result<(Vec<Service>, status::Scraper)> {
    let mut running = Vec::new();
    let audit_addr = free_addr()?;
    let audit = wiring.audit(audit_addr)?;
    running.push(Service::spawn("audit", Some(audit_addr), exits, |sd| {
        vigil_audit::run(audit, sd)
    }));

    let score_addr = free_addr()?;
    let score = wiring.score(score_addr)?;
    running.push(Service::spawn("score", Some(score_addr), exits, |sd| {
        vigil_score::run(score, sd)
    }));

    let ingest_addr = free_addr()?;
    let ingest = wiring.ingest(ingest_addr)?;
    running.push(Service::spawn("ingest", Some(ingest_addr), exits, |sd| {
        vigil_ingest::run(ingest, sd)
    }));

    let train_addr = free_addr()?;
    let train = wiring.train(args, train_addr)?;
    let warmup = args.warmup;
    running.push(Service::spawn(
        "train",
        Some(train_addr),
        exits,
        move |sd| async move {
            // The first training waits for the warm-up's data.
            tokio::select! {
                _ = sd.cancelled() => return Ok(()),
                _ = tokio::time::sleep(warmup) => {}
            }
            vigil_train::run(train, sd).await
        },
    ));

    let push_addr = free_addr()?;
    let push = wiring.push(push_addr)?;
    running.push(Service::spawn("push", Some(push_addr), exits, |sd| {
        vigil_push::run(push, sd)
    }));

    let actions_addr = free_addr()?;
    let actions = wiring.actions(actions_addr, rules)?;
    running.push(Service::spawn("actions", Some(actions_addr), exits, |sd| {
        vigil_actions::run(actions, sd)
    }));

    let dashboard = wiring.dashboard(args.http_addr)?;
    running.push(Service::spawn(
        "dashboard",
        Some(args.http_addr),
        exits,
        |sd| vigil_api::run(dashboard, sd),
    ));
    let scraper = status::Scraper::new(ingest_addr, score_addr, audit_addr)?;
    Ok((running, scraper))
}

/// Stops the services in data-flow order: no new input, then ingest
/// flushes to Kafka, the scorer its verdicts, the audit sink its last
/// batch.
async fn stop_in_order(mut running: Vec<Service>) {
    for name in [
        "train",
        "ingest",
        "score",
        "push",
        "actions",
        "dashboard",
        "audit",
    ] {
        if let Some(i) = running.iter().position(|s| s.name == name) {
            running.remove(i).stop().await;
        }
    }
    for s in running {
        s.stop().await;
    }
}

/// The cloud-scored fleet's task and the tokens that stop it.
struct CloudFleet {
    /// Cancelled: stop publishing, still wait for the verdicts in flight.
    publishing: CancellationToken,
    /// Cancelled: stop at once.
    abort: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<vigil_loadgen::run::Report>>,
}

/// How the run ended.
struct Ended {
    fleet: Result<anyhow::Result<vigil_loadgen::run::Report>, tokio::task::JoinError>,
    failure: Option<anyhow::Error>,
    stopped_by: StoppedBy,
}

/// What the status line reads while the demo runs.
struct Watching<'a> {
    args: &'a DemoArgs,
    scraper: &'a status::Scraper,
    edge_view: &'a watch::SharedEdgeView,
    devices: (u32, u32),
    started: Instant,
}

impl Watching<'_> {
    /// Prints the status every `--status-every` until the fleet ends, a
    /// signal asks to stop (the fleet then drains), a broker or a service
    /// fails (the fleet is aborted).
    async fn until_end(
        &self,
        brokers: &mut Brokers,
        mut fleet: CloudFleet,
        exits: &mut mpsc::Receiver<services::Exit>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Ended> {
        let mut memory_log = self
            .args
            .memory_log
            .as_deref()
            .map(memory::Log::create)
            .transpose()?;
        let mut tick = tokio::time::interval(self.args.status_every);
        tick.tick().await;
        let mut failure: Option<anyhow::Error> = None;
        let mut stopped_by = StoppedBy::Duration;
        let result = loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = brokers.check() {
                        failure = Some(e);
                        fleet.abort.cancel();
                        break (&mut fleet.task).await;
                    }
                    self.print_status(brokers, memory_log.as_mut()).await;
                }
                _ = shutdown.cancelled() => {
                    stopped_by = StoppedBy::Signal;
                    println!(
                        "stopping: waiting up to {} for the verdicts in flight, then every service flushes (Ctrl-C again does not hurry it)",
                        humantime::format_duration(self.args.drain_timeout)
                    );
                    fleet.publishing.cancel();
                    break (&mut fleet.task).await;
                }
                joined = &mut fleet.task => break joined,
                Some(exit) = exits.recv() => {
                    failure = Some(match exit.result {
                        Ok(()) => anyhow::anyhow!("{} stopped by itself", exit.name),
                        Err(e) => e.context(format!("{} failed", exit.name)),
                    });
                    fleet.abort.cancel();
                    break (&mut fleet.task).await;
                }
            }
        };
        Ok(Ended {
            fleet: result,
            failure,
            stopped_by,
        })
    }

    /// One status line (and one memory log row).
    async fn print_status(&self, brokers: &Brokers, memory_log: Option<&mut memory::Log>) {
        let cloud = self.scraper.scrape().await;
        let edge = self.edge_view.lock().map(|v| v.clone()).unwrap_or_default();
        let mem = memory::Sample::take(brokers.kafka.pid(), brokers.mqtt.pid());
        let elapsed = self.started.elapsed();
        if let Some(log) = memory_log {
            log.append(elapsed.as_secs(), &mem);
        }
        println!(
            "{} | {}",
            status::line(elapsed, self.devices, &cloud, &edge),
            mem.brief()
        );
    }
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

fn banner(args: &DemoArgs, dir: &Path, running: &[Service], kafka: &str, mqtt: &str, token: &str) {
    let dashboard = running.iter().find(|s| s.name == "dashboard");
    match dashboard.and_then(|d| d.http) {
        // The link sets the token's cookie and opens the dashboard.
        Some(addr) => println!("dashboard: http://{addr}/login?token={token}"),
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
            "  audit API: curl -H 'Authorization: Bearer {token}' http://{audit}/v1/models  (or …/v1/devices/{}-00000/anomalies)",
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
