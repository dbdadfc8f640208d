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

use vigil_model::Scratch;
use vigil_schemas::AlarmState;
use vigil_training::{fit, TrainConfig};

use super::files::DataFile;
use super::run::{probation_rows, records, DetectError, METRIC};

/// Alarm openings of the file-trained release over one series.
pub fn detect_release(data: &DataFile) -> Result<Vec<f64>, DetectError> {
    let records = records(data);
    let probation = probation_rows(records.len());
    let cfg = TrainConfig {
        model: "nab".into(),
        source: "nab".into(),
        metrics: Some(vec![METRIC.to_owned()]),
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    let model = fit(&records[..probation], &cfg, |_| {})?.model;
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    Ok(records
        .iter()
        .enumerate()
        .map(|(t, r)| {
            let s = model.score_record(&mut state, r, &mut scratch);
            let opened = matches!(s.alarm.alarm, Some((_, _, AlarmState::Opened)));
            if t >= probation && opened {
                s.judged.max(f64::MIN_POSITIVE)
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
}

/// See [`Validation`].
pub fn validation(data: &DataFile) -> Result<Validation, DetectError> {
    use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
    let records = records(data);
    let probation = probation_rows(records.len());
    let cfg = TrainConfig {
        model: "nab".into(),
        source: "nab".into(),
        metrics: Some(vec![METRIC.to_owned()]),
        min_records: 1,
        min_device_records: 1,
        ..TrainConfig::default()
    };
    let model = fit(&records[..probation], &cfg, |_| {})?.model;
    let v = &model.payload().header.validation;
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    let mut hot = 0usize;
    for (t, r) in records.iter().enumerate() {
        let s = model.score_record(&mut state, r, &mut scratch);
        if t >= probation && s.judged >= model.threshold() {
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
    for (t, &x) in data.values.iter().enumerate() {
        let s = novelty_score(&nc, st.observe(&nc, &fit_b, x));
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
    })
}
