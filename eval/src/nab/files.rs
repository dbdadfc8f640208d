//! NAB's on-disk layouts: data files (`data/<category>/<file>.csv`, columns
//! `timestamp,value`) and detector results
//! (`<results>/<detector>/<category>/<detector>_<file>.csv`, columns
//! `timestamp,value,anomaly_score,label`, extra columns ignored), read and
//! written so NAB's own scorer and this one see the same files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{FileScores, Labels, NabError, Timestamp, Window};

/// One corpus data file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFile {
    /// Timestamps as written in the file, echoed into results files.
    pub raw_timestamps: Vec<String>,
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
}

/// Splits `category/file.csv` into its two parts.
fn split_name(file: &str) -> Result<(&str, &str), NabError> {
    file.split_once('/')
        .filter(|(c, f)| !c.is_empty() && !f.is_empty() && !f.contains('/'))
        .ok_or_else(|| NabError::Unlabelled {
            file: format!("{file} (expected <category>/<file>.csv)"),
        })
}

/// Where a detector's result for corpus file `file` lives under its folder.
pub fn result_path(detector_dir: &Path, detector: &str, file: &str) -> Result<PathBuf, NabError> {
    let (category, name) = split_name(file)?;
    Ok(detector_dir
        .join(category)
        .join(format!("{detector}_{name}")))
}

fn csv_reader(path: &Path) -> Result<csv::Reader<fs::File>, NabError> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|cause| NabError::Csv {
            path: path.to_owned(),
            cause,
        })
}

fn column(path: &Path, headers: &csv::StringRecord, name: &'static str) -> Result<usize, NabError> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| NabError::MissingColumn {
            path: path.to_owned(),
            column: name,
        })
}

