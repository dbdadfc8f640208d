//! Measurement accounting: verdicts in, loss, duplicates, latency and
//! detection out. Pure bookkeeping, no I/O, so it is tested with synthetic
//! verdict streams.
//!
//! - A verdict belongs to the run when its device is one of the run's and
//!   its `event_ts` is not before the run's start (verdicts of an earlier
//!   run of the same devices are *stale* and ignored).
//! - The first verdict of a `(device_id, seq)` is counted and timed; later
//!   ones are *duplicates*.
//! - **Latency** is the time the verdict was read here minus the record's
//!   `ts`, which is its intended send time (see [`super::schedule`]); the
//!   scorer's own `scored_ts - ts` is kept too.
//! - **Loss** is every sent `(device_id, seq)` without a verdict.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use vigil_eval_core::{DeviceFlags, Episode, EvalOptions, Evaluation};
use vigil_schemas::{ScoredAt, Verdict};

use super::seqset::{Insert, SeqSet};
use super::source::{Roster, Truth};

/// Highest latency the histograms hold, ms (an hour; larger values are
/// clamped to it).
const MAX_LATENCY_MS: u64 = 3_600_000;
/// Minutes of the run the per-minute latency breakdown covers (records
/// sent later are in the whole-run figures only): two hours, at most
/// ~2 MiB of histograms.
pub const MAX_MINUTES: usize = 120;
/// Points kept per plotted device.
pub const MAX_PLOT_POINTS: usize = 20_000;
/// Lost records listed by name in the report.
pub const LOST_EXAMPLES: usize = 20;

/// What one verdict did to the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// First verdict of a record of this run.
    New,
    /// A record already verdicted.
    Duplicate,
    /// Not about this run (unknown device, earlier event time, impossible
    /// seq).
    Ignored,
}

/// One verdict of a plotted device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorePoint {
    pub seq: u64,
    pub event_ts: u64,
    pub score: f64,
    pub threshold: f64,
    pub anomaly: bool,
}

#[derive(Debug, Clone, Default)]
struct DeviceVerdicts {
    seen: SeqSet,
    flagged: SeqSet,
    /// Lowest seq a model scored: detection counts from here on (records
    /// before the first model cannot be judged by one).
    first_scored: Option<u64>,
    /// Highest seq read so far.
    highest: Option<u64>,
}

/// Every verdict read so far.
#[derive(Debug, Clone)]
pub struct Tally {
    start_ms: u64,
    index: HashMap<String, u32>,
    devices: Vec<DeviceVerdicts>,
    /// Read time − record ts, ms, first verdict of each record.
    pub latency_ms: Histogram<u64>,
    /// Scorer's `scored_ts` − record ts, ms.
    pub scored_latency_ms: Histogram<u64>,
    /// The hops of the verdicts that carry `ingest_ts`: event → ingest,
    /// ingest → scored, scored → read back, ms.
    pub hops_ms: [Histogram<u64>; 3],
    /// Read time − record ts, ms, by the minute of the run the record
    /// was sent in (its `ts`), for the first [`MAX_MINUTES`].
    pub by_minute_ms: Vec<Histogram<u64>>,
    /// Verdicts read (all of them).
    pub received: u64,
    /// Distinct records of this run verdicted.
    pub distinct: u64,
    /// Verdicts for a record already verdicted.
    pub duplicates: u64,
    /// First verdicts of a record read after a verdict of a later record
    /// of the same device (per-device order broken somewhere on the way).
    pub out_of_order: u64,
    /// Verdicts with an event time before the run started.
    pub stale: u64,
    /// Verdicts of devices that are not the run's, or with a seq the run
    /// cannot have sent.
    pub foreign: u64,
    /// Verdicts without a score (no model yet).
    pub unscored: u64,
    /// Verdicts scored on the device.
    pub edge: u64,
    /// Read time of the first and of the latest new verdict, ms.
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
    /// Scores of the first devices, for the plot.
    plots: Vec<Vec<ScorePoint>>,
}

