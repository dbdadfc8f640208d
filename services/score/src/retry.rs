//! Failed produces, held per (topic, key) until Kafka takes them, so a
//! device's records reach each topic in the order the device sent them.
//!
//! When a produce fails, its record waits here, and so does every later
//! record of the same key that the loop produces meanwhile: a key with
//! records waiting is *held*. The loop sends the oldest waiting record of a
//! key when its backoff is due, one at a time, and the next one only after
//! Kafka confirmed it; when a key has nothing left waiting, its records go
//! straight to the producer again. Nothing here sleeps or spawns: the loop
//! asks [`Retries::due`] when to call [`Retries::resend`].
//!
//! Records librdkafka already held when a failure was reported are ordered
//! by librdkafka itself (idempotent producer, no message timeout: its own
//! retries keep a partition's order); a failure of one of them joins its
//! key's queue in consumed-offset order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

/// First pause before a failed produce is sent again.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One record waiting to be sent (again).
#[derive(Debug)]
struct Waiting {
    /// The produce's tag (slot and sink).
    tag: usize,
    /// Offset of the consumed record it belongs to (its age).
    offset: i64,
    payload: Vec<u8>,
}

/// The records of one key, oldest first.
#[derive(Debug)]
struct Queue {
    records: VecDeque<Waiting>,
    /// The front record is with the producer, awaiting its outcome.
    sent: bool,
    /// Failed attempts of the front record.
    attempts: u32,
    /// When the front record may be sent.
    due: Instant,
}

/// Held keys and their waiting records.
#[derive(Debug, Default)]
pub struct Retries {
    /// topic → key → queue.
    queues: HashMap<String, HashMap<Vec<u8>, Queue>>,
    /// Tags of front records with the producer → their (topic, key).
    sent: HashMap<usize, (String, Vec<u8>)>,
}

/// The pause before attempt `attempts + 1`.
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempts.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

impl Retries {
    /// Nothing is held (the loop's fast path).
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Whether records of `key` on `topic` must queue behind a failed one.
    pub fn holds(&self, topic: &str, key: &[u8]) -> bool {
        self.queues
            .get(topic)
            .is_some_and(|keys| keys.contains_key(key))
    }

    /// Queues a new record of a held key behind the ones waiting.
    pub fn hold(&mut self, topic: &str, key: &[u8], tag: usize, offset: i64, payload: &[u8]) {
        if let Some(queue) = self.queues.get_mut(topic).and_then(|k| k.get_mut(key)) {
            queue.records.push_back(Waiting {
                tag,
                offset,
                payload: payload.to_vec(),
            });
        }
    }

    /// A produce failed (a failed delivery, or a record the producer did
    /// not take). Returns how many times the key's oldest record has failed.
    pub fn failed(
        &mut self,
        tag: usize,
        topic: &str,
        key: &[u8],
        offset: i64,
        payload: Vec<u8>,
        now: Instant,
    ) -> u32 {
        if let Some((topic, key)) = self.sent.remove(&tag) {
            // The front record, sent again, failed again.
            if let Some(queue) = self.queues.get_mut(&topic).and_then(|k| k.get_mut(&key)) {
                queue.sent = false;
                queue.attempts += 1;
                queue.due = now + backoff(queue.attempts);
                return queue.attempts;
            }
            return 0;
        }
        let record = Waiting {
            tag,
            offset,
            payload,
        };
        let keys = self.queues.entry(topic.to_owned()).or_default();
        match keys.get_mut(key) {
            Some(queue) => {
                // Older records go first; the front stays if it is out.
                let first = usize::from(queue.sent);
                let at = queue
                    .records
                    .iter()
                    .skip(first)
                    .position(|w| w.offset > offset)
                    .map_or(queue.records.len(), |i| i + first);
                if at == 0 {
                    queue.attempts = 1;
                    queue.due = now + backoff(1);
                }
                queue.records.insert(at, record);
                queue.attempts.max(1)
            }
            None => {
                keys.insert(
                    key.to_vec(),
                    Queue {
                        records: VecDeque::from([record]),
                        sent: false,
                        attempts: 1,
                        due: now + backoff(1),
                    },
                );
                1
            }
        }
    }

    /// A produce was confirmed; if it was a key's front record, the next
    /// one may go at once, and a key with nothing left is released.
    pub fn delivered(&mut self, tag: usize, now: Instant) {
        let Some((topic, key)) = self.sent.remove(&tag) else {
            return;
        };
        let Some(keys) = self.queues.get_mut(&topic) else {
            return;
        };
        if let Some(queue) = keys.get_mut(&key) {
            queue.records.pop_front();
            queue.sent = false;
            queue.attempts = 0;
            queue.due = now;
            if queue.records.is_empty() {
                keys.remove(&key);
            }
        }
        if keys.is_empty() {
            self.queues.remove(&topic);
        }
    }

