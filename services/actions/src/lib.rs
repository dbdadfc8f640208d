//! `vigil actions`: the anomaly handler. Alarms become incidents, rules
//! turn incidents into commands to devices and webhook deliveries, and
//! every step is written to `vigil.incidents` so that a restart or a
//! redelivery never opens an incident twice or repeats an action.
//!
//! ```text
//! vigil.anomalies, vigil.verdicts ─► engine (incidents per device) ─► vigil.incidents
//! vigil.command-results ───────────────►  │ rules (TOML, SIGHUP reload)
//!                                         ▼
//!                     vigil/devices/{id}/commands (MQTT QoS 1) · webhooks (HTTP POST) ─► vigil.dlq
//! ```
//!
//! - [`config`]: flags and environment variables.
//! - [`rules`]: the rules file: matching, actions, suppressions.
//! - [`engine`]: incidents from verdicts, rules fired once per incident,
//!   cooldowns, the rate limit, recovery from the topic.
//! - `engine::results` ([`engine::Unjoined`]): devices' command results
//!   (`vigil.command-results`) joined to their commands' action records,
//!   overdue ones marked `timed_out`.
//! - [`summary`]: counts, top metrics, models and severity of an incident.
//! - [`dispatch`]: sending commands and webhooks, outcomes back;
//!   [`signing`]: the signature, deadline and sequence number every
//!   command carries.
//! - [`service`]: the run loop; [`run`] is the entry point.
//! - [`metrics`]: the role's Prometheus metrics.
//!
//! The operator's guide is `docs/actions.md`.

pub mod config;
pub mod dispatch;
pub mod engine;
pub mod metrics;
pub mod rules;
pub mod service;
pub mod signing;
pub mod summary;

pub use config::ActionsArgs;
pub use service::run;
