//! The scoring loop against a fake producer that fails chosen deliveries:
//! every device's verdicts must reach `vigil.verdicts` in the order the
//! device sent them, failures and retries included.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use clap::Parser;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{OwnedMessage, Timestamp};
use vigil_schemas::{Message as _, Verdict};
use vigil_service::config::KafkaArgs;

use super::Scoring;
use crate::delivery::{Deliveries, Failed, Produce};

/// What the fake broker holds and which deliveries it fails.
#[derive(Debug, Default)]
struct Broker {
    /// Records appended, per topic, in order.
    log: Vec<(String, Vec<u8>)>,
    /// (device, seq) of verdicts to fail, and how many times.
    fail: HashMap<(String, u64), u32>,
    /// (device, seq) of verdicts refused for good (too large).
    refuse: HashSet<(String, u64)>,
    /// Refuse every DLQ record for good (not authorised).
    refuse_dlq: bool,
}

/// A producer that confirms or fails each record at once through the
/// delivery outcomes, as librdkafka's delivery callback does.
#[derive(Debug, Clone)]
struct FakeProducer {
    broker: Arc<Mutex<Broker>>,
    deliveries: Arc<Deliveries>,
    verdicts: String,
}

impl Produce for FakeProducer {
    fn produce(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        tag: usize,
    ) -> Result<(), KafkaError> {
        let mut broker = self.broker.lock().expect("broker lock");
        let refuse = |code| {
            let error = KafkaError::MessageProduction(code);
            self.deliveries
                .failed(Failed::new(tag, topic, key, payload, error));
            Ok(())
        };
        if topic == "vigil.dlq" && broker.refuse_dlq {
            return refuse(RDKafkaErrorCode::TopicAuthorizationFailed);
        }
        if topic == self.verdicts {
            let v = Verdict::decode(payload).expect("a verdict");
            if broker.refuse.contains(&(v.device_id.clone(), v.seq)) {
                return refuse(RDKafkaErrorCode::MessageSizeTooLarge);
            }
            if let Some(left) = broker.fail.get_mut(&(v.device_id, v.seq)) {
                if *left > 0 {
                    *left -= 1;
                    let error = KafkaError::MessageProduction(RDKafkaErrorCode::RequestTimedOut);
                    self.deliveries
                        .failed(Failed::new(tag, topic, key, payload, error));
                    return Ok(());
                }
            }
        }
        broker.log.push((topic.to_owned(), payload.to_vec()));
        self.deliveries.delivered(tag);
        Ok(())
    }
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn telemetry(offset: i64, device: &str, seq: u64) -> OwnedMessage {
    let payload = format!(
        r#"{{"schema":1,"device_id":"{device}","seq":{seq},"ts":{},"metrics":{{"t":1.5}}}}"#,
        1_795_446_981_000 + seq
    );
    OwnedMessage::new(
        Some(payload.into_bytes()),
        Some(device.as_bytes().to_vec()),
        "vigil.telemetry".into(),
        Timestamp::NotAvailable,
        0,
        offset,
        None,
    )
}

#[tokio::test]
async fn a_failed_delivery_keeps_the_device_order_on_verdicts() {
    let kafka = Flags::parse_from(["test"]).kafka;
    let deliveries = Arc::new(Deliveries::default());
    let broker = Arc::new(Mutex::new(Broker::default()));
    {
        let mut b = broker.lock().expect("broker lock");
        // A transient failure for one of pump-1's verdicts (twice), and
        // one for the verdict right after it.
        b.fail.insert(("pump-1".into(), 2), 2);
        b.fail.insert(("pump-1".into(), 3), 1);
    }
    let producer = FakeProducer {
        broker: broker.clone(),
        deliveries: deliveries.clone(),
        verdicts: kafka.topics().verdicts,
    };
    let mut scoring = Scoring::for_test(producer, deliveries, kafka);

    let mut offset = 0;
    for seq in 1..=6 {
        for device in ["pump-1", "pump-2"] {
            scoring.process(&telemetry(offset, device, seq)).await;
            offset += 1;
            // The loop applies waiting outcomes before it reads on.
            scoring.settle();
        }
    }
    let drained = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !scoring.ledger.is_empty() {
            scoring.next_outcomes().await;
        }
    })
    .await;
    assert!(drained.is_ok(), "verdicts still unconfirmed");

    let broker = broker.lock().expect("broker lock");
    let verdicts = scoring.topics.verdicts.clone();
    let mut per_device: HashMap<String, Vec<u64>> = HashMap::new();
    for (topic, payload) in &broker.log {
        if *topic == verdicts {
            let v = Verdict::decode(payload).expect("a verdict");
            per_device.entry(v.device_id).or_default().push(v.seq);
        }
    }
    assert_eq!(per_device["pump-1"], vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(per_device["pump-2"], vec![1, 2, 3, 4, 5, 6]);
    assert!(broker.fail.values().all(|&left| left == 0));
}

