//! The novelty's ranges a release carries
//! (`vigil_model::combine::NoveltyPolicy::training_ranges`): per metric,
//! every training device's own value and smoothed ranges over all its rows
//! (training and holdout, in `seq` order, as the scorer's warm-up would
//! see them), joined over the devices. With them a device's novelty
//! speaks from its first record instead of fixing its own ranges on its
//! first `range_records` records (eval/NAB.md, "Session 16").
//!
//! A metric may also have a *declared* range ([`DeclaredRange`]: a
//! sensor's specified span, which its operator knows; NAB's input range
//! for a NAB file): its value channel's range is then the training range
//! joined with it, so the novelty's cells cut the span the metric can
//! take rather than the stretch a few training rows happened to cover
//! (eval/NAB.md, "Session 31").

use std::collections::BTreeMap;
use std::str::FromStr;

use vigil_model::novelty::{ChannelRange, MetricNovelty, NoveltyConfig, RangeWarmup};

use crate::data::FleetData;

/// The span a metric's values can take, as declared by whoever knows the
/// source (`vigil train --range METRIC=LOW:HIGH`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredRange {
    low: f64,
    high: f64,
}

impl DeclaredRange {
    /// `low..=high`; both finite and `low < high`.
    pub fn new(low: f64, high: f64) -> Result<Self, String> {
        if !(low.is_finite() && high.is_finite()) {
            return Err(format!("the range {low}:{high} is not finite"));
        }
        if low >= high {
            return Err(format!(
                "the range {low}:{high} is empty: its low end must lie below its high end"
            ));
        }
        Ok(Self { low, high })
    }

    /// The span of `values` (their smallest and largest finite value), or
    /// `None` when they do not span one.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let (low, high) = values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
        Self::new(low, high).ok()
    }

    pub fn low(&self) -> f64 {
        self.low
    }

    pub fn high(&self) -> f64 {
        self.high
    }
}

impl FromStr for DeclaredRange {
    type Err = String;

    /// `LOW:HIGH`, e.g. `0:100` or `-40:85.5`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (low, high) = s
            .split_once(':')
            .ok_or_else(|| format!("expected LOW:HIGH, got {s:?}"))?;
        let number = |t: &str| {
            t.trim()
                .parse::<f64>()
                .map_err(|_| format!("{t:?} in {s:?} is not a number"))
        };
        Self::new(number(low)?, number(high)?)
    }
}

/// Checks that every declared metric is one the release models (`metrics`):
/// a range for another is an error, not a silent no-op. The error says
/// why, for `TrainError::Config`.
pub(crate) fn check_declared(
    metrics: &[String],
    declared: &BTreeMap<String, DeclaredRange>,
) -> Result<(), String> {
    match declared.keys().find(|name| !metrics.contains(name)) {
        None => Ok(()),
        Some(name) => Err(format!(
            "metric {name:?} has a declared range but the release does not model it \
             (its metrics: {})",
            metrics.join(", ")
        )),
    }
}

/// Widens each declared metric's value range in `ranges` (one per metric
/// of `metrics`, in order) to hold its declared span; [`check_declared`]
/// has refused a span for a metric not among them.
pub(crate) fn declare(
    ranges: &mut [MetricNovelty],
    metrics: &[String],
    declared: &BTreeMap<String, DeclaredRange>,
) {
    for (range, name) in ranges.iter_mut().zip(metrics) {
        if let Some(span) = declared.get(name) {
            range.value = range.value.join(ChannelRange::of([span.low, span.high]));
        }
    }
}

