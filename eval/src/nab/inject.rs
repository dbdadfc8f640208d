//! Recall evidence from the tuning half alone (eval/NAB.md, session 22).
//!
//! The tuning half is saturated in recall (the product finds 55–56 of its
//! 57 windows), so a setting chosen on it is rewarded only for opening
//! fewer alarms. [`build`] makes a second corpus, in NAB's layout, from
//! the tuning half's files alone: one copy of each file per [`Kind`], each
//! with one anomaly injected after the probationary rows, away from the
//! file's own windows, and labelled with a window of NAB's width (10 % of
//! the file over its windows) whose middle is the anomaly's first row.
//! Every copy keeps the file's own windows. No held-out file is read.
//! [`recall`] then counts the injected windows the product opens an alarm
//! in at the corpus threshold NAB's optimiser picked.
//!
//! Magnitudes are on the file's robust scales over its probationary rows:
//! `s`, 1.4826 × the median absolute deviation of the values, and `d`, the
//! same of their first differences. An anomaly lasts a quarter window (at
//! least 4 rows).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use vigil_fleet_sim::Rng;

use super::{probation_rows, result_path, DataFile, Labels, NabError, Subset, Window};

/// What is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One row moved by max(3 s, 6 d), away from the median.
    Spike,
    /// The stretch moved by 1.5 s, towards the side of the median the
    /// stretch's first value is not on.
    Shift,
    /// The stretch holds its first value: a sensor that stopped.
    Stuck,
    /// The stretch gains Gaussian noise of deviation max(4 d, s).
    Noise,
    /// The stretch gains a ramp to 2 s over its first half, held to its end.
    Ramp,
}

impl Kind {
    /// Every kind, in the order the copies are made.
    pub const ALL: [Kind; 5] = [
        Kind::Spike,
        Kind::Shift,
        Kind::Stuck,
        Kind::Noise,
        Kind::Ramp,
    ];

    /// The kind's name, as in the copies' file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Shift => "shift",
            Kind::Stuck => "stuck",
            Kind::Noise => "noise",
            Kind::Ramp => "ramp",
        }
    }
}

/// One injected anomaly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Injected {
    /// The copy's corpus path (`category/name__kind.csv`).
    pub file: String,
    pub kind: Kind,
    /// The anomaly's first row.
    pub row: usize,
    /// Its label window, first and last row (both inclusive).
    pub window: (usize, usize),
}

/// Median and 1.4826 × median absolute deviation; the standard deviation
/// where the deviation is 0, and 1 where that is too.
fn robust(values: &[f64]) -> (f64, f64) {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let m = median(&mut values.to_vec());
    let mad = 1.4826 * median(&mut values.iter().map(|x| (x - m).abs()).collect());
    if mad > 0.0 {
        return (m, mad);
    }
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    (m, if sd > 0.0 { sd } else { 1.0 })
}

/// Rows of `data` inside `window`, first and last.
fn rows_of(data: &DataFile, window: &Window) -> Option<(usize, usize)> {
    let first = data.timestamps.iter().position(|t| *t >= window.start)?;
    let last = data.timestamps.iter().rposition(|t| *t <= window.end)?;
    (first <= last).then_some((first, last))
}

/// `values` with `kind` injected over `row..row + len`.
fn inject(
    kind: Kind,
    values: &[f64],
    row: usize,
    len: usize,
    scales: (f64, f64, f64),
    rng: &mut Rng,
) -> Vec<f64> {
    let (median, s, d) = scales;
    let mut out = values.to_vec();
    let away = if values[row] >= median { 1.0 } else { -1.0 };
    let end = (row + len).min(out.len());
    match kind {
        Kind::Spike => out[row] += away * (3.0 * s).max(6.0 * d),
        Kind::Shift => out[row..end].iter_mut().for_each(|v| *v -= away * 1.5 * s),
        Kind::Stuck => out[row..end].iter_mut().for_each(|v| *v = values[row]),
        Kind::Noise => {
            let sd = (4.0 * d).max(s);
            out[row..end]
                .iter_mut()
                .for_each(|v| *v += sd * rng.normal());
        }
        Kind::Ramp => {
            let half = (len / 2).max(1) as f64;
            for (i, v) in out[row..end].iter_mut().enumerate() {
                *v -= away * 2.0 * s * (i as f64 / half).min(1.0);
            }
        }
    }
    if values.iter().all(|v| *v >= 0.0) {
        out.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    out
}

/// Writes `text` to `path`, making its folder first.
fn write_file(path: &Path, text: String) -> Result<(), NabError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(NabError::writing(dir))?;
    }
    fs::write(path, text).map_err(NabError::writing(path))
}

