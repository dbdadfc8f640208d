//! The scoring side of the detector: turns a feature vector into a score in
//! [0, 1] and names the metrics behind it.
//!
//! Two fitted forms exist (the trainer compares them; see
//! `training/EVALUATION.md`):
//!
//! - [`Detector::Pca`]: probabilistic PCA on standardised features. The raw
//!   score is the Mahalanobis distance under a covariance made of the kept
//!   principal components plus isotropic residual variance:
//!   `raw = Σ_k t_k² / λ_k + (‖z‖² − Σ_k t_k²) / λ_res` with `t_k = u_k·z`.
//!   It sees cross-metric structure (a broken correlation leaves the
//!   principal subspace) as well as each feature's size.
//! - [`Detector::RobustZ`]: `raw = max_i z_i²` over robustly standardised
//!   features; no cross-metric structure.
//!
//! Both map raw scores to `score = raw / (raw + raw_scale)`, where
//! `raw_scale` is the raw score at the calibration quantile: a record scoring
//! exactly at the calibrated false-alarm boundary gets 0.5. Scores are
//! rounded to [`SCORE_DECIMALS`] decimals before the threshold comparison so
//! the comparison holds for the printed value (whether a record is
//! *anomalous* is the alarm's decision, [`crate::alarm`]).

use serde::{Deserialize, Serialize};
use vigil_schemas::Contribution;

use crate::features::FEATURES_PER_METRIC;

/// Decimals kept in a verdict's score.
pub const SCORE_DECIMALS: i32 = 6;
/// Decimals kept in a contribution's share.
pub const SHARE_DECIMALS: i32 = 4;
/// Most contributions a verdict lists.
pub const MAX_CONTRIBUTIONS: usize = 3;
/// Smallest variance or scale a detector may divide by.
const MIN_SCALE: f64 = 1.0e-6;

/// Fitted detector parameters (signed into a release).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Detector {
    /// Probabilistic PCA (see the module docs).
    Pca {
        /// Per-feature centre subtracted before scaling.
        center: Vec<f64>,
        /// Per-feature scale divided by after centring.
        scale: Vec<f64>,
        /// Unit-length principal directions, one row per component.
        components: Vec<Vec<f64>>,
        /// Variance along each component.
        variances: Vec<f64>,
        /// Variance assumed in every direction outside the components.
        residual_variance: f64,
        /// Raw score mapped to 0.5.
        raw_scale: f64,
    },
    /// Largest squared robust z-score (see the module docs).
    RobustZ {
        /// Per-feature centre (median).
        center: Vec<f64>,
        /// Per-feature robust scale.
        scale: Vec<f64>,
        /// Raw score mapped to 0.5.
        raw_scale: f64,
    },
}

/// Why detector parameters cannot be used with a feature spec.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectorError {
    #[error("detector {what} has {found} values; the feature spec needs {expected}")]
    Dimension {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("detector {what} holds a value that is not finite or not above {MIN_SCALE}")]
    BadValue { what: &'static str },
}

/// A detector checked against the feature dimension, in flat arrays.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    dim: usize,
    center: Vec<f64>,
    inv_scale: Vec<f64>,
    kind: Kind,
    raw_scale: f64,
}

#[derive(Debug, Clone)]
enum Kind {
    Pca {
        /// `k × dim`, row-major.
        components: Vec<f64>,
        inv_var: Vec<f64>,
        inv_res: f64,
    },
    RobustZ,
}

/// A record's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Raw detector output (≥ 0).
    pub raw: f64,
    /// `raw / (raw + raw_scale)`, rounded; in [0, 1].
    pub score: f64,
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = match decimals {
        4 => 1.0e4,
        _ => 1.0e6,
    };
    (x * f).round() / f
}

fn check_len(what: &'static str, v: &[f64], expected: usize) -> Result<(), DetectorError> {
    if v.len() != expected {
        return Err(DetectorError::Dimension {
            what,
            found: v.len(),
            expected,
        });
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(DetectorError::BadValue { what });
    }
    Ok(())
}

