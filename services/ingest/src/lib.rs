//! `vigil ingest`: moves device telemetry from MQTT into Kafka.
//!
//! ```text
//! devices ──MQTT QoS1──► broker ──$share/<group>/vigil/devices/+/telemetry──► ingest
//!                                                                              │ validate
//!                         ack (PUBACK) only after Kafka confirmed ◄────────────┤
//!                                                      vigil.telemetry ◄───────┤ valid, key=device_id
//!                                                      vigil.dlq ◄─────────────┘ invalid, key=source
//! ```
//!
//! - [`config`]: flags and environment variables.
//! - [`validate`]: what makes a message acceptable (pure, benchmarked).
//! - [`service`]: [`run`]: endpoints, topics, producer, adoptions, then
//!   the pipeline until shutdown.
//! - [`pipeline`]: the run loop: MQTT event loop task → bounded window of
//!   in-order Kafka deliveries → PUBACKs in arrival order.
//! - [`metrics`]: the service's Prometheus metrics.
//! - [`adopt`]: `--adopt-session`: taking over a departed replica's
//!   persistent session so nothing stays stranded in it.
//!
//! Delivery guarantee: at-least-once. A message is acknowledged to the MQTT
//! broker only after Kafka confirmed the write of the record (or of its DLQ
//! record), so a crash loses nothing: the broker redelivers whatever was not
//! acknowledged. Flow control is the MQTT 5 receive maximum: the broker never
//! has more than `--max-in-flight` unacknowledged messages out to this
//! client, so when Kafka is slow or down ingest stops receiving instead of
//! buffering, and resumes when deliveries complete.

pub mod adopt;
pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod service;
pub mod validate;

pub use config::IngestArgs;
pub use service::run;