/// Builds the injected corpus of NAB's tuning half under `out`
/// (`data/`, `labels/combined_windows.json`, `config/profiles.json`,
/// `injected.json`) from the NAB folder `nab`, with `seed`.
pub fn build(nab: &Path, out: &Path, seed: u64) -> Result<Vec<Injected>, NabError> {
    let labels = Labels::load(&nab.join("labels/combined_windows.json"))?;
    let mut rng = Rng::new(seed);
    let mut injected = Vec::new();
    let mut windows: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (file, own) in labels
        .files
        .iter()
        .filter(|(f, _)| Subset::Tune.contains(f))
    {
        let data = DataFile::load(&nab.join("data").join(file))?;
        let n = data.values.len();
        let probation = probation_rows(n);
        let train = &data.values[..probation];
        let (median, s) = robust(train);
        let steps: Vec<f64> = train.windows(2).map(|w| w[1] - w[0]).collect();
        let (_, d) = robust(&steps);
        let width = ((0.1 * n as f64 / (own.len() + 1) as f64) as usize).max(8);
        let len = (width / 4).max(4);
        let own_rows: Vec<(usize, usize)> = own.iter().filter_map(|w| rows_of(&data, w)).collect();
        // Rows within a window's width of one of the file's own windows.
        let mut busy = vec![false; n];
        for &(a, b) in &own_rows {
            busy[a.saturating_sub(width)..(b + width + 1).min(n)].fill(true);
        }
        let free: Vec<usize> = (probation + width..n.saturating_sub(width + len))
            .filter(|&t| !busy[t - width / 2..t + width / 2 + len].iter().any(|&b| b))
            .collect();
        let (category, name) = file.split_once('/').unwrap_or(("", file));
        let stem = name.strip_suffix(".csv").unwrap_or(name);
        for kind in Kind::ALL {
            if free.is_empty() {
                break;
            }
            let row = free[rng.below(free.len() as u64) as usize];
            let values = inject(kind, &data.values, row, len, (median, s, d), &mut rng);
            let copy = format!("{category}/{stem}__{}.csv", kind.as_str());
            let mut text = String::from("timestamp,value\n");
            for (t, v) in data.raw_timestamps.iter().zip(&values) {
                let _ = writeln!(text, "{t},{v}");
            }
            write_file(&out.join("data").join(&copy), text)?;
            let first = row - width / 2;
            let window = (first, first + width - 1);
            let mut spans: Vec<(usize, usize)> = own_rows.clone();
            spans.push(window);
            spans.sort_unstable();
            windows.insert(
                copy.clone(),
                spans
                    .iter()
                    .map(|&(a, b)| {
                        (
                            data.raw_timestamps[a].clone(),
                            data.raw_timestamps[b].clone(),
                        )
                    })
                    .collect(),
            );
            injected.push(Injected {
                file: copy,
                kind,
                row,
                window,
            });
        }
    }
    write_file(&out.join("labels/combined_windows.json"), pretty(&windows)?)?;
    write_file(&out.join("injected.json"), pretty(&injected)?)?;
    let profiles = nab.join("config/profiles.json");
    write_file(
        &out.join("config/profiles.json"),
        fs::read_to_string(&profiles).map_err(NabError::reading(&profiles))?,
    )?;
    Ok(injected)
}

/// Pretty JSON of `value`.
fn pretty<T: Serialize>(value: &T) -> Result<String, NabError> {
    serde_json::to_string_pretty(value).map_err(|cause| NabError::Json { path: None, cause })
}

/// Injected windows found, per kind: (found, injected).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recall(pub BTreeMap<Kind, (usize, usize)>);

impl Recall {
    /// Found and injected over every kind.
    pub fn total(&self) -> (usize, usize) {
        self.0
            .values()
            .fold((0, 0), |(f, n), (a, b)| (f + a, n + b))
    }
}

/// The injected windows of `injected` with a result row at or above
/// `threshold` in the results root `results` (as `run` writes it for
/// `detector`).
pub fn recall(
    injected: &[Injected],
    results: &Path,
    detector: &str,
    threshold: f64,
) -> Result<Recall, NabError> {
    let dir: PathBuf = results.join(detector);
    let mut out = Recall::default();
    for i in injected {
        let scores = super::files::read_result_file(&result_path(&dir, detector, &i.file)?)?;
        let (a, b) = i.window;
        let found = scores
            .scores
            .get(a..=b)
            .is_some_and(|s| s.iter().any(|&x| x >= threshold));
        let e = out.0.entry(i.kind).or_default();
        e.0 += usize::from(found);
        e.1 += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_changes_only_its_stretch() {
        let values: Vec<f64> = (0..100).map(|i| 10.0 + f64::from(i % 7)).collect();
        let scales = robust(&values[..50]);
        let (median, s) = scales;
        let mut rng = Rng::new(1);
        for kind in Kind::ALL {
            let out = inject(kind, &values, 60, 8, (median, s, 1.0), &mut rng);
            let changed: Vec<usize> = (0..100).filter(|&i| out[i] != values[i]).collect();
            assert!(!changed.is_empty(), "{kind:?} changed nothing");
            assert!(
                changed.iter().all(|&i| (60..68).contains(&i)),
                "{kind:?}: {changed:?}"
            );
        }
        let spike = inject(Kind::Spike, &values, 60, 8, (median, s, 1.0), &mut rng);
        assert!((spike[60] - values[60]).abs() >= 3.0 * s);
    }

    #[test]
    fn a_flat_series_gets_a_scale() {
        assert_eq!(robust(&[3.0; 10]), (3.0, 1.0));
        let (m, s) = robust(&[1.0, 1.0, 1.0, 1.0, 9.0]);
        assert_eq!(m, 1.0);
        assert!(s > 0.0);
    }

    #[test]
    fn the_stretch_stays_inside_the_file() {
        let values = vec![1.0; 20];
        let out = inject(
            Kind::Shift,
            &values,
            18,
            8,
            (1.0, 1.0, 1.0),
            &mut Rng::new(3),
        );
        assert_eq!(out.len(), 20);
        assert!(out[18..].iter().all(|&v| v != 1.0));
    }
}
