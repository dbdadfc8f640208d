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
//! Columns are found by name, in any order:
//! - `device_id`: the device of the row. A file of one series may leave it
//!   out and name the device in [`WideCsvOptions::device_id`].
//! - `seq` (optional): the device's sequence number; without it each
//!   device's rows are numbered from 1 in file order.
//! - the time column, `ts` unless [`WideCsvOptions::time_column`] names
//!   another: event time as ms since the Unix epoch (`1795446981908`) or
//!   ISO-8601 (`2024-03-01 12:00:00`, `2024-03-01T12:00:00Z`,
//!   `2024-03-01T13:00:00.250+01:00`; UTC when no offset is given).
//! - a label column, when [`WideCsvOptions::label_column`] names one: each
//!   row's ground truth (`1`, `true`, `anomaly`, `attack` or any number
//!   but 0: anomalous; `0`, `false`, `normal` or empty: normal), read by
//!   [`read_wide_csv_labelled`] and never a metric.
//! - every other column is a metric named by its header.
//!
//! Fields are separated by `,` or `;` (by default `;` when the header line
//! holds one); in a `;` file a decimal comma (`3,25`) is read as a point.
//! An empty cell means the record lacks that metric. Rows come back in file
//! order (the trainer groups them by device and sorts by `seq`). A row with
//! no metric at all is an error, as is a value that is not a finite number.
//!
//! NAB series (`timestamp,value` with `YYYY-MM-DD HH:MM:SS` timestamps) are
//! read by [`read_nab_csv`] as one device with one metric, `value`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_schemas::Telemetry;

use crate::detection::Episode;

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
    #[error("training data {path} header {found:?}: {why}")]
    Header {
        path: PathBuf,
        found: String,
        why: String,
    },
}

fn row_error(path: &Path, line: u64, why: impl Into<String>) -> DataError {
    DataError::Row {
        path: path.to_owned(),
        line,
        why: why.into(),
    }
}

/// How a wide CSV file is laid out (see the module docs); the default is
/// the fleet format `device_id,seq,ts,<metric>…` with `,` or `;`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WideCsvOptions {
    /// Field separator; `None` takes `;` when the header line holds one,
    /// else `,`.
    pub separator: Option<u8>,
    /// Column holding event time; `None` means `ts`.
    pub time_column: Option<String>,
    /// Device of every row, for a file of one series without a
    /// `device_id` column.
    pub device_id: Option<String>,
    /// Column of each row's label (see the module docs); not a metric.
    pub label_column: Option<String>,
}

/// Reads a wide CSV file in the default layout (see the module docs), at
/// most `max_rows` rows.
pub fn read_wide_csv(path: &Path, max_rows: usize) -> Result<Vec<Telemetry>, DataError> {
    read_wide_csv_with(path, max_rows, &WideCsvOptions::default())
}

/// Whether the header line of `path` names a column `name` (either
/// separator), for a caller that must know before reading whether the
/// file carries its own `device_id`.
pub fn header_has(path: &Path, name: &str) -> Result<bool, DataError> {
    Ok(first_line(path)?
        .split([',', ';'])
        .any(|h| h.trim().trim_matches('"') == name))
}

