//! The offline data formats: grouping-free readers that turn files into
//! `Telemetry` records.
//!
//! # CSV format (wide)
//!
//! ```text
//! device_id,seq,ts,current_a,temperature_c,vibration_rms
//! pump-0042,1871,1795446981908,3.1,71.3,0.42
//! pump-0042,1872,1795446982908,3.2,,0.40
//! ```
//!
//! The first three columns are fixed; every further column is a metric named
//! by its header. An empty cell means the record lacks that metric. `ts` is
//! event time in ms since the Unix epoch. Rows come back in file order (the
//! trainer groups them by device and sorts by `seq`). A row with no metric
//! at all is an error, as is a value that is not a finite number.
//!
//! NAB series (`timestamp,value` with `YYYY-MM-DD HH:MM:SS` timestamps) are
//! read by [`read_nab_csv`] as one device with one metric, `value`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_schemas::Telemetry;

/// Why training data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("reading training data {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("training data {path} line {line}: {why}")]
    Row {
        path: PathBuf,
        line: u64,
        why: String,
    },
    #[error("training data {path} has more than {limit} rows; raise the limit or trim the file")]
    TooManyRows { path: PathBuf, limit: usize },
    #[error("training data {path} header must start with device_id,seq,ts and name at least one metric; found {found:?}")]
    Header { path: PathBuf, found: String },
}

fn row_error(path: &Path, line: u64, why: impl Into<String>) -> DataError {
    DataError::Row {
        path: path.to_owned(),
        line,
        why: why.into(),
    }
}

/// Reads a wide CSV file (see the module docs), at most `max_rows` rows.
pub fn read_wide_csv(path: &Path, max_rows: usize) -> Result<Vec<Telemetry>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(io)?;
    let header = reader.headers().map_err(io)?.clone();
    let fixed: Vec<&str> = header.iter().take(3).collect();
    if fixed != ["device_id", "seq", "ts"] || header.len() < 4 {
        return Err(DataError::Header {
            path: path.to_owned(),
            found: header.iter().collect::<Vec<_>>().join(","),
        });
    }
    let metrics: Vec<String> = header.iter().skip(3).map(str::to_owned).collect();
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(io)?;
        let line = row.position().map_or(0, |p| p.line());
        if out.len() == max_rows {
            return Err(DataError::TooManyRows {
                path: path.to_owned(),
                limit: max_rows,
            });
        }
        let field = |i: usize| row.get(i).unwrap_or_default();
        let seq: u64 = field(1)
            .parse()
            .map_err(|e| row_error(path, line, format!("seq {:?}: {e}", field(1))))?;
        let ts: u64 = field(2)
            .parse()
            .map_err(|e| row_error(path, line, format!("ts {:?}: {e}", field(2))))?;
        let mut values = BTreeMap::new();
        for (i, name) in metrics.iter().enumerate() {
            let cell = field(i + 3);
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell
                .parse()
                .map_err(|e| row_error(path, line, format!("metric {name} {cell:?}: {e}")))?;
            if !v.is_finite() {
                return Err(row_error(
                    path,
                    line,
                    format!("metric {name} is not finite"),
                ));
            }
            values.insert(name.clone(), v);
        }
        if values.is_empty() {
            return Err(row_error(path, line, "the row has no metric value"));
        }
        out.push(Telemetry::new(field(0), seq, ts, values));
    }
    Ok(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses NAB's `YYYY-MM-DD HH:MM:SS` (UTC) into ms since the epoch.
pub fn parse_nab_timestamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    let secs = days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// Reads a NAB series as records of one device (`device_id`) with the one
/// metric `value`; `seq` is the row number from 1.
pub fn read_nab_csv(
    path: &Path,
    device_id: &str,
    max_rows: usize,
) -> Result<Vec<Telemetry>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(io)?;
        let line = row.position().map_or(0, |p| p.line());
        if out.len() == max_rows {
            return Err(DataError::TooManyRows {
                path: path.to_owned(),
                limit: max_rows,
            });
        }
        let ts = parse_nab_timestamp(row.get(0).unwrap_or_default())
            .ok_or_else(|| row_error(path, line, "timestamp is not YYYY-MM-DD HH:MM:SS"))?;
        let value: f64 = row
            .get(1)
            .unwrap_or_default()
            .parse()
            .map_err(|e| row_error(path, line, format!("value: {e}")))?;
        let metrics = BTreeMap::from([("value".to_owned(), value)]);
        out.push(Telemetry::new(device_id, i as u64 + 1, ts, metrics));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nab_timestamps_parse() {
        assert_eq!(parse_nab_timestamp("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(
            parse_nab_timestamp("2013-12-02 21:15:00"),
            Some(1_386_018_900_000)
        );
        assert_eq!(parse_nab_timestamp("2013-12-02T21:15:00Z"), None);
    }
}
