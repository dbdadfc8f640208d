//! Evaluation and the champion/challenger gate.
//!
//! Records are scored the scoring way (`Model::score_record` with per-device
//! state, devices from cold), exactly as a scorer would. Definitions:
//!
//! - **false-alarm rate**: flagged normal records / normal records. Records
//!   inside a labelled episode, or within `grace_records` after its end (the
//!   detector's memory of it), are not normal records.
//! - **detection**: an episode is detected when at least one of its records
//!   is flagged; **delay** is the number of records from its first record
//!   to the first flagged one (0 = flagged at once).
//! - **precision**: flagged records inside episodes / (those + false
//!   alarms). Per kind, a kind's flagged episode records against *all*
//!   false alarms: the precision the detector would have if that kind were
//!   the only one.
//! - **recall** (per kind and overall) is the episode detection rate;
//!   **F1** combines it with precision.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use vigil_model::{Model, Scratch};
use vigil_schemas::ValidationMetrics;

use crate::data::{DeviceSeries, FleetData};
use crate::par::map_devices;

/// Ground truth of one anomaly episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// The device.
    pub device_id: String,
    /// Kind (`spike`, `level_shift`, …).
    pub kind: String,
    /// First affected record.
    pub first_seq: u64,
    /// Last affected record.
    pub last_seq: u64,
}

/// What to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Count only records in each device's holdout part (state is still
    /// built from the records before it).
    pub holdout_only: bool,
    /// Records after an episode's end that count neither as normal nor as
    /// anomalous.
    pub grace_records: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            holdout_only: false,
            grace_records: 64,
        }
    }
}

/// Results of one kind of anomaly.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindStats {
    /// Episodes of this kind.
    pub episodes: u64,
    /// Episodes with at least one flagged record.
    pub detected: u64,
    /// detected / episodes.
    pub recall: f64,
    /// See the module docs.
    pub precision: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Mean records to detection over detected episodes.
    pub mean_delay: Option<f64>,
    /// Records inside episodes of this kind.
    pub records: u64,
    /// Of those, flagged.
    pub flagged: u64,
}

/// Results of evaluating a model on a data set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// Records counted.
    pub records: u64,
    /// Normal records (outside episodes and grace periods).
    pub normal_records: u64,
    /// Flagged normal records.
    pub false_alarms: u64,
    /// false_alarms / normal_records.
    pub false_alarm_rate: f64,
    /// Flagged records after an episode, within the grace period.
    pub flagged_in_grace: u64,
    /// Labelled episodes that overlap the counted records.
    pub episodes: u64,
    /// Of those, detected.
    pub detected: u64,
    /// Overall precision (None without labels).
    pub precision: Option<f64>,
    /// detected / episodes (None without labels).
    pub detection_rate: Option<f64>,
    /// Mean detection delay in records (None when nothing was detected).
    pub mean_detection_delay: Option<f64>,
    /// Per anomaly kind.
    pub by_kind: BTreeMap<String, KindStats>,
}

impl Evaluation {
    /// The figures a release header carries.
    pub fn validation_metrics(&self) -> ValidationMetrics {
        ValidationMetrics {
            holdout_records: self.records,
            false_alarm_rate: self.false_alarm_rate,
            detection_rate: self.detection_rate,
            mean_detection_delay: self.mean_detection_delay,
        }
    }

