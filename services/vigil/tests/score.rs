//! `vigil train`, `vigil score` and `vigil models` against a real
//! Kafka-API broker (tansu): training and publishing, scoring every record,
//! hot swaps under load, refused releases, crashes and rebalances, and the
//! synchronous API.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{produce_all, run_vigil, VigilProcess};
use vigil_fleet_sim::{AnomalyConfig, AnomalyKind, Fleet, FleetConfig};
use vigil_schemas::{Message, ModelRelease, Telemetry, Verdict};
use vigil_testkit::clients::{eventually, read_until, Record};
use vigil_testkit::Tansu;

const TELEMETRY: &str = "vigil.telemetry";
const VERDICTS: &str = "vigil.verdicts";
const MODELS: &str = "vigil.models";
const INTERVAL_MS: u64 = 1_000;

/// A key pair in a temp dir.
struct Keys {
    _dir: tempfile::TempDir,
    signing: PathBuf,
    verify: PathBuf,
}

fn keys() -> anyhow::Result<Keys> {
    let dir = tempfile::tempdir()?;
    let generated = vigil_model::keygen(dir.path())?;
    Ok(Keys {
        signing: generated.signing_key,
        verify: generated.verify_key,
        _dir: dir,
    })
}

fn path(p: &Path) -> String {
    p.display().to_string()
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
    let scorer = VigilProcess::start(&args).await?;
    scorer.wait_ready().await?;
    Ok(scorer)
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
    let kafka = Tansu::start()?;
    let brokers = kafka.brokers();
    common::create_topics(&brokers).await?;
    let keys = keys()?;
    let kinds = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::StuckAt,
    ];
    let (train_ticks, test_ticks) = (400, 500);
    let mut sim = fleet(200, train_ticks + test_ticks, train_ticks, &kinds, 4.0);
    let training: Vec<Telemetry> = sim
        .generate(train_ticks)
        .records
        .into_iter()
        .map(|r| r.telemetry)
        .collect();
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
