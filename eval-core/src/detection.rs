//! Detection quality: decisions (flagged or not, per record) counted
//! against labelled anomaly episodes.
//!
//! Definitions:
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
//! - **recall** (per kind and overall) is the episode detection rate over
//!   the episodes whose every record was in the counted range; **F1**
//!   combines it with precision. An episode the range cuts (it began
//!   before the first counted record, say before a model existed, or was
//!   still running at the last) is reported apart as a *cut* episode: a
//!   drift stopped ten records in cannot be judged. Its flagged records
//!   still count as true alarms.
//! - **alarm events**: a run of consecutive flagged records of one device.
//!   One that touches an episode is a true alarm event (of that episode's
//!   kind), one that touches only a grace period is neither, any other is a
//!   false alarm event. **Event precision** is true / (true + false) alarm
//!   events, so a long alarm counts once, like a long episode does in
//!   recall.
//!
//! [`evaluate_flags`] takes decisions made elsewhere (verdicts read back
//! from a running pipeline by `vigil-loadgen run`); the trainer's
//! `vigil_training::evaluate` scores records with a model and feeds each
//! decision to a [`DeviceTally`], so both count by the same rules.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use vigil_schemas::ValidationMetrics;

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

/// A simulated fleet's labelled episode (`vigil_fleet_sim`), as the ground
/// truth decisions are counted against.
impl From<&vigil_fleet_sim::Episode> for Episode {
    fn from(e: &vigil_fleet_sim::Episode) -> Self {
        Episode {
            device_id: e.device_id.clone(),
            kind: e.kind.as_str().to_owned(),
            first_seq: e.first_seq,
            last_seq: e.last_seq,
        }
    }
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
    /// Alarm events that touch an episode of this kind.
    pub alarm_events: u64,
    /// alarm_events / (alarm_events + all false alarm events).
    pub event_precision: f64,
    /// Harmonic mean of event_precision and recall.
    pub event_f1: f64,
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
    /// Labelled episodes wholly inside the counted records.
    pub episodes: u64,
    /// Of those, detected.
    pub detected: u64,
    /// Labelled episodes the counted range cuts (partly counted); not in
    /// `episodes` nor in recall.
    pub cut_episodes: u64,
    /// Of those, detected in their counted part.
    pub cut_detected: u64,
    /// Overall precision (None without labels).
    pub precision: Option<f64>,
    /// detected / episodes (None without labels).
    pub detection_rate: Option<f64>,
    /// Mean detection delay in records (None when nothing was detected).
    pub mean_detection_delay: Option<f64>,
    /// Alarm events that touch an episode.
    pub alarm_events: u64,
    /// Alarm events outside every episode and grace period.
    pub false_alarm_events: u64,
    /// alarm_events / (alarm_events + false_alarm_events) (None without
    /// labels).
    pub event_precision: Option<f64>,
    /// Per anomaly kind.
    pub by_kind: BTreeMap<String, KindStats>,
}

impl Evaluation {
    /// The figures a release header carries.
    pub fn validation_metrics(&self) -> ValidationMetrics {
        ValidationMetrics {
            estimated_false_alarm_rate: None,
            expected_false_alarm_rate: None,
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

    /// Event-wise F1: event precision with the episode detection rate (None
    /// without labels).
    pub fn event_f1(&self) -> Option<f64> {
        Some(f1(self.event_precision?, self.detection_rate?))
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

/// One device's counts, from [`DeviceTally::finish`]; [`merge`] adds
/// them up into an [`Evaluation`].
#[derive(Debug, Default)]
pub struct Tally {
    records: u64,
    normal: u64,
    false_alarms: u64,
    in_grace: u64,
    false_alarm_events: u64,
    /// kind → (episode records, flagged episode records, alarm events)
    kind_records: HashMap<String, (u64, u64, u64)>,
    /// (kind, first flag delay) per counted episode
    episodes: Vec<(String, Option<u64>)>,
    /// (episodes cut by the counted range, of those detected)
    cut: (u64, u64),
}

/// Where an alarm event in progress has been so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touched {
    /// Only normal records.
    Normal,
    /// A grace period, no episode.
    Grace,
    /// The episode with this index.
    Episode(usize),
}

/// Counts one device's decisions, record by record in seq order: the
/// one counting rule behind [`evaluate_flags`] and the trainer's model
/// evaluation.
#[derive(Debug)]
pub struct DeviceTally<'e> {
    episodes: &'e [&'e Episode],
    grace_records: u64,
    first_flag: Vec<Option<u64>>,
    /// The alarm event in progress (the previous record was flagged).
    alarm: Option<Touched>,
    tally: Tally,
}

impl<'e> DeviceTally<'e> {
    /// Starts a device whose labelled episodes are `episodes`.
    pub fn new(episodes: &'e [&'e Episode], opts: &EvalOptions) -> Self {
        DeviceTally {
            episodes,
            grace_records: opts.grace_records,
            first_flag: vec![None; episodes.len()],
            alarm: None,
            tally: Tally::default(),
        }
    }