/// Scores `records` and waits until every one is settled.
async fn run_through(scoring: &mut Scoring<FakeProducer>, records: &[OwnedMessage]) {
    for record in records {
        scoring.process(record).await;
        scoring.settle();
    }
    let drained = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !scoring.ledger.is_empty() {
            scoring.next_outcomes().await;
        }
    })
    .await;
    assert!(drained.is_ok(), "records still unsettled: an endless retry");
}

fn setup(configure: impl FnOnce(&mut Broker)) -> (Scoring<FakeProducer>, Arc<Mutex<Broker>>) {
    let kafka = Flags::parse_from(["test"]).kafka;
    let deliveries = Arc::new(Deliveries::default());
    let broker = Arc::new(Mutex::new(Broker::default()));
    configure(&mut broker.lock().expect("broker lock"));
    let producer = FakeProducer {
        broker: broker.clone(),
        deliveries: deliveries.clone(),
        verdicts: kafka.topics().verdicts,
    };
    (Scoring::for_test(producer, deliveries, kafka), broker)
}

#[tokio::test]
async fn a_verdict_kafka_refuses_for_good_goes_to_the_dlq() {
    let (mut scoring, broker) = setup(|b| {
        b.refuse.insert(("pump-1".into(), 2));
    });
    let records: Vec<OwnedMessage> = (1..=4)
        .map(|seq| telemetry(seq as i64, "pump-1", seq))
        .collect();
    run_through(&mut scoring, &records).await;

    let broker = broker.lock().expect("broker lock");
    let verdicts: Vec<u64> = broker
        .log
        .iter()
        .filter(|(t, _)| *t == scoring.topics.verdicts)
        .map(|(_, p)| Verdict::decode(p).expect("a verdict").seq)
        .collect();
    assert_eq!(verdicts, vec![1, 3, 4], "the others went on");
    let dlq: Vec<vigil_schemas::DlqRecord> = broker
        .log
        .iter()
        .filter(|(t, _)| *t == scoring.topics.dlq)
        .map(|(_, p)| vigil_schemas::DlqRecord::decode(p).expect("a dlq record"))
        .collect();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].reason, "kafka_refused");
    assert!(
        dlq[0].detail.contains("too large") || dlq[0].detail.contains("MessageSizeTooLarge"),
        "{}",
        dlq[0].detail
    );
    let original = Verdict::decode(&dlq[0].original_bytes().expect("base64")).expect("verdict");
    assert_eq!(original.seq, 2);
    // Every record settled: the offsets move past the refused one.
    assert_eq!(
        scoring.ledger.take_confirmed().collect::<Vec<_>>(),
        vec![(0, 4)]
    );
}

#[tokio::test]
async fn a_dlq_record_kafka_refuses_for_good_is_counted_not_retried() {
    let (mut scoring, broker) = setup(|b| b.refuse_dlq = true);
    let bad = OwnedMessage::new(
        Some(b"{not json".to_vec()),
        Some(b"pump-1".to_vec()),
        "vigil.telemetry".into(),
        Timestamp::NotAvailable,
        0,
        1,
        None,
    );
    run_through(&mut scoring, &[bad, telemetry(2, "pump-1", 1)]).await;
    assert_eq!(
        scoring
            .metrics
            .rejected
            .with_label_values(&["dlq_refused"])
            .get(),
        1
    );
    let broker = broker.lock().expect("broker lock");
    assert_eq!(broker.log.len(), 1, "the valid record's verdict only");
}
