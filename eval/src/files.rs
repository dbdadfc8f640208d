//! Labelled files, the way a benchmark of whole recordings is scored
//! (the industrial one of issue 16: one pump per file, its first rows
//! normal by design, a label on every row): for each CSV file under a
//! folder, a release is trained on its first rows with the file
//! workflow's settings (`vigil train --csv FILE --rows N`), every row
//! is scored in order, and the rows after the training ones are counted
//! point-wise against the file's label column (a row is flagged while
//! its device is in alarm, as a verdict's `anomaly` says). The counts of
//! all files are summed, as such benchmarks sum them, beside the F1 of
//! flagging every row.
//!
//! The gate runs as `vigil train` runs it; a file it refuses is scored
//! anyway (as `--force` would) and named, so the figure covers every
//! file a user could have trained.

use std::path::{Path, PathBuf};

use vigil_eval_core::header_has;
use vigil_model::Scratch;
use vigil_training::{
    fit, gate, label_episodes, read_wide_csv_labelled, EvalOptions, FleetData, GateConfig,
    PointCounts, TrainConfig, WideCsvOptions,
};

/// How the files are laid out and trained.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// Rows each release is trained on (the first ones of its file).
    pub rows: usize,
    /// Event-time column, separator and label column; the device id, when
    /// the files have no `device_id` column, is each file's name.
    pub csv: WideCsvOptions,
    /// Most rows read from one file.
    pub max_rows: usize,
}

/// One file's outcome.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// The file, relative to the folder.
    pub file: PathBuf,
    /// Point-wise counts over the rows after the training ones; `None`
    /// when no release could be trained (`why` says why).
    pub counts: Option<PointCounts>,
    /// Why no release was trained, or why the gate refused the one that
    /// was (scored anyway).
    pub why: Option<String>,
    /// The gate accepted the release.
    pub accepted: bool,
}

/// Every file's outcome, and their sum.
#[derive(Debug, Clone, Default)]
pub struct FilesReport {
    pub files: Vec<FileResult>,
    /// The counts of every scored file, summed.
    pub total: PointCounts,
}

/// Why a folder could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("reading {path}: {cause}")]
    Folder {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no .csv file under {0}")]
    Empty(PathBuf),
    #[error("{file}: {cause}")]
    Read { file: PathBuf, cause: String },
}

/// The `.csv` files under `dir` (recursively), sorted.
fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, FilesError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|cause| FilesError::Folder {
            path: d.clone(),
            cause,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|cause| FilesError::Folder {
                    path: d.clone(),
                    cause,
                })?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(FilesError::Empty(dir.to_owned()));
    }
    Ok(out)
}

/// Trains and scores every CSV file under `dir` (see the module docs).
/// A file that cannot be read stops the run (its layout is the caller's
/// to fix); one too short to train is reported and left out of the sum.
pub fn evaluate_files(dir: &Path, opts: &FilesOptions) -> Result<FilesReport, FilesError> {
    let mut report = FilesReport::default();
    for path in csv_files(dir)? {
        let file = path.strip_prefix(dir).unwrap_or(&path).to_owned();
        let result = evaluate_file(&path, file, opts)?;
        if let Some(c) = result.counts {
            report.total += c;
        }
        report.files.push(result);
    }
    Ok(report)
}

fn evaluate_file(
    path: &Path,
    file: PathBuf,
    opts: &FilesOptions,
) -> Result<FileResult, FilesError> {
    let mut csv = opts.csv.clone();
    let has_device = header_has(path, "device_id").map_err(|e| FilesError::Read {
        file: file.clone(),
        cause: e.to_string(),
    })?;
    if csv.device_id.is_none() && !has_device {
        // One series per file: the file names its device.
        csv.device_id = Some(file.with_extension("").to_string_lossy().replace('/', "-"));
    }
    let (records, labels) =
        read_wide_csv_labelled(path, opts.max_rows, &csv).map_err(|e| FilesError::Read {
            file: file.clone(),
            cause: e.to_string(),
        })?;
    if records.len() <= opts.rows {
        return Ok(FileResult {
            file,
            counts: None,
            why: Some(format!(
                "{} rows, none after the {} training rows",
                records.len(),
                opts.rows
            )),
            accepted: false,
        });
    }
    let train_rows = opts.rows;
    let train = &records[..train_rows];
    // The file workflow's settings: no minimum beyond the fit's own.
    let cfg = TrainConfig {
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    let trained = match fit(train, &cfg, |_| {}) {
        Ok(t) => t,
        Err(e) => {
            return Ok(FileResult {
                file,
                counts: None,
                why: Some(e.to_string()),
                accepted: false,
            })
        }
    };
    let episodes = label_episodes(train, &labels[..train_rows]);
    let decision = gate(
        &trained.model,
        None,
        &FleetData::new(train, cfg.holdout_fraction),
        &episodes,
        &EvalOptions {
            holdout_only: true,
            ..EvalOptions::default()
        },
        &GateConfig::default(),
    );
    let model = &trained.model;
    let mut states = std::collections::HashMap::new();
    let mut scratch = Scratch::default();
    let mut counts = PointCounts::default();
    for (i, (r, &label)) in records.iter().zip(&labels).enumerate() {
        let state = states
            .entry(r.device_id.clone())
            .or_insert_with(|| model.extractor().new_state());
        let s = model.score_record(state, r, &mut scratch);
        if i >= train_rows {
            counts.add(s.anomaly, label);
        }
    }
    Ok(FileResult {
        file,
        counts: Some(counts),
        why: (!decision.accepted).then_some(decision.reason),
        accepted: decision.accepted,
    })
}

impl FilesReport {
    /// The report as a Markdown table: one row per file, then the sum.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| file | rows scored | labelled | flagged | precision | recall | F1 | flagging every row | gate |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        let row = |name: &str, c: &PointCounts, gate: &str| {
            let (f1, p, r) = c.f1();
            format!(
                "| {name} | {} | {} | {} | {p:.3} | {r:.3} | {f1:.3} | {:.3} | {gate} |\n",
                c.records,
                c.positives,
                c.hits + c.false_hits,
                c.flag_all_f1()
            )
        };
        for f in &self.files {
            let name = f.file.display().to_string();
            match &f.counts {
                Some(c) => {
                    let gate = match (&f.why, f.accepted) {
                        (_, true) => "accepted".to_owned(),
                        (Some(why), false) => format!("refused (scored anyway): {why}"),
                        (None, false) => "refused (scored anyway)".to_owned(),
                    };
                    out.push_str(&row(&name, c, &gate));
                }
                None => out.push_str(&format!(
                    "| {name} | – | – | – | – | – | – | – | not trained: {} |\n",
                    f.why.as_deref().unwrap_or("")
                )),
            }
        }
        let scored = self.files.iter().filter(|f| f.counts.is_some()).count();
        out.push_str(&row(
            &format!("**all {scored} scored files**"),
            &self.total,
            &format!(
                "{} accepted",
                self.files.iter().filter(|f| f.accepted).count()
            ),
        ));
        out
    }
}
