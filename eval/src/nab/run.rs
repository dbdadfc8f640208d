//! The online NAB runner: Vigil's detector over every corpus file, the way
//! the streaming pipeline runs it, then NAB's scoring.
//!
//! The default detector is the product's own ([`Family::Release`],
//! `super::release`): per file, a release trained on the probationary rows
//! the way `vigil train --csv` trains one, every row scored in order by
//! `vigil_model::Model::score_record` (the release's score and the
//! novelty, combined as `vigil_model::combine` does in the scorer and the
//! edge agent), and a row after the probationary period where an alarm
//! opens gets its score, every other row 0. Its settings were chosen on
//! the `tune` half of the corpus ([`Subset`], `eval/nab-split.txt`) and the
//! demo replay's tuning seed; see `eval/NAB.md`.
//!
//! [`Family::Novelty`] runs the novelty detector (`vigil_model::novelty`)
//! alone, as the NAB runner did before it was in releases: per file, the
//! ranges are learnt from the probationary rows, every row is scored
//! before it is learnt, and a row after the probationary period raises an
//! alert when its novelty score reaches 0.5 and no alert was raised in the
//! previous [`REFRACTORY_ROWS`] rows.
//!
//! The fitted families ([`Family::Fitted`], the PCA detector the trainer
//! publishes) run as follows. Per file, the series is one device with one
//! metric (`value`). Nothing is
//! scored until the probationary period (NAB's: the first 15 % of the file,
//! at most 750 rows) has passed; then `vigil_training::fit` trains on those
//! rows only, the device state is rebuilt by replaying them through the new
//! model (as the scorer does after a restart), and every later row is
//! scored by `vigil_model::Model::score_record` before it joins the past.
//! With [`Retrain::Doubling`] the model is refitted on all rows seen so far
//! each time their count doubles, so a row's score never depends on rows
//! after it. Probationary rows get 0: NAB does not score them.
//!
//! The anomaly score written is a monotone map of the model's raw score
//! ([`ScoreMap`]); NAB picks one threshold per profile for the whole corpus,
//! so what matters is that scores mean the same across files.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
use vigil_model::{Model, Scratch};
use vigil_schemas::Telemetry;
use vigil_training::{fit, Method, TrainConfig, TrainError};

use super::files::{load_data_dir, result_path, write_result_file, DataFile};
use super::report::write_scores;
use super::sweep::{PROBATION_CAP_ROWS, PROBATION_PERCENT};
use super::{score_detector, DetectorScore, FileScores, Labels, NabError, Profile, Report};

/// The device id every series is scored under.
const DEVICE_ID: &str = "nab";
/// The single metric of a NAB series.
pub(super) const METRIC: &str = "value";
/// Fewest probationary rows `fit` is asked to train on (NAB's smallest file
/// has 1,127 rows, so 168 probationary ones).
const MIN_TRAIN_ROWS: usize = 100;

/// When the detector is refitted after the probationary period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Retrain {
    /// Train once, on the probationary rows.
    Never,
    /// Refit on every row seen so far each time their count doubles.
    Doubling,
}

/// Whether a file's release is told the file's value range, as NAB tells
/// every detector (its `inputMin` and `inputMax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputRange {
    /// NAB's input range: the file's smallest and largest value, declared
    /// as the metric's range (`vigil train --range value=LOW:HIGH`), as
    /// NAB's runner hands them to every detector and the published ones
    /// use them.
    #[default]
    Nab,
    /// None: the release knows only its probationary rows (the strict
    /// figures, what a user gets who declares no range).
    None,
}

