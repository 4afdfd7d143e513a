//! The activation functions φ and their slopes in f64, with the special functions they need.

use crate::config::Activation;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

/// φ(x) for an activation.
pub fn phi(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Linear => x,
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => sigmoid(x),
        Activation::Gelu => x * normal_cdf(x),
    }
}

/// φ′(x) for an activation; ReLU uses φ′(0) = 0, the subgradient autodiff frameworks pick.
pub fn phi_prime(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Linear => 1.0,
        Activation::Tanh => {
            // sech² written via e^{-2|x|} keeps relative accuracy where 1 − tanh² would cancel.
            let e = (-2.0 * x.abs()).exp();
            4.0 * e / ((1.0 + e) * (1.0 + e))
        }
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => {
            let s = sigmoid(x);
            s * (1.0 - s)
        }
        Activation::Gelu => normal_cdf(x) + x * normal_pdf(x),
    }
}

/// Logistic sigmoid, evaluated without overflow for either sign.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Standard normal density.
fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() * FRAC_1_SQRT_2 * 0.5 * FRAC_2_SQRT_PI
}

/// Standard normal CDF Φ(x) = erfc(−x/√2)/2.
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Complementary error function to ~1e-16 absolute (and relative for large positive x),
/// since std has none.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        // erf x = (2/√π) e^{-x²} Σ 2ⁿ x^{2n+1} / (2n+1)!!: every term is positive, so no
        // cancellation, unlike the alternating Taylor series.
        let x2 = x * x;
        let (mut term, mut sum) = (x, x);
        let mut n = 0.0;
        while term > 1e-17 * sum {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - FRAC_2_SQRT_PI * (-x2).exp() * sum
    } else {
        // Continued fraction erfc x = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))),
        // by the modified Lentz method, which stops as soon as it has converged: ~60 levels
        // at x = 3 but only a handful far out in the tail.
        let tiny = 1e-300;
        let (mut f, mut c, mut d) = (tiny, tiny, 0.0);
        for k in 0..500 {
            let a = if k == 0 { 1.0 } else { 0.5 * f64::from(k) };
            d = x + a * d;
            if d == 0.0 {
                d = tiny;
            }
            c = x + a / c;
            if c == 0.0 {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() <= 1e-16 {
                break;
            }
        }
        0.5 * FRAC_2_SQRT_PI * (-x * x).exp() * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::tests::{ALL, assert_close};

    #[test]
    fn erfc_matches_reference_values() {
        assert_close(1.0 - erfc(0.5), 0.5204998778130465, 1e-15, "erf 0.5");
        assert_close(1.0 - erfc(1.0), 0.8427007929497149, 1e-15, "erf 1");
        assert_close(erfc(-1.3), 1.9340079449406524, 1e-15, "erfc −1.3");
        assert_close(erfc(3.0) / 2.2090496998585438e-05, 1.0, 1e-13, "erfc 3");
        assert_close(erfc(5.0) / 1.5374597944280351e-12, 1.0, 1e-13, "erfc 5");
        assert_close(
            phi(Activation::Gelu, 1.0),
            0.8413447460685429,
            1e-15,
            "gelu 1",
        );
        let gelu_m2 = -2.0 * 0.02275013194817922;
        assert_close(phi(Activation::Gelu, -2.0), gelu_m2, 1e-15, "gelu −2");
    }

    #[test]
    fn phi_prime_matches_finite_differences() {
        let h = 1e-5;
        for act in ALL {
            for x in [-6.0, -2.5, -1.1, -0.3, 0.2, 0.7, 1.9, 4.0] {
                let numeric = (phi(act, x + h) - phi(act, x - h)) / (2.0 * h);
                assert_close(phi_prime(act, x), numeric, 1e-9, &format!("{act:?}′({x})"));
            }
        }
    }
}
