//! The faults the chaos suite injects, and one case's run: a fresh stack,
//! `vigil-loadgen` publishing at the profile's rate, the fault at a fixed
//! point of the run, then loss and duplicates counted per (device_id, seq)
//! on `vigil.verdicts` (the load generator's reader) and in the audit
//! store.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, RunArgs};
use vigil_testkit::TansuStorage;

use crate::stack::Stack;
use crate::Profile;

/// Device-id prefix of the load generator's fleet.
const PREFIX: &str = "chaos";
/// Device-id prefix of the no-fault case's backlog fleet.
const BACKLOG_PREFIX: &str = "backlog";

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Nothing injected: the baseline, where a duplicate is a failure too.
    NoFault,
    /// `kill -9` of a role, started again at once.
    Kill(&'static str),
    /// tansu stopped for the profile's outage, then started on its data.
    TansuOutage,
    /// Mosquitto stopped (SIGTERM, persistence on) and started again.
    MosquittoRestart,
    /// Poison input among normal traffic.
    Poison,
    /// An edge agent offline, then power-cut and restarted (`edge`).
    EdgePowerCut,
}

impl Case {
    /// Every case, in the order the full profile runs them.
    pub const ALL: [Case; 10] = [
        Case::NoFault,
        Case::Kill("ingest"),
        Case::Kill("score"),
        Case::Kill("audit"),
        Case::Kill("push"),
        Case::Kill("train"),
        Case::TansuOutage,
        Case::MosquittoRestart,
        Case::Poison,
        Case::EdgePowerCut,
    ];

    /// The name in the table and on the command line.
    pub fn name(self) -> String {
        match self {
            Case::NoFault => "no-fault".to_owned(),
            Case::Kill(role) => format!("kill-{role}"),
            Case::TansuOutage => "tansu-outage".to_owned(),
            Case::MosquittoRestart => "mosquitto-restart".to_owned(),
            Case::Poison => "poison".to_owned(),
            Case::EdgePowerCut => "edge-power-cut".to_owned(),
        }
    }

    /// What the case does, for the table.
    pub fn describe(self, profile: &Profile) -> String {
        match self {
            Case::NoFault => format!(
                "none (the baseline: a duplicate fails it too), after a backlog of {} devices × {} records scored with a freshly trained model",
                profile.backlog_devices, profile.backlog_per_device
            ),
            Case::Kill(role) => format!("`kill -9` of `vigil {role}`, started again at once"),
            Case::TansuOutage => format!(
                "tansu stopped {} s, started again on its data",
                profile.outage.as_secs()
            ),
            Case::MosquittoRestart => {
                "Mosquitto stopped (SIGTERM, persistence on) and started again".to_owned()
            }
            Case::Poison => format!(
                "{} poison messages among the traffic (MQTT and straight into `vigil.telemetry`)",
                poison_mqtt().len() + 1
            ),
            Case::EdgePowerCut => format!(
                "an edge agent offline {} s, then killed (power cut: its buffer unsent, a new boot id) and restarted; its verdicts counted too",
                profile.edge_offline.as_secs()
            ),
        }
    }
}

/// What one case measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: Case,
    /// Records the load generator published.
    pub published: u64,
    /// Of those, acknowledged by Mosquitto with success: handed to Vigil.
    pub accepted: u64,
    /// Distinct (device_id, seq) of the run's fleet in the audit store.
    pub audited: u64,
    /// Accepted records with no verdict on `vigil.verdicts` or not in the
    /// audit store: what Vigil lost.
    pub loss: u64,
    /// Acknowledged by Mosquitto with reason 16 "no matching subscribers"
    /// (dropped by the broker; the publisher is told).
    pub unrouted: u64,
    /// Never acknowledged by Mosquitto (a device keeps and resends them;
    /// the load generator does not).
    pub unacked: u64,
    /// Verdicts read more than once on `vigil.verdicts`.
    pub duplicates: u64,
    /// From the fault's end (restart, broker back) until the affected
    /// roles answered `/readyz` 200 again.
    pub recovery: Option<Duration>,
    /// From the end of publishing until the audit store held every
    /// accepted record.
    pub complete: Option<Duration>,
    /// Anything else worth a column (DLQ counts, errors).
    pub note: String,
}

