//! Metrics of `vigil train`. No label carries a device id.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the trainer exports.
#[derive(Debug, Clone)]
pub struct TrainMetrics {
    /// Trainings, by outcome (`published`, `not_published`, `failed`).
    pub runs: IntCounterVec,
    /// Version of the last release this trainer published.
    pub published_version: IntGauge,
}

impl TrainMetrics {
    /// Creates the metrics and registers them with `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = TrainMetrics {
            runs: IntCounterVec::new(
                Opts::new("vigil_train_runs_total", "Trainings, by outcome"),
                &["outcome"],
            )?,
            published_version: IntGauge::new(
                "vigil_train_published_version",
                "Version of the last release this trainer published",
            )?,
        };
        registry.register(Box::new(m.runs.clone()))?;
        registry.register(Box::new(m.published_version.clone()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_per_registry() {
        let registry = Registry::new();
        let m = TrainMetrics::register(&registry).expect("first registration");
        m.runs.with_label_values(&["published"]).inc();
        assert!(TrainMetrics::register(&registry).is_err());
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(names.contains(&"vigil_train_runs_total".to_owned()));
    }
}