fn check_positive(what: &'static str, v: &[f64]) -> Result<(), DetectorError> {
    if v.iter().any(|x| !(x.is_finite() && *x >= MIN_SCALE)) {
        return Err(DetectorError::BadValue { what });
    }
    Ok(())
}

impl Detector {
    /// The method's name as written in the payload.
    pub fn method(&self) -> &'static str {
        match self {
            Detector::Pca { .. } => "pca",
            Detector::RobustZ { .. } => "robust_z",
        }
    }

    pub(crate) fn compile(&self, dim: usize) -> Result<Compiled, DetectorError> {
        let (center, scale, raw_scale) = match self {
            Detector::Pca {
                center,
                scale,
                raw_scale,
                ..
            }
            | Detector::RobustZ {
                center,
                scale,
                raw_scale,
            } => (center, scale, *raw_scale),
        };
        check_len("center", center, dim)?;
        check_len("scale", scale, dim)?;
        check_positive("scale", scale)?;
        check_positive("raw_scale", &[raw_scale])?;
        let kind = match self {
            Detector::Pca {
                components,
                variances,
                residual_variance,
                ..
            } => {
                check_len("variances", variances, components.len())?;
                check_positive("variances", variances)?;
                check_positive("residual_variance", &[*residual_variance])?;
                if components.len() > dim {
                    return Err(DetectorError::Dimension {
                        what: "components",
                        found: components.len(),
                        expected: dim,
                    });
                }
                let mut flat = Vec::with_capacity(components.len() * dim);
                for row in components {
                    check_len("component", row, dim)?;
                    flat.extend_from_slice(row);
                }
                Kind::Pca {
                    components: flat,
                    inv_var: variances.iter().map(|v| 1.0 / v).collect(),
                    inv_res: 1.0 / residual_variance,
                }
            }
            Detector::RobustZ { .. } => Kind::RobustZ,
        };
        Ok(Compiled {
            dim,
            center: center.clone(),
            inv_scale: scale.iter().map(|s| 1.0 / s).collect(),
            kind,
            raw_scale,
        })
    }
}

impl Compiled {
    /// Standardises `features` into `z` (same length).
    fn standardise(&self, features: &[f64], z: &mut [f64]) {
        for ((zi, f), (c, s)) in z
            .iter_mut()
            .zip(features)
            .zip(self.center.iter().zip(&self.inv_scale))
        {
            *zi = (f - c) * s;
        }
    }

    /// Raw score of a feature vector; `z` is scratch of the same length.
    pub(crate) fn raw(&self, features: &[f64], z: &mut [f64]) -> f64 {
        self.standardise(features, z);
        match &self.kind {
            Kind::RobustZ => z.iter().fold(0.0, |m: f64, v| m.max(v * v)),
            Kind::Pca {
                components,
                inv_var,
                inv_res,
            } => {
                let total: f64 = z.iter().map(|v| v * v).sum();
                let mut explained = 0.0;
                let mut inside = 0.0;
                for (row, iv) in components.chunks_exact(self.dim).zip(inv_var) {
                    let t: f64 = row.iter().zip(z.iter()).map(|(u, v)| u * v).sum();
                    explained += t * t;
                    inside += t * t * iv;
                }
                inside + (total - explained).max(0.0) * inv_res
            }
        }
    }

    /// The raw score that maps to `score` (in [0, 1)); infinite at 1.
    pub(crate) fn raw_at(&self, score: f64) -> f64 {
        if score >= 1.0 {
            f64::INFINITY
        } else {
            self.raw_scale * score / (1.0 - score)
        }
    }

    /// Maps a raw score into [0, 1].
    pub(crate) fn score(&self, raw: f64) -> Score {
        let s = if raw.is_finite() {
            raw / (raw + self.raw_scale)
        } else {
            1.0
        };
        Score {
            raw,
            score: round_to(s, SCORE_DECIMALS),
        }
    }