/// One entry per metric of `metrics`, in order.
pub(crate) fn training_ranges(
    data: &FleetData<'_>,
    metrics: &[String],
    config: &NoveltyConfig,
) -> Vec<MetricNovelty> {
    metrics
        .iter()
        .map(|metric| {
            data.devices
                .iter()
                .filter_map(|device| {
                    let mut warm = RangeWarmup::new(config);
                    let mut seen = false;
                    for v in device.records.iter().filter_map(|r| r.metrics.get(metric)) {
                        warm.push(*v);
                        seen |= v.is_finite();
                    }
                    seen.then(|| warm.ranges())
                })
                .reduce(MetricNovelty::join)
                // No device showed the metric: the ranges of nothing.
                .unwrap_or_else(|| RangeWarmup::new(config).ranges())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vigil_schemas::Telemetry;

    use super::*;

    fn rec(device: &str, seq: u64, metrics: &[(&str, f64)]) -> Telemetry {
        let m: BTreeMap<String, f64> = metrics.iter().map(|&(k, v)| (k.to_owned(), v)).collect();
        Telemetry::new(device, seq, seq * 1000, m)
    }

    #[test]
    fn a_declared_range_widens_the_value_channel_only_and_must_name_a_metric() {
        let records: Vec<Telemetry> = (1..=50u64)
            .map(|seq| rec("a", seq, &[("x", 10.0 + (seq % 5) as f64), ("z", 1.0)]))
            .collect();
        let data = FleetData::new(&records, 0.0);
        let metrics = ["x".to_owned(), "z".to_owned()];
        let config = NoveltyConfig::default();
        let trained = training_ranges(&data, &metrics, &config);
        let mut ranges = trained.clone();
        let declared = BTreeMap::from([("x".to_owned(), "0:100".parse().expect("a range"))]);
        check_declared(&metrics, &declared).expect("x is modelled");
        declare(&mut ranges, &metrics, &declared);
        assert_eq!((ranges[0].value.low, ranges[0].value.width), (0.0, 100.0));
        assert_eq!(
            ranges[0].smooth, trained[0].smooth,
            "the smoothed channel keeps its range"
        );
        assert_eq!(
            ranges[1], trained[1],
            "an undeclared metric keeps its ranges"
        );

        // A declared span inside the trained range changes nothing.
        let mut inside = trained.clone();
        let narrow =
            BTreeMap::from([("x".to_owned(), DeclaredRange::new(11.0, 12.0).expect("ok"))]);
        declare(&mut inside, &metrics, &narrow);
        assert_eq!(inside, trained);

        let unknown = BTreeMap::from([("y".to_owned(), DeclaredRange::new(0.0, 1.0).expect("ok"))]);
        let err = check_declared(&metrics, &unknown).expect_err("y is not modelled");
        assert!(
            err.to_string().contains("\"y\"") && err.to_string().contains("x, z"),
            "{err}"
        );
    }

    #[test]
    fn declared_ranges_parse_and_refuse_empty_or_malformed_spans() {
        let r: DeclaredRange = "-40:85.5".parse().expect("a range");
        assert_eq!((r.low(), r.high()), (-40.0, 85.5));
        for bad in ["5:5", "10:0", "0-100", "a:1", "0:inf", ""] {
            assert!(bad.parse::<DeclaredRange>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            DeclaredRange::of([3.0, f64::NAN, -1.0, 2.0]),
            DeclaredRange::new(-1.0, 3.0).ok()
        );
        assert_eq!(DeclaredRange::of([3.0, 3.0]), None);
    }

    #[test]
    fn ranges_join_every_device_and_skip_devices_without_the_metric() {
        let mut records = Vec::new();
        for seq in 1..=50u64 {
            records.push(rec("a", seq, &[("x", 10.0 + (seq % 5) as f64)]));
            records.push(rec("b", seq, &[("x", 100.0 + (seq % 3) as f64)]));
            // Device c never reports x: it must not pull the range to 0.
            records.push(rec("c", seq, &[("y", 1.0)]));
        }
        let data = FleetData::new(&records, 0.2);
        let config = NoveltyConfig::default();
        let r = training_ranges(&data, &["x".to_owned(), "z".to_owned()], &config);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].value.low, 10.0);
        assert_eq!(r[0].value.low + r[0].value.width, 102.0);
        assert!(r[0].smooth.low >= 10.0 && r[0].smooth.low + r[0].smooth.width <= 102.0);
        // No device reports z: a usable range all the same.
        assert!(r[1].is_valid());
    }
}
