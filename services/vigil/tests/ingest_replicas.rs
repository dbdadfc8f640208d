//! Two `vigil ingest` replicas sharing one MQTT shared-subscription group,
//! one killed with SIGKILL mid-stream (issue 17, item 5). Every
//! (device, seq) published must be found in `vigil.telemetry`, counted by
//! reading the records back:
//!
//! - a StatefulSet pod restarted under its own name resumes its
//!   persistent session;
//! - a replacement under a new client id (a renamed pod) takes over the
//!   departed replica's session with `--adopt-session`;
//! - after a scale-down, a one-shot `vigil ingest --adopt-only` empties
//!   and ends the removed replica's session;
//! - adopting a replica that is still running (an operator's mistake)
//!   loses nothing either.
//!
//! Traffic is published in two halves: the replica dies during the first,
//! the second is published only once the replacement is up (and, with an
//! adoption, once the session is ended), so it shows whether the broker
//! still routes a share to the departed client id. Without the adoption
//! (measured with `--adopt-session` naming another id) 6,049 of the
//! 20,000 records stayed in the departed session.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{decode_all, run_vigil, telemetry, VigilProcess};
use vigil_testkit::clients::{eventually, publish_all, read_until};
use vigil_testkit::{Mosquitto, Tansu, TansuStorage};

const DEVICES: usize = 100;
const PER_DEVICE: u64 = 200;

async fn replica(
    mqtt: &Mosquitto,
    kafka: &Tansu,
    client_id: &str,
    extra: &[&str],
) -> anyhow::Result<VigilProcess> {
    VigilProcess::ingest(&mqtt.url(), &kafka.brokers(), client_id, extra).await
}

/// Seqs `from..=to` of every device, interleaved device by device.
fn records(from: u64, to: u64) -> Vec<(String, Vec<u8>)> {
    (from..=to)
        .flat_map(|seq| (0..DEVICES).map(move |d| telemetry(&format!("dev-{d:04}"), seq)))
        .collect()
}

/// How the killed replica `ingest-a` is replaced.
enum Replacement {
    /// A new process with the same client id (a StatefulSet pod).
    SameId,
    /// `ingest-c` with `--adopt-session ingest-a` (a renamed pod).
    Adopting,
    /// None; a one-shot `--adopt-only` job adopts `ingest-a` (a scale-down).
    AdoptOnly,
    /// Not killed: the job adopts `ingest-a` while it runs (an operator's
    /// mistake), which must lose nothing either.
    AdoptLive,
}

/// What a case measured.
struct Outcome {
    /// Records read from `vigil.telemetry`.
    records: usize,
    /// Distinct (device, seq) among them.
    distinct: usize,
    /// Messages taken from the adopted session (0 without an adoption).
    adopted: f64,
}

/// Runs `vigil ingest --adopt-only --adopt-session ingest-a` to its end;
/// returns its exit code and log.
async fn adopt_only_job(mqtt: &Mosquitto, kafka: &Tansu) -> anyhow::Result<(i32, String)> {
    let (url, brokers) = (mqtt.url(), kafka.brokers());
    let job = tokio::task::spawn_blocking(move || {
        run_vigil(
            &[
                "ingest",
                "--mqtt-url",
                &url,
                "--kafka-brokers",
                &brokers,
                "--mqtt-client-id",
                "ingest-job",
                "--adopt-only",
                "--adopt-session",
                "ingest-a",
                "--http-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                // Below the session's size: the bounded path.
                "--max-in-flight",
                "500",
            ],
            None,
        )
    });
    let (code, stdout, stderr) = job.await??;
    Ok((code, format!("{stdout}{stderr}")))
}