    /// F1 over all kinds (None without labels).
    pub fn f1(&self) -> Option<f64> {
        Some(f1(self.precision?, self.detection_rate?))
    }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Per-device tallies, merged afterwards.
#[derive(Debug, Default)]
struct Tally {
    records: u64,
    normal: u64,
    false_alarms: u64,
    in_grace: u64,
    /// kind → (episode records, flagged episode records)
    kind_records: HashMap<String, (u64, u64)>,
    /// (kind, first flag delay) per counted episode
    episodes: Vec<(String, Option<u64>)>,
}

fn evaluate_device(
    model: &Model,
    series: &DeviceSeries<'_>,
    episodes: &[&Episode],
    opts: &EvalOptions,
) -> Tally {
    let mut tally = Tally::default();
    let mut state = model.extractor().new_state();
    let mut scratch = Scratch::default();
    let first_counted = if opts.holdout_only {
        series.holdout_start
    } else {
        0
    };
    let counted_from_seq = series.records.get(first_counted).map(|r| r.seq);
    let mut first_flag: Vec<Option<u64>> = vec![None; episodes.len()];
    for (i, record) in series.records.iter().enumerate() {
        let result = model.score_record(&mut state, record, &mut scratch);
        if i < first_counted {
            continue;
        }
        tally.records += 1;
        let seq = record.seq;
        let inside = episodes
            .iter()
            .position(|e| (e.first_seq..=e.last_seq).contains(&seq));
        match inside {
            Some(k) => {
                let entry = tally
                    .kind_records
                    .entry(episodes[k].kind.clone())
                    .or_default();
                entry.0 += 1;
                if result.anomaly {
                    entry.1 += 1;
                    first_flag[k].get_or_insert(seq - episodes[k].first_seq);
                }
            }
            None => {
                let in_grace = episodes
                    .iter()
                    .any(|e| seq > e.last_seq && seq <= e.last_seq + opts.grace_records);
                if in_grace {
                    tally.in_grace += u64::from(result.anomaly);
                } else {
                    tally.normal += 1;
                    tally.false_alarms += u64::from(result.anomaly);
                }
            }
        }
    }
    for (e, flag) in episodes.iter().zip(first_flag) {
        let counted = counted_from_seq.is_some_and(|from| e.last_seq >= from)
            && series.records.last().is_some_and(|r| e.first_seq <= r.seq);
        if counted {
            tally.episodes.push((e.kind.clone(), flag));
        }
    }
    tally
}

/// Scores `data` with `model` and compares with `episodes` (may be empty:
/// then only the false-alarm rate is meaningful).
pub fn evaluate(
    model: &Model,
    data: &FleetData<'_>,
    episodes: &[Episode],
    opts: &EvalOptions,
) -> Evaluation {
    let mut by_device: HashMap<&str, Vec<&Episode>> = HashMap::new();
    for e in episodes {
        by_device.entry(e.device_id.as_str()).or_default().push(e);
    }
    let tallies = map_devices(&data.devices, |series| {
        let eps = by_device
            .get(series.device_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        evaluate_device(model, series, eps, opts)
    });

    let mut ev = Evaluation::default();
    let mut kinds: BTreeMap<String, KindStats> = BTreeMap::new();
    let mut delays: Vec<u64> = Vec::new();
    let mut kind_delays: HashMap<String, Vec<u64>> = HashMap::new();
    for t in tallies {
        ev.records += t.records;
        ev.normal_records += t.normal;
        ev.false_alarms += t.false_alarms;
        ev.flagged_in_grace += t.in_grace;
        for (kind, (recs, flagged)) in t.kind_records {
            let k = kinds.entry(kind).or_default();
            k.records += recs;
            k.flagged += flagged;
        }
        for (kind, flag) in t.episodes {
            let k = kinds.entry(kind.clone()).or_default();
            k.episodes += 1;
            ev.episodes += 1;
            if let Some(d) = flag {
                k.detected += 1;
                ev.detected += 1;
                delays.push(d);
                kind_delays.entry(kind).or_default().push(d);
            }
        }
    }
    ev.false_alarm_rate = ratio(ev.false_alarms, ev.normal_records);
    let mean = |v: &[u64]| (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64);
    if !episodes.is_empty() {
        let tp: u64 = kinds.values().map(|k| k.flagged).sum();
        ev.precision = Some(ratio(tp, tp + ev.false_alarms));
        ev.detection_rate = Some(ratio(ev.detected, ev.episodes));
        ev.mean_detection_delay = mean(&delays);
    }
    for (name, k) in kinds.iter_mut() {
        k.recall = ratio(k.detected, k.episodes);
        k.precision = ratio(k.flagged, k.flagged + ev.false_alarms);
        k.f1 = f1(k.precision, k.recall);
        k.mean_delay = kind_delays.get(name).and_then(|d| mean(d));
    }
    ev.by_kind = kinds;
    ev
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
pub fn gate(
    candidate: &Model,
    live: Option<&Model>,
    data: &FleetData<'_>,
    episodes: &[Episode],
    opts: &EvalOptions,
    cfg: &GateConfig,
) -> GateDecision {
    let cand = evaluate(candidate, data, episodes, opts);
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
