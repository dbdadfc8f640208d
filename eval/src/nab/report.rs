//! Scoring a results directory end to end: what `vigil-eval nab
//! --score-only` runs, and the shape of `scores.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{check_against_data, find_detectors, load_data_dir, read_detector_results};
use super::{Corpus, Counts, FileScore, FileScores, Labels, NabError, Profile, Subset};

/// One profile's outcome for one detector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileScore {
    /// Profile name (`standard`, `reward_low_FP_rate`, …).
    #[serde(skip)]
    pub profile: String,
    /// Normalised NAB score: 100·(raw − null)/(perfect − null).
    pub score: f64,
    /// The corpus-wide threshold the optimiser chose.
    pub threshold: f64,
    pub raw: f64,
    /// Raw score of a detector that never fires.
    pub null: f64,
    /// Raw score of a detector that catches every window at its start.
    pub perfect: f64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Windows over the corpus.
    pub windows: usize,
    /// Windows with a detection at the chosen threshold.
    pub windows_detected: usize,
    /// Per-file raw scores at the chosen threshold.
    #[serde(skip)]
    pub files: Vec<FileScore>,
}

/// All profiles' outcomes for one detector, in profile order. Serialises
/// as a map from profile name to score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectorScore(pub Vec<ProfileScore>);

impl DetectorScore {
    /// The outcome under the named profile.
    pub fn profile(&self, name: &str) -> Option<&ProfileScore> {
        self.0.iter().find(|p| p.profile == name)
    }
}

impl Serialize for DetectorScore {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for p in &self.0 {
            map.serialize_entry(&p.profile, p)?;
        }
        map.end()
    }
}

/// Scores one detector's per-file anomaly scores under every profile, each
/// with its own optimised threshold. The seam for runners that produce
/// scores themselves: build the [`FileScores`], call this.
pub fn score_detector(
    labels: &Labels,
    files: &BTreeMap<String, FileScores>,
    profiles: &[Profile],
) -> Result<DetectorScore, NabError> {
    let corpus = Corpus::prepare(labels, files)?;
    if corpus.windows_total() == 0 {
        return Err(NabError::NoWindows);
    }
    Ok(DetectorScore(
        profiles
            .iter()
            .map(|p| {
                let (threshold, _) = corpus.optimize(&p.costs);
                let at = corpus.score_at(&p.costs, threshold);
                let null = corpus.null_score(&p.costs);
                let perfect = corpus.perfect_score(&p.costs);
                ProfileScore {
                    profile: p.name.clone(),
                    score: 100.0 * (at.raw - null) / (perfect - null),
                    threshold,
                    raw: at.raw,
                    null,
                    perfect,
                    counts: at.counts,
                    windows: corpus.windows_total(),
                    windows_detected: at.windows_detected,
                    files: at.files,
                }
            })
            .collect(),
    ))
}

/// Where `score_results` finds its inputs and puts its output.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// A results root (`<detector>/<category>/…`) or one detector's folder.
    pub results: PathBuf,
    /// Corpus data; when given, results must match its rows exactly.
    pub data: Option<PathBuf>,
    /// `combined_windows.json`.
    pub labels: PathBuf,
    /// `profiles.json`.
    pub profiles: PathBuf,
    /// Where to write `scores.json`; default `<results>/scores.json`.
    pub out: Option<PathBuf>,
    /// The corpus files scored (and expected in the results): all, or one
    /// half of the committed split.
    pub subset: Subset,
}

/// The outcome of scoring a results directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Detector name → its scores.
    pub detectors: BTreeMap<String, DetectorScore>,
    /// Where `scores.json` was written.
    pub scores_path: PathBuf,
}

/// Scores every detector under `options.results` and writes `scores.json`.
pub fn score_results(options: &ScoreOptions) -> Result<Report, NabError> {
    let mut labels = Labels::load(&options.labels)?;
    labels.files.retain(|file, _| options.subset.contains(file));
    let profiles = Profile::load_all(&options.profiles)?;
    let data = match &options.data {
        Some(dir) => Some(load_data_dir(dir, &labels)?),
        None => None,
    };
    let mut detectors = BTreeMap::new();
    for (name, dir) in find_detectors(&options.results, &labels)? {
        let results = read_detector_results(&dir, &name, &labels)?;
        if let Some(data) = &data {
            check_against_data(&results, data)?;
        }
        detectors.insert(name, score_detector(&labels, &results, &profiles)?);
    }
    let scores_path = options
        .out
        .clone()
        .unwrap_or_else(|| options.results.join("scores.json"));
    write_scores(&scores_path, &detectors)?;
    Ok(Report {
        detectors,
        scores_path,
    })
}

/// Writes `{"<detector>": {"<profile>": {"score", "threshold", "raw", …}}}`.
pub fn write_scores(
    path: &Path,
    detectors: &BTreeMap<String, DetectorScore>,
) -> Result<(), NabError> {
    let io = NabError::writing(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut text = serde_json::to_string_pretty(detectors).map_err(|cause| NabError::Json {
        path: Some(path.to_owned()),
        cause,
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(io)
}

impl Report {
    /// A fixed-width table: one line per detector and profile.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<20} {:>8} {:>10} {:>10} {:>8}",
            "detector", "profile", "score", "threshold", "raw", "windows"
        );
        for (detector, profiles) in &self.detectors {
            for s in &profiles.0 {
                let _ = writeln!(
                    out,
                    "{:<24} {:<20} {:>8.2} {:>10.6} {:>10.4} {:>4}/{:<3}",
                    detector, s.profile, s.score, s.threshold, s.raw, s.windows_detected, s.windows
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scores_file_that_cannot_be_written_says_writing_and_names_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A regular file where the scores file's folder should be.
        let blocker = dir.path().join("taken");
        std::fs::write(&blocker, "").expect("write the blocker");
        let path = blocker.join("scores.json");
        let err = write_scores(&path, &BTreeMap::new()).expect_err("cannot write under a file");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("writing {}", blocker.display())),
            "{text}"
        );
        // As vigil-eval prints it, the OS's reason appears once.
        let printed = format!("{:#}", anyhow::Error::new(err).context("running"));
        assert_eq!(printed.matches("os error").count(), 1, "{printed}");
    }
}
