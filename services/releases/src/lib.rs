//! Models as data: Vigil's model releases on the compacted `vigil.models`
//! topic, keyed by model name.
//!
//! - [`load`] reads the whole topic once (trainer, `vigil models`).
//! - [`Lineage`] applies the rule every consumer shares: releases are taken
//!   in log order; one is accepted only when it verifies against the
//!   configured key ring (the key its key id names, not retired) and is newer than the one accepted before it. The
//!   newest accepted release is *live*.
//! - [`feed::follow`] follows the topic for a scorer or `vigil push`: it
//!   verifies off the hot path and hands over each newly accepted model,
//!   starting from the release it kept on disk ([`kept`]) when it has one.
//! - [`publish`] writes a signed release.
//! - [`ReleasesError`]: what can go wrong, as one typed enum.
//!
//! The `vigil models` operator commands use this library from the `vigil`
//! binary; they are not part of it, so the scorer does not link them.

pub mod feed;
pub mod kept;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use vigil_model::{KeyRing, ReleaseError, VerifiedModel, VerifyKeys};
use vigil_schemas::codec::EncodeError;
use vigil_schemas::release::MAX_RELEASE_BYTES;
use vigil_schemas::{Message, ModelRelease};
use vigil_service::config::KafkaArgs;
use vigil_service::from_start::{self, LogRecord, ReadError, TopicError};
use vigil_service::kafka;

