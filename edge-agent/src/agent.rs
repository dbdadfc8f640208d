//! `vigil-edge run`: wires the parts together and runs them until a stop
//! signal.
//!
//! ```text
//!  source ──► sampler (score, stamp seq) ──► on-disk queue ──► uplink ──► broker
//!                ▲          │ anomaly                            │  ▲
//!                │ model    └──► actions (shell command) ◄───────┘  │ commands,
//!                └──────────── model store (verify, persist) ◄──────┘ releases
//! ```
//!
//! Start-up order matters for offline operation: the persisted (or
//! initial) model is verified and the queue opened and checked before any
//! network activity, so the device scores and buffers from its first
//! sample even when the broker is unreachable. `seq` continues from the
//! last record in the queue after a clean stop or a process crash, and
//! above the durable reservation after a reboot ([`crate::seq`]), so no
//! sequence number that may have gone up is ever used again, even when a
//! power cut lost the queue's unsynced tail.
//!
//! Shutdown (SIGTERM/SIGINT): sampling stops, the uplink publishes the
//! offline status and waits briefly for outstanding acknowledgements, the
//! queue is fsynced and its state saved; exit 0. What was not delivered
//! stays queued for the next start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use vigil_schemas::topics::DeviceChannel;

use crate::action::{self, ActionConfig, ACTION_QUEUE, RESULT_QUEUE};
use crate::commands::CommandGate;
use crate::config::RunArgs;
use crate::models::ModelStore;
use crate::queue::{Queue, QueueLimits};
use crate::record::UplinkRecord;
use crate::sampler::{lock, Sampler, SamplerConfig};
use crate::seq::{read_boot_id, SeqReservation};
use crate::sources::Source;
use crate::status::Stats;
use crate::uplink::{mqtt_options, ActionLink, Uplink, UplinkConfig};

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    args.validate()?;
    let device_id = args.device_id();
    let key_path = args.verify_key_path()?;
    let key = vigil_model::load_key_ring(key_path)
        .with_context(|| format!("loading --verify-key {}", key_path.display()))?;
    tracing::info!(verify_keys = %key.summary(), "model releases are verified with");
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating --state-dir {}", args.state_dir.display()))?;
    let command_key = match &args.command_verify_key {
        Some(path) => Some(
            vigil_model::load_verify_key(path)
                .with_context(|| format!("loading --command-verify-key {}", path.display()))?,
        ),
        None => {
            tracing::warn!(
                "no --command-verify-key (VIGIL_EDGE_COMMAND_VERIFY_KEY): \
                 every cloud command will be refused"
            );
            None
        }
    };
    let gate = CommandGate::open(&args.state_dir, &device_id, command_key)
        .context("reading the command high-water mark")?;
    let store = ModelStore::open(
        &args.state_dir,
        &args.model,
        key,
        args.initial_model.as_deref(),
    )
    .with_context(|| format!("opening the model store in {}", args.state_dir.display()))?;
    let limits = QueueLimits::new(args.queue_max_bytes)?;
    let (queue, report) =
        Queue::open(&args.state_dir.join("queue"), limits).context("opening the uplink queue")?;
    let last_queued = match queue.last_record()? {
        Some(bytes) => UplinkRecord::decode(&bytes)
            .map(|r| r.seq)
            .context("decoding the last queued record to recover seq")?,
        None => 0,
    };
    let (seqs, resume) = SeqReservation::open(
        &args.state_dir,
        args.seq_block,
        last_queued,
        read_boot_id(&args.boot_id_file),
    )
    .context("opening the sequence-number reservation")?;
    let last_seq = resume.last_seq;
    if resume.skipped > 0 {
        tracing::warn!(
            last_queued,
            resumes_at = last_seq + 1,
            skipped = resume.skipped,
            "the previous run did not stop cleanly and the device rebooted since: \
             seq resumes above its durable reservation, so no number that may have \
             been sent before a power loss is used again"
        );
    }
    tracing::info!(
        device_id = %device_id,
        backlog = report.records,
        corrupt_regions = report.corrupt_regions,
        dropped_total = queue.dropped(),
        last_seq,
        model_version = store.current().map(|m| m.version()),
        "vigil-edge starting"
    );
    let source = Source::open(&args).context("opening the sample source")?;
    let options = mqtt_options(&args)?;

    let stats = Arc::new(Stats::default());
    stats
        .seq
        .store(last_seq, std::sync::atomic::Ordering::Relaxed);
    if let Some(m) = store.current() {
        stats
            .model_version
            .store(m.version(), std::sync::atomic::Ordering::Relaxed);
    }
    let queue = Arc::new(Mutex::new(queue));
    let wake = Arc::new(Notify::new());
    let (model_tx, model_rx) = watch::channel(store.current());
    let (action_tx, action_rx) = mpsc::channel(ACTION_QUEUE);
    let (result_tx, result_rx) = mpsc::channel(RESULT_QUEUE);
    let topics = args.mqtt.topics();

    let sampler = Sampler::new(
        SamplerConfig {
            device_id: device_id.clone(),
            model: args.model.clone(),
            telemetry_topic: topics.device(&device_id, DeviceChannel::Telemetry),
            verdicts_topic: topics.device(&device_id, DeviceChannel::Verdicts),
            telemetry: args.telemetry,
            verdicts: args.verdicts,
            summary_interval: Duration::from_millis(args.summary_interval_ms),
            interval: (args.interval_ms > 0).then(|| Duration::from_millis(args.interval_ms)),
            stop_after_seq: args.stop_after_seq,
            last_seq,
        },
        model_rx,
        Arc::clone(&queue),
        Arc::clone(&wake),
        Arc::clone(&stats),
        action_tx.clone(),
    )
    .with_reservation(seqs);
    let uplink = Uplink::new(
        UplinkConfig {
            device_id: device_id.clone(),
            model: args.model.clone(),
            topics,
            options,
            max_inflight: usize::from(args.max_inflight),
            drain_rate: args.drain_rate,
            reconnect_max: Duration::from_millis(args.reconnect_max_ms),
            status_interval: Duration::from_millis(args.status_interval_ms),
            status_path: args.state_dir.join("status.json"),
        },
        Arc::clone(&queue),
        wake,
        Arc::clone(&stats),
        store,
        model_tx,
        ActionLink {
            triggers: action_tx,
            results: result_rx,
            gate,
        },
    );
    let actions = ActionConfig {
        device_id,
        on_anomaly: args.action_command.clone(),
        on_command: args.command_handler.clone(),
        timeout: Duration::from_millis(args.action_timeout_ms),
        debounce: Duration::from_millis(args.action_debounce_ms),
    };

    let sampling = tokio::spawn(sampler.run(source, shutdown.child_token()));
    let uplinking = tokio::spawn(uplink.run(shutdown.child_token()));
    let acting = tokio::spawn(action::run(
        actions,
        action_rx,
        result_tx,
        Arc::clone(&stats),
        shutdown.child_token(),
    ));
    let syncing = tokio::spawn(sync_loop(
        Arc::clone(&queue),
        Duration::from_millis(args.queue_fsync_ms),
        shutdown.child_token(),
    ));

    shutdown.cancelled().await;
    tracing::info!("stopping");
    for (name, task) in [
        ("sampler", sampling),
        ("uplink", uplinking),
        ("actions", acting),
        ("sync", syncing),
    ] {
        if let Err(e) = task.await {
            tracing::error!(task = name, error = %e, "task ended abnormally");
        }
    }
    let result = lock(&queue).sync();
    result.context("syncing the uplink queue at shutdown")?;
    tracing::info!("stopped");
    Ok(())
}

/// Fsyncs the queue every `every` (the data fsync runs on a blocking
/// thread, outside the queue's lock).
async fn sync_loop(queue: Arc<Mutex<Queue>>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let file = lock(&queue).sync_state();
        match file {
            Ok(Some(file)) => {
                let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
                if let Ok(Err(e)) = synced {
                    tracing::error!(error = %e, "fsync of the uplink queue failed");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "saving the uplink queue state failed"),
        }
    }
}
