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
    evaluate_flags, DeviceFlags, Episode, EvalOptions, Evaluation, KindStats, PointCounts,
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
/// why flagged fractions cannot be compared then). With neither a live
/// model nor an estimate, the holdout's flagged fraction is held to that
/// bar where the holdout can show it (`first_release`).
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
        let (accepted, reason) = first_release(&cand, cfg.max_false_alarm_rate);
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

/// The gate's decision on a candidate with no live model and no estimate
/// of its own, from its holdout evaluation `cand` and the bar on its
/// flagged fraction.
///
/// A small holdout (a few hundred rows of one device, too few for the
/// release's own estimate) holds one alarm or none: one alarm of five
/// records in 80 is 6 % flagged, which says little about a release
/// calibrated for 0.1 %. So only what the holdout shows is refused: the
/// flagged fraction's 95 % lower bound ([`flagged_lower_bound`]) above
/// the bar.
fn first_release(cand: &Evaluation, bar: f64) -> (bool, String) {
    let within = cand.false_alarm_rate <= bar;
    let lower = flagged_lower_bound(cand);
    let alarms = cand.false_alarm_events.max(1);
    if within {
        let reason = format!(
            "no live model; candidate false-alarm rate {:.5} within {bar:.5}",
            cand.false_alarm_rate
        );
        (true, reason)
    } else if lower <= bar {
        let reason = format!(
            "no live model; candidate false-alarm rate {:.5} above {bar:.5} on {} holdout records, \
             but {alarms} alarm(s) cannot show it (95 % lower bound {lower:.5}): accepted",
            cand.false_alarm_rate, cand.normal_records
        );
        (true, reason)
    } else {
        let reason = format!(
            "no live model, but candidate false-alarm rate {:.5} exceeds {bar:.5} \
             (95 % lower bound {lower:.5}, {alarms} alarm(s) in {} holdout records)",
            cand.false_alarm_rate, cand.normal_records
        );
        (false, reason)
    }
}

/// The 95 % lower confidence bound of `eval`'s flagged fraction, counting
/// its alarms as the independent events (a Poisson count; an alarm's
/// records are not independent of each other) at their observed mean
/// length. 0 when nothing was flagged.
fn flagged_lower_bound(eval: &Evaluation) -> f64 {
    if eval.false_alarms == 0 || eval.normal_records == 0 {
        return 0.0;
    }
    // Flagged records with no opening counted: an alarm open from before
    // the counted range, one event.
    let events = eval.false_alarm_events.max(1);
    let mean_length = eval.false_alarms as f64 / events as f64;
    poisson_lower_95(events) * mean_length / eval.normal_records as f64
}

/// The one-sided 95 % lower confidence limit of a Poisson mean after
/// observing `k` events: the mean whose probability of `k` or more is 5 %.
fn poisson_lower_95(k: u64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    // P(X <= k - 1; mean) falls as the mean grows; bisect for 0.95.
    let below = |mean: f64| {
        let mut term = (-mean).exp();
        let mut sum = term;
        for i in 1..k {
            term *= mean / i as f64;
            sum += term;
        }
        sum
    };
    let (mut lo, mut hi) = (0.0, k as f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if below(mid) > 0.95 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::{first_release, flagged_lower_bound, poisson_lower_95};
    use vigil_eval_core::Evaluation;

    #[test]
    fn the_poisson_lower_limit_matches_the_tables() {
        // One-sided 95 % lower limits (chi-square(2k, 0.05) / 2).
        for (k, limit) in [
            (0, 0.0),
            (1, 0.0513),
            (2, 0.3554),
            (3, 0.8177),
            (10, 5.4254),
        ] {
            assert!(
                (poisson_lower_95(k) - limit).abs() < 5e-4,
                "k = {k}: {}",
                poisson_lower_95(k)
            );
        }
    }

    fn holdout(normal: u64, flagged: u64, alarms: u64) -> Evaluation {
        Evaluation {
            normal_records: normal,
            false_alarms: flagged,
            false_alarm_events: alarms,
            false_alarm_rate: flagged as f64 / normal as f64,
            ..Evaluation::default()
        }
    }

    #[test]
    fn one_short_alarm_in_a_small_holdout_shows_nothing_but_many_do() {
        // 80 records (400 rows of one pump, 20 % held out): one alarm of
        // five records is 6 % flagged, its lower bound 0.3 %.
        let one = flagged_lower_bound(&holdout(80, 5, 1));
        assert!(one < 0.01, "{one}");
        // Two such alarms, or one holding half of the records, do show it.
        assert!(flagged_lower_bound(&holdout(80, 10, 2)) > 0.01);
        assert!(flagged_lower_bound(&holdout(80, 40, 1)) > 0.01);
        // A large holdout's 2 % flagged in 40 alarms is shown.
        assert!(flagged_lower_bound(&holdout(10_000, 200, 40)) > 0.01);
        assert_eq!(flagged_lower_bound(&holdout(80, 0, 0)), 0.0);
    }

    #[test]
    fn a_first_release_is_refused_only_for_what_its_holdout_shows() {
        let (accepted, reason) = first_release(&holdout(80, 0, 0), 0.01);
        assert!(accepted && reason.contains("within"), "{reason}");
        let (accepted, reason) = first_release(&holdout(80, 5, 1), 0.01);
        assert!(accepted && reason.contains("cannot show"), "{reason}");
        let (accepted, reason) = first_release(&holdout(80, 31, 2), 0.01);
        assert!(!accepted && reason.contains("exceeds"), "{reason}");
        // A large holdout decides as before: 2 % flagged is refused.
        let (accepted, _) = first_release(&holdout(10_000, 200, 40), 0.01);
        assert!(!accepted);
    }
}