impl Tally {
    /// An empty tally for the devices of `roster`, run started at
    /// `start_ms`; scores of the first `plot_devices` devices are kept.
    pub fn new(roster: &Roster, start_ms: u64, plot_devices: usize) -> anyhow::Result<Self> {
        let histogram = || Histogram::<u64>::new_with_max(MAX_LATENCY_MS, 3);
        Ok(Self {
            start_ms,
            index: roster
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i as u32))
                .collect(),
            devices: roster
                .seq_range
                .iter()
                .map(|&(lo, hi)| DeviceVerdicts {
                    seen: SeqSet::new(lo, hi),
                    flagged: SeqSet::new(lo, hi),
                    first_scored: None,
                    highest: None,
                })
                .collect(),
            latency_ms: histogram()?,
            scored_latency_ms: histogram()?,
            hops_ms: [histogram()?, histogram()?, histogram()?],
            by_minute_ms: Vec::new(),
            received: 0,
            distinct: 0,
            duplicates: 0,
            out_of_order: 0,
            stale: 0,
            foreign: 0,
            unscored: 0,
            edge: 0,
            first_ms: None,
            last_ms: None,
            plots: vec![Vec::new(); plot_devices.min(roster.ids.len())],
        })
    }

    /// Adds `latency` to the histogram of the run's minute that holds
    /// `event_ts` (nothing past [`MAX_MINUTES`]).
    fn record_minute(&mut self, event_ts: u64, latency: u64) {
        let minute = (event_ts.saturating_sub(self.start_ms) / 60_000) as usize;
        if minute >= MAX_MINUTES {
            return;
        }
        while self.by_minute_ms.len() <= minute {
            // Two significant digits (1 %) keep each minute's histogram
            // at ~16 KiB; creating one with fixed, valid bounds cannot fail.
            match Histogram::<u64>::new_with_max(MAX_LATENCY_MS, 2) {
                Ok(h) => self.by_minute_ms.push(h),
                Err(_) => return,
            }
        }
        if let Some(h) = self.by_minute_ms.get_mut(minute) {
            h.saturating_record(latency);
        }
    }

    /// Counts one verdict read at `read_ms`.
    pub fn add(&mut self, v: &Verdict, read_ms: u64) -> Added {
        self.received += 1;
        if v.event_ts < self.start_ms {
            self.stale += 1;
            return Added::Ignored;
        }
        let Some(&device) = self.index.get(&v.device_id) else {
            self.foreign += 1;
            return Added::Ignored;
        };
        let d = &mut self.devices[device as usize];
        match d.seen.insert(v.seq) {
            Insert::OutOfRange => {
                self.foreign += 1;
                return Added::Ignored;
            }
            Insert::Again => {
                self.duplicates += 1;
                return Added::Duplicate;
            }
            Insert::New => {}
        }
        if d.highest.is_some_and(|h| v.seq < h) {
            self.out_of_order += 1;
        }
        d.highest = Some(d.highest.map_or(v.seq, |h| h.max(v.seq)));
        if v.anomaly {
            d.flagged.insert(v.seq);
        }
        if v.model_version.is_some() && v.unscored.is_none() {
            d.first_scored = Some(d.first_scored.map_or(v.seq, |s| s.min(v.seq)));
        }
        self.distinct += 1;
        self.unscored += u64::from(v.unscored.is_some() || v.model_version.is_none());
        self.edge += u64::from(v.scored_at == ScoredAt::Edge);
        let latency = read_ms.saturating_sub(v.event_ts);
        self.latency_ms.saturating_record(latency);
        self.record_minute(v.event_ts, latency);
        self.scored_latency_ms
            .saturating_record(v.scored_ts.saturating_sub(v.event_ts));
        if let Some(ingested) = v.ingest_ts {
            let [to_ingest, to_scored, to_read] = &mut self.hops_ms;
            to_ingest.saturating_record(ingested.saturating_sub(v.event_ts));
            to_scored.saturating_record(v.scored_ts.saturating_sub(ingested));
            to_read.saturating_record(read_ms.saturating_sub(v.scored_ts));
        }
        self.first_ms.get_or_insert(read_ms);
        self.last_ms = Some(self.last_ms.map_or(read_ms, |l| l.max(read_ms)));
        if let Some(points) = self.plots.get_mut(device as usize) {
            if points.len() < MAX_PLOT_POINTS {
                points.push(ScorePoint {
                    seq: v.seq,
                    event_ts: v.event_ts,
                    score: v.score,
                    threshold: v.threshold,
                    anomaly: v.anomaly,
                });
            }
        }
        Added::New
    }

    /// Scores kept for plotting, by device index.
    pub fn plot_points(&self) -> &[Vec<ScorePoint>] {
        &self.plots
    }

    /// Compares with what was sent: per device index, the seqs sent.
    pub fn account(&self, sent: &[SeqSet], ids: &[String]) -> Accounting {
        let mut a = Accounting {
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            ..Accounting::default()
        };
        for (i, sent) in sent.iter().enumerate() {
            a.sent += sent.len();
            let seen = self.devices.get(i).map(|d| &d.seen);
            for seq in sent.iter() {
                if seen.is_some_and(|s| s.contains(seq)) {
                    a.verdicted += 1;
                } else {
                    a.lost += 1;
                    if a.lost_examples.len() < LOST_EXAMPLES {
                        a.lost_examples
                            .push((ids.get(i).cloned().unwrap_or_default(), seq));
                    }
                }
            }
        }
        a.unexpected = self.distinct - a.verdicted;
        a
    }

    /// Detection quality of the verdicts against `truth`, per device from
    /// its first record a model scored (before that no model existed to
    /// judge it; a device never scored counts for nothing).
    pub fn detection(&self, sent: &[SeqSet], ids: &[String], truth: &[Truth]) -> Evaluation {
        let flags: Vec<DeviceFlags> = self
            .devices
            .iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (d, id))| {
                let from = d.first_scored.unwrap_or(u64::MAX);
                DeviceFlags {
                    device_id: id.clone(),
                    flags: d
                        .seen
                        .iter()
                        .filter(|&seq| seq >= from)
                        .map(|seq| (seq, d.flagged.contains(seq)))
                        .collect(),
                    sent: sent
                        .get(i)
                        .and_then(SeqSet::range)
                        .filter(|&(_, last)| last >= from)
                        .map(|(first, last)| (first.max(from), last)),
                }
            })
            .collect();
        let episodes: Vec<Episode> = truth
            .iter()
            .map(|t| Episode {
                device_id: t.device_id.clone(),
                kind: t.kind.clone(),
                first_seq: t.first_seq,
                last_seq: t.last_seq,
            })
            .collect();
        vigil_eval_core::evaluate_flags(&flags, &episodes, &EvalOptions::default())
    }
}

