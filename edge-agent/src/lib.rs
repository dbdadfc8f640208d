//! `vigil-edge`: Vigil's device agent, for ARM boards of the Raspberry Pi
//! class (and any Linux host). It scores every sample on the device with the
//! same `vigil-model` code the cloud scorer runs, takes new models pushed
//! over MQTT, keeps working without the network, and acts locally on
//! anomalies. No Kafka client and no OpenSSL: MQTT is rumqttc with rustls
//! (ring).
//!
//! Layout, following a sample:
//! - [`config`]: flags, `VIGIL_*` variables, the TOML config file,
//!   validation.
//! - [`sources`]: host sensors (/proc, /sys), a simulated device (cargo
//!   feature `sim`, off by default), JSON lines, CSV.
//! - [`sampler`]: stamps, scores and queues each sample; [`seq`]: the
//!   durable sequence-number reservation that survives power loss.
//! - [`queue`]: the on-disk store-and-forward queue (checksummed, bounded,
//!   crash-safe); [`record`]: what one queue record holds.
//! - [`uplink`]: MQTT: drains the queue with acknowledgements and a rate
//!   limit, receives releases and commands, publishes the retained status.
//! - [`models`]: verifies, persists and hands over pushed releases.
//! - [`commands`]: verifies signed cloud commands and keeps the replay
//!   high-water mark; [`action`]: runs the local corrective action and
//!   cloud commands.
//! - [`status`]: the DeviceStatus and `status.json`.
//! - [`agent`]: wires them together ([`agent::run`]).
//! - [`score`]: the offline `vigil-edge score`; [`check`]: `--check`.
//!
//! Logging, the shutdown signal, the MQTT flags and URL parsing are
//! `vigil-base`'s, shared with the cloud services (no Kafka in it).
//!
//! There is no HTTP server on the device (see [`status`] for why and what
//! replaces it).

pub mod action;
pub mod agent;
pub mod check;
pub mod commands;
pub mod config;
/// Duration flags (`30s`, `10m`, or a plain number in the flag's unit).
pub use vigil_base::duration;
pub mod fsutil;
pub mod models;
pub mod queue;
pub mod record;
pub mod sampler;
pub mod score;
pub mod seq;
pub mod sources;
pub mod status;
pub mod uplink;

pub use vigil_base::now_ms;
