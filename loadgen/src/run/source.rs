//! What each connection sends, and when: the simulated fleet or a replayed
//! CSV, split into one time-ordered [`Plan`] per MQTT connection.
//!
//! Device `i` always goes to connection `i mod C`, so one connection carries
//! all of a device's records, in order. Ground truth comes with the records:
//! the first record of an injected episode carries its [`Truth`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use vigil_fleet_sim::{Device, Episode, Fleet, FleetConfig};
use vigil_schemas::Telemetry;

use super::schedule::{ts_at, Schedule};

/// Ground truth of one injected anomaly, as written to `--truth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truth {
    pub device_id: String,
    /// `spike`, `level_shift`, `drift`, `stuck_at`, `noise_burst`,
    /// `broken_correlation` or `missing`.
    pub kind: String,
    /// The affected metric (none for `missing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// First and last affected seq. For `missing` both are the first
    /// record after the silence.
    pub first_seq: u64,
    pub last_seq: u64,
    /// Intended send time of the first affected (or first missing) sample
    /// and of the last labelled one, ms since the epoch.
    pub start_ts: u64,
    pub end_ts: u64,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Item {
    /// Intended send time from the start of the run.
    pub offset: Duration,
    /// Index of the device in the run.
    pub device: u32,
    /// The record, `ts` already set to the intended send time.
    pub telemetry: Telemetry,
    /// Set on the first record of an injected episode.
    pub truth: Option<Truth>,
}

/// One connection's messages, in intended-time order.
#[derive(Debug)]
pub enum Plan {
    Fleet(FleetPlan),
    Replay(std::vec::IntoIter<Item>),
}

impl Plan {
    /// Send slots left empty so far because the device was silent (a
    /// missing-data episode).
    pub fn silent_slots(&self) -> u64 {
        match self {
            Plan::Fleet(p) => p.silent,
            Plan::Replay(_) => 0,
        }
    }
}

impl Iterator for Plan {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        match self {
            Plan::Fleet(p) => p.next(),
            Plan::Replay(p) => p.next(),
        }
    }
}

/// Devices of one connection stepped round by round on the schedule.
#[derive(Debug)]
pub struct FleetPlan {
    schedule: Schedule,
    start_ms: u64,
    /// The simulator's own clock (only to turn its episode times back
    /// into ticks).
    sim_clock: (u64, u64),
    /// (index in the fleet, device), in index order.
    devices: Vec<(u64, Device)>,
    tick: u64,
    pos: usize,
    /// Slots skipped because the device was silent.
    silent: u64,
}

impl FleetPlan {
    fn truth(&self, device: u64, e: &Episode) -> Truth {
        // The slot of that tick may lie past the end of the run; its time
        // still follows the schedule.
        let ts = |sim_ts: u64| {
            let (sim_start, sim_interval) = self.sim_clock;
            let tick = sim_ts.saturating_sub(sim_start) / sim_interval.max(1);
            ts_at(
                self.start_ms,
                self.schedule.tick_offset(tick) + self.schedule.offset(device),
            )
        };
        Truth {
            device_id: e.device_id.clone(),
            kind: e.kind.as_str().to_owned(),
            metric: e.metric.clone(),
            first_seq: e.first_seq,
            last_seq: e.last_seq,
            start_ts: ts(e.start_ts),
            end_ts: ts(e.end_ts),
        }
    }
}

impl Iterator for FleetPlan {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if self.pos == self.devices.len() {
                self.pos = 0;
                self.tick += 1;
            }
            let index = self.devices.get(self.pos)?.0;
            // Slots grow along (tick, index); the first missing one ends
            // this connection's part of the run.
            let slot = self.schedule.slot(self.tick, index)?;
            let record = self.devices[self.pos].1.step();
            self.pos += 1;
            let Some(record) = record else {
                self.silent += 1; // a missing-data episode
                continue;
            };
            let offset = self.schedule.offset(slot);
            let mut telemetry = record.telemetry;
            telemetry.ts = ts_at(self.start_ms, offset);
            let truth = record.episode.map(|e| self.truth(index, &e));
            return Some(Item {
                offset,
                device: u32::try_from(index).unwrap_or(u32::MAX),
                telemetry,
                truth,
            });
        }
    }
}

/// The devices of a run and the seqs each may send.
#[derive(Debug, Clone)]
pub struct Roster {
    /// Device ids by index.
    pub ids: Vec<String>,
    /// Per device, the seqs it may send, `(lo, hi)`.
    pub seq_range: Vec<(u64, u64)>,
    /// Time between two records of one device, when regular (ms).
    pub interval_ms: Option<f64>,
}