async fn kill_and_replace(how: Replacement) -> anyhow::Result<Outcome> {
    let mqtt = Mosquitto::start()?;
    // tansu's SQLite engine: twice in CI runs on the memory engine, with
    // several producers writing the fresh topic at once, a partition's
    // first batch went missing on the broker (its earliest offset 54 or
    // 64, every record acknowledged by it), which this test then reported
    // as lost.
    let kafka = Tansu::start_with(TansuStorage::Sqlite)?;
    let brokers = kafka.brokers();
    let mut a = replica(&mqtt, &kafka, "ingest-a", &[]).await?;
    let b = replica(&mqtt, &kafka, "ingest-b", &[]).await?;

    let half = PER_DEVICE / 2;
    let mut first = Some(tokio::spawn(publish_all(
        mqtt.port(),
        "replicas-publisher-1",
        records(1, half),
        Duration::from_secs(120),
    )));
    // Both replicas take their share before one of them dies.
    eventually(
        "both replicas mid-stream",
        Duration::from_secs(60),
        || async {
            a.metric("vigil_ingest_messages_produced_total").await >= 1_000.0
                && b.metric("vigil_ingest_messages_produced_total").await >= 1_000.0
        },
    )
    .await
    .map_err(|e| a.failure(b.failure(e)))?;
    if !matches!(how, Replacement::AdoptLive) {
        a.kill9();
    }

    if matches!(how, Replacement::Adopting | Replacement::AdoptOnly) {
        // The first half is published in full first. Then a batch after
        // the kill, whatever the first half's timing (it may all have been
        // delivered before the kill; a CI run once found the adopted
        // session empty without this): the departed session is still a
        // member of the share group and takes its share of these, which
        // only an adoption recovers. (The same seqs are published again
        // below: the check is on distinct records.)
        if let Some(first) = first.take() {
            first.await??;
        }
        publish_all(
            mqtt.port(),
            "replicas-publisher-after-kill",
            records(half + 1, half + 20),
            Duration::from_secs(120),
        )
        .await?;
    }
    let mut adopted = 0.0;
    let replacement = match how {
        Replacement::SameId => Some(replica(&mqtt, &kafka, "ingest-a", &[]).await?),
        Replacement::Adopting => {
            let c = replica(&mqtt, &kafka, "ingest-c", &["--adopt-session", "ingest-a"]).await?;
            eventually("the session adopted", Duration::from_secs(120), || async {
                c.metric("vigil_ingest_sessions_adopted_total").await >= 1.0
            })
            .await
            .map_err(|e| c.failure(e))?;
            adopted = c.metric("vigil_ingest_adopted_messages_total").await;
            Some(c)
        }
        Replacement::AdoptOnly => {
            let (code, log) = adopt_only_job(&mqtt, &kafka).await?;
            anyhow::ensure!(code == 0, "the adopt-only job failed ({code}):\n{log}");
            adopted = adopted_in_log(&log);
            None
        }
        Replacement::AdoptLive => {
            // Either outcome is allowed (the replica may take its client
            // id back first); only loss is not.
            let (code, log) = adopt_only_job(&mqtt, &kafka).await?;
            adopted = adopted_in_log(&log);
            println!("adopting a live replica: the job exited {code}");
            Some(a)
        }
    };
    if let Some(first) = first.take() {
        first.await??;
    }
    // Published only now: none of it may go to the departed session.
    publish_all(
        mqtt.port(),
        "replicas-publisher-2",
        records(half + 1, PER_DEVICE),
        Duration::from_secs(120),
    )
    .await?;

    let expected: HashSet<(String, u64)> = (0..DEVICES)
        .flat_map(|d| (1..=PER_DEVICE).map(move |s| (format!("dev-{d:04}"), s)))
        .collect();
    let mut seen: HashMap<(String, u64), usize> = HashMap::new();
    let mut decoded = 0;
    let read = read_until(&brokers, "vigil.telemetry", Duration::from_secs(120), |r| {
        for t in decode_all(&r[decoded..]) {
            *seen.entry((t.device_id, t.seq)).or_default() += 1;
        }
        decoded = r.len();
        seen.len() >= expected.len()
    })
    .await;
    let missing = expected.iter().filter(|k| !seen.contains_key(*k)).count();
    if let Err(e) = read {
        let e = anyhow::anyhow!(
            "{missing} of {} records never reached vigil.telemetry: {e}",
            expected.len()
        );
        return Err(match &replacement {
            Some(r) => r.failure(b.failure(e)),
            None => b.failure(e),
        });
    }
    assert_eq!(missing, 0, "loss after replacing a replica");
    assert_eq!(seen.len(), expected.len(), "records nobody published");
    Ok(Outcome {
        records: seen.values().sum(),
        distinct: seen.len(),
        adopted,
    })
}

/// The message count the adopt-only job logged (JSON `"messages":N`).
fn adopted_in_log(log: &str) -> f64 {
    log.lines()
        .filter(|l| l.contains("adopted the session"))
        .filter_map(|l| l.split("\"messages\":").nth(1))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<f64>().ok()
        })
        .sum()
}

fn report(case: &str, o: &Outcome) {
    println!(
        "{case}: loss 0; {} records read for {} distinct ({} duplicates); {} taken from the adopted session",
        o.records,
        o.distinct,
        o.records - o.distinct,
        o.adopted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_under_its_own_client_id_resumes_its_session() -> anyhow::Result<()> {
    let outcome = kill_and_replace(Replacement::SameId).await?;
    report("same client id", &outcome);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_under_a_new_client_id_adopts_the_departed_session() -> anyhow::Result<()> {
    let outcome = kill_and_replace(Replacement::Adopting).await?;
    report("new client id, --adopt-session", &outcome);
    assert!(outcome.adopted > 0.0, "the departed session held nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_replica_that_is_still_running_loses_nothing() -> anyhow::Result<()> {
    let outcome = kill_and_replace(Replacement::AdoptLive).await?;
    report("a live replica adopted by mistake", &outcome);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_scale_down_an_adopt_only_job_empties_the_removed_session() -> anyhow::Result<()> {
    let outcome = kill_and_replace(Replacement::AdoptOnly).await?;
    report("scale-down, --adopt-only job", &outcome);
    assert!(outcome.adopted > 0.0, "the departed session held nothing");
    Ok(())
}
