//! The novelty's ranges a release carries
//! (`vigil_model::combine::NoveltyPolicy::training_ranges`): per metric,
//! every training device's own value and smoothed ranges over all its rows
//! (training and holdout, in `seq` order, as the scorer's warm-up would
//! see them), joined over the devices. With them a device's novelty
//! speaks from its first record instead of fixing its own ranges on its
//! first `range_records` records (eval/NAB.md, "Session 16").

use vigil_model::novelty::{MetricNovelty, NoveltyConfig, RangeWarmup};

use crate::data::FleetData;

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
