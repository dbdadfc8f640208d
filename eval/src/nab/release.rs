//! The product's own decisions on a NAB file (`--method release`, the
//! default): what a user gets who trains on the file's first rows with
//! `vigil train --csv FILE --rows N --range value=MIN:MAX --out
//! release.json` and scores it with `vigil models score --csv FILE
//! --after-row N`.
//!
//! Per file, the probationary rows train a release with the file path's
//! settings (`TrainConfig::default()`, no minimum data beyond the fit's
//! own: trimmed calibration, 20 % holdout, the 0.001 target, the default
//! alarm policy, the novelty policy), the file's smallest and largest
//! value declared as the metric's range as NAB hands them to every
//! detector ([`InputRange::Nab`]; [`InputRange::None`] declares nothing). Every row then goes through
//! `Model::score_record` in order, as the scorer runs it: the device's
//! features, its own level, its novelty and trust (`vigil_model::combine`)
//! and its alarm advance with each row. A row where an alarm *opens* (after the
//! probationary rows) carries a score for it ([`opening_score`]: openings the
//! novelty backs rank above those of the release alone), as does the row where
//! an alarm the release opened alone escalates (the novelty joins it); NAB then picks
//! one threshold per profile over all files, as for any detector; every
//! other row 0. NAB charges every opening outside a window, which is what
//! an operator would be paged for; the alarm's hysteresis is the only
//! cool-down.

use vigil_model::novelty::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
use vigil_model::{Model, Scratch, StateCarry};
use vigil_schemas::AlarmState;
use vigil_schemas::Telemetry;
use vigil_training::{fit, DeclaredRange, TrainConfig, TrainError};

use super::files::DataFile;
use super::run::{
    novelty_scores, probation_rows, records, DetectError, InputRange, ReleaseOverride, Retrain,
    METRIC,
};

/// The novelty score at its alert level (`vigil_model::RecordScore`'s
/// `novelty`, and [`novelty_score`]'s).
const NOVELTY_ALERT: f64 = 0.5;

/// The release `vigil train --csv FILE --rows N [--range value=LOW:HIGH]`
/// would write for this file's first rows, with `change` applied to its
/// novelty policy (experiments: `--range-records`, `--trust`).
fn train_release(
    records: &[Telemetry],
    change: &ReleaseOverride,
    declared: Option<DeclaredRange>,
) -> Result<Model, DetectError> {
    let cfg = TrainConfig {
        model: "nab".into(),
        source: "nab".into(),
        metrics: Some(vec![METRIC.to_owned()]),
        min_records: 1,
        min_device_records: 1,
        declared_ranges: declared
            .map(|r| (METRIC.to_owned(), r))
            .into_iter()
            .collect(),
        ..TrainConfig::default()
    };
    let mut payload = fit(records, &cfg, |_| {})?.payload;
    if let Some(policy) = payload.novelty.as_mut() {
        change.apply(policy);
    }
    Ok(Model::from_payload(payload).map_err(TrainError::from)?)
}

/// Alarm openings of the file-trained release over one series, each
/// carrying its [`opening_score`]. An alarm the release opened alone
/// *escalates* at the first of its rows where the novelty reaches its
/// alert level: that row is a detection too, with its own (upper-half)
/// score, so that NAB's threshold can drop a lone release opening without
/// losing the novelty's detection the open alarm would otherwise hide.
pub fn detect_release(
    data: &DataFile,
    change: &ReleaseOverride,
    retrain: Retrain,
    input_range: InputRange,
) -> Result<Vec<f64>, DetectError> {
    let records = records(data);
    let probation = probation_rows(records.len());
    // NAB's inputMin and inputMax: known before the first row, as NAB's
    // runner hands them to every detector.
    let declared = match input_range {
        InputRange::Nab => DeclaredRange::of(data.values.iter().copied()),
        InputRange::None => None,
    };
    let mut model = train_release(&records[..probation], change, declared)?;
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    // The open alarm was opened by the release alone and has not escalated.
    let mut lone = false;
    let mut next_fit = match retrain {
        Retrain::Doubling => probation * 2,
        Retrain::Never => usize::MAX,
    };
    let mut scores = Vec::with_capacity(records.len());
    for (t, r) in records.iter().enumerate() {
        if t == next_fit {
            // A retrain on every row so far, swapped in as the scorer swaps
            // a release in (vigil_model::StateCarry); a retrain that fails
            // leaves the serving release in place, as in the product.
            if let Ok(new) = train_release(&records[..t], change, declared) {
                StateCarry::between(&model, &new).apply(&mut state, &new);
                model = new;
            }
            next_fit = t * 2;
        }
        let s = model.score_record(&mut state, r, &mut scratch);
        let opened = matches!(s.alarm.alarm, Some((_, _, AlarmState::Opened)));
        let ongoing = matches!(s.alarm.alarm, Some((_, _, AlarmState::Ongoing)));
        let backed = s.novelty.unwrap_or(0.0) >= NOVELTY_ALERT;
        if opened {
            lone = !backed;
        }
        scores.push(if t >= probation && opened {
            opening_score(s.judged, s.novelty)
        } else if t >= probation && ongoing && lone && backed {
            lone = false;
            opening_score(s.judged, s.novelty)
        } else {
            0.0
        });
    }
    Ok(scores)
}

