//! What one queue record holds: the sample's `seq` and the MQTT messages
//! (topic, payload) it produced — its telemetry and verdict, or a summary.
//! A record is removed from the queue only when every message in it was
//! acknowledged, so a sample's telemetry and verdict are delivered (or
//! dropped, when the queue is full) together, and "records dropped" counts
//! samples.
//!
//! ```text
//! record  = version: u8 (1) | seq: u64 LE | count: u8 | message{count}
//! message = topic_len: u16 LE | topic | payload_len: u32 LE | payload
//! ```
//!
//! The queue already checksums the bytes; decoding still checks every
//! length, so a record from a future version or a bug is refused with a
//! reason instead of misread.

/// Layout version written by this build.
const VERSION: u8 = 1;
/// Most messages one record may hold.
pub const MAX_MESSAGES: usize = 8;

/// A decoded queue record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkRecord {
    /// seq of the sample (for a summary: of the last sample it covers).
    pub seq: u64,
    /// (topic, payload) in publishing order.
    pub messages: Vec<(String, Vec<u8>)>,
}

/// Why queue bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("queue record layout version {0} is unknown; this build reads version {VERSION}")]
    Version(u8),
    #[error("queue record is cut short at byte {0}")]
    Short(usize),
    #[error("queue record holds {0} messages; at most {MAX_MESSAGES} allowed")]
    TooMany(usize),
    #[error("queue record has {0} bytes after its last message")]
    Trailing(usize),
    #[error("queue record topic is not UTF-8")]
    Topic,
}

impl UplinkRecord {
    /// The bytes to append to the queue.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = 10
            + self
                .messages
                .iter()
                .map(|(t, p)| 6 + t.len() + p.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(self.messages.len().min(MAX_MESSAGES) as u8);
        for (topic, payload) in self.messages.iter().take(MAX_MESSAGES) {
            out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
        }
        out
    }

    /// Parses queue bytes.
    pub fn decode(bytes: &[u8]) -> Result<UplinkRecord, RecordError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], RecordError> {
            let end = at.checked_add(n).filter(|e| *e <= bytes.len());
            let Some(end) = end else {
                return Err(RecordError::Short(at));
            };
            let slice = &bytes[at..end];
            at = end;
            Ok(slice)
        };
        let version = take(1)?[0];
        if version != VERSION {
            return Err(RecordError::Version(version));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(take(8)?);
        let count = usize::from(take(1)?[0]);
        if count > MAX_MESSAGES {
            return Err(RecordError::TooMany(count));
        }
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            let t = take(2)?;
            let topic_len = usize::from(u16::from_le_bytes([t[0], t[1]]));
            let topic = std::str::from_utf8(take(topic_len)?)
                .map_err(|_| RecordError::Topic)?
                .to_owned();
            let p = take(4)?;
            let len = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
            messages.push((topic, take(len)?.to_vec()));
        }
        let rest = bytes.len() - at;
        if rest != 0 {
            return Err(RecordError::Trailing(rest));
        }
        Ok(UplinkRecord {
            seq: u64::from_le_bytes(seq),
            messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = UplinkRecord {
            seq: 1_795_446_981_908,
            messages: vec![
                ("vigil/devices/d/telemetry".into(), b"{\"a\":1}".to_vec()),
                ("vigil/devices/d/verdicts".into(), Vec::new()),
            ],
        };
        assert_eq!(UplinkRecord::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn damaged_records_are_refused_with_a_reason() {
        let r = UplinkRecord {
            seq: 7,
            messages: vec![("t".into(), b"payload".to_vec())],
        };
        let bytes = r.encode();
        for cut in 0..bytes.len() {
            assert!(UplinkRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(UplinkRecord::decode(&longer), Err(RecordError::Trailing(1)));
        let mut other = bytes;
        other[0] = 9;
        assert_eq!(UplinkRecord::decode(&other), Err(RecordError::Version(9)));
    }
}
