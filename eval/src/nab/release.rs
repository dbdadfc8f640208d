//! The product's own decisions on a NAB file (`--method release`): what a
//! user gets who trains on the file's first rows with `vigil train --csv
//! FILE --rows N --out release.json` and scores it with `vigil models
//! score --csv FILE --after-row N`.
//!
//! Per file, the probationary rows train a release with the file path's
//! settings (`TrainConfig::default()`, no minimum data beyond the fit's
//! own: trimmed calibration, 20 % holdout, the 0.001 target, the default
//! alarm policy). Every row then goes through `Model::score_record` in
//! order, as the scorer runs it: the device's features, its own level and
//! its alarm advance with each row. A row where an alarm *opens* (after the
//! probationary rows) carries its judged score; every other row 0. NAB
//! charges every opening outside a window, which is what an operator
//! would be paged for; the alarm's hysteresis is the only cool-down.

use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
use vigil_model::{AlarmTrack, Scratch};
use vigil_schemas::AlarmState;
use vigil_schemas::Telemetry;
use vigil_training::{fit, TrainConfig};

use super::files::DataFile;
use super::run::{probation_rows, records, DetectError, METRIC};

/// The release `vigil train --csv FILE --rows N` would write for this
/// file's probationary rows.
fn train_release(records: &[Telemetry]) -> Result<vigil_model::Model, DetectError> {
    let cfg = TrainConfig {
        model: "nab".into(),
        source: "nab".into(),
        metrics: Some(vec![METRIC.to_owned()]),
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    Ok(fit(records, &cfg, |_| {})?.model)
}

/// How the release and the novelty combine (`None`: the release alone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corroboration {
    /// Novelty bits per resolution a release alert needs.
    pub bits: f64,
    /// A novelty alert needs a judged score of at least this share of the
    /// threshold.
    pub gate: f64,
}

/// Alarm openings of the file-trained release over one series; with
/// `corroboration`, of the combination (experiment, session 15).
pub fn detect_release(
    data: &DataFile,
    corroboration: Option<Corroboration>,
) -> Result<Vec<f64>, DetectError> {
    let trust = trust_from_env();
    let mut trust_state = vigil_model::trust::TrustState::default();
    let records = records(data);
    let probation = probation_rows(records.len());
    let model = train_release(&records[..probation])?;
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    let nc = NoveltyConfig::default();
    let range_rows = std::env::var("VIGIL_RANGE_ROWS")
        .ok()
        .map_or(probation, |v| {
            v.parse::<usize>().expect("rows").min(records.len())
        });
    let ranges = MetricNovelty::fit(&nc, &data.values[..range_rows]);
    let mut novelty = NoveltyState::new(&nc);
    let mut track = AlarmTrack::default();
    let policy = model.payload().alarm;
    let threshold = model.threshold();
    let resolutions = nc.resolutions.len() as f64;
    Ok(records
        .iter()
        .enumerate()
        .map(|(t, r)| {
            let s = model.score_record(&mut state, r, &mut scratch);
            let p = novelty.observe(&nc, &ranges, data.values[t]);
            let opened = match corroboration {
                None => matches!(s.alarm.alarm, Some((_, _, AlarmState::Opened))),
                Some(c) => {
                    let bits = -p.max(f64::MIN_POSITIVE).log2() / resolutions;
                    let nscore = novelty_score(&nc, p);
                    let alert = match &trust {
                        Some(tc) => {
                            trust_state
                                .step(tc, s.judged, threshold, bits, nscore >= 0.5)
                                .alert
                        }
                        None => {
                            let by_release = s.judged >= threshold && bits >= c.bits;
                            let by_novelty = nscore >= 0.5 && s.judged >= c.gate * threshold;
                            by_release || by_novelty
                        }
                    };
                    let score = if alert {
                        s.judged.max(nscore).max(threshold)
                    } else {
                        0.0
                    };
                    let step = track.step(&policy, r.seq, r.ts, score, threshold);
                    matches!(step.alarm, Some((_, _, AlarmState::Opened)))
                }
            };
            if t >= probation && opened {
                s.judged.max(novelty_score(&nc, p)).max(f64::MIN_POSITIVE)
            } else {
                0.0
            }
        })
        .collect())
}