/// NAB's `anomaly_score` of an alarm opening, in (0, 1]: in the upper half
/// (`0.5 + novelty / 2`) when the novelty is at its alert level, else in the
/// lower half (`judged / 2`), so that NAB's threshold can drop the openings
/// of the release alone before any the novelty backs. On one file's first
/// rows the release is trained on a short stretch and alerts routinely:
/// on the tuning half, of the openings outside an already-found window,
/// 4 of the release's 27 lone ones were a window's first detection, against
/// 52 of the 229 the novelty backed (eval/NAB.md, session 24). Only the
/// ranking NAB's threshold sweeps changes; the alarms do not.
pub fn opening_score(judged: f64, novelty: Option<f64>) -> f64 {
    let novelty = novelty.unwrap_or(0.0);
    let score = if novelty >= NOVELTY_ALERT {
        0.5 + 0.5 * novelty
    } else {
        0.5 * judged
    };
    score.max(f64::MIN_POSITIVE)
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
    let model = train_release(&records[..probation], &ReleaseOverride::default(), None)?;
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
        if t >= cut && s >= NOVELTY_ALERT {
            n_hold += 1;
        }
    }
    // The novelty as `--method novelty` scores the file (ranges from the
    // probationary rows), before its cool-down.
    let scores = novelty_scores(&nc, &data.values);
    let n_after = scores[probation..]
        .iter()
        .filter(|&&s| s >= NOVELTY_ALERT)
        .count();
    let (mut novelty_onsets, mut was_hot) = (0usize, false);
    for &s in &scores {
        novelty_onsets += usize::from(s >= NOVELTY_ALERT && !was_hot);
        was_hot = s >= NOVELTY_ALERT;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::run::tests::{series, wave};

    #[test]
    fn refits_leave_the_rows_before_them_alone_and_still_see_a_spike() {
        let mut values: Vec<f64> = (0..3000).map(wave).collect();
        values[2500] += 20.0;
        let data = series(values);
        let run =
            |retrain| detect_release(&data, &ReleaseOverride::default(), retrain, InputRange::Nab);
        let once = run(Retrain::Never).expect("trains once");
        let refits = run(Retrain::Doubling).expect("retrains");
        assert_eq!(once.len(), refits.len());
        // The first refit comes at twice the probationary rows: nothing
        // before it may change.
        let first = 2 * probation_rows(3000);
        assert_eq!(once[..first], refits[..first]);
        // After two refits (900 and 1,800 rows) the spike still opens an
        // alarm.
        assert!(
            refits[2500..2510].iter().any(|&s| s > 0.0),
            "no opening at the spike: {:?}",
            &refits[2500..2510]
        );
    }

    #[test]
    fn nabs_input_range_is_the_releases_declared_value_range() {
        let mut values: Vec<f64> = (0..3000).map(wave).collect();
        values[2500] = 40.0;
        values[2600] = -7.0;
        let data = series(values);
        let rows = records(&data);
        let probation = probation_rows(rows.len());
        let value_range = |declared| {
            let model = train_release(&rows[..probation], &ReleaseOverride::default(), declared)
                .expect("trains");
            let ranges = model
                .payload()
                .novelty
                .as_ref()
                .map(|n| n.training_ranges.clone());
            ranges.flatten().expect("ranges")[0].value
        };
        let nab = value_range(DeclaredRange::of(data.values.iter().copied()));
        assert_eq!((nab.low, nab.low + nab.width), (-7.0, 40.0));
        let strict = value_range(None);
        assert!(
            strict.low > -7.0 && strict.low + strict.width < 40.0,
            "{strict:?}"
        );
        // Both runs score every row; the declared range changes decisions
        // only through the novelty's cells.
        for input in [InputRange::Nab, InputRange::None] {
            let scores = detect_release(&data, &ReleaseOverride::default(), Retrain::Never, input)
                .expect("runs");
            assert_eq!(scores.len(), 3000);
        }
    }

    #[test]
    fn openings_the_novelty_backs_rank_above_the_release_alone() {
        // The loudest lone release opening stays below the quietest one
        // the novelty backs, whatever the release scored with it.
        let lone = opening_score(1.0, Some(0.4999));
        let backed = opening_score(0.0, Some(0.5));
        assert!(lone <= 0.5 && backed >= 0.75, "{lone} {backed}");
        assert!(opening_score(0.9, None) > opening_score(0.6, None));
        assert!(opening_score(0.0, Some(0.99)) > opening_score(0.0, Some(0.6)));
        // Every opening keeps a positive score: 0 means no opening to NAB.
        assert!(opening_score(0.0, None) > 0.0);
    }
}