/// The first line of `path`, to guess the separator from.
fn first_line(path: &Path) -> Result<String, DataError> {
    use std::io::{BufRead as _, Read as _};
    let io = |e: std::io::Error| DataError::Io {
        path: path.to_owned(),
        source: e.into(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .take(64 * 1024)
        .read_line(&mut line)
        .map_err(io)?;
    Ok(line)
}

/// Where the fixed columns of a wide file are.
struct Layout {
    device: Option<usize>,
    seq: Option<usize>,
    time: usize,
    /// (column, metric name)
    metrics: Vec<(usize, String)>,
    label: Option<usize>,
}

fn layout(
    path: &Path,
    header: &csv::StringRecord,
    opts: &WideCsvOptions,
) -> Result<Layout, DataError> {
    let fail = |why: String| DataError::Header {
        path: path.to_owned(),
        found: header.iter().collect::<Vec<_>>().join(","),
        why,
    };
    let find = |name: &str| header.iter().position(|h| h == name);
    let time_name = opts.time_column.as_deref().unwrap_or("ts");
    let time = find(time_name).ok_or_else(|| {
        fail(format!(
            "no time column {time_name:?} (name the event-time column with the time-column option)"
        ))
    })?;
    let device = find("device_id");
    match (device, &opts.device_id) {
        (None, None) => {
            return Err(fail(
                "no device_id column (for a file of one series, name its device with the device-id option)"
                    .to_owned(),
            ))
        }
        (Some(_), Some(id)) => {
            return Err(fail(format!(
                "the file has a device_id column, so device id {id:?} cannot be given as well"
            )))
        }
        _ => {}
    }
    let seq = find("seq");
    let label = match opts.label_column.as_deref() {
        Some(name) => Some(find(name).ok_or_else(|| {
            fail(format!(
                "no label column {name:?} (the label-column option names it)"
            ))
        })?),
        None => None,
    };
    let metrics: Vec<(usize, String)> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != device && Some(*i) != seq && *i != time && Some(*i) != label)
        .map(|(i, name)| (i, name.to_owned()))
        .collect();
    if metrics.is_empty() {
        return Err(fail("no metric column".to_owned()));
    }
    if let Some((_, empty)) = metrics.iter().find(|(_, n)| n.is_empty()) {
        return Err(fail(format!("a metric column has no name ({empty:?})")));
    }
    Ok(Layout {
        device,
        seq,
        time,
        metrics,
        label,
    })
}

/// Parses one metric cell; in a `;` file a decimal comma counts as a point.
fn parse_value(cell: &str, separator: u8) -> Option<f64> {
    match cell.parse::<f64>() {
        Ok(v) => Some(v),
        Err(_) if separator == b';' && cell.matches(',').count() == 1 && !cell.contains('.') => {
            cell.replace(',', ".").parse().ok()
        }
        Err(_) => None,
    }
}

/// Reads a wide CSV file laid out as `opts` says (see the module docs), at
/// most `max_rows` rows.
pub fn read_wide_csv_with(
    path: &Path,
    max_rows: usize,
    opts: &WideCsvOptions,
) -> Result<Vec<Telemetry>, DataError> {
    read_wide_csv_labelled(path, max_rows, opts).map(|(records, _)| records)
}

/// [`read_wide_csv_with`], with each row's label from
/// [`WideCsvOptions::label_column`] (all `false` without one), in the same
/// order as the records.
pub fn read_wide_csv_labelled(
    path: &Path,
    max_rows: usize,
    opts: &WideCsvOptions,
) -> Result<(Vec<Telemetry>, Vec<bool>), DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let separator = match opts.separator {
        Some(s) => s,
        None if first_line(path)?.contains(';') => b';',
        None => b',',
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(io)?;
    let header = reader.headers().map_err(io)?.clone();
    let layout = layout(path, &header, opts)?;
    let time_name = header.get(layout.time).unwrap_or_default().to_owned();
    let mut next_seq: std::collections::HashMap<String, u64> = Default::default();
    let mut out = Vec::new();
    let mut labels = Vec::new();
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
        let device = match (layout.device, &opts.device_id) {
            (Some(i), _) => field(i).to_owned(),
            (None, Some(id)) => id.clone(),
            (None, None) => String::new(),
        };
        if device.is_empty() {
            return Err(row_error(path, line, "device_id is empty"));
        }
        let stamp = field(layout.time);
        let ts = parse_timestamp(stamp).ok_or_else(|| {
            row_error(
                path,
                line,
                format!("{time_name} {stamp:?} is neither ms since the epoch nor an ISO-8601 time"),
            )
        })?;
        let seq = match layout.seq {
            Some(i) => field(i)
                .parse()
                .map_err(|e| row_error(path, line, format!("seq {:?}: {e}", field(i))))?,
            None => {
                let n = next_seq.entry(device.clone()).or_insert(0);
                *n += 1;
                *n
            }
        };
        let mut values = BTreeMap::new();
        for (i, name) in &layout.metrics {
            let cell = field(*i);
            if cell.is_empty() {
                continue;
            }
            let v = parse_value(cell, separator).ok_or_else(|| {
                row_error(
                    path,
                    line,
                    format!("metric {name} {cell:?} is not a number"),
                )
            })?;
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
        let label = match layout.label {
            Some(i) => parse_label(field(i), separator).ok_or_else(|| {
                row_error(
                    path,
                    line,
                    format!("label {:?} is neither a number nor true/false", field(i)),
                )
            })?,
            None => false,
        };
        out.push(Telemetry::new(device, seq, ts, values));
        labels.push(label);
    }
    Ok((out, labels))
}

/// One label cell: anomalous for `true`, `anomaly`, `attack` or a number
/// other than 0, normal for `false`, `normal`, 0 or an empty cell (any
/// case).
fn parse_label(cell: &str, separator: u8) -> Option<bool> {
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(cell));
    if cell.is_empty() || is(&["false", "normal"]) {
        return Some(false);
    }
    if is(&["true", "anomaly", "attack"]) {
        return Some(true);
    }
    parse_value(cell, separator)
        .filter(|v| !v.is_nan())
        .map(|v| v != 0.0)
}

