//! `vigil-loadgen run`: drive Vigil with a simulated fleet (or a replayed
//! CSV) over MQTT and measure what comes back.
//!
//! The data flow of one run:
//!
//! ```text
//! source (fleet sim / CSV) ─► Plan per connection ─► publish (rumqttc, QoS 1) ─► broker ─► Vigil
//!                                                                                          │
//!        report ◄─ tally (loss, duplicates, latency, detection) ◄─ measure (Kafka / MQTT) ◄─┘
//! ```
//!
//! - [`config`]: flags, validated into a [`RunConfig`].
//! - [`schedule`]: the open-loop send schedule; a record's `ts` is its
//!   intended send time, and latency is measured from it.
//! - [`source`]: the fleet or the replay, split into one time-ordered plan
//!   per MQTT connection, with the ground truth of injected anomalies.
//! - [`publish`]: one rumqttc client per connection.
//! - [`measure`]: verdict readers positioned at the run's start.
//! - [`tally`]: loss, duplicates, latency and detection, from verdicts.
//! - [`report`], [`plot`]: the JSON report, the summary, the SVG plots.
//! - [`progress`]: the live bar or log lines.

pub mod config;
pub mod measure;
pub mod plot;
pub mod progress;
pub mod publish;
pub mod report;
pub mod schedule;
pub mod seqset;
pub mod source;
pub mod tally;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vigil_service::now_ms;

pub use config::{ProgressMode, RunArgs, RunConfig, VerdictSource, Workload};
pub use report::{Report, REPORT_SCHEMA};

use progress::{Counters, Progress};
use publish::{Connection, Settings};
use report::{Detection, Hops, LostRecord, MinuteLatency, Percentiles, RunSummary, VerdictCounts};
use seqset::SeqSet;
use source::{Prepared, Roster, Truth};
use tally::Tally;

/// Runs the load and the measurement; returns the report (also written to
/// `--report`, `--truth` and `--plots` when given). `stop` ends publishing
/// early and skips the drain (Ctrl-C).
pub async fn run(config: RunConfig, stop: CancellationToken) -> anyhow::Result<Report> {
    run_draining(config, stop.clone(), stop).await
}

