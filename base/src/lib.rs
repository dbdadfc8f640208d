//! The light plumbing every Vigil program shares, the device agent
//! included: nothing here links Kafka, a database or an HTTP server.
//!
//! - [`config`]: flag groups with `VIGIL_*` environment variables (logging,
//!   MQTT) and small value parsers.
//! - [`key_file`]: the permission check every private key file passes.
//! - [`logging`]: `tracing` output on stderr, human or JSON.
//! - [`mqtt`]: `mqtt://` / `mqtts://` URLs, credentials and the TLS
//!   transport of an MQTT client.
//! - [`redact`]: passwords kept out of printed URLs.
//! - [`shutdown`]: the one cancellation signal every task selects on.
//!
//! `vigil-service` (the cloud services' plumbing) re-exports all of it.

pub mod config;
pub mod duration;
pub mod error_text;
pub mod key_file;
pub mod logging;
pub mod mqtt;
pub mod redact;
pub mod shutdown;

pub use error_text::error_text;
pub use shutdown::Shutdown;

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
