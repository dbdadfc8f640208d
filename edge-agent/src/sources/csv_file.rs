//! A CSV file as a source, for replays: a header of metric names, an
//! optional `ts` column; bad rows are logged and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_schemas::telemetry::{MAX_METRICS, MAX_NAME_LEN};

use super::{Sample, SourceError};

/// A CSV file: header of metric names, plus optional `ts` (ms since the
/// epoch); `device_id` and `seq` columns (the trainer's wide format) are
/// ignored; empty cells are missing metrics.
#[derive(Debug)]
pub struct CsvSource {
    reader: csv::Reader<std::fs::File>,
    path: PathBuf,
    ts_column: Option<usize>,
    metrics: Vec<(usize, String)>,
    record: csv::StringRecord,
}

impl CsvSource {
    /// Opens the file and checks its header.
    pub fn open(path: &Path) -> Result<CsvSource, SourceError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_path(path)
            .map_err(|e| SourceError::Config(format!("csv file {}: {e}", path.display())))?;
        let header = reader
            .headers()
            .map_err(|e| SourceError::Config(format!("csv file {}: header: {e}", path.display())))?
            .clone();
        let mut ts_column = None;
        let mut metrics = Vec::new();
        for (i, name) in header.iter().enumerate() {
            match name {
                "ts" => ts_column = Some(i),
                "device_id" | "seq" => {}
                "" => {
                    return Err(SourceError::Config(format!(
                        "csv file {}: column {} has no name",
                        path.display(),
                        i + 1
                    )))
                }
                n if n.len() > MAX_NAME_LEN => {
                    return Err(SourceError::Config(format!(
                        "csv file {}: column name {n:?} is longer than {MAX_NAME_LEN} bytes",
                        path.display()
                    )))
                }
                n => metrics.push((i, n.to_owned())),
            }
        }
        if metrics.is_empty() || metrics.len() > MAX_METRICS {
            return Err(SourceError::Config(format!(
                "csv file {}: {} metric columns; 1 to {MAX_METRICS} needed",
                path.display(),
                metrics.len()
            )));
        }
        Ok(CsvSource {
            reader,
            path: path.to_owned(),
            ts_column,
            metrics,
            record: csv::StringRecord::new(),
        })
    }

    pub(super) fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) if e.is_io_error() => {
                    return Err(SourceError::Io {
                        what: self.path.display().to_string(),
                        source: std::io::Error::other(e.to_string()),
                    })
                }
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "bad csv row; skipped");
                    continue;
                }
            }
            let line = self.record.position().map_or(0, |p| p.line());
            match self.parse_row(line) {
                Ok(s) => return Ok(Some(s)),
                Err(why) => {
                    tracing::warn!(file = %self.path.display(), line, why, "bad csv row; skipped")
                }
            }
        }
    }

    fn parse_row(&self, _line: u64) -> Result<Sample, String> {
        let ts = match self.ts_column.and_then(|i| self.record.get(i)) {
            Some("") | None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|e| format!("ts {v:?}: {e}"))?),
        };
        let mut metrics = BTreeMap::new();
        for (i, name) in &self.metrics {
            let cell = self.record.get(*i).unwrap_or_default();
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell.parse().map_err(|e| format!("{name} {cell:?}: {e}"))?;
            if !v.is_finite() {
                return Err(format!("{name} is not a finite number"));
            }
            metrics.insert(name.clone(), v);
        }
        if metrics.is_empty() {
            return Err("no metric values".into());
        }
        Ok(Sample {
            ts,
            metrics,
            tags: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.csv");
        std::fs::write(
            &path,
            "device_id,seq,ts,temp,amps\nd,1,1000,20.5,3\nd,2,2000,x,3\nd,3,,21,\n",
        )
        .expect("write");
        let mut src = CsvSource::open(&path).expect("open");
        let a = src.next().expect("read").expect("row");
        assert_eq!((a.ts, a.metrics.len()), (Some(1000), 2));
        let c = src.next().expect("read").expect("row after the bad one");
        assert_eq!((c.ts, c.metrics.len()), (None, 1));
        assert!(src.next().expect("read").is_none());

        std::fs::write(&path, "ts,\n1,2\n").expect("write");
        let err = CsvSource::open(&path)
            .expect_err("unnamed column")
            .to_string();
        assert!(err.contains("column 2 has no name"), "{err}");
    }
}