/// [`run`] with two stops: `publishing` ends publishing early and still
/// waits up to the drain timeout for the verdicts of everything sent (so
/// the report's loss is real loss, not records in flight); `abort` ends
/// publishing and skips the drain.
pub async fn run_draining(
    config: RunConfig,
    publishing: CancellationToken,
    abort: CancellationToken,
) -> anyhow::Result<Report> {
    // Publishing stops on either; the guard ends the forwarding task
    // however run() ends.
    let stop = abort.child_token();
    let _stop_forwarding = stop.clone().drop_guard();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::select! {
                () = publishing.cancelled() => stop.cancel(),
                () = stop.cancelled() => {}
            }
        }
    });
    let (prepared, roster) = match &config.workload {
        Workload::Fleet { fleet, rate, slots } => Prepared::fleet(fleet.clone(), *rate, *slots)?,
        Workload::Replay { files, speedup } => Prepared::replay(files, *speedup)?,
    };
    let offered_rate = prepared.rate();
    let intended = prepared.intended();
    let counters = Arc::new(Counters::default());
    let base = vigil_service::mqtt::options(&config.mqtt, "loadgen")?;
    // Unique per process as well as per connection: two generators on one
    // host must not take over each other's sessions.
    let client_id = |suffix: &str| match &config.mqtt.mqtt_client_id {
        Some(id) => format!("{id}-{suffix}"),
        None => format!("{}-{}-{suffix}", base.client_id(), std::process::id()),
    };

    // Stops the verdict readers: at the end of the drain, on `stop`, and
    // however run() ends (an error included).
    let drain_stop = abort.child_token();
    let _stop_readers = drain_stop.clone().drop_guard();
    let readers = match config.verdicts {
        None => None,
        Some(source) => {
            let kafka = matches!(source, VerdictSource::Kafka | VerdictSource::Both)
                .then_some(&config.kafka);
            let mqtt = matches!(source, VerdictSource::Mqtt | VerdictSource::Both).then(|| {
                let mut options = base.clone();
                options.set_client_id(client_id("verdicts"));
                (&config.mqtt, options)
            });
            Some(measure::start(kafka, mqtt, &drain_stop).await?)
        }
    };

    let settings = Settings {
        qos: if config.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        inflight: config.inflight,
        ack_timeout: config.ack_timeout,
        topics: config.mqtt.topics(),
        seq_range: Arc::new(roster.seq_range.clone()),
    };
    let connections = open_connections(&config, &base, &client_id, &settings, &counters, &stop)
        .await
        .with_context(|| format!("connecting to {}", config.mqtt.mqtt_url))?;

    let start_ms = now_ms();
    let start = Instant::now();
    let plans = prepared.split(connections.len(), start_ms);
    let (expected_tx, expected_rx) = watch::channel(None);
    let collector = match readers {
        Some(readers) => {
            let tally = Tally::new(&roster, start_ms, config.plot_devices)?;
            let undecodable = Arc::clone(&readers.undecodable);
            let counters = Arc::clone(&counters);
            let drain_stop = drain_stop.clone();
            Some((
                tokio::spawn(readers.collect(tally, expected_rx, counters, drain_stop)),
                undecodable,
            ))
        }
        None => None,
    };
    let progress = Progress::start(
        config.progress,
        config.progress_interval,
        intended,
        collector.is_some(),
        Arc::clone(&counters),
    );
    tracing::info!(
        devices = roster.ids.len(),
        connections = connections.len(),
        offered_rate,
        intended,
        "publishing"
    );

    let mut senders = JoinSet::new();
    for (connection, plan) in connections.into_iter().zip(plans) {
        senders.spawn(connection.send(
            plan,
            start,
            settings.clone(),
            Arc::clone(&counters),
            stop.clone(),
        ));
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = senders.join_next().await {
        outcomes.push(joined.context("publishing task")??);
    }
    let finished = outcomes.iter().map(|o| o.finished).max().unwrap_or(start);
    let publish_seconds = finished.duration_since(start).as_secs_f64();
    let mut sent_seqs: Vec<SeqSet> = roster
        .seq_range
        .iter()
        .map(|&(lo, hi)| SeqSet::new(lo, hi))
        .collect();
    let mut truth: Vec<Truth> = Vec::new();
    let mut lag = hdrhistogram::Histogram::<u64>::new_with_max(3_600_000_000, 3)?;
    let (mut sent, mut acked, mut rejected, mut errors, mut silent) = (0, 0, 0, 0, 0);
    let mut unrouted = 0;
    for o in outcomes {
        sent += o.sent;
        silent += o.silent_slots;
        acked += o.acked;
        rejected += o.rejected;
        unrouted += o.unrouted;
        errors += o.errors;
        lag.add(&o.lag_us)
            .map_err(|e| anyhow::anyhow!("merging send lag: {e:?}"))?;
        truth.extend(o.truth);
        for (device, seqs) in o.sent_seqs {
            if let Some(slot) = sent_seqs.get_mut(device as usize) {
                *slot = seqs;
            }
        }
    }
    truth.sort_by(|a, b| (&a.device_id, a.first_seq).cmp(&(&b.device_id, b.first_seq)));

    // Wait for the verdicts of everything sent, up to the drain timeout.
    let drain_started = Instant::now();
    let measured = match collector {
        None => None,
        Some((mut task, undecodable)) => {
            let _ = expected_tx.send(Some(sent));
            let tally = match tokio::time::timeout(config.drain_timeout, &mut task).await {
                Ok(joined) => joined.context("verdict collector")?,
                Err(_) => {
                    drain_stop.cancel();
                    task.await.context("verdict collector")?
                }
            };
            Some((
                tally,
                undecodable.load(std::sync::atomic::Ordering::Relaxed),
            ))
        }
    };
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    progress.finish().await;

    let fleet = matches!(config.workload, Workload::Fleet { .. });
    // Rate achieved over the intended run length at least, so that a run
    // on schedule reports the offered rate (less its silent slots), and a
    // late one less.
    let intended_seconds = intended as f64 / offered_rate;
    let achieved_rate = sent as f64 / publish_seconds.max(intended_seconds).max(1e-9);
    let mut report = Report {
        schema: REPORT_SCHEMA,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_ms: start_ms,
        config: summary(&config, &roster, intended),
        sent,
        silent_slots: silent,
        acked,
        rejected,
        unrouted,
        publish_errors: errors,
        offered_rate,
        achieved_rate,
        publish_seconds,
        send_lag_ms: Percentiles::of(&lag, 1e-3),
        verdicted: None,
        lost: None,
        duplicates: None,
        out_of_order: None,
        unexpected: None,
        lost_examples: Vec::new(),
        verdict_rate: None,
        drain_seconds: None,
        verdicts: None,
        latency_ms: None,
        scored_latency_ms: None,
        hops_ms: None,
        latency_by_minute_ms: Vec::new(),
        detection: None,
    };
    if let Some((tally, undecodable)) = &measured {
        measured_fields(
            &mut report,
            tally,
            *undecodable,
            &sent_seqs,
            &roster,
            &truth,
            fleet,
        );
        report.drain_seconds = Some(drain_seconds);
    }
    write_outputs(
        &config,
        &report,
        measured.as_ref().map(|m| &m.0),
        &roster,
        &truth,
    )?;
    Ok(report)
}

