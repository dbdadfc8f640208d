//! Experiment (session 14, `eval/NAB.md` "Novelty gated by the PCA score"):
//! the novelty detector may raise an alert only while the PCA detector's
//! own calibrated score is already raised.
//!
//! Per file, the PCA detector is fitted on the probationary rows and scores
//! every later row exactly as `--method pca` does (its calibrated score,
//! threshold [`CALIBRATED_THRESHOLD`]); the novelty detector runs as
//! `--method novelty` does. A row after the probationary period is a
//! candidate when the PCA score reaches the threshold, or when the novelty
//! score reaches 0.5 and the PCA score reaches `gate × threshold`. A
//! candidate alerts when no alert was raised in the previous
//! `refractory_rows` rows (the novelty detector's cool-down); its row gets
//! the larger of the scores that made it a candidate, every other row 0.
//! Without the PCA detector's own alerts (`pca_alerts` false, a diagnostic:
//! how many of the novelty's windows the gate keeps), only the gated
//! novelty makes candidates.

use vigil_training::{Method, CALIBRATED_THRESHOLD};

use super::files::DataFile;
use super::run::{
    cool_down, detect, novelty_scores, probation_rows, DetectError, DetectorConfig, Family,
    ScoreMap,
};

/// The novelty score at which the novelty detector alerts.
const NOVELTY_ALERT: f64 = 0.5;

/// Scores one series with the gated combination; `gate_percent` is the
/// gate in percent of the PCA threshold; `pca_alerts`: whether the PCA
/// detector's own alerts count too.
pub fn detect_gated(
    data: &DataFile,
    cfg: &DetectorConfig,
    gate_percent: u32,
    pca_alerts: bool,
) -> Result<Vec<f64>, DetectError> {
    let pca_cfg = DetectorConfig {
        family: Family::Fitted(Method::Pca),
        score: ScoreMap::Calibrated,
        ..cfg.clone()
    };
    let pca = detect(data, &pca_cfg)?;
    let novelty = novelty_scores(&cfg.novelty, &data.values);
    let gate = f64::from(gate_percent) / 100.0 * CALIBRATED_THRESHOLD;
    let candidates = pca.iter().zip(&novelty).map(|(&p, &n)| {
        let by_pca = if pca_alerts && p >= CALIBRATED_THRESHOLD {
            p
        } else {
            0.0
        };
        let by_novelty = if n >= NOVELTY_ALERT && p >= gate {
            n
        } else {
            0.0
        };
        by_pca.max(by_novelty)
    });
    Ok(cool_down(
        candidates,
        probation_rows(data.values.len()),
        cfg.refractory_rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::run::tests::{series, wave};

    #[test]
    fn gate_bounds_the_alerts_between_pca_and_novelty() {
        let mut values: Vec<f64> = (0..3000).map(wave).collect();
        for t in [1500, 2200] {
            values[t] += 20.0;
        }
        // A slow excursion within PCA's tolerance but new to the novelty.
        for v in &mut values[2600..2700] {
            *v += 1.5;
        }
        let data = series(values);
        let cfg = DetectorConfig::default();
        let alerts = |g| {
            let s = detect_gated(&data, &cfg, g, true).expect("scores");
            assert!(s[..probation_rows(3000)].iter().all(|&x| x == 0.0));
            let rows: Vec<usize> = (0..s.len()).filter(|&t| s[t] > 0.0).collect();
            assert!(rows.windows(2).all(|w| w[1] - w[0] > cfg.refractory_rows));
            rows
        };
        let open = alerts(0);
        let shut = alerts(1000);
        // The spikes alert whatever the gate.
        for t in [1500, 2200] {
            assert!(open.contains(&t) && shut.contains(&t), "{open:?} {shut:?}");
        }
        // A closed gate never adds an alert an open one lacks.
        assert!(shut.len() <= open.len(), "{open:?} {shut:?}");
        // Without PCA's alerts, a gate no PCA score reaches silences all.
        let none = detect_gated(&data, &cfg, 1000, false).expect("scores");
        assert!(none.iter().all(|&x| x == 0.0));
    }
}
