//! Evaluation of a model and the champion/challenger gate.
//!
//! Records are scored the scoring way (`Model::score_record` with per-device
//! state, devices from cold), exactly as a scorer would, and each decision
//! is counted by `vigil-eval-core`'s [`DeviceTally`]: the definitions
//! (false-alarm rate, detection and delay, precision, recall, alarm events)
//! are in `vigil_eval_core::detection`, shared with `evaluate_flags`, which
//! counts decisions made elsewhere. The types are re-exported here.

use vigil_eval_core::{episodes_by_device, merge, DeviceTally, Tally};
use vigil_model::{Model, Scratch};

pub use vigil_eval_core::{
    evaluate_flags, DeviceFlags, Episode, EvalOptions, Evaluation, KindStats,
};

use crate::data::{DeviceSeries, FleetData};
use crate::par::map_devices;

/// Which of a record's results counts as "flagged".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decision {
    /// The device is in alarm at the record (`RecordScore::anomaly`): what
    /// a verdict's `anomaly` says. An alarm stays open for the policy's
    /// `close_after` calm records, which count as flagged too.
    #[default]
    Alarm,
    /// The record's own decision (`RecordScore::hot`): its judged score
    /// (after the device's own level) at or above the threshold or, with
    /// the release's novelty policy, the combination's alert
    /// (`vigil_model::combine`); without the alarm's hysteresis. The
    /// measure the synthetic-fleet figures before alarms used.
    Record,
}

fn evaluate_device(
    model: &Model,
    series: &DeviceSeries<'_>,
    episodes: &[&Episode],
    opts: &EvalOptions,
    decision: Decision,
) -> Tally {
    let mut tally = DeviceTally::new(episodes, opts);
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    let first_counted = if opts.holdout_only {
        series.holdout_start
    } else {
        0
    };
    for (i, record) in series.records.iter().enumerate() {
        let result = model.score_record(&mut state, record, &mut scratch);
        if i >= first_counted {
            let flagged = match decision {
                Decision::Alarm => result.anomaly,
                Decision::Record => result.hot,
            };
            tally.record(record.seq, flagged);
        }
    }
    let counted = series
        .records
        .get(first_counted)
        .zip(series.records.last())
        .map(|(first, last)| (first.seq, last.seq));
    tally.finish(counted)
}

/// Scores `data` with `model` and compares with `episodes` (may be empty:
/// then only the false-alarm rate is meaningful). A record counts as
/// flagged while its device is in alarm ([`Decision::Alarm`]).
pub fn evaluate(
    model: &Model,
    data: &FleetData<'_>,
    episodes: &[Episode],
    opts: &EvalOptions,
) -> Evaluation {
    evaluate_with(model, data, episodes, opts, Decision::Alarm)
}

/// [`evaluate`] with the record's decision chosen by `decision`.
pub fn evaluate_with(
    model: &Model,
    data: &FleetData<'_>,
    episodes: &[Episode],
    opts: &EvalOptions,
    decision: Decision,
) -> Evaluation {
    let by_device = episodes_by_device(episodes);
    let tallies = map_devices(&data.devices, |series| {
        let eps = by_device
            .get(series.device_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        evaluate_device(model, series, eps, opts, decision)
    });
    merge(tallies, !episodes.is_empty())
}

/// Tolerances of the champion/challenger gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// The candidate may raise the false-alarm rate by this factor …
    pub false_alarm_ratio: f64,
    /// … plus this absolute amount.
    pub false_alarm_slack: f64,
    /// The candidate may lose this much detection rate (with labels).
    pub detection_slack: f64,
    /// Without a live model, the candidate's false-alarm rate must stay
    /// under this.
    pub max_false_alarm_rate: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            false_alarm_ratio: 1.25,
            false_alarm_slack: 0.0005,
            detection_slack: 0.02,
            max_false_alarm_rate: 0.01,
        }
    }
}

/// The gate's verdict, with both evaluations for the log and the release.
#[derive(Debug, Clone, PartialEq)]
pub struct GateDecision {
    /// Whether to publish the candidate.
    pub accepted: bool,
    /// Why, in one line.
    pub reason: String,
    /// The candidate on the holdout.
    pub candidate: Evaluation,
    /// The live model on the same holdout.
    pub live: Option<Evaluation>,
}