/// Opens every connection at once and waits for all CONNACKs.
async fn open_connections(
    config: &RunConfig,
    base: &rumqttc::v5::MqttOptions,
    client_id: &(dyn Fn(&str) -> String + Sync),
    settings: &Settings,
    counters: &Arc<Counters>,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<Connection>> {
    let mut opening = JoinSet::new();
    for c in 0..config.connections {
        let mut options = base.clone();
        options.set_client_id(client_id(&c.to_string()));
        let (settings, counters, stop) = (settings.clone(), Arc::clone(counters), stop.clone());
        opening.spawn(async move {
            Connection::open(options, &settings, counters, stop)
                .await
                .map(|conn| (c, conn))
        });
    }
    let mut connections = Vec::with_capacity(config.connections);
    while let Some(joined) = opening.join_next().await {
        connections.push(joined.context("opening a connection")??);
    }
    connections.sort_by_key(|(c, _)| *c);
    Ok(connections.into_iter().map(|(_, conn)| conn).collect())
}

fn summary(config: &RunConfig, roster: &Roster, intended: u64) -> RunSummary {
    let (source, seed, replay_files, speedup) = match &config.workload {
        Workload::Fleet { fleet, .. } => ("fleet", Some(fleet.seed), Vec::new(), None),
        Workload::Replay { files, speedup } => (
            "replay",
            None,
            files.iter().map(|f| f.display().to_string()).collect(),
            Some(*speedup),
        ),
    };
    RunSummary {
        source: source.to_owned(),
        devices: roster.ids.len() as u64,
        connections: config.connections as u64,
        qos: config.qos,
        intended,
        device_interval_ms: roster.interval_ms,
        seed,
        replay_files,
        speedup,
        verdict_source: config.verdicts.map(|v| {
            match v {
                VerdictSource::Kafka => "kafka",
                VerdictSource::Mqtt => "mqtt",
                VerdictSource::Both => "both",
            }
            .to_owned()
        }),
    }
}

fn measured_fields(
    report: &mut Report,
    tally: &Tally,
    undecodable: u64,
    sent_seqs: &[SeqSet],
    roster: &Roster,
    truth: &[Truth],
    fleet: bool,
) {
    let accounting = tally.account(sent_seqs, &roster.ids);
    report.verdicted = Some(accounting.verdicted);
    report.lost = Some(accounting.lost);
    report.duplicates = Some(accounting.duplicates);
    report.out_of_order = Some(accounting.out_of_order);
    report.unexpected = Some(accounting.unexpected);
    report.lost_examples = accounting
        .lost_examples
        .into_iter()
        .map(|(device_id, seq)| LostRecord { device_id, seq })
        .collect();
    report.verdict_rate = match (tally.first_ms, tally.last_ms) {
        (Some(_), Some(last)) if last > report.started_ms => {
            Some(tally.distinct as f64 * 1000.0 / (last - report.started_ms) as f64)
        }
        _ => None,
    };
    report.verdicts = Some(VerdictCounts {
        received: tally.received,
        stale: tally.stale,
        foreign: tally.foreign,
        undecodable,
        unscored: tally.unscored,
        edge: tally.edge,
    });
    if !tally.latency_ms.is_empty() {
        report.latency_ms = Some(Percentiles::of(&tally.latency_ms, 1.0));
        report.scored_latency_ms = Some(Percentiles::of(&tally.scored_latency_ms, 1.0));
        report.latency_by_minute_ms = tally
            .by_minute_ms
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(minute, h)| MinuteLatency::of(minute as u64, h))
            .collect();
        let [to_ingest, to_scored, to_read] = &tally.hops_ms;
        if !to_ingest.is_empty() {
            report.hops_ms = Some(Hops {
                event_to_ingest: Percentiles::of(to_ingest, 1.0),
                ingest_to_scored: Percentiles::of(to_scored, 1.0),
                scored_to_read: Percentiles::of(to_read, 1.0),
            });
        }
    }
    if fleet {
        let evaluation = tally.detection(sent_seqs, &roster.ids, truth);
        let device_hours = roster.interval_ms.map_or(0.0, |ms| {
            sent_seqs.iter().map(SeqSet::len).sum::<u64>() as f64 * ms / 3_600_000.0
        });
        report.detection = Some(Detection::from_evaluation(
            &evaluation,
            roster.interval_ms,
            device_hours,
        ));
    }
}

fn write_outputs(
    config: &RunConfig,
    report: &Report,
    tally: Option<&Tally>,
    roster: &Roster,
    truth: &[Truth],
) -> anyhow::Result<()> {
    if let Some(path) = &config.report {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if let Some(path) = &config.truth {
        let file = std::fs::File::create(path)
            .with_context(|| format!("creating the ground truth file {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for t in truth {
            serde_json::to_writer(&mut out, t)?;
            out.write_all(b"\n")?;
        }
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let (Some(dir), Some(tally)) = (&config.plots, tally) {
        let devices: Vec<(String, Vec<tally::ScorePoint>)> = tally
            .plot_points()
            .iter()
            .zip(&roster.ids)
            .map(|(points, id)| (id.clone(), points.clone()))
            .collect();
        plot::write(dir, &tally.latency_ms, &devices, truth)?;
    }
    Ok(())
}