    /// When the next waiting record is due, if any.
    pub fn due(&self) -> Option<Instant> {
        self.queues
            .values()
            .flat_map(|keys| keys.values())
            .filter(|q| !q.sent)
            .map(|q| q.due)
            .min()
    }

    /// Sends every key's front record that is due through `produce`. A
    /// record the producer does not take waits for its next backoff.
    /// Returns how many were not taken.
    pub fn resend(
        &mut self,
        now: Instant,
        mut produce: impl FnMut(&str, &[u8], &[u8], usize) -> Result<(), KafkaError>,
    ) -> u32 {
        let mut refused = 0;
        for (topic, keys) in &mut self.queues {
            for (key, queue) in keys.iter_mut() {
                if queue.sent || queue.due > now {
                    continue;
                }
                let Some(front) = queue.records.front() else {
                    continue;
                };
                match produce(topic, key, &front.payload, front.tag) {
                    Ok(()) => {
                        queue.sent = true;
                        self.sent.insert(front.tag, (topic.clone(), key.clone()));
                    }
                    Err(error) => {
                        queue.attempts += 1;
                        queue.due = now + backoff(queue.attempts);
                        refused += 1;
                        tracing::warn!(%error, %topic, attempt = queue.attempts,
                            "cannot enqueue a retried record; trying again later");
                    }
                }
            }
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends what is due and returns the tags sent, in order.
    fn resend_all(retries: &mut Retries, now: Instant) -> Vec<usize> {
        let mut sent = Vec::new();
        retries.resend(now, |_, _, _, tag| {
            sent.push(tag);
            Ok(())
        });
        sent
    }

    #[test]
    fn a_held_key_sends_its_records_one_at_a_time_in_order() {
        let mut r = Retries::default();
        let t0 = Instant::now();
        assert_eq!(r.failed(10, "v", b"d", 5, b"a".to_vec(), t0), 1);
        assert!(r.holds("v", b"d"));
        assert!(!r.holds("v", b"e"));
        assert!(!r.holds("a", b"d"));
        r.hold("v", b"d", 11, 6, b"b");
        // Not before the backoff.
        assert!(resend_all(&mut r, t0).is_empty());
        let due = r.due().expect("a record waits");
        assert_eq!(resend_all(&mut r, due), vec![10]);
        // The next waits for the first's confirmation.
        assert_eq!(r.due(), None);
        assert!(resend_all(&mut r, due + MAX_BACKOFF).is_empty());
        r.delivered(10, due);
        assert_eq!(resend_all(&mut r, due), vec![11]);
        r.delivered(11, due);
        assert!(r.is_empty());
        assert!(!r.holds("v", b"d"));
    }

    #[test]
    fn failures_count_per_record_and_back_off() {
        let mut r = Retries::default();
        let t0 = Instant::now();
        r.failed(1, "v", b"d", 0, b"a".to_vec(), t0);
        let first = r.due().expect("due");
        assert_eq!(resend_all(&mut r, first), vec![1]);
        assert_eq!(r.failed(1, "v", b"d", 0, b"a".to_vec(), first), 2);
        let second = r.due().expect("due");
        assert!(second - first > first - t0);
        assert_eq!(resend_all(&mut r, second), vec![1]);
        r.delivered(1, second);
        assert!(r.is_empty());
    }

    #[test]
    fn an_older_failure_goes_before_the_records_waiting() {
        let mut r = Retries::default();
        let t0 = Instant::now();
        r.failed(2, "v", b"d", 7, b"b".to_vec(), t0);
        r.hold("v", b"d", 3, 8, b"c");
        // A record sent before the key was held fails later.
        r.failed(1, "v", b"d", 6, b"a".to_vec(), t0);
        let mut order: Vec<usize> = Vec::new();
        while !r.is_empty() {
            let due = r.due().expect("due");
            let sent = resend_all(&mut r, due);
            assert_eq!(sent.len(), 1);
            order.extend(&sent);
            r.delivered(sent[0], due);
        }
        assert_eq!(order, vec![1, 2, 3]);
    }

    #[test]
    fn a_refused_resend_waits_and_other_keys_go_on() {
        let mut r = Retries::default();
        let t0 = Instant::now();
        r.failed(1, "v", b"d", 0, b"a".to_vec(), t0);
        r.failed(2, "v", b"e", 1, b"b".to_vec(), t0);
        let due = r.due().expect("due");
        let mut sent = Vec::new();
        let refused = r.resend(due, |_, key, _, tag| {
            if key == b"d" {
                Err(KafkaError::Canceled)
            } else {
                sent.push(tag);
                Ok(())
            }
        });
        assert_eq!((refused, sent), (1, vec![2]));
        assert!(r.due().expect("d waits") > due);
    }
}