/// Sent against verdicted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Records handed to MQTT.
    pub sent: u64,
    /// Sent records with at least one verdict.
    pub verdicted: u64,
    /// Sent records without a verdict.
    pub lost: u64,
    /// Extra verdicts of records already verdicted.
    pub duplicates: u64,
    /// First verdicts read after a later record's of the same device.
    pub out_of_order: u64,
    /// Verdicted records of this run's devices that were never sent.
    pub unexpected: u64,
    /// The first few lost records, (device_id, seq).
    pub lost_examples: Vec<(String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schemas::SCHEMA_VERSION;

    fn roster(devices: usize, max_seq: u64) -> Roster {
        Roster {
            ids: (0..devices).map(|i| format!("d{i}")).collect(),
            seq_range: vec![(1, max_seq); devices],
            interval_ms: Some(100.0),
        }
    }

    fn verdict(device: &str, seq: u64, event_ts: u64, anomaly: bool) -> Verdict {
        Verdict {
            alarm: None,
            schema: SCHEMA_VERSION,
            device_id: device.into(),
            seq,
            event_ts,
            ingest_ts: Some(event_ts + 1),
            scored_ts: event_ts + 2,
            model: "default".into(),
            model_version: Some(1),
            score: if anomaly { 0.9 } else { 0.1 },
            threshold: 0.5,
            anomaly,
            contributions: Vec::new(),
            scored_at: ScoredAt::Cloud,
            unscored: None,
        }
    }

    fn sent(devices: usize, per_device: u64, max_seq: u64) -> Vec<SeqSet> {
        (0..devices)
            .map(|_| {
                let mut s = SeqSet::new(1, max_seq);
                (1..=per_device).for_each(|q| {
                    s.insert(q);
                });
                s
            })
            .collect()
    }

    #[test]
    fn a_record_read_after_a_later_one_of_its_device_is_out_of_order() {
        let r = roster(2, 100);
        let mut t = Tally::new(&r, 1_000, 0).expect("tally");
        for (device, seq) in [
            ("d0", 1),
            ("d0", 3),
            ("d1", 1),
            ("d0", 2),
            ("d0", 3),
            ("d0", 4),
        ] {
            t.add(&verdict(device, seq, 1_000 + seq, false), 1_100);
        }
        // d0's 2 after its 3; the second 3 is a duplicate, not disorder.
        assert_eq!((t.out_of_order, t.duplicates), (1, 1));
        assert_eq!(t.account(&sent(2, 4, 100), &r.ids).out_of_order, 1);
    }

    #[test]
    fn loss_duplicates_and_strays_are_told_apart() {
        let r = roster(2, 100);
        let mut t = Tally::new(&r, 1_000, 1).expect("tally");
        // d0: 1..=10 verdicted, 3 and 7 twice; d1: 1..=10 except 4 and 9.
        for seq in 1..=10 {
            assert_eq!(
                t.add(&verdict("d0", seq, 1_000 + seq, false), 1_050),
                Added::New
            );
        }
        assert_eq!(
            t.add(&verdict("d0", 3, 1_003, false), 1_060),
            Added::Duplicate
        );
        assert_eq!(
            t.add(&verdict("d0", 7, 1_007, false), 1_060),
            Added::Duplicate
        );
        for seq in (1..=10).filter(|s| *s != 4 && *s != 9) {
            t.add(&verdict("d1", seq, 1_000 + seq, false), 1_020);
        }
        // Strays: another device, an earlier run, an impossible seq.
        assert_eq!(
            t.add(&verdict("zz", 1, 2_000, false), 2_000),
            Added::Ignored
        );
        assert_eq!(t.add(&verdict("d1", 4, 999, false), 2_000), Added::Ignored);
        assert_eq!(
            t.add(&verdict("d1", 101, 2_000, false), 2_000),
            Added::Ignored
        );
        assert_eq!((t.received, t.distinct), (23, 18));
        assert_eq!((t.duplicates, t.stale, t.foreign), (2, 1, 2));
        // Duplicates are not order violations.
        assert_eq!(t.out_of_order, 0);

        let a = t.account(&sent(2, 10, 100), &r.ids);
        assert_eq!(a.sent, 20);
        assert_eq!(a.verdicted, 18);
        assert_eq!(a.lost, 2);
        assert_eq!(a.duplicates, 2);
        assert_eq!(a.unexpected, 0);
        assert_eq!(
            a.lost_examples,
            [("d1".to_owned(), 4), ("d1".to_owned(), 9)]
        );
        // Only the first plotted device's scores are kept.
        assert_eq!(t.plot_points().len(), 1);
        assert_eq!(t.plot_points()[0].len(), 10);
    }

    #[test]
    fn latency_is_read_time_minus_intended_send_time() {
        let r = roster(1, 1000);
        let mut t = Tally::new(&r, 0, 0).expect("tally");
        // 1000 records, record i read i ms after its ts (1..=1000 ms).
        for seq in 1..=1000 {
            t.add(&verdict("d0", seq, 10_000, false), 10_000 + seq);
        }
        // A duplicate read much later does not count.
        t.add(&verdict("d0", 5, 10_000, false), 99_999);
        let h = &t.latency_ms;
        assert_eq!(h.len(), 1000);
        assert_eq!(h.value_at_quantile(0.5), 500);
        assert_eq!(h.value_at_quantile(0.99), 990);
        assert_eq!(h.max(), 1000);
        assert_eq!(t.scored_latency_ms.max(), 2);
        // Hops: ingest 1 ms after ts, scored 1 ms later, read the rest.
        let [to_ingest, to_scored, to_read] = &t.hops_ms;
        assert_eq!((to_ingest.len(), to_ingest.max()), (1000, 1));
        assert_eq!(to_scored.max(), 1);
        assert_eq!(to_read.max(), 998);
        // A clock that reads before ts clamps to 0 instead of wrapping.
        let mut t = Tally::new(&r, 0, 0).expect("tally");
        t.add(&verdict("d0", 1, 10_000, false), 9_000);
        assert_eq!(t.latency_ms.max(), 0);
    }

    #[test]
    fn latency_is_broken_down_by_the_minute_the_record_was_sent() {
        let r = roster(1, 1000);
        let start = 1_000_000;
        let mut t = Tally::new(&r, start, 0).expect("tally");
        // Minute 0: 10 ms each; minute 2: 500 ms each; minute 1 empty.
        for seq in 1..=10 {
            t.add(&verdict("d0", seq, start + seq, false), start + seq + 10);
        }
        let late = start + 2 * 60_000 + 5;
        for seq in 11..=20 {
            t.add(&verdict("d0", seq, late, false), late + 500);
        }
        // Past the breakdown's last minute: counted whole-run only.
        let past = start + MAX_MINUTES as u64 * 60_000;
        t.add(&verdict("d0", 21, past, false), past + 7);
        assert_eq!(t.by_minute_ms.len(), 3);
        assert_eq!(t.by_minute_ms[0].len(), 10);
        assert_eq!(t.by_minute_ms[0].max(), 10);
        assert!(t.by_minute_ms[1].is_empty());
        assert_eq!(t.by_minute_ms[2].len(), 10);
        // Two significant digits: within 1 % of the 500 ms recorded.
        let p99 = t.by_minute_ms[2].value_at_quantile(0.99);
        assert!((495..=505).contains(&p99), "p99 {p99}");
        assert_eq!(t.latency_ms.len(), 21);
    }

    #[test]
    fn detection_counts_each_episode_once_by_kind() {
        let r = roster(2, 200);
        let mut t = Tally::new(&r, 0, 0).expect("tally");
        let truth = [
            Truth {
                device_id: "d0".into(),
                kind: "spike".into(),
                metric: Some("m".into()),
                first_seq: 50,
                last_seq: 52,
                start_ts: 0,
                end_ts: 0,
            },
            Truth {
                device_id: "d1".into(),
                kind: "drift".into(),
                metric: Some("m".into()),
                first_seq: 100,
                last_seq: 150,
                start_ts: 0,
                end_ts: 0,
            },
            Truth {
                device_id: "d1".into(),
                kind: "missing".into(),
                metric: None,
                first_seq: 190,
                last_seq: 190,
                start_ts: 0,
                end_ts: 0,
            },
        ];
        for seq in 1..=200 {
            // d0: the spike flagged on all three records, one false alarm.
            t.add(
                &verdict("d0", seq, 1, (50..=52).contains(&seq) || seq == 10),
                1,
            );
            // d1: the drift flagged from seq 120 on; seq 190 lost.
            if seq != 190 {
                t.add(&verdict("d1", seq, 1, (120..=150).contains(&seq)), 1);
            }
        }
        let sent = sent(2, 200, 200);
        let ev = t.detection(&sent, &r.ids, &truth);
        assert_eq!((ev.episodes, ev.detected), (3, 2));
        assert_eq!(ev.alarm_events, 2);
        assert_eq!(ev.false_alarm_events, 1);
        assert_eq!(ev.by_kind["spike"].mean_delay, Some(0.0));
        assert_eq!(ev.by_kind["drift"].mean_delay, Some(20.0));
        // The lost record was the missing-data episode: it counts, missed.
        assert_eq!(ev.by_kind["missing"].episodes, 1);
        assert_eq!(ev.by_kind["missing"].detected, 0);
    }

    #[test]
    fn detection_starts_at_each_devices_first_scored_record() {
        let r = roster(2, 200);
        let mut t = Tally::new(&r, 0, 0).expect("tally");
        let episode = |device: &str, first_seq, last_seq| Truth {
            device_id: device.into(),
            kind: "spike".into(),
            metric: Some("m".into()),
            first_seq,
            last_seq,
            start_ts: 0,
            end_ts: 0,
        };
        // d0: an episode before its first model (missed, not counted) and
        // one after (found). d1 was never scored: nothing counts.
        let truth = [
            episode("d0", 20, 30),
            episode("d0", 150, 152),
            episode("d1", 50, 60),
        ];
        for seq in 1..=200 {
            let mut v = verdict("d0", seq, 1, (150..=152).contains(&seq));
            if seq <= 100 {
                v.model_version = None;
                v.unscored = Some(vigil_schemas::UnscoredReason::NoModel);
            }
            t.add(&v, 1);
            let mut v = verdict("d1", seq, 1, false);
            v.model_version = None;
            v.unscored = Some(vigil_schemas::UnscoredReason::NoModel);
            t.add(&v, 1);
        }
        let ev = t.detection(&sent(2, 200, 200), &r.ids, &truth);
        assert_eq!((ev.episodes, ev.detected), (1, 1));
        assert_eq!(
            ev.normal_records,
            100 - 3 - 48,
            "seqs 101..=200 less the episode and its grace"
        );
        assert_eq!(ev.false_alarm_events, 0);
    }
}