/// How a record's raw detector score becomes NAB's `anomaly_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreMap {
    /// The model's own score, `raw / (raw + raw_scale)`: 0.5 at the
    /// calibrated false-alarm quantile of the training rows.
    Calibrated,
    /// The calibrated score where it sets a new maximum over the previous
    /// [`REFRACTORY_ROWS`] rows, else 0: an episode's onset keeps its
    /// score, its echo does not. NAB counts one detection per window and
    /// charges every detection outside one.
    Onset,
    /// An anomaly likelihood of the calibrated score, as Numenta's HTM
    /// detector computes one: the tail probability of its recent mean
    /// ([`LIKELIHOOD_SHORT_ROWS`]) under the mean and deviation of its
    /// history since the last fit.
    Likelihood,
    /// Alert onsets: the calibrated score of a row that reaches the
    /// model's threshold when no row of the previous [`REFRACTORY_ROWS`]
    /// did, else 0. One alert per episode, however its score evolves
    /// (a slow ramp is one episode, not one alert per new maximum).
    Episode,
    /// Alerts with a cool-down: the calibrated score of a row that reaches
    /// the model's threshold when no alert was raised in the previous
    /// [`REFRACTORY_ROWS`] rows, else 0. Unlike [`ScoreMap::Episode`],
    /// above-threshold rows that raised no alert do not extend the silence.
    Cooldown,
}

/// Rows an alert (or an onset) silences the maps that look back: half a
/// day of NAB's usual 5-minute sampling. (288, one day, before 2026-12-02;
/// see NAB.md for the values tried.)
pub const REFRACTORY_ROWS: usize = 100;
/// False-alarm rate the runner's fits calibrate the model's threshold to
/// (see NAB.md for the values tried).
pub const NAB_FALSE_ALARM_RATE: f64 = 0.003;
/// Rows averaged into the recent score of [`ScoreMap::Likelihood`].
pub const LIKELIHOOD_SHORT_ROWS: usize = 10;

/// Which detector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Cell and step novelty (`vigil_model::novelty`), alerts with a
    /// cool-down of `refractory_rows`; `retrain`, `score` and the false-alarm
    /// rate do not apply.
    Novelty,
    /// A detector `vigil_training::fit` trains on the probationary rows.
    Fitted(Method),
    /// Experiment (`super::gated`): novelty alerts while the PCA score is
    /// at least `percent` of its threshold, and the PCA detector's own
    /// alerts when `pca_alerts`.
    Gated { percent: u32, pca_alerts: bool },
    /// The product's own decisions (`super::release`, the default): a
    /// release trained on the probationary rows as `vigil train --csv`
    /// trains one, its alarm openings; with [`Retrain::Doubling`] retrained
    /// on every row so far as their count doubles and swapped in as the
    /// scorer swaps one (`vigil_model::StateCarry`); `score`, the
    /// false-alarm rate and the cool-down do not apply.
    Release,
}

/// The files of the corpus a run covers: the fixed halves of
/// `eval/nab-split.txt` (files alternating within each category, sorted by
/// name), or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Subset {
    /// Every labelled file.
    All,
    /// The half every setting was chosen on.
    Tune,
    /// The half no setting was chosen on.
    Holdout,
}

/// The committed split: `tune|holdout <category>/<file>.csv` per line.
pub const SPLIT: &str = include_str!("../../nab-split.txt");

impl Subset {
    /// Whether corpus file `file` is in this subset.
    pub fn contains(self, file: &str) -> bool {
        let half = match self {
            Subset::All => return true,
            Subset::Tune => "tune",
            Subset::Holdout => "holdout",
        };
        SPLIT
            .lines()
            .filter_map(|l| l.split_once(' '))
            .any(|(h, f)| h == half && f.trim() == file)
    }
}

/// The detector's global settings: one choice for every file.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub retrain: Retrain,
    pub score: ScoreMap,
    /// Detector family.
    pub family: Family,
    /// False-alarm rate `fit` calibrates `raw_scale` to.
    pub target_false_alarm_rate: f64,
    /// Rows an alert (or an onset) silences the maps that look back.
    pub refractory_rows: usize,
    /// Settings of [`Family::Novelty`] (default: the model crate's).
    pub novelty: NoveltyConfig,
    /// Experiments with [`Family::Release`]: changes to the novelty policy
    /// the trainer writes (default: none).
    pub release_novelty: ReleaseOverride,
    /// With [`Family::Release`]: whether each file's release is told its
    /// input range.
    pub input_range: InputRange,
}

