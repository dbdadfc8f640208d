//! `vigil train`, `vigil score` and `vigil models` against a real
//! Kafka-API broker (tansu): training and publishing, scoring every record,
//! hot swaps under load, refused releases, crashes and rebalances, and the
//! synchronous API.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::{new_keys, path, produce_all, release, run_vigil, sim_records, Keys, VigilProcess};
use vigil_fleet_sim::{AnomalyConfig, AnomalyKind, Fleet, FleetConfig};
use vigil_schemas::{Message, ModelRelease, Telemetry, Verdict};
use vigil_testkit::clients::{committed_offsets, eventually, read_until, Record};
use vigil_testkit::Tansu;

const TELEMETRY: &str = "vigil.telemetry";
const VERDICTS: &str = "vigil.verdicts";
const MODELS: &str = "vigil.models";
const INTERVAL_MS: u64 = 1_000;

/// A fresh broker with Vigil's topics, and a key pair.
async fn setup() -> anyhow::Result<(Tansu, String, Keys)> {
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    Ok((kafka, brokers, new_keys()?))
}

/// 100 devices: release v1 trained on their first 200 ticks, and the next
/// 300 ticks waiting in vigil.telemetry. Returns the fleet to go on with.
async fn v1_and_a_backlog(brokers: &str, keys: &Keys) -> anyhow::Result<(Fleet, Vec<Telemetry>)> {
    let mut sim = fleet(100, 800, 800, &[], 0.0);
    let training = sim_records(&mut sim, 200);
    publish(brokers, release(&keys.signing, &training, 1)?.encode()?).await?;
    let backlog = sim_records(&mut sim, 300);
    produce_all(brokers, TELEMETRY, &keyed(&backlog)).await?;
    Ok((sim, backlog))
}

/// A simulated fleet whose `ticks` ticks all lie in the past, anomalies
/// only after `quiet_ticks`.
fn fleet(devices: usize, ticks: u64, quiet_ticks: u64, kinds: &[AnomalyKind], rate: f64) -> Fleet {
    let config = FleetConfig {
        devices,
        seed: 7,
        start_ms: common::now_ms() - (ticks + 60) * INTERVAL_MS,
        interval_ms: INTERVAL_MS,
        day_ms: 1_440 * INTERVAL_MS,
        anomalies: AnomalyConfig {
            quiet_start_ticks: quiet_ticks,
            ..AnomalyConfig::only(kinds, rate)
        },
        ..FleetConfig::default()
    };
    Fleet::new(config).expect("valid fleet config")
}

fn keyed(records: &[Telemetry]) -> Vec<(String, Vec<u8>)> {
    records
        .iter()
        .map(|t| (t.device_id.clone(), t.encode().expect("telemetry encodes")))
        .collect()
}

fn train_args<'a>(brokers: &'a str, keys: &'a Keys, extra: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--once",
        "--kafka-brokers",
        brokers,
        "--signing-key",
        &path(&keys.signing),
        "--window",
        "30d",
        "--min-records",
        "2000",
        "--min-device-records",
        "50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

async fn train(brokers: &str, keys: &Keys, extra: &[&str]) -> anyhow::Result<String> {
    let args = train_args(brokers, keys, extra);
    let (code, _out, err) = run_vigil(&as_strs(&args), None)?;
    anyhow::ensure!(code == 0, "vigil train exited {code}:\n{err}");
    Ok(err)
}

async fn start_scorer(brokers: &str, keys: &Keys, extra: &[&str]) -> anyhow::Result<VigilProcess> {
    let verify = path(&keys.verify);
    let mut args = vec![
        "score",
        "--kafka-brokers",
        brokers,
        "--verify-key",
        &verify,
        "--kafka-option",
        "topic.metadata.refresh.interval.ms=1000",
    ];
    args.extend_from_slice(extra);
    VigilProcess::start_ready(&args).await
}

fn verdicts(records: &[Record]) -> Vec<Verdict> {
    records
        .iter()
        .map(|r| Verdict::decode(&r.payload).expect("vigil.verdicts holds verdicts"))
        .collect()
}

