//! Property tests: every message survives encode → decode unchanged, and
//! decoding arbitrary bytes never panics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigil_schemas::{
    Contribution, DlqRecord, Message, ScoredAt, Telemetry, UnscoredReason, Verdict,
};

fn device_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,40}"
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        -1e6..1e6f64,
    ]
}

prop_compose! {
    fn telemetry()(
        device_id in device_id(),
        // The wire contract: seq and ts fit a signed 64-bit column.
        seq in 0..=vigil_schemas::telemetry::MAX_SEQ,
        ts in 0..=vigil_schemas::telemetry::MAX_TS,
        metrics in prop::collection::btree_map("[a-z_]{1,20}", finite(), 1..10),
        tags in prop::option::of(prop::collection::btree_map("[a-z]{1,8}", ".{0,20}", 0..4)),
        ingest_ts in prop::option::of(any::<u64>()),
    ) -> Telemetry {
        Telemetry { schema: 1, device_id, seq, ts, metrics, tags, ingest_ts, edge: None }
    }
}

prop_compose! {
    fn verdict()(
        device_id in device_id(),
        seq in any::<u64>(),
        event_ts in any::<u64>(),
        ingest_ts in prop::option::of(any::<u64>()),
        scored_ts in any::<u64>(),
        model in "[a-z]{1,10}",
        model_version in prop::option::of(1..u64::MAX),
        score in 0.0..=1.0f64,
        threshold in 0.0..=1.0f64,
        anomaly in any::<bool>(),
        contributions in prop::collection::vec(("[a-z_]{1,12}", 0.0..=1.0f64), 0..4),
        edge in any::<bool>(),
    ) -> Verdict {
        Verdict {
            alarm: None,
            schema: 1, device_id, seq, event_ts, ingest_ts, scored_ts, model,
            unscored: model_version.is_none().then_some(UnscoredReason::NoModel),
            model_version, score, threshold, anomaly,
            contributions: contributions.into_iter()
                .map(|(metric, share)| Contribution { metric, share }).collect(),
            scored_at: if edge { ScoredAt::Edge } else { ScoredAt::Cloud },
        }
    }
}

proptest! {
    #[test]
    fn telemetry_round_trips(t in telemetry()) {
        let bytes = t.encode().expect("encodes");
        prop_assert_eq!(Telemetry::decode(&bytes).expect("decodes"), t);
    }

    #[test]
    fn verdict_round_trips(v in verdict()) {
        let bytes = v.encode().expect("encodes");
        prop_assert_eq!(Verdict::decode(&bytes).expect("decodes"), v);
    }

    #[test]
    fn dlq_record_round_trips(original in prop::collection::vec(any::<u8>(), 0..200), reason in "[a-z_]{1,20}") {
        let record = DlqRecord::new("ingest", "mqtt:x".into(), &reason, "why".into(), 7, &original);
        let back = DlqRecord::decode(&record.encode().expect("encodes")).expect("decodes");
        prop_assert_eq!(back.original_bytes().expect("base64"), original);
        prop_assert_eq!(back, record);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Telemetry::decode(&bytes);
        let _ = Verdict::decode(&bytes);
    }

    #[test]
    fn mutated_telemetry_never_panics(t in telemetry(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = t.encode().expect("encodes");
        let i = at.index(bytes.len());
        bytes[i] = b;
        if let Err(e) = Telemetry::decode(&bytes) {
            prop_assert!(!e.reason().is_empty());
        }
    }
}

#[test]
fn metrics_keep_exact_values() {
    let mut metrics = BTreeMap::new();
    metrics.insert("x".to_owned(), 0.1 + 0.2);
    metrics.insert("tiny".to_owned(), f64::MIN_POSITIVE);
    let t = Telemetry::new("d", 1, 2, metrics);
    let back = Telemetry::decode(&t.encode().expect("encodes")).expect("decodes");
    assert_eq!(back.metrics["x"].to_bits(), (0.1f64 + 0.2).to_bits());
}
