//! Training data: grouping a fleet's records by device and the
//! train/holdout split.
//!
//! The file formats (wide fleet CSV, NAB series) are read by
//! `vigil-eval-core`, whose readers are re-exported here so that callers
//! keep one import path.

use std::collections::HashMap;

use vigil_schemas::Telemetry;

pub use vigil_eval_core::data::{
    days_from_civil, label_episodes, parse_iso8601, parse_nab_timestamp, parse_timestamp,
    read_nab_csv, read_wide_csv, read_wide_csv_labelled, read_wide_csv_with, DataError,
    WideCsvOptions,
};

/// One device's records in `seq` order (duplicates dropped), and where its
/// holdout part begins.
#[derive(Debug, Clone)]
pub struct DeviceSeries<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Its records, `seq` strictly increasing.
    pub records: Vec<&'a Telemetry>,
    /// Index of the first holdout record (== `records.len()` when none).
    pub holdout_start: usize,
}

/// A fleet's records grouped per device, devices in id order.
#[derive(Debug, Clone)]
pub struct FleetData<'a> {
    /// One entry per device.
    pub devices: Vec<DeviceSeries<'a>>,
}

impl<'a> FleetData<'a> {
    /// Groups `records` by device, sorts each device by `seq`, drops
    /// duplicate `seq`s (keeping the first), and marks the last
    /// `holdout_fraction` of every device's records as holdout.
    pub fn new(records: &'a [Telemetry], holdout_fraction: f64) -> Self {
        let mut by_device: HashMap<&str, Vec<&Telemetry>> = HashMap::new();
        for r in records {
            by_device.entry(r.device_id.as_str()).or_default().push(r);
        }
        let fraction = holdout_fraction.clamp(0.0, 1.0);
        let mut devices: Vec<DeviceSeries<'a>> = by_device
            .into_iter()
            .map(|(device_id, mut recs)| {
                recs.sort_by_key(|r| r.seq);
                recs.dedup_by_key(|r| r.seq);
                let holdout = (recs.len() as f64 * fraction).round() as usize;
                DeviceSeries {
                    device_id,
                    holdout_start: recs.len() - holdout.min(recs.len()),
                    records: recs,
                }
            })
            .collect();
        devices.sort_by(|a, b| a.device_id.cmp(b.device_id));
        FleetData { devices }
    }

    /// Records held.
    pub fn records(&self) -> usize {
        self.devices.iter().map(|d| d.records.len()).sum()
    }

    /// Holdout records held.
    pub fn holdout_records(&self) -> usize {
        self.devices
            .iter()
            .map(|d| d.records.len() - d.holdout_start)
            .sum()
    }

    /// Earliest and latest event time (0, 0 when empty).
    pub fn time_range(&self) -> (u64, u64) {
        let mut range: Option<(u64, u64)> = None;
        for r in self.devices.iter().flat_map(|d| &d.records) {
            range = Some(match range {
                None => (r.ts, r.ts),
                Some((lo, hi)) => (lo.min(r.ts), hi.max(r.ts)),
            });
        }
        range.unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_csv_reads_and_reports_bad_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.csv");
        std::fs::write(
            &path,
            "device_id,seq,ts,a,b\nd1,2,2000,1.5,\nd1,1,1000,1.0,2.0\n",
        )
        .expect("write");
        let recs = read_wide_csv(&path, 10).expect("read");
        assert_eq!(recs.len(), 2);
        assert!(!recs[0].metrics.contains_key("b"));
        let fleet = FleetData::new(&recs, 0.5);
        assert_eq!(fleet.devices[0].records[0].seq, 1);
        assert_eq!(fleet.devices[0].holdout_start, 1);
        assert!(matches!(
            read_wide_csv(&path, 1),
            Err(DataError::TooManyRows { .. })
        ));
        std::fs::write(&path, "device_id,seq,ts,a\nd1,x,1,1\n").expect("write");
        let err = read_wide_csv(&path, 10).expect_err("bad seq").to_string();
        assert!(err.contains("line 2") && err.contains("seq"), "{err}");
    }
}