/// Reads vigil.verdicts until every (device, seq) of `expected` has one.
async fn verdicts_for(
    brokers: &str,
    expected: &HashSet<(String, u64)>,
    timeout: Duration,
) -> anyhow::Result<Vec<Verdict>> {
    let mut seen: HashSet<(String, u64)> = HashSet::new();
    let mut decoded = 0;
    let records = read_until(brokers, VERDICTS, timeout, |records| {
        for r in &records[decoded..] {
            if let Ok(v) = Verdict::decode(&r.payload) {
                seen.insert((v.device_id, v.seq));
            }
        }
        decoded = records.len();
        expected.iter().all(|k| seen.contains(k))
    })
    .await
    .map_err(|e| {
        let missing = expected.iter().filter(|k| !seen.contains(*k)).count();
        anyhow::anyhow!(
            "{e}; {missing} of {} records have no verdict",
            expected.len()
        )
    })?;
    Ok(verdicts(&records))
}

fn keys_of(records: &[Telemetry]) -> HashSet<(String, u64)> {
    records
        .iter()
        .map(|t| (t.device_id.clone(), t.seq))
        .collect()
}

/// Event-wise detection figures per anomaly kind.
#[derive(Debug, Default)]
struct KindFigures {
    episodes: u64,
    detected: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trained_v1_scores_every_record_and_flags_injected_anomalies() -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let kinds = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::StuckAt,
    ];
    let (train_ticks, test_ticks) = (400, 500);
    let mut sim = fleet(200, train_ticks + test_ticks, train_ticks, &kinds, 4.0);
    let training: Vec<Telemetry> = sim.generate(train_ticks).into_telemetry();
    produce_all(&brokers, TELEMETRY, &keyed(&training)).await?;

    let log = train(&brokers, &keys, &[]).await?;
    assert!(log.contains("release published"), "{log}");

    // The operator's view of what was published.
    let verify = path(&keys.verify);
    let (code, out, err) = run_vigil(
        &[
            "models",
            "list",
            "--json",
            "--kafka-brokers",
            &brokers,
            "--verify-key",
            &verify,
        ],
        None,
    )?;
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(listed[0]["model"], "default", "{out}");
    assert_eq!(listed[0]["live_version"], 1, "{out}");

    let scorer = start_scorer(&brokers, &keys, &[]).await?;
    let test = sim.generate(test_ticks);
    let test_records: Vec<Telemetry> = test.records.iter().map(|r| r.telemetry.clone()).collect();
    produce_all(&brokers, TELEMETRY, &keyed(&test_records)).await?;

    let mut expected = keys_of(&training);
    expected.extend(keys_of(&test_records));
    let all = verdicts_for(&brokers, &expected, Duration::from_secs(240))
        .await
        .map_err(|e| scorer.failure(e))?;
    // Exactly one verdict per record, every one by version 1.
    let mut per_record: HashMap<(&str, u64), u32> = HashMap::new();
    for v in &all {
        *per_record.entry((v.device_id.as_str(), v.seq)).or_default() += 1;
    }
    let duplicated = per_record.values().filter(|n| **n > 1).count();
    assert_eq!(duplicated, 0, "records with more than one verdict");
    assert_eq!(per_record.len(), expected.len());
    assert!(
        all.iter().all(|v| v.model_version == Some(1)),
        "a verdict not by v1"
    );
    assert_eq!(
        scorer.metric("vigil_score_records_scored_total").await,
        expected.len() as f64
    );

    // Detection quality on the test part, event-wise per kind.
    let flagged: HashSet<(&str, u64)> = all
        .iter()
        .filter(|v| v.anomaly)
        .map(|v| (v.device_id.as_str(), v.seq))
        .collect();
    let mut by_kind: BTreeMap<&str, KindFigures> = BTreeMap::new();
    let mut explained: HashSet<(&str, u64)> = HashSet::new();
    for e in &test.episodes {
        let k = by_kind.entry(e.kind.as_str()).or_default();
        k.episodes += 1;
        // A detection counts up to 10 records after the episode's end; the
        // detector's echo is not a false alarm for 64 records.
        if (e.first_seq..=e.last_seq + 10).any(|s| flagged.contains(&(e.device_id.as_str(), s))) {
            k.detected += 1;
        }
        for s in e.first_seq..=e.last_seq + 64 {
            explained.insert((e.device_id.as_str(), s));
        }
    }
    let test_flags: Vec<&(&str, u64)> = flagged
        .iter()
        .filter(|(_, seq)| *seq > train_ticks)
        .collect();
    let true_flags = test_flags
        .iter()
        .filter(|k| explained.contains(**k))
        .count();
    let precision = true_flags as f64 / test_flags.len().max(1) as f64;
    let (episodes, detected) = by_kind
        .values()
        .fold((0, 0), |(e, d), k| (e + k.episodes, d + k.detected));
    let recall = detected as f64 / episodes.max(1) as f64;
    println!("detection on {} test records: precision {precision:.3} (flags {}), recall {recall:.3} ({detected}/{episodes})", test_records.len(), test_flags.len());
    for (kind, k) in &by_kind {
        println!(
            "  {kind:<12} recall {:.3} ({}/{})",
            k.detected as f64 / k.episodes.max(1) as f64,
            k.detected,
            k.episodes
        );
    }
    for kind in kinds {
        let k = by_kind.get(kind.as_str()).expect("every kind injected");
        assert!(
            k.episodes >= 10,
            "too few {kind} episodes to judge: {}",
            k.episodes
        );
        let r = k.detected as f64 / k.episodes as f64;
        assert!(r >= 0.6, "{kind} recall {r:.3} below 0.6");
    }
    assert!(precision >= 0.6, "precision {precision:.3} below 0.6");
    Ok(())
}