    /// One counted record's decision.
    pub fn record(&mut self, seq: u64, anomaly: bool) {
        let tally = &mut self.tally;
        tally.records += 1;
        let inside = self
            .episodes
            .iter()
            .position(|e| (e.first_seq..=e.last_seq).contains(&seq));
        let touched = match inside {
            Some(k) => {
                let entry = tally
                    .kind_records
                    .entry(self.episodes[k].kind.clone())
                    .or_default();
                entry.0 += 1;
                if anomaly {
                    entry.1 += 1;
                    self.first_flag[k].get_or_insert(seq - self.episodes[k].first_seq);
                }
                Touched::Episode(k)
            }
            None => {
                let grace = self.grace_records;
                let in_grace = self
                    .episodes
                    .iter()
                    .any(|e| seq > e.last_seq && seq <= e.last_seq.saturating_add(grace));
                if in_grace {
                    tally.in_grace += u64::from(anomaly);
                    Touched::Grace
                } else {
                    tally.normal += 1;
                    tally.false_alarms += u64::from(anomaly);
                    Touched::Normal
                }
            }
        };
        if anomaly {
            // An event that touched an episode stays that episode's; one
            // that touched a grace period can still become true.
            self.alarm = Some(match (self.alarm, touched) {
                (Some(Touched::Episode(k)), _) | (_, Touched::Episode(k)) => Touched::Episode(k),
                (Some(Touched::Grace), _) | (_, Touched::Grace) => Touched::Grace,
                _ => Touched::Normal,
            });
        } else {
            self.close_alarm();
        }
    }

    fn close_alarm(&mut self) {
        match self.alarm.take() {
            Some(Touched::Episode(k)) => {
                let kind = self.episodes[k].kind.clone();
                self.tally.kind_records.entry(kind).or_default().2 += 1;
            }
            Some(Touched::Normal) => self.tally.false_alarm_events += 1,
            Some(Touched::Grace) | None => {}
        }
    }

    /// Ends the device: episodes wholly inside the counted seqs `counted`
    /// (first..=last) are counted, detected or not; those it cuts are
    /// counted apart.
    pub fn finish(mut self, counted: Option<(u64, u64)>) -> Tally {
        self.close_alarm();
        let Some((from, to)) = counted else {
            return self.tally;
        };
        for (e, flag) in self.episodes.iter().zip(self.first_flag) {
            if e.first_seq >= from && e.last_seq <= to {
                self.tally.episodes.push((e.kind.clone(), flag));
            } else if e.last_seq >= from && e.first_seq <= to {
                self.tally.cut.0 += 1;
                self.tally.cut.1 += u64::from(flag.is_some());
            }
        }
        self.tally
    }
}

/// Point-wise counts of flagged and labelled records, as benchmarks that
/// label every row (the industrial one of issue 16) score a detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointCounts {
    /// Labelled anomalous and flagged.
    pub hits: u64,
    /// Normal and flagged.
    pub false_hits: u64,
    /// Labelled anomalous.
    pub positives: u64,
    /// Every record counted.
    pub records: u64,
}

impl std::ops::AddAssign for PointCounts {
    fn add_assign(&mut self, other: Self) {
        self.hits += other.hits;
        self.false_hits += other.false_hits;
        self.positives += other.positives;
        self.records += other.records;
    }
}

impl PointCounts {
    /// Counts one record.
    pub fn add(&mut self, flagged: bool, anomalous: bool) {
        self.records += 1;
        self.positives += u64::from(anomalous);
        self.hits += u64::from(flagged && anomalous);
        self.false_hits += u64::from(flagged && !anomalous);
    }