/// A prepared workload, ready to be split at the start time.
#[derive(Debug)]
pub enum Prepared {
    Fleet {
        schedule: Schedule,
        /// The simulator's start and tick length, ms.
        sim_clock: (u64, u64),
        devices: Vec<Device>,
    },
    Replay {
        /// (offset, device index, record), in offset order.
        records: Vec<(Duration, u32, Telemetry)>,
        rate: f64,
    },
}

impl Prepared {
    /// A fleet at `rate` msg/s for `slots` slots.
    pub fn fleet(config: FleetConfig, rate: f64, slots: u64) -> anyhow::Result<(Self, Roster)> {
        let sim_clock = (config.start_ms, config.interval_ms);
        let fleet = Fleet::new(config)?;
        let devices = fleet.into_devices();
        let schedule = Schedule::new(rate, devices.len() as u64, slots);
        let roster = Roster {
            ids: devices.iter().map(|d| d.id().to_owned()).collect(),
            seq_range: vec![(1, schedule.ticks().max(1)); devices.len()],
            interval_ms: Some(schedule.device_interval_ms()),
        };
        Ok((
            Prepared::Fleet {
                schedule,
                sim_clock,
                devices,
            },
            roster,
        ))
    }

    /// CSV files replayed `speedup` times faster than their timestamps.
    pub fn replay(files: &[PathBuf], speedup: f64) -> anyhow::Result<(Self, Roster)> {
        let mut ids: Vec<String> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut all: Vec<(u32, Telemetry)> = Vec::new();
        for file in files {
            for t in read_csv(file)? {
                let next = u32::try_from(ids.len())?;
                let device = *index.entry(t.device_id.clone()).or_insert_with(|| {
                    ids.push(t.device_id.clone());
                    next
                });
                all.push((device, t));
            }
        }
        anyhow::ensure!(!all.is_empty(), "the replayed files hold no records");
        let mut seq_range = vec![(u64::MAX, 0); ids.len()];
        for (d, t) in &all {
            let r = &mut seq_range[*d as usize];
            *r = (r.0.min(t.seq), r.1.max(t.seq));
        }
        let first = all.iter().map(|(_, t)| t.ts).min().unwrap_or(0);
        let mut records: Vec<(Duration, u32, Telemetry)> = all
            .into_iter()
            .map(|(d, t)| {
                let offset = Duration::from_secs_f64((t.ts - first) as f64 / 1000.0 / speedup);
                (offset, d, t)
            })
            .collect();
        records.sort_by_key(|(offset, _, _)| *offset);
        let span = records.last().map_or(0.0, |r| r.0.as_secs_f64());
        let rate = if span > 0.0 {
            records.len() as f64 / span
        } else {
            records.len() as f64
        };
        Ok((
            Prepared::Replay { records, rate },
            Roster {
                ids,
                seq_range,
                interval_ms: None,
            },
        ))
    }

    /// The offered rate, msg/s.
    pub fn rate(&self) -> f64 {
        match self {
            Prepared::Fleet { schedule, .. } => schedule.rate(),
            Prepared::Replay { rate, .. } => *rate,
        }
    }

    /// Messages the plan intends to send (slots for a fleet).
    pub fn intended(&self) -> u64 {
        match self {
            Prepared::Fleet { schedule, .. } => schedule.slots(),
            Prepared::Replay { records, .. } => records.len() as u64,
        }
    }

    /// One plan per connection, with send times counted from `start_ms`.
    pub fn split(self, connections: usize, start_ms: u64) -> Vec<Plan> {
        let connections = connections.max(1);
        match self {
            Prepared::Fleet {
                schedule,
                sim_clock,
                devices,
            } => {
                let mut parts: Vec<Vec<(u64, Device)>> =
                    (0..connections).map(|_| Vec::new()).collect();
                for (i, d) in devices.into_iter().enumerate() {
                    parts[i % connections].push((i as u64, d));
                }
                parts
                    .into_iter()
                    .map(|devices| {
                        Plan::Fleet(FleetPlan {
                            schedule,
                            start_ms,
                            sim_clock,
                            devices,
                            tick: 0,
                            pos: 0,
                            silent: 0,
                        })
                    })
                    .collect()
            }
            Prepared::Replay { records, .. } => {
                let mut parts: Vec<Vec<Item>> = (0..connections).map(|_| Vec::new()).collect();
                for (offset, device, mut telemetry) in records {
                    telemetry.ts = ts_at(start_ms, offset);
                    parts[device as usize % connections].push(Item {
                        offset,
                        device,
                        telemetry,
                        truth: None,
                    });
                }
                parts
                    .into_iter()
                    .map(|p| Plan::Replay(p.into_iter()))
                    .collect()
            }
        }
    }
}

