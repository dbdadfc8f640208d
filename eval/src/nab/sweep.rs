//! NAB's scoring rule and threshold optimisation.
//!
//! Each file is turned into one row per scored sample (the probationary
//! start is dropped) carrying the sample's anomaly score, the window it lies
//! in, and the sample's *unweighted* reward: a scaled sigmoid of its
//! position relative to the window it is in (inside: from ≈ +1 at the left
//! edge to 0 at the right edge) or the window before it (outside: from 0
//! just after the window down to −1 far away, and −1 before any window).
//! A threshold turns scores into detections; a file's score is then
//! `Σ_windows (best detection's reward · tp / maxTP, or −fn if none) +
//! Σ_false_detections reward · fp`. Taking the *best* reward per window is
//! what makes only the earliest detection count.
//!
//! Threshold optimisation sweeps every distinct anomaly score of the corpus
//! once, from high to low, updating the corpus score incrementally, and keeps
//! the highest-scoring threshold (the highest such threshold on ties). This
//! is what NAB 1.1's optimiser does; it finds the global optimum that NAB
//! 1.0's hill-climbing search approximated.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CostMatrix, Labels, NabError, Timestamp};

/// Share of each file, from its start, that is not scored.
pub const PROBATION_PERCENT: f64 = 0.15;
/// The probationary period never exceeds this many rows' worth
/// (`PROBATION_PERCENT` of it, i.e. 750 rows).
pub const PROBATION_CAP_ROWS: f64 = 5000.0;

/// One file's anomaly scores, one per data row, in row order: what a
/// detector produces and what [`Corpus::prepare`] takes. This is the seam
/// for online runners: produce these per file, then score them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileScores {
    /// Each row's timestamp, to place the anomaly windows.
    pub timestamps: Vec<Timestamp>,
    /// Each row's anomaly score, normally in [0, 1].
    pub scores: Vec<f64>,
}

/// NAB's reward curve: `2·sigmoid(−5x) − 1`, and −1 beyond x = 3.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// Rows are at most a few million; windows a few hundred.
const OUTSIDE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Row {
    score: f64,
    /// Corpus-wide window index, or `OUTSIDE`.
    window: u32,
    /// Reward before profile weights.
    unweighted: f64,
}

/// Detection counts, in rows (NAB's TP/TN/FP/FN columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tp: u64,
    pub tn: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// One file's result at a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileScore {
    pub file: String,
    /// Raw (un-normalised) NAB score of this file.
    pub raw: f64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The corpus at one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdScore {
    /// Scores `>=` this are detections.
    pub threshold: f64,
    pub raw: f64,
    pub counts: Counts,
    /// Scored windows with at least one detection.
    pub windows_detected: usize,
    pub files: Vec<FileScore>,
}

#[derive(Debug, Clone)]
struct FileRows {
    name: String,
    rows: std::ops::Range<usize>,
    windows: std::ops::Range<u32>,
}

/// A detector's results over a set of files, ready to be scored under any
/// profile and threshold.
#[derive(Debug, Clone)]
pub struct Corpus {
    files: Vec<FileRows>,
    rows: Vec<Row>,
    /// Per corpus-wide window: does any scored (post-probation) row fall in it?
    window_scored: Vec<bool>,
    /// Windows of all files, scored or not.
    windows_total: usize,
    /// Row indices by anomaly score, highest first.
    by_score: Vec<u32>,
}

