//! Order statistics behind the threshold's calibration: the median, a
//! nearest-rank quantile, and the exponential tail through the 75th and
//! 90th percentiles that places a rare-rate threshold on few rows (and
//! estimates the rate a threshold gives) when the rows may hold anomalies.

/// The median (the upper one of an even count).
pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

/// `q`-quantile (0..=1) by nearest rank.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let idx = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, m, _) = v.select_nth_unstable_by(idx.min(v.len() - 1), f64::total_cmp);
    Some(*m)
}

/// The `1 - target` quantile of `v` extrapolated from its 75th and 90th
/// percentiles with an exponential tail (`Calibration::Trimmed`); the
/// empirical quantile when `target` is not in the tail.
pub(crate) fn tail_quantile(v: &mut [f64], target: f64) -> Option<f64> {
    if target >= 0.1 {
        return quantile(v, 1.0 - target);
    }
    let q75 = quantile(v, 0.75)?;
    let q90 = quantile(v, 0.90)?;
    // P(X > x) = 0.1 · exp(-(x - q90) / β), through both percentiles.
    let beta = (q90 - q75).max(0.0) / (0.25_f64 / 0.10).ln();
    Some(q90 + beta * (0.10 / target).ln())
}

/// The false-alarm rate a raw-score threshold `x` gives on `raws`,
/// estimated robustly: rows above the `target` cut of
/// [`tail_quantile`] are presumed anomalies and left out, then the tail
/// beyond the 90th percentile is the exponential one through the 75th
/// and 90th (below the 90th percentile, the counted fraction).
pub(crate) fn tail_probability(mut raws: Vec<f64>, x: f64, target: f64) -> Option<f64> {
    let cut = tail_quantile(&mut raws.clone(), target)?;
    raws.retain(|&r| r <= cut);
    let q75 = quantile(&mut raws, 0.75)?;
    let q90 = quantile(&mut raws, 0.90)?;
    if x <= q90 {
        let above = raws.iter().filter(|&&r| r >= x).count();
        return Some(above as f64 / raws.len() as f64);
    }
    let beta = (q90 - q75).max(0.0) / (0.25_f64 / 0.10).ln();
    if beta <= 0.0 {
        return Some(0.0);
    }
    Some(0.10 * (-(x - q90) / beta).exp())
}
