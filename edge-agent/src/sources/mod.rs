//! Where the agent's samples come from, one file per source:
//!
//! - [`HostSensors`] (`host.rs`): the host's own health, the realistic case
//!   on a Raspberry Pi class gateway (/proc and /sys).
//! - [`SimSource`] (`sim.rs`): one simulated pump with injected anomalies;
//!   only with the cargo feature `sim` (the demo turns it on).
//! - [`LineSource`] (`lines.rs`): JSON lines on stdin, and [`CsvSource`]
//!   (`csv_file.rs`): a CSV file with a header of metric names. For
//!   replays and tests.
//!
//! This file holds what they share: a source yields a [`Sample`] (metrics
//! and optionally the event time; the agent stamps its own device id and
//! `seq`), and [`Source`] is the configured one. Bad input lines are logged
//! with their line number and skipped.

use std::collections::BTreeMap;

use crate::config::{RunArgs, SourceKind};

mod csv_file;
mod host;
mod lines;
mod sim;

pub use csv_file::CsvSource;
pub use host::HostSensors;
pub use lines::{LineSource, MAX_LINE_BYTES};
pub use sim::SimSource;

/// One reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Event time, ms since the Unix epoch; the agent's clock when None.
    pub ts: Option<u64>,
    /// Metric name → value.
    pub metrics: BTreeMap<String, f64>,
    /// Labels to pass on.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Why a source cannot produce samples.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// A configured source.
#[derive(Debug)]
pub enum Source {
    /// The host's sensors.
    Host(HostSensors),
    /// A simulated device.
    Sim(SimSource),
    /// JSON lines on stdin.
    Stdin(LineSource<tokio::io::BufReader<tokio::io::Stdin>>),
    /// A CSV file.
    Csv(CsvSource),
}

impl Source {
    /// Builds the source `args` select; fails early on what can be checked
    /// now (CSV header, simulator config).
    pub fn open(args: &RunArgs) -> Result<Source, SourceError> {
        Ok(match args.source {
            SourceKind::Host => Source::Host(HostSensors::new()),
            SourceKind::Sim => Source::Sim(SimSource::new(args)?),
            SourceKind::Stdin => Source::Stdin(LineSource::new(
                tokio::io::BufReader::new(tokio::io::stdin()),
                "stdin",
            )),
            SourceKind::Csv => {
                let path = args
                    .csv_file
                    .clone()
                    .ok_or_else(|| SourceError::Config("--source csv needs --csv-file".into()))?;
                Source::Csv(CsvSource::open(&path)?)
            }
        })
    }

    /// The next sample, or None when the input ended. Bad input is logged
    /// and skipped; only unrecoverable read errors are returned.
    pub async fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        match self {
            Source::Host(h) => h.read().map(Some),
            Source::Sim(s) => Ok(Some(s.next())),
            Source::Stdin(l) => l.next().await,
            Source::Csv(c) => c.next(),
        }
    }

    /// Whether samples are paced by the sampling interval even when the
    /// interval is 0 (live sources always are).
    pub fn is_live(&self) -> bool {
        matches!(self, Source::Host(_) | Source::Sim(_))
    }
}