    /// (F1, precision, recall); 0 where undefined.
    pub fn f1(&self) -> (f64, f64, f64) {
        let precision = self.hits as f64 / (self.hits + self.false_hits).max(1) as f64;
        let recall = self.hits as f64 / self.positives.max(1) as f64;
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        (f1, precision, recall)
    }

    /// The F1 of flagging every record: the bar a detector must beat.
    pub fn flag_all_f1(&self) -> f64 {
        let p = self.positives as f64 / self.records.max(1) as f64;
        2.0 * p / (1.0 + p)
    }
}

/// `episodes` grouped by device, for [`DeviceTally::new`].
pub fn episodes_by_device(episodes: &[Episode]) -> HashMap<&str, Vec<&Episode>> {
    let mut by_device: HashMap<&str, Vec<&Episode>> = HashMap::new();
    for e in episodes {
        by_device.entry(e.device_id.as_str()).or_default().push(e);
    }
    by_device
}

/// One device's decisions made elsewhere, for [`evaluate_flags`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFlags {
    /// The device.
    pub device_id: String,
    /// `(seq, anomaly)` of every decided record, seq strictly increasing.
    /// Records without a decision (lost) are simply absent.
    pub flags: Vec<(u64, bool)>,
    /// The seqs the device sent, `(first, last)`: episodes overlapping them
    /// count even when none of their records was decided. `None` means the
    /// range of `flags`.
    pub sent: Option<(u64, u64)>,
}

