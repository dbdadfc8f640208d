//! What an MQTT 5 PUBACK's reason code means for an uplink record, and the
//! per-reason counts of the records' messages the broker did not take.
//!
//! Only `Success` (0x00) removes a record from the queue. "No matching
//! subscribers" (0x10) is a success code in MQTT 5, but the broker dropped
//! the message: Mosquitto answers it, for instance, after a restart that
//! lost the ingest replicas' shared subscription, until they subscribe
//! again. Every other code is an error (≥ 0x80). None of them drops the
//! record: the queue keeps it and the uplink sends it again from the
//! queue's head after a backoff; what differs is how long it waits.

use std::sync::atomic::{AtomicU64, Ordering};

use rumqttc::v5::mqttbytes::v5::PubAckReason;
use serde::Serialize;

/// What the uplink does with a message the broker answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Delivered: the record may leave the queue.
    Delivered,
    /// Not delivered, and the next attempt may succeed soon (nobody
    /// subscribed yet, a quota, a broker hiccup): resend after the
    /// resend backoff, 1 s doubling up to `--reconnect-max-ms`.
    Retry,
    /// Refused by the broker's policy (not authorized, topic or payload
    /// refused): only an operator can cure it, so resending waits the
    /// longest delay at once and the refusal is logged as an error. The
    /// records stay queued (the queue's size bound drops the oldest, as
    /// during an outage, and counts them).
    Refused,
}

/// How the uplink treats `reason`.
pub(super) fn answer(reason: PubAckReason) -> Answer {
    match reason {
        PubAckReason::Success => Answer::Delivered,
        PubAckReason::NoMatchingSubscribers
        | PubAckReason::UnspecifiedError
        | PubAckReason::ImplementationSpecificError
        | PubAckReason::PacketIdentifierInUse
        | PubAckReason::QuotaExceeded => Answer::Retry,
        PubAckReason::NotAuthorized
        | PubAckReason::TopicNameInvalid
        | PubAckReason::PayloadFormatInvalid => Answer::Refused,
    }
}

/// The name a reason is counted and logged under.
pub fn reason_name(reason: PubAckReason) -> &'static str {
    match reason {
        PubAckReason::Success => "success",
        PubAckReason::NoMatchingSubscribers => "no_matching_subscribers",
        PubAckReason::UnspecifiedError => "unspecified_error",
        PubAckReason::ImplementationSpecificError => "implementation_specific_error",
        PubAckReason::NotAuthorized => "not_authorized",
        PubAckReason::TopicNameInvalid => "topic_name_invalid",
        PubAckReason::PacketIdentifierInUse => "packet_identifier_in_use",
        PubAckReason::QuotaExceeded => "quota_exceeded",
        PubAckReason::PayloadFormatInvalid => "payload_format_invalid",
    }
}

/// Uplink messages the broker answered with something other than success,
/// per reason (serialised as an object in `status.json`). Each was kept in
/// the queue and sent again.
#[derive(Debug, Default, Serialize)]
pub struct PubAckRefusals {
    /// 0x10: nothing subscribed to the topic; the broker dropped it.
    pub no_matching_subscribers: AtomicU64,
    /// 0x80.
    pub unspecified_error: AtomicU64,
    /// 0x83.
    pub implementation_specific_error: AtomicU64,
    /// 0x87: the broker's ACL refused the publish.
    pub not_authorized: AtomicU64,
    /// 0x90.
    pub topic_name_invalid: AtomicU64,
    /// 0x91.
    pub packet_identifier_in_use: AtomicU64,
    /// 0x97.
    pub quota_exceeded: AtomicU64,
    /// 0x99.
    pub payload_format_invalid: AtomicU64,
}

impl PubAckRefusals {
    fn counter(&self, reason: PubAckReason) -> Option<&AtomicU64> {
        Some(match reason {
            PubAckReason::Success => return None,
            PubAckReason::NoMatchingSubscribers => &self.no_matching_subscribers,
            PubAckReason::UnspecifiedError => &self.unspecified_error,
            PubAckReason::ImplementationSpecificError => &self.implementation_specific_error,
            PubAckReason::NotAuthorized => &self.not_authorized,
            PubAckReason::TopicNameInvalid => &self.topic_name_invalid,
            PubAckReason::PacketIdentifierInUse => &self.packet_identifier_in_use,
            PubAckReason::QuotaExceeded => &self.quota_exceeded,
            PubAckReason::PayloadFormatInvalid => &self.payload_format_invalid,
        })
    }

    /// Adds one to the count of `reason` (success is not counted here).
    pub fn count(&self, reason: PubAckReason) {
        if let Some(c) = self.counter(reason) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count of `reason`.
    pub fn get(&self, reason: PubAckReason) -> u64 {
        self.counter(reason)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [PubAckReason; 9] = [
        PubAckReason::Success,
        PubAckReason::NoMatchingSubscribers,
        PubAckReason::UnspecifiedError,
        PubAckReason::ImplementationSpecificError,
        PubAckReason::NotAuthorized,
        PubAckReason::TopicNameInvalid,
        PubAckReason::PacketIdentifierInUse,
        PubAckReason::QuotaExceeded,
        PubAckReason::PayloadFormatInvalid,
    ];

    #[test]
    fn only_success_delivers() {
        for reason in ALL {
            let delivered = answer(reason) == Answer::Delivered;
            assert_eq!(delivered, reason == PubAckReason::Success, "{reason:?}");
        }
        assert_eq!(answer(PubAckReason::NoMatchingSubscribers), Answer::Retry);
        assert_eq!(answer(PubAckReason::NotAuthorized), Answer::Refused);
    }

    #[test]
    fn refusals_are_counted_under_their_names() {
        let counts = PubAckRefusals::default();
        for reason in ALL {
            counts.count(reason);
        }
        counts.count(PubAckReason::NoMatchingSubscribers);
        assert_eq!(counts.get(PubAckReason::Success), 0);
        assert_eq!(counts.get(PubAckReason::NoMatchingSubscribers), 2);
        let json = serde_json::to_value(&counts).expect("json");
        for reason in &ALL[1..] {
            let expected = if *reason == PubAckReason::NoMatchingSubscribers {
                2
            } else {
                1
            };
            assert_eq!(json[reason_name(*reason)], expected, "{reason:?}");
        }
    }
}