/// A device id made from a file name: characters a device id may not hold
/// become `_`.
fn device_id_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(vigil_schemas::telemetry::MAX_DEVICE_ID_LEN)
        .collect();
    if id.is_empty() {
        "replay".to_owned()
    } else {
        id
    }
}

/// Reads a replay file: NAB's `timestamp,value`, a multi-column
/// `timestamp,<metric>,<metric>…` (one device per file, named after it), or
/// wide `device_id,seq,ts,<metric>…`.
fn read_csv(path: &Path) -> anyhow::Result<Vec<Telemetry>> {
    use anyhow::Context;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening replay file {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .clone();
    let columns: Vec<&str> = header.iter().collect();
    let limit = super::config::MAX_REPLAY_ROWS;
    let records = match columns.as_slice() {
        ["timestamp", "value"] => vigil_eval_core::read_nab_csv(path, &device_id_of(path), limit)?,
        ["timestamp", metrics @ ..] if !metrics.is_empty() => {
            read_timestamped(path, reader, metrics, limit)?
        }
        ["device_id", ..] => vigil_eval_core::read_wide_csv(path, limit)?,
        _ => anyhow::bail!(
            "replay file {}: header {:?}; expected timestamp,value (NAB), timestamp,<metric>… or device_id,seq,ts,<metric>…",
            path.display(),
            columns.join(",")
        ),
    };
    Ok(records)
}

/// `timestamp,<metric>…` rows as one device's records, seq from 1. A
/// timestamp is NAB's `YYYY-MM-DD HH:MM:SS` (UTC) or ms since the epoch;
/// empty cells are metrics the row does not carry.
fn read_timestamped(
    path: &Path,
    mut reader: csv::Reader<std::fs::File>,
    metrics: &[&str],
    limit: usize,
) -> anyhow::Result<Vec<Telemetry>> {
    let device = device_id_of(path);
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| anyhow::anyhow!("replay file {}: {e}", path.display()))?;
        let line = row.position().map_or(0, |p| p.line());
        let bad =
            |why: String| anyhow::anyhow!("replay file {} line {line}: {why}", path.display());
        anyhow::ensure!(
            out.len() < limit,
            "replay file {} has more than {limit} rows",
            path.display()
        );
        let stamp = row.get(0).unwrap_or_default();
        let ts = vigil_eval_core::parse_nab_timestamp(stamp)
            .or_else(|| stamp.parse::<u64>().ok())
            .ok_or_else(|| {
                bad(format!(
                    "timestamp {stamp:?} is neither YYYY-MM-DD HH:MM:SS nor ms since the epoch"
                ))
            })?;
        let mut values = std::collections::BTreeMap::new();
        for (i, name) in metrics.iter().enumerate() {
            let cell = row.get(i + 1).unwrap_or_default();
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell
                .parse()
                .map_err(|e| bad(format!("{name} {cell:?}: {e}")))?;
            anyhow::ensure!(v.is_finite(), bad(format!("{name} is not finite")));
            values.insert((*name).to_owned(), v);
        }
        anyhow::ensure!(
            !values.is_empty(),
            bad("the row has no metric value".into())
        );
        out.push(Telemetry::new(
            device.clone(),
            out.len() as u64 + 1,
            ts,
            values,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_fleet_sim::AnomalyConfig;

    fn fleet(devices: usize) -> FleetConfig {
        FleetConfig {
            devices,
            interval_ms: 10,
            anomalies: AnomalyConfig::none(),
            ..FleetConfig::default()
        }
    }

    #[test]
    fn each_connection_gets_its_devices_in_time_order() {
        let (prepared, roster) = Prepared::fleet(fleet(5), 500.0, 23).expect("valid");
        assert_eq!(roster.ids[4], "dev-00004");
        assert_eq!(roster.seq_range[0], (1, 5));
        let plans = prepared.split(2, 1_000_000);
        let items: Vec<Vec<Item>> = plans.into_iter().map(Iterator::collect).collect();
        assert_eq!(
            items[0].len() + items[1].len(),
            23,
            "no anomalies, no silence"
        );
        for part in &items {
            assert!(part.windows(2).all(|w| w[0].offset < w[1].offset));
        }
        // Devices 0, 2, 4 on connection 0; 1, 3 on connection 1.
        assert!(items[0].iter().all(|i| i.device % 2 == 0));
        assert!(items[1].iter().all(|i| i.device % 2 == 1));
        // Slot 7 = round 1, device 2: 14 ms after the start.
        let slot7 = items[0]
            .iter()
            .find(|i| i.device == 2 && i.telemetry.seq == 2)
            .expect("device 2 sends twice");
        assert_eq!(slot7.telemetry.ts, 1_000_014);
        assert_eq!(slot7.telemetry.device_id, "dev-00002");
        // Seqs 1, 2, 3… per device.
        let seqs: Vec<u64> = items[1]
            .iter()
            .filter(|i| i.device == 3)
            .map(|i| i.telemetry.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn truth_is_in_send_time() {
        let mut config = fleet(3);
        config.anomalies = AnomalyConfig {
            rate_per_device_day: 50.0,
            quiet_start_ticks: 5,
            ..AnomalyConfig::default()
        };
        config.day_ms = 10_000;
        let (prepared, _) = Prepared::fleet(config, 300.0, 3_000).expect("valid");
        let mut plan = prepared.split(1, 0).remove(0);
        let items: Vec<Item> = plan.by_ref().collect();
        // Every slot is either sent or left empty by a silent device.
        assert!(plan.silent_slots() > 0, "missing-data episodes happened");
        assert_eq!(items.len() as u64 + plan.silent_slots(), 3_000);
        let truths: Vec<(&Item, &Truth)> = items
            .iter()
            .filter_map(|i| i.truth.as_ref().map(|t| (i, t)))
            .collect();
        assert!(!truths.is_empty(), "anomalies were injected");
        for (item, truth) in truths {
            assert_eq!(truth.first_seq, item.telemetry.seq);
            assert_eq!(truth.device_id, item.telemetry.device_id);
            if truth.kind == "missing" {
                assert_eq!(truth.end_ts, item.telemetry.ts);
                assert!(truth.start_ts < truth.end_ts);
            } else {
                assert_eq!(truth.start_ts, item.telemetry.ts);
            }
        }
    }

    #[test]
    fn replay_plays_nab_and_wide_files_faster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nab = dir.path().join("machine temp.csv");
        std::fs::write(
            &nab,
            "timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:05:00,2.5\n",
        )
        .expect("write");
        let wide = dir.path().join("wide.csv");
        std::fs::write(
            &wide,
            "device_id,seq,ts,a,b\npump-1,7,1388534400000,1,2\npump-1,8,1388534460000,3,4\n",
        )
        .expect("write");
        let (prepared, roster) = Prepared::replay(&[nab, wide], 60.0).expect("valid files");
        assert_eq!(roster.ids, ["machine_temp", "pump-1"]);
        assert_eq!(roster.seq_range, [(1, 2), (7, 8)]);
        assert_eq!(prepared.intended(), 4);
        let items: Vec<Item> = prepared.split(1, 10_000).remove(0).collect();
        let ts: Vec<(String, u64)> = items
            .iter()
            .map(|i| (i.telemetry.device_id.clone(), i.telemetry.ts))
            .collect();
        // Five minutes at 60x are five seconds; one minute is one second.
        assert_eq!(
            ts,
            [
                ("machine_temp".to_owned(), 10_000),
                ("pump-1".to_owned(), 10_000),
                ("pump-1".to_owned(), 11_000),
                ("machine_temp".to_owned(), 15_000),
            ]
        );
    }

    #[test]
    fn replay_reads_multi_column_files_with_either_timestamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("press-7.csv");
        std::fs::write(
            &file,
            "timestamp,temp,load\n2014-01-01 00:00:00,20.5,0.3\n2014-01-01 00:00:10,,0.4\n",
        )
        .expect("write");
        let (prepared, roster) =
            Prepared::replay(std::slice::from_ref(&file), 10.0).expect("valid");
        assert_eq!(roster.ids, ["press-7"]);
        let items: Vec<Item> = prepared.split(1, 0).remove(0).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].telemetry.metrics.len(), 2);
        assert_eq!(items[1].telemetry.metrics.len(), 1, "empty cell skipped");
        assert_eq!(items[1].telemetry.ts, 1_000);
        std::fs::write(&file, "timestamp,temp\n1000,1\n2000,x\n").expect("write");
        let err = Prepared::replay(&[file], 1.0).expect_err("bad number");
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn replay_refuses_an_unknown_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "when,what\n1,2\n").expect("write");
        let err = Prepared::replay(&[bad], 1.0).expect_err("unknown header");
        assert!(err.to_string().contains("when,what"), "{err}");
    }
}