/// Champion/challenger: evaluates `candidate` and `live` on the same data
/// and accepts the candidate unless it is worse beyond the tolerances.
/// With no normal record to count (an empty holdout) it refuses: it
/// cannot validate, and says so. Without labels (`episodes` empty) and
/// with the candidate's estimated false-alarm rate in its release, that
/// estimate is held to `max_false_alarm_rate` instead (see the body for
/// why flagged fractions cannot be compared then).
pub fn gate(
    candidate: &Model,
    live: Option<&Model>,
    data: &FleetData<'_>,
    episodes: &[Episode],
    opts: &EvalOptions,
    cfg: &GateConfig,
) -> GateDecision {
    let cand = evaluate(candidate, data, episodes, opts);
    if cand.normal_records == 0 {
        // A false-alarm rate of 0 out of 0 records says nothing.
        return GateDecision {
            accepted: false,
            reason: format!(
                "cannot validate the candidate: no normal {} records to measure its false-alarm rate on (is the holdout empty?)",
                if opts.holdout_only { "holdout" } else { "evaluation" }
            ),
            candidate: cand,
            live: None,
        };
    }
    // Without labels every holdout record counts as normal, so the
    // anomalies of an unlabelled window raise the flagged fraction, and
    // comparing two models by it prefers the less sensitive one (seen: a
    // second model refused against a first one calibrated on less data).
    // What can be measured then is the release's own estimate on held-out
    // rows, robust to those anomalies
    // (`ValidationMetrics::estimated_false_alarm_rate`): it is held to the
    // absolute bound, with or without a live model.
    let estimated = candidate
        .payload()
        .header
        .validation
        .estimated_false_alarm_rate
        .filter(|_| episodes.is_empty());
    if let Some(rate) = estimated {
        let live = live.map(|m| evaluate(m, data, episodes, opts));
        let accepted = rate <= cfg.max_false_alarm_rate;
        let reason = format!(
            "{} estimated false-alarm rate {rate:.5} (held-out rows, unlabelled) {} {:.5}{}",
            if accepted {
                "candidate"
            } else {
                "candidate refused:"
            },
            if accepted { "within" } else { "exceeds" },
            cfg.max_false_alarm_rate,
            live.as_ref().map_or(String::new(), |l| format!(
                "; holdout flagged {:.5} vs the live model's {:.5} (anomalies included)",
                cand.false_alarm_rate, l.false_alarm_rate
            ))
        );
        return GateDecision {
            accepted,
            reason,
            candidate: cand,
            live,
        };
    }
    let Some(live) = live else {
        let accepted = cand.false_alarm_rate <= cfg.max_false_alarm_rate;
        let reason = if accepted {
            format!(
                "no live model; candidate false-alarm rate {:.5} within {:.5}",
                cand.false_alarm_rate, cfg.max_false_alarm_rate
            )
        } else {
            format!(
                "no live model, but candidate false-alarm rate {:.5} exceeds {:.5}",
                cand.false_alarm_rate, cfg.max_false_alarm_rate
            )
        };
        return GateDecision {
            accepted,
            reason,
            candidate: cand,
            live: None,
        };
    };
    let champ = evaluate(live, data, episodes, opts);
    let far_limit = champ.false_alarm_rate * cfg.false_alarm_ratio + cfg.false_alarm_slack;
    let mut problems = Vec::new();
    if cand.false_alarm_rate > far_limit {
        problems.push(format!(
            "false-alarm rate {:.5} above the live model's {:.5} (limit {:.5})",
            cand.false_alarm_rate, champ.false_alarm_rate, far_limit
        ));
    }
    if let (Some(c), Some(l)) = (cand.detection_rate, champ.detection_rate) {
        if c < l - cfg.detection_slack {
            problems.push(format!(
                "detection rate {c:.3} below the live model's {l:.3}"
            ));
        }
    }
    let accepted = problems.is_empty();
    let reason = if accepted {
        format!(
            "candidate not worse: false-alarm rate {:.5} vs {:.5}, detection {} vs {}",
            cand.false_alarm_rate,
            champ.false_alarm_rate,
            fmt_opt(cand.detection_rate),
            fmt_opt(champ.detection_rate)
        )
    } else {
        format!("candidate refused: {}", problems.join("; "))
    };
    GateDecision {
        accepted,
        reason,
        candidate: cand,
        live: Some(champ),
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}
