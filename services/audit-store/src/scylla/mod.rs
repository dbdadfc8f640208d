//! The production audit store: ScyllaDB or Apache Cassandra through the
//! `scylla` driver.
//!
//! - **Schema.** `schemas/cql/audit.cql` (plain CQL for Cassandra 4/5 and
//!   ScyllaDB 5+), run statement by statement at start-up after `CREATE
//!   KEYSPACE IF NOT EXISTS` with the configured replication; every
//!   statement is `IF NOT EXISTS`, so migration is idempotent.
//! - **Conflicts.** Upserts would silently write a different record over
//!   a stored one with the same key (a reused `seq`), so each verdict's key
//!   is read in `verdicts_by_record` first: a stored row with another event
//!   time makes the verdict a [`Conflict`](crate::Conflict), left out and
//!   returned. The cost is one single-partition read per verdict (at the
//!   write consistency, concurrently); a replay of the same record passes.
//! - **Writes.** Prepared statements only, marked idempotent (every insert
//!   is an upsert of the same values), so the driver may retry them. Each
//!   verdict becomes rows in several tables; the rows are grouped by
//!   partition ([`group_by_partition`](rows::group_by_partition)) and each group of two or more goes
//!   as one *unlogged* batch: a single-partition batch is applied
//!   atomically by one replica set at the cost of one write, whereas a
//!   multi-partition batch would make its coordinator fan out and is the
//!   classic Cassandra anti-pattern. Groups run concurrently (bounded).
//! - **Routing.** The default load-balancing policy is token-aware (and
//!   shard-aware on ScyllaDB): prepared statements carry their partition
//!   key, so each request goes straight to a replica.
//! - **Consistency** is configurable (default `LOCAL_QUORUM`); the retry
//!   policy is the driver's default (retry idempotent requests on another
//!   node after a broken connection, overload or one unavailable error).
//!   A batch that still fails is returned to the sink, which retries the
//!   whole batch with backoff and commits no offset until it succeeds.
//! - **Reads.** Range queries walk a device's day partitions newest first
//!   (only days that exist, from `device_days`), each a multi-column slice
//!   on the descending clustering key, until the page is full.
//!
//! - **TLS.** `?tls=1&tls_ca=…` on the URI ([`ScyllaTls`]) runs CQL over
//!   rustls (the driver's `rustls-023` backend), with an optional client
//!   certificate; the user name and password then travel encrypted.
//!
//! Files: [`cql`] (schema and statement text), [`rows`] (partitions,
//! rows and batches as driver values), [`tls`] (the rustls
//! configuration), `session.rs` (connect, prepare, send, read),
//! `store.rs` (the [`Store`](crate::Store) impl).

/// A driver error as a [`StoreError`], saying what was being done.
fn scylla_err(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StoreError {
    move |e| StoreError::Scylla {
        what,
        detail: e.to_string(),
    }
}

/// `$e` with its driver error mapped by [`scylla_err`]; defined before
/// the files that use it.
macro_rules! cql {
    ($what:literal, $e:expr) => {
        $e.map_err(|e| scylla_err($what)(&e))
    };
}

pub mod cql;
pub mod rows;
mod session;
mod store;
#[cfg(test)]
mod tests;
pub mod tls;

use std::time::Duration;

pub use scylla::statement::Consistency;
pub use session::ScyllaStore;

use crate::uri::ScyllaTls;
use crate::StoreError;

/// A password: its debug output is `***`, so printing the options never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl std::str::FromStr for Password {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Password(s.to_owned()))
    }
}

/// A user name without a password, or a password without a user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("VIGIL_AUDIT_SCYLLA_USERNAME and VIGIL_AUDIT_SCYLLA_PASSWORD go together")]
pub struct HalfCredentials;

/// [`ScyllaOptions::credentials`] from a user name and a password given
/// separately (flags or environment): both or neither.
pub fn credentials(
    username: Option<&String>,
    password: Option<&Password>,
) -> Result<Option<(String, String)>, HalfCredentials> {
    match (username, password) {
        (Some(u), Some(p)) => Ok(Some((u.clone(), p.0.clone()))),
        (None, None) => Ok(None),
        _ => Err(HalfCredentials),
    }
}

/// Options of the Scylla backend (flags of `vigil audit`). Its debug
/// output leaves the password out.
#[derive(Clone)]
pub struct ScyllaOptions {
    /// CQL map literal for `CREATE KEYSPACE … WITH replication = …`.
    pub replication: String,
    /// Consistency of every read and write.
    pub consistency: Consistency,
    /// TTL of verdict rows, seconds; 0 keeps them forever.
    pub ttl_secs: u32,
    /// Client-side timeout of one request.
    pub request_timeout: Duration,
    /// User name and password, when the cluster requires them.
    pub credentials: Option<(String, String)>,
    /// TLS to every node, from the URI; `None` for plain CQL.
    pub tls: Option<ScyllaTls>,
    /// Let the group of the TLS client key file read it
    /// ([`tls::ALLOW_SHARED_KEY_FLAG`]).
    pub allow_shared_key: bool,
    /// Longest a connection to one node may take to open (TCP, TLS and
    /// the CQL handshake).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ScyllaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaOptions")
            .field("replication", &self.replication)
            .field("consistency", &self.consistency)
            .field("ttl_secs", &self.ttl_secs)
            .field("request_timeout", &self.request_timeout)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .field("allow_shared_key", &self.allow_shared_key)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".into(),
            consistency: Consistency::LocalQuorum,
            ttl_secs: 0,
            request_timeout: Duration::from_secs(10),
            credentials: None,
            tls: None,
            allow_shared_key: false,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Parses a consistency level name (`local_quorum`, `QUORUM`, `one`, …).
pub fn parse_consistency(s: &str) -> Result<Consistency, String> {
    Ok(match s.to_ascii_uppercase().replace('-', "_").as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        other => {
            return Err(format!(
                "unknown consistency {other:?}; one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE, ANY"
            ))
        }
    })
}
