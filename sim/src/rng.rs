//! A tiny deterministic random source (SplitMix64) owned by this crate.
//!
//! The simulator promises identical output for identical seeds on every
//! platform and for every build, so it does not depend on a third-party
//! generator whose streams may change between versions. SplitMix64 keeps one
//! `u64` of state, which is what lets each device carry its own independent
//! streams in O(1) memory.

use std::sync::OnceLock;

/// SplitMix64's output function: a strong 64-bit mixer, also used to derive
/// seeds and pure per-(device, tick) values such as timestamp jitter.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives the seed of one independent stream from the fleet seed, a device
/// index and a stream number.
pub(crate) fn derive(seed: u64, device: u64, stream: u64) -> u64 {
    mix(mix(mix(seed) ^ device.wrapping_mul(0xA24B_AED4_963E_E407)) ^ stream)
}

/// One stream of uniform and normal variates (public so that other
/// seeded generators of test data, such as `vigil-eval nab --inject`,
/// share it).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi] (lo when the span is empty).
    pub(crate) fn between(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n); n must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in [lo, hi].
    pub(crate) fn int_between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// +1 or −1 with equal probability.
    pub(crate) fn sign(&mut self) -> f64 {
        if self.next_u64() >> 63 == 0 {
            1.0
        } else {
            -1.0
        }
    }

    /// Standard normal variate (ziggurat: one draw and a table lookup on
    /// about 99 % of calls, which is what makes a million records a second
    /// possible).
    pub fn normal(&mut self) -> f64 {
        let z = ziggurat();
        loop {
            let bits = self.next_u64();
            let layer = (bits & 0x7F) as usize;
            let u = 2.0 * ((bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) - 1.0;
            if u.abs() < z.ratio[layer] {
                return u * z.x[layer];
            }
            if layer == 0 {
                // The tail beyond R (Marsaglia's method).
                loop {
                    let x = -(1.0 - self.uniform()).ln() / ZIG_R;
                    let y = -(1.0 - self.uniform()).ln();
                    if 2.0 * y > x * x {
                        return if u < 0.0 { -(ZIG_R + x) } else { ZIG_R + x };
                    }
                }
            }
            let x = u * z.x[layer];
            let f0 = (-0.5 * (z.x[layer] * z.x[layer] - x * x)).exp();
            let f1 = (-0.5 * (z.x[layer + 1] * z.x[layer + 1] - x * x)).exp();
            if f1 + self.uniform() * (f0 - f1) < 1.0 {
                return x;
            }
        }
    }

    /// Exponential variate with the given finite mean.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
}

/// Right edge of the base layer of the 128-layer normal ziggurat.
const ZIG_R: f64 = 3.442_619_855_899;
/// Area of each layer.
const ZIG_V: f64 = 9.912_563_035_262_17e-3;

#[derive(Debug)]
struct Ziggurat {
    /// Layer edges, x[0] (virtual base width) down to x[128] = 0.
    x: [f64; 129],
    /// x[i + 1] / x[i]: below it a point is inside without evaluating exp.
    ratio: [f64; 128],
}

fn ziggurat() -> &'static Ziggurat {
    static TABLE: OnceLock<Ziggurat> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut x = [0.0; 129];
        let mut f = (-0.5 * ZIG_R * ZIG_R).exp();
        x[0] = ZIG_V / f;
        x[1] = ZIG_R;
        for i in 2..128 {
            x[i] = (-2.0 * (ZIG_V / x[i - 1] + f).ln()).sqrt();
            f = (-0.5 * x[i] * x[i]).exp();
        }
        let mut ratio = [0.0; 128];
        for i in 0..128 {
            ratio[i] = x[i + 1] / x[i];
        }
        Ziggurat { x, ratio }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn normal_matches_the_cdf_including_tails() {
        let mut rng = Rng::new(11);
        let n = 2_000_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        // Φ(x) for a few x, from tables.
        let cdf = [
            (-3.0, 0.001_349_9),
            (-1.5, 0.066_807_2),
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (2.0, 0.977_249_9),
            (3.5, 0.999_767_4),
        ];
        for (x, want) in cdf {
            let got = xs.iter().filter(|v| **v < x).count() as f64 / n as f64;
            assert!(
                (got - want).abs() < 0.001,
                "P(z < {x}) = {got}, want {want}"
            );
        }
        let beyond_r = xs.iter().filter(|v| v.abs() > ZIG_R).count();
        assert!(beyond_r > 500, "tail beyond {ZIG_R} drawn {beyond_r} times");
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = rng.below(7) as usize;
            seen[v] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn derived_streams_differ() {
        assert_ne!(derive(1, 0, 0), derive(1, 1, 0));
        assert_ne!(derive(1, 0, 0), derive(1, 0, 1));
        assert_ne!(derive(1, 0, 0), derive(2, 0, 0));
    }
}
