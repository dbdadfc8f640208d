//! Rebuilding per-device state from the telemetry log (see the crate docs).

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use vigil_schemas::{Message as _, Telemetry};
use vigil_service::config::KafkaArgs;
use vigil_service::from_start;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub topic: String,
    pub partition: i32,
    /// First offset the scorer will score (replay stops before it).
    pub until_offset: i64,
    /// Kafka timestamp of that record, ms.
    pub until_ts: Option<i64>,
    /// Event time to cover before it, ms.
    pub span_ms: u64,
    /// Most records to read.
    pub max_records: usize,
}

/// Reads the records of `req.partition` in [start, until_offset), where
/// start is the latest of: the record at `until_ts - span_ms`,
/// `until_offset - max_records`, the partition's beginning. Blocking.
/// Records that do not decode are skipped (the scoring path reports them).
pub fn read(args: &KafkaArgs, req: &ReplayRequest) -> anyhow::Result<Vec<Telemetry>> {
    let consumer: BaseConsumer = from_start::unjoined_config(args, "vigil-score-replay")
        .create()
        .context("creating the replay consumer")?;
    let (low, _) = consumer
        .fetch_watermarks(&req.topic, req.partition, Timeout::After(TIMEOUT))
        .context("reading the partition's beginning")?;
    let by_count = req
        .until_offset
        .saturating_sub(i64::try_from(req.max_records).unwrap_or(i64::MAX));
    let mut start = low.max(by_count);
    if let Some(ts) = req.until_ts {
        let from = ts.saturating_sub(i64::try_from(req.span_ms).unwrap_or(i64::MAX));
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(&req.topic, req.partition, Offset::Offset(from))?;
        let found = consumer
            .offsets_for_times(query, Timeout::After(TIMEOUT))
            .context("looking up the replay start by time")?;
        if let Some(el) = found.elements().first() {
            if let Offset::Offset(o) = el.offset() {
                start = start.max(o);
            }
        }
    }
    if start >= req.until_offset {
        return Ok(Vec::new());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&req.topic, req.partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::with_capacity(usize::try_from(req.until_offset - start).unwrap_or(0));
    loop {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "replaying {}/{} from {start} to {}: not finished within 60s",
                req.topic,
                req.partition,
                req.until_offset
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                if m.offset() >= req.until_offset {
                    break;
                }
                if let Some(Ok(t)) = m.payload().map(Telemetry::decode) {
                    out.push(t);
                }
                if m.offset() + 1 >= req.until_offset {
                    break;
                }
            }
            Some(Err(e)) => return Err(e).context("replaying"),
            None => {}
        }
    }
    Ok(out)
}