/// Labelled anomaly episodes (kind `labelled`) from per-row labels: each
/// run of consecutive anomalous rows of one device, in its `seq` order.
pub fn label_episodes(records: &[Telemetry], labels: &[bool]) -> Vec<Episode> {
    let mut by_device: BTreeMap<&str, Vec<(u64, bool)>> = BTreeMap::new();
    for (r, &l) in records.iter().zip(labels) {
        by_device.entry(&r.device_id).or_default().push((r.seq, l));
    }
    let mut out = Vec::new();
    for (device, mut rows) in by_device {
        rows.sort_unstable_by_key(|&(seq, _)| seq);
        let mut open: Option<(u64, u64)> = None;
        for (seq, anomalous) in rows {
            open = match (open, anomalous) {
                (Some((first, _)), true) => Some((first, seq)),
                (None, true) => Some((seq, seq)),
                (Some((first, last)), false) => {
                    out.push(Episode {
                        device_id: device.to_owned(),
                        kind: "labelled".to_owned(),
                        first_seq: first,
                        last_seq: last,
                    });
                    None
                }
                (None, false) => None,
            };
        }
        if let Some((first, last)) = open {
            out.push(Episode {
                device_id: device.to_owned(),
                kind: "labelled".to_owned(),
                first_seq: first,
                last_seq: last,
            });
        }
    }
    out
}

/// Parses an event time: digits alone are ms since the Unix epoch,
/// anything else must be ISO-8601 ([`parse_iso8601`]).
pub fn parse_timestamp(s: &str) -> Option<u64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    parse_iso8601(s)
}