impl Corpus {
    /// Lays out each file's rows against its labelled windows. Every file in
    /// `files` must have an entry in `labels`.
    pub fn prepare(
        labels: &Labels,
        files: &BTreeMap<String, FileScores>,
    ) -> Result<Self, NabError> {
        let mut corpus = Corpus {
            files: Vec::with_capacity(files.len()),
            rows: Vec::new(),
            window_scored: Vec::new(),
            windows_total: 0,
            by_score: Vec::new(),
        };
        for (name, scores) in files {
            let windows = labels
                .files
                .get(name)
                .ok_or_else(|| NabError::Unlabelled { file: name.clone() })?;
            corpus.add_file(name, scores, windows)?;
        }
        if corpus.rows.len() >= OUTSIDE as usize {
            return Err(NabError::TooLarge {
                rows: corpus.rows.len(),
            });
        }
        let mut by_score: Vec<u32> = (0..corpus.rows.len() as u32).collect();
        let rows = &corpus.rows;
        by_score
            .sort_unstable_by(|&a, &b| rows[b as usize].score.total_cmp(&rows[a as usize].score));
        corpus.by_score = by_score;
        Ok(corpus)
    }

    fn add_file(
        &mut self,
        name: &str,
        file: &FileScores,
        windows: &[super::Window],
    ) -> Result<(), NabError> {
        let n = file.timestamps.len();
        if file.scores.len() != n {
            return Err(NabError::LengthMismatch {
                file: name.to_owned(),
                scores: file.scores.len(),
                rows: n,
            });
        }
        if let Some((row, value)) = file.scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(NabError::NonFiniteScore {
                file: name.to_owned(),
                row: row + 1,
                value: *value,
            });
        }
        let ts = &file.timestamps;
        let edge = |t: Timestamp| {
            ts.iter()
                .position(|x| *x == t)
                .ok_or_else(|| NabError::WindowEdgeMissing {
                    file: name.to_owned(),
                    edge: t.to_string(),
                })
        };
        let mut spans = Vec::with_capacity(windows.len());
        for w in windows {
            let (left, right) = (edge(w.start)?, edge(w.end)?);
            if right < left {
                return Err(NabError::WindowEdgeMissing {
                    file: name.to_owned(),
                    edge: format!("{} (before the window's start in the data)", w.end),
                });
            }
            spans.push((left, right));
        }

        let first_window = self.window_scored.len() as u32;
        self.window_scored
            .resize(self.window_scored.len() + windows.len(), false);
        self.windows_total += windows.len();
        let probation = (PROBATION_PERCENT * n as f64)
            .floor()
            .min(PROBATION_PERCENT * PROBATION_CAP_ROWS);
        let first_row = self.rows.len();