/// Changes to a release's novelty policy (`vigil-eval nab --trust`,
/// `--range-records`, `--release-break`, `--drift-widths`, `--jump-sds`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseOverride {
    /// Replaces the trust policy.
    pub trust: Option<vigil_model::combine::TrustPolicy>,
    /// Each device's first this many records fix its ranges, in place of
    /// the ranges learnt from the training rows (the product before
    /// session 16).
    pub range_records: Option<u32>,
    /// Replaces the trust's release break alone (after `trust`).
    pub release_break: Option<f64>,
    /// Replaces the drift watch's widths (0: off).
    pub drift_widths: Option<f64>,
    /// Replaces the jump watch's bar in standard deviations (0: off).
    pub jump_sds: Option<f64>,
}

impl ReleaseOverride {
    /// Applies the changes to `policy`.
    pub fn apply(&self, policy: &mut vigil_model::combine::NoveltyPolicy) {
        if let Some(trust) = self.trust {
            policy.trust = trust;
        }
        if let Some(release_break) = self.release_break {
            policy.trust.release_break = release_break;
        }
        if let Some(widths) = self.drift_widths {
            policy.drift.widths = widths;
        }
        if let Some(sds) = self.jump_sds {
            policy.jump.sds = sds;
        }
        if let Some(records) = self.range_records {
            policy.range_records = records;
            policy.training_ranges = None;
        }
    }
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            retrain: Retrain::Never,
            score: ScoreMap::Cooldown,
            family: Family::Release,
            target_false_alarm_rate: NAB_FALSE_ALARM_RATE,
            refractory_rows: REFRACTORY_ROWS,
            novelty: NoveltyConfig::default(),
            release_novelty: ReleaseOverride::default(),
            input_range: InputRange::default(),
        }
    }
}

/// What `run` reads and writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Corpus data folder (`<category>/<file>.csv`).
    pub data: PathBuf,
    /// `combined_windows.json`; its files are the ones run.
    pub labels: PathBuf,
    /// `profiles.json`.
    pub profiles: PathBuf,
    /// Results root: gets `<detector>/<category>/<detector>_<file>.csv` and
    /// `scores.json`.
    pub out: PathBuf,
    /// Detector name in paths and in `scores.json`.
    pub detector: String,
    pub config: DetectorConfig,
    /// The corpus files run and scored.
    pub subset: Subset,
    /// Worker threads (files are independent).
    pub threads: usize,
}

/// Rows NAB leaves unscored at the start of a file of `rows` rows.
pub fn probation_rows(rows: usize) -> usize {
    let share = PROBATION_PERCENT * rows as f64;
    share.min(PROBATION_PERCENT * PROBATION_CAP_ROWS).floor() as usize
}

pub(super) fn records(data: &DataFile) -> Vec<Telemetry> {
    data.timestamps
        .iter()
        .zip(&data.values)
        .enumerate()
        .map(|(i, (t, &v))| {
            let ts_ms = u64::try_from(t.0.div_euclid(1000)).unwrap_or(0);
            let metrics = BTreeMap::from([(METRIC.to_owned(), v)]);
            Telemetry::new(DEVICE_ID, i as u64 + 1, ts_ms, metrics)
        })
        .collect()
}

fn train(past: &[Telemetry], cfg: &DetectorConfig) -> Result<Model, TrainError> {
    let train_cfg = TrainConfig {
        model: "nab".into(),
        source: "nab".into(),
        method: match cfg.family {
            Family::Fitted(method) => method,
            Family::Novelty | Family::Gated { .. } | Family::Release => Method::Pca,
        },
        metrics: Some(vec![METRIC.to_owned()]),
        holdout_fraction: 0.0,
        target_false_alarm_rate: cfg.target_false_alarm_rate,
        min_records: MIN_TRAIN_ROWS,
        min_device_records: MIN_TRAIN_ROWS,
        // The configuration NAB.md reports was chosen with this calibration.
        calibration: vigil_training::Calibration::Quantile,
        ..TrainConfig::default()
    };
    Ok(fit(past, &train_cfg, |_| {})?.model)
}