/// Why reading, following or publishing releases failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleasesError {
    /// Reading the whole release log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The release topic could not be looked up or assigned.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The feed's consumer could not be created.
    #[error("creating the model feed consumer: {0}")]
    Consumer(#[source] KafkaError),
    /// The release kept on disk cannot be read or is not usable.
    #[error(transparent)]
    Kept(#[from] crate::kept::KeptError),
    /// A blocking Kafka task panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The release could not be encoded.
    #[error("encoding the release: {0}")]
    Encode(#[from] EncodeError),
    /// Kafka did not confirm the release (`release` names it: model,
    /// version, topic).
    #[error("publishing {release}: {source}")]
    Publish {
        release: String,
        #[source]
        source: KafkaError,
    },
}

/// Most releases `load` reads; a compacted topic holds about one per model
/// name, so this only guards against a misconfigured topic.
pub const MAX_LOG_RECORDS: usize = 100_000;

/// A record of `vigil.models` with its decoded envelope.
#[derive(Debug)]
pub struct Published {
    /// Where it sits in the log.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// When Kafka received it, ms since the Unix epoch.
    pub published_ms: Option<i64>,
    /// The envelope, or why it could not be read.
    pub release: Result<ModelRelease, ReleaseError>,
}

impl Published {
    /// Decodes a log record (tombstones and oversized records are errors).
    pub fn from_record(record: &LogRecord) -> Self {
        let release = match &record.payload {
            None => Err(ReleaseError::Malformed("tombstone (no value)".into())),
            Some(bytes) => decode_envelope(bytes),
        };
        Published {
            partition: record.partition,
            offset: record.offset,
            published_ms: record.timestamp_ms,
            release,
        }
    }

    /// Model name and version when the envelope decoded.
    pub fn name_version(&self) -> Option<(&str, u64)> {
        self.release
            .as_ref()
            .ok()
            .map(|r| (r.model.as_str(), r.version))
    }
}

/// Decodes a release envelope without verifying it.
pub fn decode_envelope(bytes: &[u8]) -> Result<ModelRelease, ReleaseError> {
    if bytes.len() > MAX_RELEASE_BYTES {
        return Err(ReleaseError::TooLarge { size: bytes.len() });
    }
    ModelRelease::decode(bytes).map_err(ReleaseError::Decode)
}

/// Reads all of `vigil.models` (blocking work on a blocking thread), in
/// log order per partition.
pub async fn load(args: &KafkaArgs, timeout: Duration) -> Result<Vec<Published>, ReleasesError> {
    let args = args.clone();
    let topic = args.topics().models;
    let records = tokio::task::spawn_blocking(move || {
        from_start::read_to_end(
            &args,
            &topic,
            "vigil-models-reader",
            timeout,
            MAX_LOG_RECORDS,
        )
    })
    .await
    .map_err(|_| ReleasesError::Panicked("model log reader"))??;
    let mut list: Vec<Published> = records.iter().map(Published::from_record).collect();
    // Per partition the order is the log's; across partitions (a model
    // name always lands in one) any stable order will do.
    list.sort_by_key(|p| (p.partition, p.offset));
    Ok(list)
}

/// Highest version any decodable envelope of `model` carries, verified or
/// not (what `vigil models list` shows as newest).
pub fn max_version(list: &[Published], model: &str) -> Option<u64> {
    list.iter()
        .filter_map(Published::name_version)
        .filter(|(name, _)| *name == model)
        .map(|(_, v)| v)
        .max()
}

/// Why no next version can be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NextVersionError {
    #[error("model {model}: version {version} is the largest there is; no release can follow it")]
    Overflow { model: String, version: u64 },
}

/// The version the trainer gives its next release of `model`: one above
/// the highest release that verifies with `keys` (1 when none does). An
/// envelope that does not verify — forged, garbage, another key's, a
/// retired key's — does not move it, so a forged `u64::MAX` cannot block
/// every future release; such envelopes are returned, with their versions,
/// to be reported. During a key rotation `keys` holds the old key too, so
/// the first release signed by the new key continues the old numbering.
pub fn next_version<K: VerifyKeys + ?Sized>(
    list: &[Published],
    model: &str,
    keys: &K,
) -> Result<(u64, Vec<(u64, ReleaseError)>), NextVersionError> {
    let mut highest = 0u64;
    let mut ignored = Vec::new();
    for release in list.iter().filter_map(|p| p.release.as_ref().ok()) {
        if release.model != model {
            continue;
        }
        match vigil_model::verify(release, keys) {
            Ok(_) => highest = highest.max(release.version),
            Err(e) => ignored.push((release.version, e)),
        }
    }
    let next = highest
        .checked_add(1)
        .ok_or_else(|| NextVersionError::Overflow {
            model: model.to_owned(),
            version: highest,
        })?;
    Ok((next, ignored))
}

/// What happened to one release offered to a [`Lineage`].
#[derive(Debug)]
pub enum Offer {
    /// Verified and newer: now live.
    Accepted(Arc<VerifiedModel>),
    /// Another model's release.
    OtherModel,
    /// Refused; the live model stays.
    Rejected(ReleaseError),
}

/// The accept rule every consumer of `vigil.models` applies (see the crate
/// docs).
#[derive(Debug)]
pub struct Lineage {
    model: String,
    keys: KeyRing,
    live: Option<Arc<VerifiedModel>>,
}

impl Lineage {
    /// A lineage of `model` releases signed by a key of `keys` (one
    /// `VerifyingKey` or a `KeyRing`).
    pub fn new(model: impl Into<String>, keys: impl Into<KeyRing>) -> Self {
        Lineage {
            model: model.into(),
            keys: keys.into(),
            live: None,
        }
    }

    /// The keys releases are verified with.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The live release, if any.
    pub fn live(&self) -> Option<&Arc<VerifiedModel>> {
        self.live.as_ref()
    }

    /// Offers the raw bytes of a record of `vigil.models`.
    pub fn offer_bytes(&mut self, bytes: Option<&[u8]>) -> Offer {
        let release = match bytes {
            None => Err(ReleaseError::Malformed("tombstone (no value)".into())),
            Some(b) => decode_envelope(b),
        };
        match release {
            Ok(r) => self.offer(&r),
            Err(e) => Offer::Rejected(e),
        }
    }

    /// Offers a decoded envelope.
    pub fn offer(&mut self, release: &ModelRelease) -> Offer {
        if release.model != self.model {
            return Offer::OtherModel;
        }
        // Signature before version: a forged release is reported as forged,
        // whatever version it claims.
        let model = match vigil_model::verify(release, &self.keys) {
            Ok(model) => model,
            Err(e) => return Offer::Rejected(e),
        };
        let current = self.live.as_ref().map(|m| m.version());
        if let Err(e) = vigil_model::check_newer(&self.model, current, release.version) {
            return Offer::Rejected(e);
        }
        let model = Arc::new(model);
        self.live = Some(model.clone());
        Offer::Accepted(model)
    }
}

/// Publishes `release` to `topic` keyed by its model name and waits for
/// Kafka's confirmation; returns (partition, offset).
pub async fn publish(
    producer: &FutureProducer<kafka::VigilContext>,
    topic: &str,
    release: &ModelRelease,
    timeout: Duration,
) -> Result<(i32, i64), ReleasesError> {
    let bytes = release.encode()?;
    let record = FutureRecord::to(topic).key(&release.model).payload(&bytes);
    let delivery = producer
        .send(record, timeout)
        .await
        .map_err(|(source, _)| ReleasesError::Publish {
            release: format!("{} v{} to {topic}", release.model, release.version),
            source,
        })?;
    Ok((delivery.partition, delivery.offset))
}