/// Compares decisions made elsewhere with `episodes`, by the same rules as
/// the trainer's model evaluation (`holdout_only` does not apply: every
/// record counts).
pub fn evaluate_flags(
    devices: &[DeviceFlags],
    episodes: &[Episode],
    opts: &EvalOptions,
) -> Evaluation {
    let by_device = episodes_by_device(episodes);
    let tallies = devices.iter().map(|d| {
        let eps = by_device
            .get(d.device_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut tally = DeviceTally::new(eps, opts);
        for &(seq, anomaly) in &d.flags {
            tally.record(seq, anomaly);
        }
        let decided = d.flags.first().zip(d.flags.last()).map(|(a, b)| (a.0, b.0));
        tally.finish(d.sent.or(decided))
    });
    merge(tallies, !episodes.is_empty())
}

/// Adds up per-device tallies; `labelled` says whether any episode was
/// given (without labels only the false-alarm figures mean anything).
pub fn merge(tallies: impl IntoIterator<Item = Tally>, labelled: bool) -> Evaluation {
    let mut ev = Evaluation::default();
    let mut kinds: BTreeMap<String, KindStats> = BTreeMap::new();
    let mut delays: Vec<u64> = Vec::new();
    let mut kind_delays: HashMap<String, Vec<u64>> = HashMap::new();
    for t in tallies {
        ev.records += t.records;
        ev.normal_records += t.normal;
        ev.false_alarms += t.false_alarms;
        ev.flagged_in_grace += t.in_grace;
        ev.false_alarm_events += t.false_alarm_events;
        ev.cut_episodes += t.cut.0;
        ev.cut_detected += t.cut.1;
        for (kind, (recs, flagged, events)) in t.kind_records {
            let k = kinds.entry(kind).or_default();
            k.records += recs;
            k.flagged += flagged;
            k.alarm_events += events;
            ev.alarm_events += events;
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
    if labelled {
        let tp: u64 = kinds.values().map(|k| k.flagged).sum();
        ev.precision = Some(ratio(tp, tp + ev.false_alarms));
        ev.detection_rate = Some(ratio(ev.detected, ev.episodes));
        ev.mean_detection_delay = mean(&delays);
        ev.event_precision = Some(ratio(
            ev.alarm_events,
            ev.alarm_events + ev.false_alarm_events,
        ));
    }
    for (name, k) in kinds.iter_mut() {
        k.recall = ratio(k.detected, k.episodes);
        k.precision = ratio(k.flagged, k.flagged + ev.false_alarms);
        k.f1 = f1(k.precision, k.recall);
        k.event_precision = ratio(k.alarm_events, k.alarm_events + ev.false_alarm_events);
        k.event_f1 = f1(k.event_precision, k.recall);
        k.mean_delay = kind_delays.get(name).and_then(|d| mean(d));
    }
    ev.by_kind = kinds;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode(device: &str, kind: &str, first_seq: u64, last_seq: u64) -> Episode {
        Episode {
            device_id: device.into(),
            kind: kind.into(),
            first_seq,
            last_seq,
        }
    }

    /// Seqs 1..=n of `device`, flagged where `flagged` says.
    fn flags(device: &str, n: u64, flagged: &[u64]) -> DeviceFlags {
        DeviceFlags {
            device_id: device.into(),
            flags: (1..=n).map(|s| (s, flagged.contains(&s))).collect(),
            sent: None,
        }
    }

    #[test]
    fn alarm_events_count_once_and_by_kind() {
        let eps = [
            episode("a", "spike", 10, 12),
            episode("a", "drift", 50, 80),
            episode("b", "stuck_at", 20, 30),
        ];
        let opts = EvalOptions {
            holdout_only: false,
            grace_records: 5,
        };
        let devices = [
            // a: one long alarm over the spike (counts once), a false alarm
            // run of 3 at 30..=32, an alarm in the spike's grace (neither),
            // the drift missed.
            flags("a", 100, &[9, 10, 11, 12, 13, 15, 30, 31, 32]),
            // b: stuck_at caught late; one single false alarm.
            flags("b", 100, &[25, 90]),
        ];
        let ev = evaluate_flags(&devices, &eps, &opts);
        assert_eq!(ev.records, 200);
        assert_eq!(ev.episodes, 3);
        assert_eq!(ev.detected, 2);
        assert_eq!(ev.alarm_events, 2, "spike run and stuck_at flag");
        assert_eq!(ev.false_alarm_events, 2, "30..=32 and b's 90");
        assert_eq!(ev.event_precision, Some(0.5));
        assert_eq!(
            ev.event_f1(),
            Some(2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0))
        );
        // Record-wise: 9 is normal (false alarm), 13 and 15 are in grace.
        assert_eq!(ev.false_alarms, 5);
        assert_eq!(ev.flagged_in_grace, 2);
        let spike = &ev.by_kind["spike"];
        assert_eq!(
            (spike.episodes, spike.detected, spike.alarm_events),
            (1, 1, 1)
        );
        assert_eq!(spike.mean_delay, Some(0.0));
        assert_eq!(spike.event_precision, 1.0 / 3.0);
        let drift = &ev.by_kind["drift"];
        assert_eq!((drift.episodes, drift.detected), (1, 0));
        assert_eq!(drift.recall, 0.0);
        assert_eq!(ev.by_kind["stuck_at"].mean_delay, Some(5.0));
    }

    #[test]
    fn undecided_episodes_count_within_the_sent_range() {
        let eps = [episode("a", "missing", 40, 40)];
        let opts = EvalOptions::default();
        // Records 30..=50 were lost, so nothing was decided about the
        // episode; it still counts (as missed) because seq 40 was sent.
        let mut device = flags("a", 60, &[]);
        device.flags.retain(|&(s, _)| !(30..=50).contains(&s));
        let ev = evaluate_flags(std::slice::from_ref(&device), &eps, &opts);
        assert_eq!((ev.episodes, ev.detected), (1, 0));
        device.sent = Some((1, 20));
        let ev = evaluate_flags(&[device], &eps, &opts);
        assert_eq!(ev.episodes, 0, "not sent, not counted");
    }

    #[test]
    fn episodes_the_range_cuts_are_counted_apart() {
        // One before the range's start, one across its end, one inside.
        let eps = [
            episode("a", "drift", 5, 14),
            episode("a", "drift", 55, 70),
            episode("a", "spike", 30, 30),
        ];
        let mut device = flags("a", 60, &[12, 30]);
        device.flags.retain(|&(s, _)| s >= 10);
        let ev = evaluate_flags(&[device], &eps, &EvalOptions::default());
        assert_eq!(
            (ev.episodes, ev.detected),
            (1, 1),
            "only the spike is whole"
        );
        assert_eq!((ev.cut_episodes, ev.cut_detected), (2, 1));
        assert_eq!(ev.detection_rate, Some(1.0));
        assert_eq!(
            ev.alarm_events, 2,
            "a flag on a cut episode is a true alarm"
        );
    }
}