/// Reads the rows of a CSV, calling `row(line, fields)` with the named
/// columns of each.
fn for_each_row<const N: usize>(
    path: &Path,
    columns: [&'static str; N],
    mut row: impl FnMut(u64, [&str; N]) -> Result<(), NabError>,
) -> Result<(), NabError> {
    let csv_err = |cause| NabError::Csv {
        path: path.to_owned(),
        cause,
    };
    let mut reader = csv_reader(path)?;
    let headers = reader.headers().map_err(csv_err)?.clone();
    let mut idx = [0usize; N];
    for (slot, name) in idx.iter_mut().zip(columns) {
        *slot = column(path, &headers, name)?;
    }
    let mut record = csv::StringRecord::new();
    let mut line = 1;
    while reader.read_record(&mut record).map_err(csv_err)? {
        line += 1;
        let mut fields = [""; N];
        for (field, &i) in fields.iter_mut().zip(&idx) {
            *field = record.get(i).ok_or_else(|| NabError::BadRow {
                path: path.to_owned(),
                line,
                why: format!("has {} fields; column {} is missing", record.len(), i + 1),
            })?;
        }
        row(line, fields)?;
    }
    Ok(())
}

fn parse_f64(path: &Path, line: u64, what: &str, text: &str) -> Result<f64, NabError> {
    text.trim().parse().map_err(|_| NabError::BadRow {
        path: path.to_owned(),
        line,
        why: format!("{what} {text:?} is not a number"),
    })
}

fn parse_ts(path: &Path, line: u64, text: &str) -> Result<Timestamp, NabError> {
    Timestamp::parse(text).map_err(|e| NabError::BadRow {
        path: path.to_owned(),
        line,
        why: e.to_string(),
    })
}

impl DataFile {
    /// Reads a `timestamp,value` file.
    pub fn load(path: &Path) -> Result<Self, NabError> {
        let mut data = DataFile::default();
        for_each_row(path, ["timestamp", "value"], |line, f| {
            data.timestamps.push(parse_ts(path, line, f[0])?);
            data.raw_timestamps.push(f[0].to_owned());
            data.values.push(parse_f64(path, line, "value", f[1])?);
            Ok(())
        })?;
        Ok(data)
    }
}

/// Reads every labelled file of the corpus from `data_dir`.
pub fn load_data_dir(
    data_dir: &Path,
    labels: &Labels,
) -> Result<BTreeMap<String, DataFile>, NabError> {
    labels
        .files
        .keys()
        .map(|file| {
            split_name(file)?;
            Ok((file.clone(), DataFile::load(&data_dir.join(file))?))
        })
        .collect()
}

/// Reads one results file's timestamps and anomaly scores.
pub fn read_result_file(path: &Path) -> Result<FileScores, NabError> {
    let mut out = FileScores::default();
    for_each_row(path, ["timestamp", "anomaly_score"], |line, f| {
        out.timestamps.push(parse_ts(path, line, f[0])?);
        out.scores
            .push(parse_f64(path, line, "anomaly_score", f[1])?);
        Ok(())
    })?;
    Ok(out)
}

/// Reads a detector's results for every labelled file. Every file must be
/// there: NAB scores the whole corpus or nothing.
pub fn read_detector_results(
    detector_dir: &Path,
    detector: &str,
    labels: &Labels,
) -> Result<BTreeMap<String, FileScores>, NabError> {
    let mut out = BTreeMap::new();
    for file in labels.files.keys() {
        let path = result_path(detector_dir, detector, file)?;
        if !path.is_file() {
            return Err(NabError::MissingResult {
                file: file.clone(),
                path,
            });
        }
        out.insert(file.clone(), read_result_file(&path)?);
    }
    Ok(out)
}

/// Checks that results cover exactly the data's rows, in order.
pub fn check_against_data(
    results: &BTreeMap<String, FileScores>,
    data: &BTreeMap<String, DataFile>,
) -> Result<(), NabError> {
    for (file, r) in results {
        let Some(d) = data.get(file) else {
            return Err(NabError::ResultsMismatch {
                file: file.clone(),
                why: "no such data file".to_owned(),
            });
        };
        if r.timestamps.len() != d.timestamps.len() {
            return Err(NabError::ResultsMismatch {
                file: file.clone(),
                why: format!(
                    "{} result rows for {} data rows",
                    r.timestamps.len(),
                    d.timestamps.len()
                ),
            });
        }
        if let Some(i) = (0..d.timestamps.len()).find(|&i| r.timestamps[i] != d.timestamps[i]) {
            return Err(NabError::ResultsMismatch {
                file: file.clone(),
                why: format!(
                    "row {} is at {} in the results but {} in the data",
                    i + 1,
                    r.timestamps[i],
                    d.timestamps[i]
                ),
            });
        }
    }
    Ok(())
}

/// The detectors under `results`: the folder itself when it holds category
/// folders directly, else each sub-folder that does. Sorted by name.
pub fn find_detectors(results: &Path, labels: &Labels) -> Result<Vec<(String, PathBuf)>, NabError> {
    let categories: BTreeSet<&str> = labels
        .files
        .keys()
        .filter_map(|f| f.split_once('/').map(|(c, _)| c))
        .collect();
    let has_categories = |dir: &Path| categories.iter().any(|c| dir.join(c).is_dir());
    let name_of = |dir: &Path| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if !results.is_dir() {
        return Err(NabError::Io {
            path: results.to_owned(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    if has_categories(results) {
        let canonical = results.canonicalize().map_err(NabError::reading(results))?;
        return Ok(vec![(name_of(&canonical), results.to_owned())]);
    }
    let entries = fs::read_dir(results).map_err(NabError::reading(results))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(NabError::reading(results))?.path();
        if path.is_dir() && has_categories(&path) {
            found.push((name_of(&path), path));
        }
    }
    if found.is_empty() {
        return Err(NabError::NoDetectors {
            path: results.to_owned(),
        });
    }
    found.sort();
    Ok(found)
}

/// Writes one results file in NAB's layout: the data's rows with the
/// detector's `anomaly_score` and the window `label` (1 inside a window).
pub fn write_result_file(
    path: &Path,
    data: &DataFile,
    scores: &[f64],
    windows: &[Window],
) -> Result<(), NabError> {
    let io = NabError::writing(path);
    if scores.len() != data.timestamps.len() {
        return Err(NabError::LengthMismatch {
            file: path.display().to_string(),
            scores: scores.len(),
            rows: data.timestamps.len(),
        });
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut out = std::io::BufWriter::new(fs::File::create(path).map_err(io)?);
    writeln!(out, "timestamp,value,anomaly_score,label").map_err(io)?;
    for (i, &t) in data.timestamps.iter().enumerate() {
        let label = u8::from(windows.iter().any(|w| w.start <= t && t <= w.end));
        writeln!(
            out,
            "{},{},{},{label}",
            data.raw_timestamps[i], data.values[i], scores[i]
        )
        .map_err(io)?;
    }
    out.flush().map_err(io)
}