        let mut next = 0usize;
        // (window index, right edge row, width in rows)
        let mut current: Option<(usize, usize, f64)> = None;
        // (right edge row, width) of the last window left
        let mut previous: Option<(usize, f64)> = None;
        for (i, (&t, &score)) in ts.iter().zip(&file.scores).enumerate() {
            if next < windows.len() && t == windows[next].start {
                let (left, right) = spans[next];
                current = Some((next, right, (right - left + 1) as f64));
                next += 1;
            }
            let (window, unweighted) = match current {
                Some((k, right, width)) => (
                    first_window + k as u32,
                    scaled_sigmoid(-((right as f64 - i as f64 + 1.0) / width)),
                ),
                None => match previous {
                    None => (OUTSIDE, -1.0),
                    Some((right, width)) => (
                        OUTSIDE,
                        // A one-row window gives an infinite position: −1.
                        scaled_sigmoid((right as f64 - i as f64).abs() / (width - 1.0)),
                    ),
                },
            };
            if i as f64 >= probation {
                if window != OUTSIDE {
                    self.window_scored[window as usize] = true;
                }
                self.rows.push(Row {
                    score,
                    window,
                    unweighted,
                });
            }
            if let Some((k, _, width)) = current {
                if t == windows[k].end {
                    previous = Some((i, width));
                    current = None;
                }
            }
        }
        self.files.push(FileRows {
            name: name.to_owned(),
            rows: first_row..self.rows.len(),
            windows: first_window..self.window_scored.len() as u32,
        });
        Ok(())
    }

    /// Windows over all files, scored or not: a perfect detector's count.
    pub fn windows_total(&self) -> usize {
        self.windows_total
    }

    /// Windows with at least one scored row: the ones a detector can miss.
    pub fn windows_scored(&self) -> usize {
        self.window_scored.iter().filter(|s| **s).count()
    }

    /// Raw score of a detector that never fires.
    pub fn null_score(&self, costs: &CostMatrix) -> f64 {
        -costs.fn_ * self.windows_scored() as f64
    }

    /// Raw score of a detector that fires exactly at every window's left edge.
    pub fn perfect_score(&self, costs: &CostMatrix) -> f64 {
        costs.tp * self.windows_total as f64
    }

    /// The threshold with the highest corpus score: every distinct anomaly
    /// score is tried (plus one above them all, for "never detect").
    pub fn optimize(&self, costs: &CostMatrix) -> (f64, f64) {
        let max_tp = scaled_sigmoid(-1.0);
        let mut parts: Vec<f64> = self
            .window_scored
            .iter()
            .map(|s| if *s { -costs.fn_ } else { 0.0 })
            .collect();
        let mut raw: f64 = parts.iter().sum();
        let top = self
            .by_score
            .first()
            .map_or(0.0, |&r| self.rows[r as usize].score);
        // NAB starts above 1.0, the top of the score range.
        let mut threshold = if top < 1.1 { 1.1 } else { top + 0.1 };
        let mut best = (threshold, raw);
        for &r in &self.by_score {
            let row = self.rows[r as usize];
            if row.score != threshold {
                if raw > best.1 {
                    best = (threshold, raw);
                }
                threshold = row.score;
            }
            if row.window == OUTSIDE {
                raw += row.unweighted * costs.fp;
            } else {
                let part = &mut parts[row.window as usize];
                let reward = row.unweighted * costs.tp / max_tp;
                if reward > *part {
                    raw += reward - *part;
                    *part = reward;
                }
            }
        }
        if raw > best.1 {
            best = (threshold, raw);
        }
        best
    }

    /// Every file's score and counts at `threshold`, and their totals.
    pub fn score_at(&self, costs: &CostMatrix, threshold: f64) -> ThresholdScore {
        let max_tp = scaled_sigmoid(-1.0);
        let mut total = ThresholdScore {
            threshold,
            raw: 0.0,
            counts: Counts::default(),
            windows_detected: 0,
            files: Vec::with_capacity(self.files.len()),
        };
        for file in &self.files {
            let mut counts = Counts::default();
            let mut best: Vec<Option<f64>> = vec![None; file.windows.len()];
            let mut fp_sum = 0.0;
            for row in &self.rows[file.rows.clone()] {
                let detected = row.score >= threshold;
                match (row.window == OUTSIDE, detected) {
                    (true, true) => {
                        counts.fp += 1;
                        fp_sum += row.unweighted * costs.fp;
                    }
                    (true, false) => counts.tn += 1,
                    (false, true) => {
                        counts.tp += 1;
                        let reward = row.unweighted * costs.tp / max_tp;
                        let slot = &mut best[(row.window - file.windows.start) as usize];
                        *slot = Some(slot.map_or(reward, |b: f64| b.max(reward)));
                    }
                    (false, false) => counts.fn_ += 1,
                }
            }
            let mut raw = fp_sum;
            for (k, b) in best.iter().enumerate() {
                if !self.window_scored[file.windows.start as usize + k] {
                    continue;
                }
                match b {
                    Some(reward) => {
                        raw += reward.max(-costs.fn_);
                        total.windows_detected += 1;
                    }
                    None => raw -= costs.fn_,
                }
            }
            total.raw += raw;
            total.counts.tp += counts.tp;
            total.counts.tn += counts.tn;
            total.counts.fp += counts.fp;
            total.counts.fn_ += counts.fn_;
            total.files.push(FileScore {
                file: file.name.clone(),
                raw,
                counts,
            });
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::Window;

    const STANDARD: CostMatrix = CostMatrix {
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };

    #[test]
    fn sigmoid_matches_nab_reference_points() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    /// 1000 rows one minute apart (probation: 150 rows), one window over
    /// rows 500..=599.
    fn one_window(scores: Vec<f64>) -> Corpus {
        let ts: Vec<Timestamp> = (0..1000).map(|i| Timestamp(i * 60_000_000)).collect();
        let labels = Labels {
            files: [(
                "c/f.csv".to_owned(),
                vec![Window {
                    start: ts[500],
                    end: ts[599],
                }],
            )]
            .into(),
        };
        let files = [(
            "c/f.csv".to_owned(),
            FileScores {
                timestamps: ts,
                scores,
            },
        )]
        .into();
        Corpus::prepare(&labels, &files).expect("valid corpus")
    }

    fn with_detections(rows: &[usize]) -> Vec<f64> {
        let mut s = vec![0.0; 1000];
        for r in rows {
            s[*r] = 1.0;
        }
        s
    }

    #[test]
    fn detection_at_the_left_edge_earns_the_full_tp_weight() {
        let c = one_window(with_detections(&[500]));
        let at = c.score_at(&STANDARD, 1.0);
        assert!((at.raw - 1.0).abs() < 1e-12, "{}", at.raw);
        assert_eq!(
            at.counts,
            Counts {
                tp: 1,
                tn: 750,
                fp: 0,
                fn_: 99
            }
        );
    }

    #[test]
    fn only_the_first_detection_in_a_window_counts() {
        let early = one_window(with_detections(&[510]))
            .score_at(&STANDARD, 1.0)
            .raw;
        let both = one_window(with_detections(&[510, 590]))
            .score_at(&STANDARD, 1.0)
            .raw;
        let late = one_window(with_detections(&[590]))
            .score_at(&STANDARD, 1.0)
            .raw;
        assert_eq!(early, both);
        assert!(late < early && late > 0.0);
    }

    #[test]
    fn a_missed_window_costs_the_fn_weight() {
        let c = one_window(with_detections(&[]));
        assert_eq!(c.score_at(&STANDARD, 1.0).raw, -1.0);
        assert_eq!(c.null_score(&STANDARD), -1.0);
        assert_eq!(c.perfect_score(&STANDARD), 1.0);
    }

    #[test]
    fn false_positives_cost_less_right_after_a_window() {
        let before = one_window(with_detections(&[300]))
            .score_at(&STANDARD, 1.0)
            .raw;
        assert!((before - (-1.0 - 0.11)).abs() < 1e-12, "{before}");
        let just_after = one_window(with_detections(&[600]))
            .score_at(&STANDARD, 1.0)
            .raw;
        let far_after = one_window(with_detections(&[900]))
            .score_at(&STANDARD, 1.0)
            .raw;
        assert!(just_after > far_after, "{just_after} vs {far_after}");
        assert!((far_after - (-1.0 - 0.11)).abs() < 1e-12);
    }

    #[test]
    fn probationary_rows_are_not_scored() {
        let c = one_window(with_detections(&[10, 149]));
        assert_eq!(c.score_at(&STANDARD, 1.0).raw, -1.0);
        let c = one_window(with_detections(&[150]));
        assert!(c.score_at(&STANDARD, 1.0).raw < -1.0);
    }

    #[test]
    fn optimizer_finds_the_threshold_that_catches_the_window_early() {
        // Noise at 0.6 outside, a 0.8 at the window's start, 0.9 far outside.
        let mut s = vec![0.6; 1000];
        s[505] = 0.8;
        s[800] = 0.9;
        let c = one_window(s);
        let (threshold, raw) = c.optimize(&STANDARD);
        assert_eq!(threshold, 0.8);
        let at = c.score_at(&STANDARD, threshold);
        assert!((at.raw - raw).abs() < 1e-9);
        for t in [1.1, 0.9, 0.6] {
            assert!(
                c.score_at(&STANDARD, t).raw < raw,
                "threshold {t} beats 0.8"
            );
        }
    }
}