/// The online state of one series: the live model and the device state it
/// has built over the rows seen so far.
struct Online<'a> {
    cfg: &'a DetectorConfig,
    model: Model,
    state: vigil_model::DeviceState,
    scratch: Scratch,
    /// Calibrated scores of the latest rows, newest last, for the maps
    /// that look back.
    recent: VecDeque<f64>,
    /// Running sums of the calibrated score since the last fit (n, Σx, Σx²).
    history: (f64, f64, f64),
    /// Rows scored since the last alert of [`ScoreMap::Cooldown`].
    since_alert: usize,
}

impl<'a> Online<'a> {
    /// A model trained on `past`, with its state replayed over them.
    fn start(past: &[Telemetry], cfg: &'a DetectorConfig) -> Result<Self, TrainError> {
        let model = train(past, cfg)?;
        let mut state = model.extractor().new_state();
        let dim = model.extractor().dim();
        let mut features = vec![0.0; dim];
        for r in past {
            model.extractor().extract(&mut state, r, &mut features);
        }
        Ok(Online {
            cfg,
            model,
            state,
            scratch: Scratch::default(),
            recent: VecDeque::with_capacity(cfg.refractory_rows + 1),
            history: (0.0, 0.0, 0.0),
            since_alert: usize::MAX,
        })
    }

    fn score(&mut self, record: &Telemetry) -> f64 {
        let s = self
            .model
            .score_record(&mut self.state, record, &mut self.scratch);
        let score = s.score.score;
        let out = match self.cfg.score {
            ScoreMap::Calibrated => score,
            ScoreMap::Onset => {
                let before = self.recent.iter().copied().fold(0.0, f64::max);
                if score > before {
                    score
                } else {
                    0.0
                }
            }
            ScoreMap::Likelihood => self.likelihood(score),
            ScoreMap::Cooldown => {
                let threshold = self.model.threshold();
                if score >= threshold && self.since_alert >= self.cfg.refractory_rows {
                    self.since_alert = 0;
                    score
                } else {
                    0.0
                }
            }
            ScoreMap::Episode => {
                let threshold = self.model.threshold();
                let armed = self.recent.iter().all(|&r| r < threshold);
                if armed && score >= threshold {
                    score
                } else {
                    0.0
                }
            }
        };
        self.since_alert = self.since_alert.saturating_add(1);
        self.recent.push_back(score);
        if self.recent.len() > self.cfg.refractory_rows {
            self.recent.pop_front();
        }
        out
    }

    fn likelihood(&mut self, score: f64) -> f64 {
        let (n, sum, sq) = &mut self.history;
        *n += 1.0;
        *sum += score;
        *sq += score * score;
        let mean = *sum / *n;
        let sd = (*sq / *n - mean * mean).max(0.0).sqrt().max(1.0e-4);
        let short: f64 = self
            .recent
            .iter()
            .rev()
            .take(LIKELIHOOD_SHORT_ROWS - 1)
            .chain(std::iter::once(&score))
            .sum::<f64>()
            / LIKELIHOOD_SHORT_ROWS as f64;
        // On a log scale, as HTM does: ln Q(z) / ln 1e-10, capped at 1, so
        // tail probabilities of 1e-3 and 1e-9 stay apart.
        let tail = upper_tail((short - mean) / sd).max(1.0e-300);
        (tail.ln() / LOG_TAIL_FLOOR).clamp(0.0, 1.0)
    }
}

/// ln 1e-10: a tail probability this small maps to likelihood score 1.
const LOG_TAIL_FLOOR: f64 = -23.025_850_929_940_457;