/// Diagnostic (session 15): what the training rows of one file say about
/// each detector, against what each does after them.
#[derive(Debug, Clone)]
pub struct Validation {
    pub probation: usize,
    /// The release's own holdout: flagged fraction, extrapolated estimate.
    pub pca_holdout: f64,
    pub pca_estimate: Option<f64>,
    /// Judged-score exceedances after the probationary rows.
    pub pca_after: f64,
    /// Novelty candidates (score ≥ 0.5) on the last fifth of the
    /// probationary rows, ranges from the first four fifths.
    pub novelty_holdout: f64,
    /// Novelty candidates after the probationary rows (ranges from all).
    pub novelty_after: f64,
    /// Alert onsets per row over the whole file: the release's (judged
    /// score at or above the threshold) and the novelty's.
    pub release_onsets: f64,
    pub novelty_onsets: f64,
}

/// See [`Validation`].
pub fn validation(data: &DataFile) -> Result<Validation, DetectError> {
    let records = records(data);
    let probation = probation_rows(records.len());
    let model = train_release(&records[..probation])?;
    let v = &model.payload().header.validation;
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    let mut hot = 0usize;
    let (mut release_onsets, mut was_hot) = (0usize, false);
    for (t, r) in records.iter().enumerate() {
        let s = model.score_record(&mut state, r, &mut scratch);
        let is_hot = s.judged >= model.threshold();
        release_onsets += usize::from(is_hot && !was_hot);
        was_hot = is_hot;
        if t >= probation && is_hot {
            hot += 1;
        }
    }
    let after = (records.len() - probation) as f64;
    let nc = NoveltyConfig::default();
    let cut = probation * 4 / 5;
    let fit_a = MetricNovelty::fit(&nc, &data.values[..cut]);
    let mut st = NoveltyState::new(&nc);
    let mut n_hold = 0usize;
    for (t, &x) in data.values[..probation].iter().enumerate() {
        let s = novelty_score(&nc, st.observe(&nc, &fit_a, x));
        if t >= cut && s >= 0.5 {
            n_hold += 1;
        }
    }
    let fit_b = MetricNovelty::fit(&nc, &data.values[..probation]);
    let mut st = NoveltyState::new(&nc);
    let mut n_after = 0usize;
    let (mut novelty_onsets, mut was_hot) = (0usize, false);
    for (t, &x) in data.values.iter().enumerate() {
        let s = novelty_score(&nc, st.observe(&nc, &fit_b, x));
        novelty_onsets += usize::from(s >= 0.5 && !was_hot);
        was_hot = s >= 0.5;
        if t >= probation && s >= 0.5 {
            n_after += 1;
        }
    }
    Ok(Validation {
        probation,
        pca_holdout: v.false_alarm_rate,
        pca_estimate: v.estimated_false_alarm_rate,
        pca_after: hot as f64 / after,
        novelty_holdout: n_hold as f64 / (probation - cut) as f64,
        novelty_after: n_after as f64 / after,
        release_onsets: release_onsets as f64 / records.len() as f64,
        novelty_onsets: novelty_onsets as f64 / records.len() as f64,
    })
}

/// Experiment: `VIGIL_TRUST=WINDOW:RELEASE_RATE:NOVELTY_RATE:START_RELEASE:START_NOVELTY:BITS:GATE` turns on
/// [`vigil_model::trust`] for `--method corroborated`.
pub fn trust_from_env() -> Option<vigil_model::trust::TrustConfig> {
    let v = std::env::var("VIGIL_TRUST").ok()?;
    let f: Vec<f64> = v.split(':').map(|x| x.parse().expect("number")).collect();
    Some(vigil_model::trust::TrustConfig {
        weight: 1.0 / f[0],
        release_rate: f[1],
        novelty_rate: f[2],
        start: (f[3], f[4]),
        corroborate_bits: f[5],
        gate: f[6],
        calm: f.get(7).map_or(1, |&c| c as u32),
    })
}
