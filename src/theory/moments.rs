//! Gaussian moments of an activation, E[φ(√q z)], E[φ(√q z)²] and E[φ′(√q z)²], fast enough
//! to evaluate for every layer of every input bin each time a snapshot arrives.
//!
//! Linear and ReLU use closed forms. Tanh, sigmoid and GELU are tabulated once per activation
//! on a uniform grid in ln q (spacing h = 0.025 from q = 1e-12 to 1e10, ~2000 nodes) with the
//! composite Gauss–Legendre quadrature, and read back by four-point Lagrange interpolation,
//! whose error is at most (9/16)/24 · h⁴ times the fourth derivative in ln q, ~1e-8 relative
//! here; tests check it against the quadrature directly to 1e-7. Below the grid the moments are linear in q (their Taylor series at
//! 0); above it the quadrature is called directly.

use super::quadrature::scaled_expectation_q;
use super::{phi, phi_prime};
use crate::config::Activation;
use std::sync::OnceLock;

/// The three moments the mean-field recursions need at one pre-activation variance q.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// E[φ(√q z)]: the mean of the layer's output, which a shortcut carries forward.
    pub mean: f64,
    /// E[φ(√q z)²]: the output's second moment (the next layer's input).
    pub second: f64,
    /// E[φ′(√q z)²]: the mean squared slope (χ₁ = σ_w² times this).
    pub slope_sq: f64,
}

const LN_Q_MIN: f64 = -27.631_021_115_928_547; // ln 1e-12
const LN_Q_MAX: f64 = 23.025_850_929_940_457; // ln 1e10
const STEP: f64 = 0.025;

/// The moments at q ≥ 0 by quadrature (the reference the table is built from).
pub fn moments_exact(act: Activation, q: f64) -> Moments {
    Moments {
        mean: scaled_expectation_q(&|x: f64| phi(act, x), q),
        second: scaled_expectation_q(&|x: f64| phi(act, x).powi(2), q),
        slope_sq: scaled_expectation_q(&|x: f64| phi_prime(act, x).powi(2), q),
    }
}

/// The moments at q ≥ 0; NaN fields for negative or NaN q.
pub fn moments(act: Activation, q: f64) -> Moments {
    if q.is_nan() || q < 0.0 {
        return Moments {
            mean: f64::NAN,
            second: f64::NAN,
            slope_sq: f64::NAN,
        };
    }
    match act {
        Activation::Linear => {
            return Moments {
                mean: 0.0,
                second: q,
                slope_sq: 1.0,
            };
        }
        Activation::Relu => {
            return Moments {
                mean: (q / (2.0 * std::f64::consts::PI)).sqrt(),
                second: q / 2.0,
                slope_sq: 0.5,
            };
        }
        _ => {}
    }
    let ln_q = q.ln();
    if ln_q.is_nan() || ln_q > LN_Q_MAX {
        // Far out (or q = ∞, where the quadrature's limits are the honest answer).
        return if q.is_finite() {
            moments_exact(act, q)
        } else {
            let limit = super::chi1_at(act, 1.0, q);
            Moments {
                mean: f64::NAN,
                second: f64::INFINITY,
                slope_sq: limit,
            }
        };
    }
    let table = table(act);
    if ln_q < LN_Q_MIN {
        let (at0, at_min) = (moments_exact(act, 0.0), table[0]);
        let t = q / LN_Q_MIN.exp();
        let lerp = |a: f64, b: f64| a + (b - a) * t;
        return Moments {
            mean: lerp(at0.mean, at_min[0]),
            second: lerp(at0.second, at_min[1]),
            slope_sq: lerp(at0.slope_sq, at_min[2]),
        };
    }
    let x = (ln_q - LN_Q_MIN) / STEP;
    // The four nodes i−1 … i+2 around x, shifted inwards at the ends of the table.
    let i = (x.floor() as usize).clamp(1, table.len() - 3);
    let t = x - i as f64;
    let w = [
        -t * (t - 1.0) * (t - 2.0) / 6.0,
        (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0,
        -(t + 1.0) * t * (t - 2.0) / 2.0,
        (t + 1.0) * t * (t - 1.0) / 6.0,
    ];
    let mut out = [0.0; 3];
    for (k, wk) in w.iter().enumerate() {
        for (o, v) in out.iter_mut().zip(table[i - 1 + k]) {
            *o += wk * v;
        }
    }
    Moments {
        mean: out[0],
        second: out[1],
        slope_sq: out[2],
    }
}

/// The tabulated [mean, second, slope_sq] of a smooth activation, built on first use.
fn table(act: Activation) -> &'static [[f64; 3]] {
    static TABLES: [OnceLock<Vec<[f64; 3]>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match act {
        Activation::Tanh => 0,
        Activation::Sigmoid => 1,
        _ => 2,
    };
    TABLES[slot].get_or_init(|| {
        let n = ((LN_Q_MAX - LN_Q_MIN) / STEP).ceil() as usize + 2;
        (0..n)
            .map(|i| {
                let m = moments_exact(act, (LN_Q_MIN + STEP * i as f64).exp());
                [m.mean, m.second, m.slope_sq]
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::tests::{ALL, assert_close};

    #[test]
    fn table_matches_quadrature() {
        for act in ALL {
            for k in 0..400 {
                // Irrational steps so the points fall between grid nodes.
                let q = (LN_Q_MIN - 2.0 + k as f64 * 0.131_7).exp();
                let (fast, exact) = (moments(act, q), moments_exact(act, q));
                let what = format!("{act:?} q = {q:e}");
                let scale = |v: f64| 1e-7 * v.abs().max(1e-300);
                assert_close(fast.second, exact.second, scale(exact.second), &what);
                assert_close(fast.slope_sq, exact.slope_sq, scale(exact.slope_sq), &what);
                assert_close(fast.mean, exact.mean, 1e-7 * exact.second.sqrt(), &what);
            }
        }
    }
}