    /// Each metric's share of the raw score, largest first, at most
    /// [`MAX_CONTRIBUTIONS`]; metric names come from `names` (spec order).
    /// For PCA the per-feature terms are `z_v · (Σ⁻¹ z)_v`, which sum to the
    /// raw score; negative terms count as zero.
    pub(crate) fn contributions(
        &self,
        features: &[f64],
        names: &[&str],
        z: &mut [f64],
        w: &mut [f64],
    ) -> Vec<Contribution> {
        self.standardise(features, z);
        match &self.kind {
            Kind::RobustZ => {
                for (wi, zi) in w.iter_mut().zip(z.iter()) {
                    *wi = zi * zi;
                }
            }
            Kind::Pca {
                components,
                inv_var,
                inv_res,
            } => {
                // Σ⁻¹ z = z/λ_res − Σ_k t_k (1/λ_res − 1/λ_k) u_k
                for (wi, zi) in w.iter_mut().zip(z.iter()) {
                    *wi = zi * inv_res;
                }
                for (row, iv) in components.chunks_exact(self.dim).zip(inv_var) {
                    let t: f64 = row.iter().zip(z.iter()).map(|(u, v)| u * v).sum();
                    let coef = t * (inv_res - iv);
                    for (wi, u) in w.iter_mut().zip(row) {
                        *wi -= coef * u;
                    }
                }
                for (wi, zi) in w.iter_mut().zip(z.iter()) {
                    *wi = (*wi * zi).max(0.0);
                }
            }
        }
        // Per-record features (the gap) belong to no metric: left out.
        let mut per_metric: Vec<(usize, f64)> = w
            .chunks_exact(FEATURES_PER_METRIC)
            .take(names.len())
            .map(|c| c.iter().sum::<f64>())
            .enumerate()
            .collect();
        let total: f64 = per_metric.iter().map(|(_, v)| v).sum();
        if !(total.is_finite() && total > 0.0) {
            return Vec::new();
        }
        // Ties broken by spec order, so every platform lists the same.
        per_metric.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        per_metric
            .into_iter()
            .take(MAX_CONTRIBUTIONS)
            .map(|(i, v)| Contribution {
                metric: names.get(i).copied().unwrap_or_default().to_owned(),
                share: round_to(v / total, SHARE_DECIMALS),
            })
            .filter(|c| c.share > 0.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pca() -> Detector {
        // Two features that move together, plus a third on its own.
        let s = std::f64::consts::FRAC_1_SQRT_2;
        Detector::Pca {
            center: vec![0.0; 3],
            scale: vec![1.0; 3],
            components: vec![vec![s, s, 0.0]],
            variances: vec![2.0],
            residual_variance: 0.1,
            raw_scale: 10.0,
        }
    }

    #[test]
    fn pca_penalises_leaving_the_principal_subspace() {
        let c = pca().compile(3).expect("valid");
        let mut z = vec![0.0; 3];
        let along = c.raw(&[1.0, 1.0, 0.0], &mut z);
        let across = c.raw(&[1.0, -1.0, 0.0], &mut z);
        assert!((along - 1.0).abs() < 1e-12, "{along}");
        assert!((across - 20.0).abs() < 1e-9, "{across}");
        assert_eq!(c.score(10.0).score, 0.5);
    }

    #[test]
    fn pca_contributions_sum_to_one_and_pick_the_outlier() {
        // Two metrics' features plus the per-record gap.
        let dim = 2 * FEATURES_PER_METRIC + 1;
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let mut component = vec![0.0; dim];
        component[0] = s;
        component[1] = s;
        let c = Detector::Pca {
            center: vec![0.0; dim],
            scale: vec![1.0; dim],
            components: vec![component],
            variances: vec![2.0],
            residual_variance: 0.1,
            raw_scale: 10.0,
        }
        .compile(dim)
        .expect("valid");
        let mut z = vec![0.0; dim];
        let mut w = vec![0.0; dim];
        let mut features = vec![0.0; dim];
        // The second metric's `stuck` feature is far out: it gets it all.
        features[FEATURES_PER_METRIC + 2] = 5.0;
        let contrib = c.contributions(&features, &["m", "n"], &mut z, &mut w);
        assert_eq!(contrib.len(), 1);
        assert_eq!(contrib[0].metric, "n");
        assert_eq!(contrib[0].share, 1.0);
    }

    #[test]
    fn dimension_mismatch_is_reported() {
        let err = pca().compile(6).expect_err("must fail");
        assert!(err.to_string().contains("center has 3 values"), "{err}");
    }
}
