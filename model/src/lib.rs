//! Vigil's one feature/scoring implementation, shared by the trainer
//! (`vigil-training`), the cloud scorer (`vigil score`) and the edge agent
//! (`vigil-edge`), so a record scores the same everywhere. No tokio,
//! rdkafka or linfa: it builds for 32-bit ARM with rustc 1.85.
//!
//! Layout, following the data:
//! - [`features`]: per-device robust EW statistics and the feature vector
//!   (and the cold-start rule for devices never seen in training).
//! - [`table`]: the bounded per-device state table (CLOCK eviction).
//! - [`alarm`]: per-device hysteresis from scores to alarms (open,
//!   continue, close with one id).
//! - [`detector`]: fitted detector parameters; feature vector → score in
//!   [0, 1] and the metrics behind it.
//! - [`novelty`]: per-metric cell and step surprise, learnt per device.
//! - [`combine`]: the release's score and the novelty into one alert per
//!   record, each detector trusted alone on a device only while it does
//!   not cry wolf there, the drift watch ([`combine::drift`]) and the
//!   jump watch ([`combine::jump`]).
//! - [`model`]: a release payload compiled for scoring; the "training way"
//!   (batch over a stored stream) and the "scoring way" (record by record)
//!   run the same functions.
//! - [`payload`]: [`ReleasePayload`], what a release signs, and its format.
//! - [`release`]: [`sign`], [`verify`], typed errors with stable reason
//!   codes.
//! - [`keys`]: key files for `vigil models keygen` and the loaders.
//! - [`keyring`]: [`KeyRing`], the verify keys of a consumer by key id, with
//!   retired ids (key rotation).
//! - [`command_sig`]: signed cloud commands (sign, verify, the command
//!   key pair).
//! - [`scorer`]: [`Scorer`], which turns Telemetry into Verdicts and hot-swaps
//!   models between records.
//!
//! Determinism: the edge agent and the cloud produce byte-identical verdict
//! JSON for the same input and model. The arithmetic uses only IEEE 754
//! operations that round exactly (no libm transcendental functions), sums
//! run in a fixed order, scores are rounded to 6 decimals and shares to 4,
//! ties are broken by metric order, and serde_json prints floats with the
//! shortest round-trip representation (and, with `float_roundtrip`, parses
//! the signed payload's parameters back to the same bits).

pub mod alarm;
pub mod combine;
pub mod command_sig;
pub mod detector;
pub mod features;
pub mod keyring;
pub mod keys;
pub mod model;
pub mod novelty;
pub mod payload;
pub mod release;
pub mod scorer;
pub mod table;

pub use alarm::{AlarmPolicy, AlarmPolicyError, AlarmStep, AlarmTrack};
pub use command_sig::{
    command_keygen, sign_command, verify_command, CommandRefusal, VerifiedCommand,
};
pub use detector::{Detector, Score};
pub use features::{DeviceState, Extractor, FeatureSpec, MetricSpec};
pub use keyring::{load_key_ring, KeyRing, KeyStatus};
pub use keys::{key_id, keygen, load_signing_key, load_verify_key, GeneratedKeys, KeyError};
pub use model::{Model, ModelError, RecordScore, Scratch};
pub use novelty::{MetricNovelty, NoveltyConfig, NoveltyState};
pub use payload::{ReleasePayload, PAYLOAD_FORMAT};
pub use release::{
    check_newer, decode_and_verify, sign, verify, ReleaseError, VerifiedModel, VerifyKeys,
};
pub use scorer::{InstallError, Installed, Scorer, ScorerStats, StateCarry};
pub use table::DeviceTable;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