/// Fits and signs a release in-process (quicker than `vigil train` where
/// the test is about the scorer, not the trainer).
async fn publish(brokers: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    produce_all(brokers, MODELS, &[("default".to_owned(), bytes)]).await
}

async fn metric_reaches(scorer: &VigilProcess, name: &str, value: f64) -> anyhow::Result<()> {
    eventually(
        &format!("{name} = {value}"),
        Duration::from_secs(60),
        || async { scorer.metric(name).await == value },
    )
    .await
    .map_err(|e| scorer.failure(e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_published_under_load_takes_over_within_a_second_without_gap_or_rescoring(
) -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let devices = 50;
    let mut sim = fleet(devices, 1_000, 1_000, &[], 0.0);
    let training = sim_records(&mut sim, 300);
    produce_all(&brokers, TELEMETRY, &keyed(&training)).await?;
    train(&brokers, &keys, &[]).await?;
    let scorer = start_scorer(&brokers, &keys, &[]).await?;
    let pid = scorer.pid();

    // Load: one tick of every device every 50 ms (1,000 records/s) until
    // told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let load_brokers = brokers.clone();
    let load = tokio::spawn(async move {
        let producer = common::producer(&load_brokers)?;
        let mut sent: Vec<Telemetry> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tick.tick() => {
                    let batch = sim_records(&mut sim, 1);
                    common::produce_with(&producer, TELEMETRY, &keyed(&batch)).await?;
                    sent.extend(batch);
                }
            }
        }
        Ok::<_, anyhow::Error>(sent)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    train(&brokers, &keys, &["--force"]).await?;
    let verify = path(&keys.verify);
    let (code, out, err) = run_vigil(
        &[
            "models",
            "show",
            "--json",
            "--model-version",
            "2",
            "--kafka-brokers",
            &brokers,
            "--verify-key",
            &verify,
        ],
        None,
    )?;
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(shown["verification"], "ok", "{out}");
    let published_ms = shown["published_ms"].as_u64().expect("published_ms");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop_tx.send(());
    let sent = load.await??;

    let mut expected = keys_of(&training);
    expected.extend(keys_of(&sent));
    let all = verdicts_for(&brokers, &expected, Duration::from_secs(120))
        .await
        .map_err(|e| scorer.failure(e))?;
    assert_eq!(scorer.pid(), pid, "the scorer restarted");
    assert_eq!(all.len(), expected.len(), "a record was scored twice");

    // Per device, versions never go back; v2 takes over within a second.
    let mut last: HashMap<&str, u64> = HashMap::new();
    for v in &all {
        let version = v.model_version.expect("scored");
        let prev = last.insert(v.device_id.as_str(), version).unwrap_or(0);
        assert!(
            version >= prev,
            "{} went from v{prev} back to v{version}",
            v.device_id
        );
    }
    let first_v2 = all
        .iter()
        .filter(|v| v.model_version == Some(2))
        .map(|v| v.scored_ts)
        .min()
        .expect("verdicts by v2");
    let late_v1 = all
        .iter()
        .filter(|v| v.model_version == Some(1) && v.scored_ts > published_ms + 1_000)
        .count();
    println!(
        "v2 published at {published_ms}; first v2 verdict {} ms later; {} verdicts by v1, {} by v2",
        first_v2 as i64 - published_ms as i64,
        all.iter().filter(|v| v.model_version == Some(1)).count(),
        all.iter().filter(|v| v.model_version == Some(2)).count(),
    );
    assert_eq!(
        late_v1, 0,
        "verdicts by v1 more than 1 s after v2 was published"
    );
    assert!(first_v2 <= published_ms + 1_000);
    assert_eq!(scorer.metric("vigil_score_model_version").await, 2.0);
    Ok(())
}

/// Re-signs nothing: changes the signed payload (the threshold) and keeps
/// or recomputes the checksum.
fn tampered(release: &ModelRelease, fix_checksum: bool) -> anyhow::Result<Vec<u8>> {
    let mut payload: serde_json::Value = serde_json::from_str(release.payload.get())?;
    payload["threshold"] = serde_json::json!(0.0001);
    let text = serde_json::to_string(&payload)?;
    let mut forged = release.clone();
    if fix_checksum {
        use sha2::Digest as _;
        forged.payload_sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    }
    forged.payload = serde_json::value::RawValue::from_string(text)?;
    Ok(forged.encode()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_releases_are_refused_and_scoring_continues_on_the_live_model() -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let other = new_keys()?;
    let mut sim = fleet(20, 700, 700, &[], 0.0);
    let training = sim_records(&mut sim, 300);
    let v1 = release(&keys.signing, &training, 1)?;
    let v2 = release(&keys.signing, &training, 2)?;
    publish(&brokers, v1.encode()?).await?;
    publish(&brokers, v2.encode()?).await?;
    let scorer = start_scorer(&brokers, &keys, &[]).await?;
    metric_reaches(&scorer, "vigil_score_model_version", 2.0).await?;

    let truncated = {
        let bytes = v2.encode()?;
        bytes[..bytes.len() / 2].to_vec()
    };
    let wrong_key = release(&other.signing, &training, 3)?;
    for bad in [
        tampered(&v2, false)?,
        tampered(&v2, true)?,
        truncated,
        v1.encode()?,
        wrong_key.encode()?,
    ] {
        publish(&brokers, bad).await?;
    }
    for reason in [
        "bad_checksum",
        "bad_signature",
        "malformed",
        "older_version",
        "unknown_key",
    ] {
        metric_reaches(
            &scorer,
            &format!("vigil_score_releases_total{{outcome=\"{reason}\"}}"),
            1.0,
        )
        .await?;
    }
    assert_eq!(scorer.metric("vigil_score_model_version").await, 2.0);

    // Scoring goes on with v2.
    let records = sim_records(&mut sim, 100);
    produce_all(&brokers, TELEMETRY, &keyed(&records)).await?;
    let all = verdicts_for(&brokers, &keys_of(&records), Duration::from_secs(60))
        .await
        .map_err(|e| scorer.failure(e))?;
    assert!(all.iter().all(|v| v.model_version == Some(2)));

    // The operator tools agree, and `vigil models score` (offline, the
    // cloud code path) reproduces the stream's verdicts from the export.
    let dir = tempfile::tempdir()?;
    let exported = dir.path().join("release.json");
    let tampered_file = dir.path().join("tampered.json");
    std::fs::write(&tampered_file, tampered(&v2, true)?)?;
    let verify = path(&keys.verify);
    let (code, _, err) = run_vigil(
        &[
            "models",
            "export",
            "--out",
            &path(&exported),
            "--kafka-brokers",
            &brokers,
            "--verify-key",
            &verify,
        ],
        None,
    )?;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_vigil(
        &[
            "models",
            "verify",
            "--file",
            &path(&exported),
            "--verify-key",
            &verify,
        ],
        None,
    )?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (version 2"), "{out}");
    let (code, _, err) = run_vigil(
        &[
            "models",
            "verify",
            "--file",
            &path(&tampered_file),
            "--verify-key",
            &verify,
        ],
        None,
    )?;
    assert_eq!(code, 1);
    assert!(err.contains("bad_signature"), "{err}");

    let device = "dev-00003";
    let mut input = Vec::new();
    // The stream saw only `records` (the training data never went to
    // vigil.telemetry), so the offline run gets exactly those.
    for t in records.iter().filter(|t| t.device_id == device) {
        input.extend(t.encode()?);
        input.push(b'\n');
    }
    input.extend(b"{\"schema\":1,\"device_id\":\"x\"}\n");
    let (code, out, err) = run_vigil(
        &[
            "models",
            "score",
            "--model",
            &path(&exported),
            "--verify-key",
            &verify,
        ],
        Some(&input),
    )?;
    assert_eq!(code, 1, "a bad line makes the exit status 1");
    assert!(err.contains("line "), "{err}");
    let offline: HashMap<u64, Verdict> = out
        .lines()
        .map(|l| Verdict::decode(l.as_bytes()).map(|v| (v.seq, v)))
        .collect::<Result<_, _>>()?;
    let mut compared = 0;
    for v in all.iter().filter(|v| v.device_id == device) {
        let o = &offline[&v.seq];
        assert_eq!(
            (o.score, o.anomaly, o.model_version),
            (v.score, v.anomaly, v.model_version)
        );
        compared += 1;
    }
    assert!(compared > 50);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scorer_killed_mid_stream_and_restarted_leaves_no_record_without_a_verdict(
) -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let (mut sim, first) = v1_and_a_backlog(&brokers, &keys).await?;

    // A stable instance id (as a StatefulSet gives each pod): the restarted
    // scorer takes over the dead one's membership at once instead of
    // waiting for its session to expire.
    let identity = ["--instance-id", "scorer-0"];
    let mut scorer = start_scorer(&brokers, &keys, &identity).await?;
    eventually(
        "the scorer is mid-stream",
        Duration::from_secs(60),
        || async { scorer.metric("vigil_score_records_scored_total").await >= 5_000.0 },
    )
    .await
    .map_err(|e| scorer.failure(e))?;
    // Killed after a commit, so the restart resumes mid-stream (with a
    // replayed tail) rather than from the beginning.
    eventually(
        "the scorer committed offsets",
        Duration::from_secs(60),
        || async {
            committed_offsets(&brokers, "vigil-score", TELEMETRY)
                .await
                .is_ok_and(|n| n > 0)
        },
    )
    .await
    .map_err(|e| scorer.failure(e))?;
    scorer.kill9();
    let second = sim_records(&mut sim, 200);
    produce_all(&brokers, TELEMETRY, &keyed(&second)).await?;
    let restarted = start_scorer(&brokers, &keys, &identity).await?;

    let mut expected = keys_of(&first);
    expected.extend(keys_of(&second));
    let all = verdicts_for(&brokers, &expected, Duration::from_secs(180))
        .await
        .map_err(|e| restarted.failure(e))?;
    let duplicates = all.len() - keys_of_verdicts(&all).len();
    println!(
        "{} records, {} verdicts ({duplicates} duplicates from the replayed tail)",
        expected.len(),
        all.len()
    );
    // The restarted scorer rebuilt per-device state from the log.
    assert!(
        restarted
            .metric("vigil_score_state_replayed_records_total")
            .await
            > 0.0
    );
    Ok(())
}

fn keys_of_verdicts(verdicts: &[Verdict]) -> HashSet<(String, u64)> {
    verdicts
        .iter()
        .map(|v| (v.device_id.clone(), v.seq))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scorer_joining_rebalances_without_losing_a_record() -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let (mut sim, first) = v1_and_a_backlog(&brokers, &keys).await?;

    let a = start_scorer(&brokers, &keys, &[]).await?;
    eventually(
        "scorer a is mid-stream",
        Duration::from_secs(60),
        || async { a.metric("vigil_score_records_scored_total").await >= 5_000.0 },
    )
    .await
    .map_err(|e| a.failure(e))?;
    let b = start_scorer(&brokers, &keys, &[]).await?;
    let second = sim_records(&mut sim, 200);
    produce_all(&brokers, TELEMETRY, &keyed(&second)).await?;

    let mut expected = keys_of(&first);
    expected.extend(keys_of(&second));
    verdicts_for(&brokers, &expected, Duration::from_secs(180))
        .await
        .map_err(|e| b.failure(a.failure(e)))?;
    let (scored_a, scored_b) = (
        a.metric("vigil_score_records_scored_total").await,
        b.metric("vigil_score_records_scored_total").await,
    );
    println!("scorer a scored {scored_a}, scorer b {scored_b}");
    assert!(scored_b > 0.0, "the second scorer got no partition");
    assert!(
        a.log_text().contains("partitions revoked"),
        "no rebalance seen by a"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_score_gives_the_stream_s_score_and_rejects_bad_input() -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let mut sim = fleet(5, 700, 700, &[], 0.0);
    let training = sim_records(&mut sim, 300);
    publish(&brokers, release(&keys.signing, &training, 1)?.encode()?).await?;
    let scorer = start_scorer(&brokers, &keys, &[]).await?;
    let url = format!("http://{}/v1/score", scorer.http);
    let http = reqwest::Client::new();

    let before = sim_records(&mut sim, 100);
    produce_all(&brokers, TELEMETRY, &keyed(&before)).await?;
    verdicts_for(&brokers, &keys_of(&before), Duration::from_secs(60)).await?;
    // The next record of each device: first asked synchronously, then sent
    // down the stream.
    let next = sim_records(&mut sim, 1);
    let mut asked = HashMap::new();
    for t in &next {
        let response = http.post(&url).body(t.encode()?).send().await?;
        assert_eq!(response.status(), 200);
        let v: Verdict = response.json().await?;
        asked.insert(v.device_id.clone(), v);
    }
    produce_all(&brokers, TELEMETRY, &keyed(&next)).await?;
    let streamed = verdicts_for(&brokers, &keys_of(&next), Duration::from_secs(60)).await?;
    for s in streamed.iter().filter(|v| v.seq == 401) {
        let a = &asked[&s.device_id];
        assert_eq!(
            (a.score, a.anomaly, a.model_version),
            (s.score, s.anomaly, s.model_version)
        );
    }
    assert_eq!(asked.len(), 5);

    let response = http.post(&url).body("{\"schema\":1,").send().await?;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["reason"], "malformed_json", "{body}");
    let response = http
        .post(&url)
        .body(r#"{"schema":1,"device_id":"d","seq":1,"ts":1,"metrics":{"t":"NaN"}}"#)
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    Ok(())
}

/// Issue 18: a scorer restarted after compaction left an older signed
/// release last on vigil.models stays on the newer one it kept. The
/// compacted log is a fresh broker holding only the older release (and a
/// tombstone), which is what compaction can leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scorer_keeps_its_newer_release_when_the_log_offers_an_older_one(
) -> anyhow::Result<()> {
    let (_kafka, brokers, keys) = setup().await?;
    let kept = tempfile::tempdir()?;
    let dir = path(kept.path());
    let mut sim = fleet(20, 500, 500, &[], 0.0);
    let training = sim_records(&mut sim, 300);
    let v1 = release(&keys.signing, &training, 1)?;
    let v2 = release(&keys.signing, &training, 2)?;
    publish(&brokers, v2.encode()?).await?;
    let mut scorer = start_scorer(&brokers, &keys, &["--release-dir", &dir]).await?;
    metric_reaches(&scorer, "vigil_score_model_version", 2.0).await?;
    scorer.terminate();

    let (_compacted, brokers, _) = setup().await?;
    publish(&brokers, v1.encode()?).await?;
    {
        use rdkafka::producer::FutureRecord;
        let tombstone = FutureRecord::<str, [u8]>::to(MODELS).key("default");
        common::producer(&brokers)?
            .send(tombstone, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    let scorer = start_scorer(&brokers, &keys, &["--release-dir", &dir]).await?;
    metric_reaches(&scorer, "vigil_score_model_version", 2.0).await?;
    metric_reaches(
        &scorer,
        "vigil_score_releases_total{outcome=\"older_version\"}",
        1.0,
    )
    .await?;
    let records = sim_records(&mut sim, 20);
    produce_all(&brokers, TELEMETRY, &keyed(&records)).await?;
    let all = verdicts_for(&brokers, &keys_of(&records), Duration::from_secs(60))
        .await
        .map_err(|e| scorer.failure(e))?;
    assert!(all.iter().all(|v| v.model_version == Some(2)));
    // Without the folder the same log makes v1 live: what the kept
    // release prevents.
    let plain = start_scorer(&brokers, &keys, &[]).await?;
    metric_reaches(&plain, "vigil_score_model_version", 1.0).await?;
    Ok(())
}