impl Outcome {
    /// A case that could not run.
    pub fn error(case: Case, e: &anyhow::Error) -> Self {
        Self {
            case,
            published: 0,
            accepted: 0,
            audited: 0,
            loss: 0,
            unrouted: 0,
            unacked: 0,
            duplicates: 0,
            recovery: None,
            complete: None,
            note: format!("error: {e:#}"),
        }
    }

    /// Loss 0 and no error (and, with no fault, no duplicate).
    pub fn passed(&self) -> bool {
        self.loss == 0
            && !self.note.starts_with("error")
            && !(self.case == Case::NoFault && self.duplicates > 0)
    }
}

/// Runs one case on a fresh stack.
pub async fn run_case(case: Case, profile: &Profile, bin: &Path) -> Result<Outcome> {
    // A broker that restarts needs its data on disk, and so does a
    // consumer group resuming from committed offsets: tansu 0.6's memory
    // engine then delivers some records twice and others never
    // (docs/ARCHITECTURE.md, "Tests against real brokers"; one verdict
    // missing from the audit store after `kill-audit` on it). The
    // in-memory engine is faster everywhere else.
    let storage = match case {
        Case::TansuOutage | Case::Kill("score" | "audit") => TansuStorage::Sqlite,
        _ => TansuStorage::Memory,
    };
    let mut stack = Stack::start(bin, storage).await?;
    let backlog_note = if case == Case::NoFault {
        backlog_then_model(&mut stack, profile).await?
    } else {
        String::new()
    };
    let report_dir = stack.dir().to_owned();
    let args = loadgen_args(&stack, profile, &report_dir.join("report.json"));
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watch = stack.watch_audited(PREFIX, Arc::clone(&stop_watch));
    let started = Instant::now();
    let load = tokio::spawn(run(args.validate()?, CancellationToken::new()));
    // The fault comes at a fixed point of the publishing schedule.
    tokio::time::sleep(profile.fault_at).await;
    let injected = inject(case, &mut stack, profile).await;
    let report = load.await.context("load generator task")??;
    let (recovery, mut note, edge_loss) = match injected {
        Ok(found) => found,
        Err(e) => (None, format!("error: {e:#}"), 0),
    };
    if !backlog_note.is_empty() {
        note = [backlog_note, note]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    let published = report.sent;
    let unacked = report.sent.saturating_sub(report.acked);
    let unrouted = report.unrouted;
    let accepted = report.acked.saturating_sub(unrouted).min(published);
    let audited = stack
        .wait_audited(PREFIX, accepted, profile.audit_timeout)
        .await;
    stop_watch.store(true, Ordering::Relaxed);
    let samples = watch.join().unwrap_or_default();
    // When publishing ended, and when the store first held every record.
    let published_at = started + Duration::from_secs_f64(report.publish_seconds);
    let complete = samples
        .iter()
        .find(|(_, count)| *count >= accepted)
        .map(|(when, _)| when.saturating_duration_since(published_at))
        .or_else(|| (audited >= accepted).then(|| published_at.elapsed()));
    // The load generator counts as lost every published record without a
    // verdict; those the broker dropped or never acknowledged are not
    // Vigil's to lose.
    let lost_verdicts = report
        .lost
        .unwrap_or(published)
        .saturating_sub(unrouted + unacked);
    // The audit store is the end of the line: loss is what it lacks. (A
    // verdict the load generator's reader did not see within its drain,
    // say behind a consumer-group rebalance, may still arrive.)
    let loss = accepted.saturating_sub(audited) + edge_loss;
    if lost_verdicts > 0 && loss == 0 {
        note.push_str(&format!(
            "; {lost_verdicts} verdicts not read back within the {} s drain, all audited",
            profile.drain.as_secs()
        ));
    }
    if loss > 0 {
        let examples: Vec<String> = report
            .lost_examples
            .iter()
            .take(5)
            .map(|l| format!("{l:?}"))
            .collect();
        eprintln!(
            "{}: {lost_verdicts} without a verdict, {} not audited; examples {examples:?}\nlogs in {}",
            case.name(),
            accepted.saturating_sub(audited),
            report_dir.display()
        );
        // Keep the logs of a failing case.
        let kept = std::env::temp_dir().join(format!("vigil-chaos-{}", case.name()));
        let _ = std::fs::create_dir_all(&kept);
        for role in ["ingest", "score", "audit", "push", "train"] {
            let from = report_dir.join(format!("{role}.log"));
            let _ = std::fs::copy(from, kept.join(format!("{role}.log")));
        }
        note.push_str(&format!("; logs kept in {}", kept.display()));
    }
    Ok(Outcome {
        case,
        published,
        accepted,
        audited,
        loss,
        unrouted,
        unacked,
        duplicates: report.duplicates.unwrap_or(0),
        recovery,
        complete,
        note: note.trim_start_matches("; ").to_owned(),
    })
}

/// The no-fault case's set-up, the scenario in which issue 17 found
/// duplicates with no fault: the scorer stopped, a backlog of another
/// fleet published, a model trained on it, the scorer started again and
/// scoring the backlog with that model. The measured run starts once the
/// backlog is all in the audit store. Returns a note for the table.
async fn backlog_then_model(stack: &mut Stack, profile: &Profile) -> Result<String> {
    let count = profile.backlog_devices * profile.backlog_per_device;
    stack.role("score")?.stop().await?;
    let (devices, total) = (profile.backlog_devices.to_string(), count.to_string());
    let args = fleet_args(
        stack,
        BACKLOG_PREFIX,
        &[
            "--devices",
            &devices,
            "--rate",
            "5000",
            "--count",
            &total,
            "--publish-only",
        ],
    );
    let published = run(args.validate()?, CancellationToken::new()).await?;
    anyhow::ensure!(
        published.acked == count && published.unrouted == 0,
        "backlog: {} of {count} accepted by Mosquitto",
        published.acked.saturating_sub(published.unrouted)
    );
    stack.train_once(count / 2).await?;
    let started = Instant::now();
    let score = stack.role("score")?;
    score.spawn()?;
    score.ready().await?;
    let http = score.http.clone();
    vigil_testkit::clients::eventually(
        "the scorer runs the trained model",
        profile.audit_timeout,
        || {
            let http = http.clone();
            async move {
                let version =
                    vigil_testkit::clients::scrape(&http, "vigil_score_model_version").await;
                matches!(version, Ok(Some(v)) if v >= 1.0)
            }
        },
    )
    .await?;
    let audited = stack
        .wait_audited(BACKLOG_PREFIX, count, profile.audit_timeout)
        .await;
    anyhow::ensure!(
        audited >= count,
        "backlog: {audited} of {count} audited within {:?}",
        profile.audit_timeout
    );
    Ok(format!(
        "backlog of {count} scored with model v1 and audited in {:.0} s before the run",
        started.elapsed().as_secs_f64()
    ))
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn loadgen_args(stack: &Stack, profile: &Profile, report: &Path) -> RunArgs {
    let (devices, rate, duration, drain) = (
        profile.devices.to_string(),
        profile.rate.to_string(),
        profile.duration.as_secs_f64().to_string(),
        profile.drain.as_secs_f64().to_string(),
    );
    let report = report.display().to_string();
    fleet_args(
        stack,
        PREFIX,
        &[
            "--devices",
            &devices,
            "--rate",
            &rate,
            "--duration",
            &duration,
            "--drain-timeout",
            &drain,
            "--report",
            &report,
        ],
    )
}

/// `vigil-loadgen run` against the stack for the fleet `prefix`, with no
/// "missing data" episodes (every slot is sent), plus `extra` flags.
fn fleet_args(stack: &Stack, prefix: &str, extra: &[&str]) -> RunArgs {
    let (url, brokers) = (stack.mqtt.url(), stack.kafka.brokers());
    let mut args = vec![
        "run",
        "--mqtt-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--device-prefix",
        prefix,
        "--anomaly-rate",
        "0",
        "--ack-timeout",
        "15",
        "--progress",
        "none",
    ];
    args.extend_from_slice(extra);
    Cli::parse_from(args).run
}

/// Injects the fault; returns the recovery time, a note and what the
/// case lost beyond the load generator's records (the edge agent's).
async fn inject(
    case: Case,
    stack: &mut Stack,
    profile: &Profile,
) -> Result<(Option<Duration>, String, u64)> {
    if case == Case::EdgePowerCut {
        let (loss, recovered, note) = crate::edge::power_cut(stack, profile).await?;
        return Ok((Some(recovered), note, loss));
    }
    let (recovery, note) = inject_fault(case, stack, profile).await?;
    Ok((recovery, note, 0))
}

async fn inject_fault(
    case: Case,
    stack: &mut Stack,
    profile: &Profile,
) -> Result<(Option<Duration>, String)> {
    match case {
        Case::EdgePowerCut => Ok((None, String::new())),
        Case::NoFault => Ok((None, String::new())),
        Case::Kill(name) => {
            let role = stack.role(name)?;
            role.kill9();
            let back = Instant::now();
            role.spawn()?;
            role.ready().await?;
            Ok((Some(back.elapsed()), String::new()))
        }
        Case::TansuOutage => {
            stack.kafka.stop();
            tokio::time::sleep(profile.outage).await;
            let back = Instant::now();
            stack.kafka.restart()?;
            stack.all_ready().await?;
            Ok((Some(back.elapsed()), String::new()))
        }
        Case::MosquittoRestart => {
            stack.mqtt.stop();
            let back = Instant::now();
            stack.mqtt.restart()?;
            stack.all_ready().await?;
            Ok((Some(back.elapsed()), String::new()))
        }
        Case::Poison => {
            let mqtt = poison_mqtt();
            let total = mqtt.len() + 1;
            vigil_testkit::clients::publish_all(
                stack.mqtt.port(),
                "chaos-poison",
                mqtt,
                Duration::from_secs(30),
            )
            .await?;
            oversize_into_telemetry(&stack.kafka.brokers()).await?;
            let brokers = stack.kafka.brokers();
            let dlq = vigil_testkit::clients::read_until(
                &brokers,
                "vigil.dlq",
                Duration::from_secs(60),
                |records| records.len() >= total,
            )
            .await;
            let note = match dlq {
                Ok(records) => {
                    let mut reasons: Vec<String> = records
                        .iter()
                        .filter_map(|r| {
                            serde_json::from_slice::<serde_json::Value>(&r.payload).ok()
                        })
                        .filter_map(|v| v["reason"].as_str().map(str::to_owned))
                        .collect();
                    reasons.sort();
                    format!(
                        "{}/{total} in `vigil.dlq` ({})",
                        records.len(),
                        reasons.join(", ")
                    )
                }
                Err(e) => format!("DLQ short of {total}: {e}"),
            };
            Ok((None, note))
        }
    }
}

/// The poison messages of issue 17 that come over MQTT: (topic, payload).
fn poison_mqtt() -> Vec<(String, Vec<u8>)> {
    let ts = vigil_service::now_ms();
    let message = |device: &str, seq: &str, ts: &str, metric: &str| {
        (
            format!("vigil/devices/{device}/telemetry"),
            format!(
                r#"{{"schema":1,"device_id":"{device}","seq":{seq},"ts":{ts},"metrics":{{"{metric}":1.0}}}}"#
            )
            .into_bytes(),
        )
    };
    let now = ts.to_string();
    let long_metric = "m".repeat(10_000);
    // A device id no store key or topic level may hold (over any length
    // limit, with a quote and a space).
    let bad_device = format!("bad device '{}", "x".repeat(300));
    vec![
        message("poison-1", "9223372036854775808", &now, "t"),
        message("poison-2", "18446744073709551615", &now, "t"),
        message("poison-3", "-1", &now, "t"),
        message("poison-4", "1", "0", "t"),
        message("poison-5", "1", &now, &long_metric),
        message(&bad_device, "1", &now, "t"),
    ]
}

/// An over-size record produced straight into `vigil.telemetry` (past
/// ingest's checks): 900 KiB that is not telemetry.
async fn oversize_into_telemetry(brokers: &str) -> Result<()> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "2000000")
        .create()?;
    let payload = format!(r#"{{"junk":"{}"}}"#, "x".repeat(900 * 1024));
    producer
        .send(
            FutureRecord::to("vigil.telemetry")
                .key("poison-oversize")
                .payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing the over-size record: {e}"))?;
    Ok(())
}
