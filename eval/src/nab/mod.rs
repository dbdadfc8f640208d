//! The Numenta Anomaly Benchmark's scoring, reimplemented.
//!
//! NAB is the public yardstick for streaming anomaly detectors: 58 labelled
//! series, anomaly *windows* instead of points, rewards for detecting early
//! inside a window, costs for false alarms and missed windows, three
//! profiles that weigh those differently, and a per-profile threshold tuned
//! over the whole corpus. Vigil uses it to put a comparable number on its
//! detector: `vigil-eval nab` runs the detector over the corpus (online,
//! row by row) and scores the result here; `--score-only` scores existing
//! results, including the published ones, which is how this implementation
//! is checked against NAB's own numbers.
//!
//! - [`labels`]: windows per file and the scoring profiles.
//! - [`sweep`]: the scoring rule and the threshold optimiser.
//! - [`files`]: NAB's data and results layouts on disk.
//! - [`report`]: scoring a results directory and writing `scores.json`.
//! - [`inject`]: the tuning half with anomalies injected, recall evidence
//!   that needs no held-out file.
//!
//! A runner that produces scores itself builds one [`FileScores`] per corpus
//! file and calls [`score_detector`]; [`write_result_file`] writes them in
//! NAB's layout so NAB's reference scorer can check them too.

use std::path::{Path, PathBuf};

pub mod files;
pub mod gated;
pub mod inject;
pub mod labels;
pub mod release;
pub mod report;
pub mod run;
pub mod sweep;
mod timestamp;

pub use files::{load_data_dir, read_detector_results, result_path, write_result_file, DataFile};
pub use labels::{CostMatrix, Labels, Profile, Window};
pub use report::{
    score_detector, score_results, DetectorScore, ProfileScore, Report, ScoreOptions,
};
pub use run::{
    detect, detect_novelty, detect_novelty_with, probation_rows, run, DetectError, DetectorConfig,
    Family, InputRange, ReleaseOverride, Retrain, RunOptions, ScoreMap, Subset,
    NAB_FALSE_ALARM_RATE, REFRACTORY_ROWS, SPLIT,
};
pub use sweep::{Corpus, Counts, FileScore, FileScores, ThresholdScore};
pub use timestamp::Timestamp;

/// Why a NAB input could not be read or scored.
///
/// Each message ends with its cause's own text, so no variant reports the
/// cause again as its `source()`: a chain printer (`vigil-eval`'s `{:#}`)
/// would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("reading {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("writing {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("parsing json{}: {cause}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Json {
        path: Option<PathBuf>,
        cause: serde_json::Error,
    },
    #[error("reading csv {path}: {cause}")]
    Csv { path: PathBuf, cause: csv::Error },
    #[error("{path} line {line}: {why}")]
    BadRow {
        path: PathBuf,
        line: u64,
        why: String,
    },
    #[error("{path}: header has no {column:?} column")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("timestamp {value:?} is not YYYY-MM-DD HH:MM:SS[.ffffff]")]
    Timestamp { value: String },
    #[error("labels for {file}: window {start} .. {end} {why}")]
    BadWindow {
        file: String,
        start: String,
        end: String,
        why: &'static str,
    },
    #[error("profiles{}: {why}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Profiles { path: Option<PathBuf>, why: String },
    #[error("{file}: not in the labels file, so it cannot be scored")]
    Unlabelled { file: String },
    #[error("{file}: window edge {edge} is not a timestamp of the file")]
    WindowEdgeMissing { file: String, edge: String },
    #[error("{file}: {scores} anomaly scores for {rows} rows")]
    LengthMismatch {
        file: String,
        scores: usize,
        rows: usize,
    },
    #[error("{file} row {row}: anomaly score {value} is not a finite number")]
    NonFiniteScore {
        file: String,
        row: usize,
        value: f64,
    },
    #[error("{rows} scored rows are more than this scorer indexes")]
    TooLarge { rows: usize },
    #[error("no results for {file}: expected {path}")]
    MissingResult { file: String, path: PathBuf },
    #[error("results for {file} do not match the data: {why}")]
    ResultsMismatch { file: String, why: String },
    #[error("no detector results under {path}: expected <detector>/<category>/<detector>_<file>.csv or <category>/<detector>_<file>.csv")]
    NoDetectors { path: PathBuf },
    #[error("the labels define no anomaly windows, so scores cannot be normalised")]
    NoWindows,
    #[error("running the detector on {file}: {cause}")]
    Detector {
        file: String,
        cause: run::DetectError,
    },
}

impl NabError {
    /// For `map_err`: a failed read of `path`.
    pub(crate) fn reading(path: &Path) -> impl Fn(std::io::Error) -> Self + Copy + '_ {
        move |cause| NabError::Io {
            path: path.to_owned(),
            cause,
        }
    }

    /// For `map_err`: a failed write of `path` (or of its folder).
    pub(crate) fn writing(path: &Path) -> impl Fn(std::io::Error) -> Self + Copy + '_ {
        move |cause| NabError::Write {
            path: path.to_owned(),
            cause,
        }
    }

    /// Names the file a parse error came from.
    fn at(self, path: &Path) -> Self {
        match self {
            NabError::Json { path: None, cause } => NabError::Json {
                path: Some(path.to_owned()),
                cause,
            },
            NabError::BadWindow {
                file,
                start,
                end,
                why,
            } => NabError::BadWindow {
                file: format!("{file} in {}", path.display()),
                start,
                end,
                why,
            },
            NabError::Profiles { path: None, why } => NabError::Profiles {
                path: Some(path.to_owned()),
                why,
            },
            other => other,
        }
    }
}

fn read_to_string(path: &Path) -> Result<String, NabError> {
    std::fs::read_to_string(path).map_err(NabError::reading(path))
}
