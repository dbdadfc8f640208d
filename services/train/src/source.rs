//! Where training data comes from: a window of `vigil.telemetry`, a CSV
//! file, and optional labels.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use vigil_schemas::{Message as _, Telemetry};
use vigil_service::config::KafkaArgs;
use vigil_service::from_start::{self, TopicError};
use vigil_training::Episode;

use crate::config::CsvFormatArgs;

/// What a replay read.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Records whose event time lies in the window.
    pub records: Vec<Telemetry>,
    /// Records read but outside the window.
    pub outside_window: u64,
    /// Records that did not decode as telemetry.
    pub undecodable: u64,
    /// Whether `max_records` cut the replay short.
    pub truncated: bool,
}

/// Replays `topic` for event times in `[from_ms, until_ms)`: every
/// partition from the first record Kafka timestamped at or after
/// `from_ms` up to the end it had when the replay started. Blocking.
/// `progress` gets the running count of records read.
pub fn replay_window(
    args: &KafkaArgs,
    topic: &str,
    from_ms: u64,
    until_ms: u64,
    max_records: usize,
    timeout: Duration,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Replayed> {
    let consumer: BaseConsumer = from_start::unjoined_config(args, "vigil-train")
        .create()
        .context("creating the replay consumer")?;
    let marks = match from_start::watermarks(&consumer, topic, timeout) {
        Ok(marks) => marks,
        Err(TopicError::Missing { .. }) => return Ok(Replayed::default()),
        Err(e) => return Err(e.into()),
    };
    let mut query = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let from = i64::try_from(from_ms).unwrap_or(i64::MAX);
    for m in marks.iter().filter(|m| !m.is_empty()) {
        query.add_partition_offset(topic, m.partition, Offset::Offset(from))?;
        ends.insert(m.partition, m.high);
    }
    if ends.is_empty() {
        return Ok(Replayed::default());
    }
    let starts = consumer
        .offsets_for_times(query, Timeout::After(timeout))
        .context("finding the window's start by timestamp")?;
    let mut assignment = TopicPartitionList::new();
    for el in starts.elements() {
        match el.offset() {
            Offset::Offset(o) if ends.get(&el.partition()).is_some_and(|end| o < *end) => {
                assignment.add_partition_offset(topic, el.partition(), Offset::Offset(o))?;
            }
            // Nothing at or after `from` in this partition.
            _ => {
                ends.remove(&el.partition());
            }
        }
    }
    let mut out = Replayed::default();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut read = 0u64;
    let mut last_progress = std::time::Instant::now();
    while !ends.is_empty() {
        if out.records.len() >= max_records {
            out.truncated = true;
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let partition = m.partition();
                if ends
                    .get(&partition)
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    ends.remove(&partition);
                }
                read += 1;
                match m.payload().map(Telemetry::decode) {
                    Some(Ok(t)) if t.ts >= from_ms && t.ts < until_ms => out.records.push(t),
                    Some(Ok(_)) => out.outside_window += 1,
                    _ => out.undecodable += 1,
                }
                if last_progress.elapsed() > Duration::from_millis(100) {
                    progress(read);
                    last_progress = std::time::Instant::now();
                }
            }
            Some(Err(e)) => return Err(e).context("replaying telemetry"),
            None => {
                if std::time::Instant::now() > deadline {
                    anyhow::bail!(
                        "replaying {topic}: no progress within {timeout:?} ({} partitions unfinished)",
                        ends.len()
                    );
                }
            }
        }
    }
    progress(read);
    Ok(out)
}

/// Reads a CSV file of telemetry laid out as `format` says (at most
/// `max_rows` rows, in file order), with each row's label (all `false`
/// without a label column). Blocking.
pub fn read_csv(
    path: &Path,
    format: &CsvFormatArgs,
    max_rows: usize,
) -> anyhow::Result<(Vec<Telemetry>, Vec<bool>)> {
    Ok(vigil_training::read_wide_csv_labelled(
        path,
        max_rows,
        &format.options(),
    )?)
}

/// One row of a labels file.
#[derive(Debug, serde::Deserialize)]
struct LabelRow {
    device_id: String,
    kind: String,
    first_seq: u64,
    last_seq: u64,
}

/// Reads labelled anomaly episodes (`device_id,kind,first_seq,last_seq`).
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<Episode>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("opening labels file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<LabelRow>().enumerate() {
        // Line 1 is the header.
        let row = row.with_context(|| format!("labels file {} line {}", path.display(), i + 2))?;
        if row.last_seq < row.first_seq {
            anyhow::bail!(
                "labels file {} line {}: last_seq {} is before first_seq {}",
                path.display(),
                i + 2,
                row.last_seq,
                row.first_seq
            );
        }
        out.push(Episode {
            device_id: row.device_id,
            kind: row.kind,
            first_seq: row.first_seq,
            last_seq: row.last_seq,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_bad_rows_name_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.csv");
        std::fs::write(&good, "device_id,kind,first_seq,last_seq\nd1,spike,10,12\n")
            .expect("write");
        let eps = read_labels(&good).expect("labels");
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].kind, "spike");

        let bad = dir.path().join("bad.csv");
        std::fs::write(
            &bad,
            "device_id,kind,first_seq,last_seq\nd1,spike,10,12\nd2,drift,9,x\n",
        )
        .expect("write");
        let err = format!("{:#}", read_labels(&bad).expect_err("bad row"));
        assert!(err.contains("line 3"), "{err}");

        let reversed = dir.path().join("rev.csv");
        std::fs::write(
            &reversed,
            "device_id,kind,first_seq,last_seq\nd1,spike,12,10\n",
        )
        .expect("write");
        let err = format!("{:#}", read_labels(&reversed).expect_err("reversed"));
        assert!(err.contains("before first_seq"), "{err}");
    }
}