/// Q(z) = 1 − Φ(z), from the Abramowitz–Stegun 7.1.26 erfc approximation,
/// computed directly so far tails keep their size.
fn upper_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

/// Why a series could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("training: {0}")]
    Train(#[from] TrainError),
    #[error("{rows} rows are too few to train on (at least {MIN_TRAIN_ROWS} before the last row)")]
    TooShort { rows: usize },
}

/// Scores one series online; one anomaly score per row, each computed from
/// that row and the rows before it only.
pub fn detect(data: &DataFile, cfg: &DetectorConfig) -> Result<Vec<f64>, DetectError> {
    if cfg.family == Family::Novelty {
        return Ok(detect_novelty_with(
            &cfg.novelty,
            &data.values,
            cfg.refractory_rows,
        ));
    }
    if cfg.family == Family::Release {
        return super::release::detect_release(
            data,
            &cfg.release_novelty,
            cfg.retrain,
            cfg.input_range,
        );
    }
    if let Family::Gated {
        percent,
        pca_alerts,
    } = cfg.family
    {
        return super::gated::detect_gated(data, cfg, percent, pca_alerts);
    }
    let records = records(data);
    let n = records.len();
    let probation = probation_rows(n);
    let mut scores = vec![0.0; n];
    let mut online: Option<Online<'_>> = None;
    let mut next_fit = probation.max(MIN_TRAIN_ROWS);
    let mut first_error = None;
    for (t, record) in records.iter().enumerate() {
        if t == next_fit {
            match Online::start(&records[..t], cfg) {
                Ok(mut o) => {
                    // A refit does not end an episode: the maps that look
                    // back keep the scores of the rows before it.
                    if let Some(old) = online.take() {
                        o.recent = old.recent;
                        o.since_alert = old.since_alert;
                    }
                    online = Some(o)
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            next_fit = match cfg.retrain {
                Retrain::Doubling => t * 2,
                Retrain::Never if online.is_none() => t * 2,
                Retrain::Never => usize::MAX,
            };
        }
        if let Some(o) = online.as_mut() {
            scores[t] = o.score(record);
        }
    }
    match (online, first_error) {
        (Some(_), _) => Ok(scores),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(DetectError::TooShort { rows: n }),
    }
}

/// [`Family::Novelty`] over one series: alert rows get their novelty
/// score, every other row 0.
pub fn detect_novelty(values: &[f64], refractory_rows: usize) -> Vec<f64> {
    detect_novelty_with(&NoveltyConfig::default(), values, refractory_rows)
}

/// [`detect_novelty`] with other novelty settings (experiments).
pub fn detect_novelty_with(
    config: &NoveltyConfig,
    values: &[f64],
    refractory_rows: usize,
) -> Vec<f64> {
    let candidates =
        novelty_scores(config, values)
            .into_iter()
            .map(|score| if score >= 0.5 { score } else { 0.0 });
    cool_down(candidates, probation_rows(values.len()), refractory_rows)
}

/// The novelty score of every row, before any cool-down: ranges from the
/// probationary rows, each row scored before it is learnt.
pub(super) fn novelty_scores(config: &NoveltyConfig, values: &[f64]) -> Vec<f64> {
    let fit = MetricNovelty::fit(config, &values[..probation_rows(values.len())]);
    let mut state = NoveltyState::new(config);
    values
        .iter()
        .map(|&v| novelty_score(config, state.observe(config, &fit, v)))
        .collect()
}

/// Keeps a candidate row (score > 0) from row `probation` on when no row
/// was kept in the previous `refractory_rows` rows; every other row 0.
pub(super) fn cool_down(
    candidates: impl IntoIterator<Item = f64>,
    probation: usize,
    refractory_rows: usize,
) -> Vec<f64> {
    let mut last_alert: Option<usize> = None;
    candidates
        .into_iter()
        .enumerate()
        .map(|(t, score)| {
            let quiet = last_alert.is_none_or(|a| t - a > refractory_rows);
            if t >= probation && score > 0.0 && quiet {
                last_alert = Some(t);
                score
            } else {
                0.0
            }
        })
        .collect()
}

/// Runs the detector over every labelled file, writes NAB's results layout
/// and `scores.json` under `options.out`, and scores the results.
pub fn run(options: &RunOptions) -> Result<Report, NabError> {
    let mut labels = Labels::load(&options.labels)?;
    labels.files.retain(|file, _| options.subset.contains(file));
    let profiles = Profile::load_all(&options.profiles)?;
    let data = load_data_dir(&options.data, &labels)?;
    let detector_dir = options.out.join(&options.detector);
    let files: Vec<(&String, &DataFile)> = data.iter().collect();
    let next = AtomicUsize::new(0);
    let done: Mutex<BTreeMap<String, FileScores>> = Mutex::default();
    let failed: Mutex<Option<NabError>> = Mutex::default();
    let worker = || {
        while let Some(&(file, series)) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
            let outcome = detect(series, &options.config)
                .map_err(|cause| NabError::Detector {
                    file: file.clone(),
                    cause,
                })
                .and_then(|scores| {
                    let path = result_path(&detector_dir, &options.detector, file)?;
                    let windows = labels.files.get(file).map_or(&[][..], Vec::as_slice);
                    write_result_file(&path, series, &scores, windows)?;
                    Ok(scores)
                });
            match outcome {
                Ok(scores) => {
                    let fs = FileScores {
                        timestamps: series.timestamps.clone(),
                        scores,
                    };
                    if let Ok(mut done) = done.lock() {
                        done.insert(file.clone(), fs);
                    }
                }
                Err(e) => {
                    if let Ok(mut failed) = failed.lock() {
                        failed.get_or_insert(e);
                    }
                    // Stop handing out files: the run has failed.
                    next.store(files.len(), Ordering::Relaxed);
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            s.spawn(worker);
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    let done = done.into_inner().unwrap_or_default();
    let score: DetectorScore = score_detector(&labels, &done, &profiles)?;
    let detectors = BTreeMap::from([(options.detector.clone(), score)]);
    let scores_path = options.out.join("scores.json");
    write_scores(&scores_path, &detectors)?;
    Ok(Report {
        detectors,
        scores_path,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::nab::Timestamp;

    #[test]
    fn probation_follows_nab() {
        assert_eq!(probation_rows(1127), 169);
        assert_eq!(probation_rows(4032), 604);
        assert_eq!(probation_rows(22695), 750);
    }

    /// A series of `values` at NAB's 5-minute spacing (also used by the
    /// gated detector's tests).
    pub(in crate::nab) fn series(values: impl IntoIterator<Item = f64>) -> DataFile {
        let values: Vec<f64> = values.into_iter().collect();
        DataFile {
            raw_timestamps: vec![String::new(); values.len()],
            timestamps: (0..values.len() as i64)
                .map(|i| Timestamp(1_400_000_000_000_000 + i * 300_000_000))
                .collect(),
            values,
        }
    }

    /// A smooth wave with a faint fast ripple (also used by the gated and
    /// release detectors' tests).
    pub(in crate::nab) fn wave(i: usize) -> f64 {
        let x = i as f64;
        10.0 + (x / 20.0).sin() + 0.1 * ((x * 7.3).sin())
    }

    #[test]
    fn scores_are_causal_and_a_spike_stands_out() {
        let clean = series((0..2000).map(wave));
        let mut spiked = clean.clone();
        spiked.values[1500] += 20.0;
        // The raw calibrated score: the alert maps may silence a row.
        let cfg = DetectorConfig {
            score: ScoreMap::Calibrated,
            ..pca()
        };
        let a = detect(&clean, &cfg).expect("clean series scores");
        let b = detect(&spiked, &cfg).expect("spiked series scores");
        assert_eq!(a.len(), 2000);
        // Rows before the spike cannot see it.
        assert_eq!(a[..1500], b[..1500]);
        assert!(a[..probation_rows(2000)].iter().all(|&s| s == 0.0));
        assert!(b.iter().all(|s| (0.0..=1.0).contains(s)));
        let typical = a[400..].iter().copied().fold(0.0, f64::max);
        assert!(b[1500] > typical, "{} vs {typical}", b[1500]);
    }

    #[test]
    fn cooldown_raises_one_alert_per_refractory_period() {
        let mut values: Vec<f64> = (0..2000).map(wave).collect();
        for t in [1500, 1550, 1800] {
            values[t] += 20.0;
        }
        let data = series(values);
        let cfg = |score| DetectorConfig {
            score,
            retrain: Retrain::Never,
            refractory_rows: 144,
            ..pca()
        };
        let calibrated = detect(&data, &cfg(ScoreMap::Calibrated)).expect("scores");
        let alerts = detect(&data, &cfg(ScoreMap::Cooldown)).expect("scores");
        // An alert is a row at the model's threshold with no alert in the
        // 144 rows before it; every other row is 0.
        let threshold = vigil_training::CALIBRATED_THRESHOLD;
        let mut last: Option<usize> = None;
        for (t, (&c, &a)) in calibrated.iter().zip(&alerts).enumerate() {
            if c >= threshold && last.is_none_or(|l| t - l >= 144) {
                assert_eq!(a, c, "row {t} alerts");
                last = Some(t);
            } else {
                assert_eq!(a, 0.0, "row {t} is silent");
            }
        }
        // The spikes are anomalous, but not every one of them alerts.
        assert!([1500, 1550, 1800]
            .iter()
            .all(|&t| calibrated[t] >= threshold));
        let raised = alerts.iter().filter(|&&a| a > 0.0).count();
        let above = calibrated.iter().filter(|&&c| c >= threshold).count();
        assert!(
            raised >= 1 && raised < above,
            "{raised} alerts, {above} rows above"
        );
    }

    #[test]
    fn too_short_a_series_is_an_error() {
        assert!(detect(&series((0..50).map(wave)), &pca()).is_err());
    }

    /// The fitted PCA detector the trainer publishes.
    fn pca() -> DetectorConfig {
        DetectorConfig {
            family: Family::Fitted(Method::Pca),
            ..DetectorConfig::default()
        }
    }

    #[test]
    fn novelty_is_causal_and_alerts_once_per_refractory_period() {
        let clean: Vec<f64> = (0..3000).map(wave).collect();
        let mut spiked = clean.clone();
        for t in [1500, 1550, 2200] {
            spiked[t] += 20.0;
        }
        let a = detect_novelty(&clean, REFRACTORY_ROWS);
        let b = detect_novelty(&spiked, REFRACTORY_ROWS);
        // Rows before the first spike cannot see it; probation is silent.
        assert_eq!(a[..1500], b[..1500]);
        assert!(b[..probation_rows(3000)].iter().all(|&s| s == 0.0));
        // The first spike alerts; the second falls in its cool-down; the
        // third, after it, alerts again.
        assert!(b[1500] >= 0.5, "{}", b[1500]);
        assert_eq!(b[1550], 0.0);
        assert!(b[2200] >= 0.5, "{}", b[2200]);
        let alerts: Vec<usize> = (0..3000).filter(|&t| b[t] > 0.0).collect();
        assert!(alerts.windows(2).all(|w| w[1] - w[0] > REFRACTORY_ROWS));
    }

    #[test]
    fn subsets_split_the_corpus_in_two() {
        let rows: Vec<(&str, &str)> = SPLIT.lines().filter_map(|l| l.split_once(' ')).collect();
        assert_eq!(rows.len(), 58);
        for (_, file) in &rows {
            assert!(Subset::Tune.contains(file) != Subset::Holdout.contains(file));
            assert!(Subset::All.contains(file));
        }
        assert_eq!(rows.iter().filter(|(h, _)| *h == "tune").count(), 31);
    }
}
