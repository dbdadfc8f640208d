//! Vigil's wire contract.
//!
//! Every message that crosses a process boundary — MQTT payloads from devices,
//! Kafka records between services, rows the audit store keeps — is one of the
//! types in this crate. Devices written in any language validate against the
//! JSON Schema files generated from these types (`schemas/json/`, kept fresh by
//! a test), and the CQL the audit store runs lives beside them in
//! `schemas/cql/`.
//!
//! Layout:
//! - [`topics`]: default Kafka and MQTT topic names, with a configurable prefix.
//! - [`telemetry`], [`verdict`], [`release`], [`status`], [`incident`],
//!   [`command`], [`signed_command`], [`dlq`]: one message type each.
//! - [`rules`]: the field rules (id and name limits, [`ValidationError`])
//!   the codec and every message type share.
//! - [`codec`]: the one decode path every message uses, with typed errors that
//!   say what is wrong and where.
//! - [`json_schema`]: the list of generated JSON Schema documents.
//!
//! Every message carries `"schema": 1`. Decoders accept unknown extra fields
//! (fields may be added, never renamed) but reject unknown schema versions.

pub mod codec;
pub mod command;
pub mod dlq;
pub mod incident;
pub mod json_schema;
pub mod release;
pub mod rules;
pub mod signed_command;
pub mod status;
pub mod telemetry;
pub mod topics;
pub mod verdict;

pub use codec::{DecodeError, Message};
pub use command::{CommandOutcome, CommandResult};
pub use dlq::DlqRecord;
pub use incident::{
    ActionKind, ActionRecord, ActionResult, ActionStatus, Incident, IncidentState, ModelRef,
    Severity,
};
pub use release::{ModelRelease, ReleaseHeader, TrainingWindow, ValidationMetrics};
pub use rules::ValidationError;
pub use signed_command::{CommandClaims, SignedCommand, SIGNED_COMMAND_CONTEXT};
pub use status::{DeviceState, DeviceStatus};
pub use telemetry::{EdgeScored, Telemetry, TelemetryLimits};
pub use topics::{KafkaTopics, MqttTopics};
pub use verdict::{Alarm, AlarmState, Contribution, ScoredAt, UnscoredReason, Verdict};

/// The schema version this build writes and the only one it reads.
pub const SCHEMA_VERSION: u32 = 1;