/// Parses an ISO-8601 date and time into ms since the Unix epoch:
/// `YYYY-MM-DD`, then optionally `T` or a space and `HH:MM[:SS[.fff…]]`,
/// then optionally `Z` or an offset `±HH[:MM]`; without one the time is
/// UTC. Times before 1970 are refused.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let mut i = 10;
    if i < b.len() {
        if !matches!(b[i], b'T' | b't' | b' ') {
            return None;
        }
        let (hour, minute) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
        if b.get(i + 3) != Some(&b':') || hour > 23 || minute > 59 {
            return None;
        }
        ms += (hour * 3600 + minute * 60) * 1000;
        i += 6;
        if b.get(i) == Some(&b':') {
            let second = digits(i + 1..i + 3)?;
            if second > 60 {
                return None;
            }
            ms += second.min(59) * 1000;
            i += 3;
            if matches!(b.get(i), Some(b'.' | b',')) {
                let start = i + 1;
                let mut end = start;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                // Milliseconds: the first three digits, padded.
                let frac: String = s[start..end.min(start + 3)].to_owned();
                ms += frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z' | b'z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = digits(i + 1..i + 3)?;
                let om = match &b[i + 3..] {
                    [] => 0,
                    [b':', ..] if b.len() == i + 6 => digits(i + 4..i + 6)?,
                    _ if b.len() == i + 5 => digits(i + 3..i + 5)?,
                    _ => return None,
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = (oh * 3600 + om * 60) * 1000;
                // Local time = UTC + offset.
                ms -= if sign == b'+' { offset } else { -offset };
            }
            Some(_) => return None,
        }
    }
    u64::try_from(ms).ok()
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
    fn a_label_column_is_read_as_labels_and_is_never_a_metric() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "datetime;flow;anomaly;changepoint\n\
             2020-03-09 10:00:00;1,5;0;0\n\
             2020-03-09 10:00:01;1,6;1;1\n\
             2020-03-09 10:00:02;1,7;1,0;0\n\
             2020-03-09 10:00:03;1,6;;0\n\
             2020-03-09 10:00:04;1,5;true;0\n\
             2020-03-09 10:00:05;1,5;false;0\n\
             2020-03-09 10:00:06;1,5;Attack;0\n\
             2020-03-09 10:00:07;1,5;Normal;0\n",
        );
        let opts = WideCsvOptions {
            time_column: Some("datetime".into()),
            device_id: Some("valve1".into()),
            label_column: Some("anomaly".into()),
            ..WideCsvOptions::default()
        };
        let (records, labels) = read_wide_csv_labelled(&path, 10, &opts).expect("read");
        assert_eq!(labels, [false, true, true, false, true, false, true, false]);
        assert!(records.iter().all(|r| !r.metrics.contains_key("anomaly")));
        // Another column stays a metric unless named.
        assert!(records[0].metrics.contains_key("changepoint"));
        let episodes = label_episodes(&records, &labels);
        let runs: Vec<(u64, u64)> = episodes.iter().map(|e| (e.first_seq, e.last_seq)).collect();
        assert_eq!(runs, [(2, 3), (5, 5), (7, 7)]);
        assert!(episodes.iter().all(|e| e.device_id == "valve1"));

        let missing = WideCsvOptions {
            label_column: Some("label".into()),
            ..opts.clone()
        };
        let err = read_wide_csv_labelled(&path, 10, &missing).expect_err("no such column");
        assert!(
            err.to_string().contains("no label column \"label\""),
            "{err}"
        );
        let bad = write(&dir, "ts,flow,anomaly\n1000,1,yes\n");
        let opts = WideCsvOptions {
            device_id: Some("d".into()),
            label_column: Some("anomaly".into()),
            ..WideCsvOptions::default()
        };
        let err = read_wide_csv_labelled(&bad, 10, &opts).expect_err("not a label");
        assert!(err.to_string().contains("label \"yes\""), "{err}");
    }

    #[test]
    fn nab_timestamps_parse() {
        assert_eq!(parse_nab_timestamp("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(
            parse_nab_timestamp("2013-12-02 21:15:00"),
            Some(1_386_018_900_000)
        );
        assert_eq!(parse_nab_timestamp("2013-12-02T21:15:00Z"), None);
    }

    #[test]
    fn iso_and_epoch_timestamps_parse() {
        let noon = Some(1_709_294_400_000);
        assert_eq!(parse_timestamp("2024-03-01 12:00:00"), noon);
        assert_eq!(parse_timestamp("2024-03-01T12:00:00Z"), noon);
        assert_eq!(parse_timestamp("2024-03-01T12:00"), noon);
        assert_eq!(parse_timestamp("2024-03-01T13:00:00+01:00"), noon);
        assert_eq!(parse_timestamp("2024-03-01T07:30:00-0430"), noon);
        assert_eq!(
            parse_timestamp("2024-03-01T12:00:00.25Z"),
            Some(1_709_294_400_250)
        );
        assert_eq!(parse_timestamp("2024-03-01"), Some(1_709_251_200_000));
        assert_eq!(parse_timestamp("1709294400000"), noon);
        for bad in [
            "",
            "2024-02-30 12:00:00",
            "2023-02-29",
            "2024-03-01 24:00:00",
            "2024-03-01X12:00:00",
            "2024-03-01T12:00:00Q",
            "2024-03-01T12:00:00+1",
            "1969-12-31 23:59:59",
            "12.5",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(parse_timestamp("2024-02-29"), Some(1_709_164_800_000));
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn semicolon_single_series_with_iso_times_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "datetime;temp;flow\n2024-03-01 12:00:00;20,5;3\n2024-03-01 12:01:00;;4.25\n",
        );
        let opts = WideCsvOptions {
            time_column: Some("datetime".into()),
            device_id: Some("pump-1".into()),
            ..WideCsvOptions::default()
        };
        let recs = read_wide_csv_with(&path, 10, &opts).expect("read");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].device_id, "pump-1");
        assert_eq!((recs[0].seq, recs[1].seq), (1, 2));
        assert_eq!(recs[1].ts - recs[0].ts, 60_000);
        assert_eq!(recs[0].metrics.get("temp"), Some(&20.5));
        assert_eq!(recs[1].metrics.get("flow"), Some(&4.25));
        assert!(!recs[1].metrics.contains_key("temp"));
        // The separator can be forced; then the header is one column.
        let comma = WideCsvOptions {
            separator: Some(b','),
            ..opts.clone()
        };
        let err = read_wide_csv_with(&path, 10, &comma).expect_err("wrong separator");
        assert!(err.to_string().contains("no time column"), "{err}");
    }

    #[test]
    fn layout_errors_name_the_option() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "time,temp\n1000,1\n");
        let err = read_wide_csv(&path, 10).expect_err("no ts").to_string();
        assert!(err.contains("no time column \"ts\""), "{err}");
        let opts = WideCsvOptions {
            time_column: Some("time".into()),
            ..WideCsvOptions::default()
        };
        let err = read_wide_csv_with(&path, 10, &opts)
            .expect_err("no device")
            .to_string();
        assert!(err.contains("device-id"), "{err}");
        let path = write(&dir, "device_id,ts,temp\nd1,1000,1\n");
        let both = WideCsvOptions {
            device_id: Some("d2".into()),
            ..WideCsvOptions::default()
        };
        let err = read_wide_csv_with(&path, 10, &both)
            .expect_err("device twice")
            .to_string();
        assert!(err.contains("device_id column"), "{err}");
        // Without a seq column, each device counts its own rows.
        let path = write(&dir, "device_id,ts,temp\nd1,1000,1\nd2,1000,1\nd1,2000,2\n");
        let recs = read_wide_csv(&path, 10).expect("read");
        let seqs: Vec<(&str, u64)> = recs.iter().map(|r| (r.device_id.as_str(), r.seq)).collect();
        assert_eq!(seqs, [("d1", 1), ("d2", 1), ("d1", 2)]);
        let path = write(&dir, "device_id,ts,temp\nd1,2024-13-01,1\n");
        let err = read_wide_csv(&path, 10).expect_err("bad time").to_string();
        assert!(err.contains("line 2") && err.contains("ISO-8601"), "{err}");
    }
}
