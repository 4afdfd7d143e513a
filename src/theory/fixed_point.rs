//! Root finding behind the mean-field numbers: the fixed point q* of the variance map and the
//! critical σ_w² where χ1 = 1.

use super::quadrature::scaled_expectation_q;
use super::{chi1_at, phi, phi_prime};
use crate::config::Activation;

/// Variance above which the recursion is declared divergent.
const Q_DIVERGED: f64 = 1e12;

/// σ_w² E[φ(√q z)²] + σ_b², the variance of the next layer's pre-activations.
pub(super) fn variance_map(act: Activation, weight_var: f64, bias_var: f64, q: f64) -> f64 {
    weight_var * scaled_expectation_q(&|x: f64| phi(act, x).powi(2), q) + bias_var
}

/// q* for the affine maps q ↦ a q + σ_b² of Linear (a = σ_w²) and ReLU (a = σ_w²/2).
fn affine_fixed_point(slope: f64, bias_var: f64) -> f64 {
    if slope < 1.0 {
        bias_var / (1.0 - slope)
    } else if slope == 1.0 && bias_var == 0.0 {
        // Every q is fixed, so the recursion stays at q⁰ = 1.
        1.0
    } else {
        f64::INFINITY
    }
}

/// The fixed point the variance recursion reaches from q⁰ = 1.
pub(super) fn fixed_point(act: Activation, weight_var: f64, bias_var: f64) -> f64 {
    if !(weight_var.is_finite() && weight_var >= 0.0 && bias_var.is_finite() && bias_var >= 0.0) {
        return f64::NAN;
    }
    match act {
        Activation::Linear => return affine_fixed_point(weight_var, bias_var),
        Activation::Relu => return affine_fixed_point(weight_var / 2.0, bias_var),
        _ => {}
    }
    if weight_var == 0.0 {
        return bias_var;
    }
    let origin_fixed = bias_var == 0.0 && phi(act, 0.0) == 0.0;
    // V(q)/q − 1 has the same positive roots as V(q) − q but stays O(1) as q → 0, which keeps
    // roots near 0 (tanh just above σ_w² = 1) resolvable to full relative precision.
    let gap = |q: f64| {
        if q == 0.0 {
            if origin_fixed {
                weight_var * phi_prime(act, 0.0).powi(2) - 1.0
            } else {
                f64::INFINITY
            }
        } else {
            variance_map(act, weight_var, bias_var, q) / q - 1.0
        }
    };
    let g1 = gap(1.0);
    if g1 == 0.0 {
        return 1.0;
    }
    if g1 > 0.0 {
        // The recursion climbs from 1: the answer is the first root above it, if any.
        let (mut lo, mut g_lo) = (1.0, g1);
        loop {
            let hi = 2.0 * lo;
            if hi > Q_DIVERGED {
                return f64::INFINITY;
            }
            let g_hi = gap(hi);
            if g_hi <= 0.0 {
                return brent(gap, lo, hi, g_lo, g_hi, 0.0);
            }
            (lo, g_lo) = (hi, g_hi);
        }
    }
    // The recursion descends from 1: the answer is the first root below it, or 0.
    let (mut hi, mut g_hi) = (1.0, g1);
    loop {
        let lo = hi / 4.0;
        if origin_fixed && lo < 1e-12 {
            // Below this scale the map is its linearisation, so the sign at 0 decides.
            let g0 = gap(0.0);
            return if g0 > 0.0 {
                brent(gap, 0.0, hi, g0, g_hi, 0.0)
            } else {
                0.0
            };
        }
        if lo < 1e-300 {
            return 0.0;
        }
        let g_lo = gap(lo);
        if g_lo >= 0.0 {
            return brent(gap, lo, hi, g_lo, g_hi, 0.0);
        }
        (hi, g_hi) = (lo, g_lo);
    }
}

/// Sub-intervals each octave bracket is scanned in for the first sign change.
const SCAN_STEPS: u32 = 64;

/// Lowest σ_w² in (0, 100] with χ1 = 1 at q*(σ_w²), or NaN.
///
/// χ1 − 1 can cross zero several times within one octave of σ_w² (GELU at σ_b² = 0.3 crosses
/// at 1.956, where q* is finite, and touches zero again at 2.0, where q* runs off to ∞ and
/// χ1 → σ_w²/2), so the first octave with χ1 ≥ 1 at its top is scanned in 64 equal steps
/// (~1.6 % of σ_w²) and Brent's method refines the first step with a sign change. A crossing
/// narrower than one step could be missed.
pub(super) fn solve_critical(act: Activation, bias_var: f64) -> f64 {
    let excess = |w: f64| chi1_at(act, w, fixed_point(act, w, bias_var)) - 1.0;
    // χ1 → 0 as σ_w² → 0, so the bracket can start at 0 without evaluating there.
    let (mut lo, mut h_lo) = (0.0, -1.0);
    for k in (0..=9).rev() {
        let top = 100.0 / f64::from(1u32 << k);
        let h_top = excess(top);
        if h_top >= 0.0 {
            let step = (top - lo) / f64::from(SCAN_STEPS);
            for i in 1..=SCAN_STEPS {
                let hi = if i == SCAN_STEPS {
                    top
                } else {
                    lo + step * f64::from(i)
                };
                let h_hi = excess(hi);
                if h_hi >= 0.0 {
                    // 1e-12 is far below what a slider can show and saves ~15 solves on jumps.
                    let w = brent(excess, lo, hi, h_lo, h_hi, 1e-12);
                    // A sign change without a root means q* jumped (e.g. GELU between 0
                    // and ∞).
                    return if excess(w).abs() <= 1e-6 { w } else { f64::NAN };
                }
                (lo, h_lo) = (hi, h_hi);
            }
        }
        (lo, h_lo) = (top, h_top);
    }
    f64::NAN
}

/// Root of f in [a, b] given f(a) and f(b) of opposite signs (Brent 1973, as in Numerical
/// Recipes' zbrent), to `rel_tol` relative accuracy or about two ulps, whichever is larger.
fn brent(
    mut f: impl FnMut(f64) -> f64,
    mut a: f64,
    mut b: f64,
    mut fa: f64,
    mut fb: f64,
    rel_tol: f64,
) -> f64 {
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    let (mut c, mut fc) = (b, fb);
    let (mut d, mut e) = (b - a, b - a);
    for _ in 0..300 {
        if (fb > 0.0) == (fc > 0.0) {
            (c, fc) = (a, fa);
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            (a, fa) = (b, fb);
            (b, fb) = (c, fc);
            (c, fc) = (a, fa);
        }
        let tol = (2.0 * f64::EPSILON).max(0.5 * rel_tol) * b.abs() + 1e-300;
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return b;
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * m * s, 1.0 - s)
            } else {
                let (qa, r) = (fa / fc, fb / fc);
                (
                    s * (2.0 * m * qa * (qa - r) - (b - a) * (r - 1.0)),
                    (qa - 1.0) * (r - 1.0) * (s - 1.0),
                )
            };
            if p > 0.0 {
                q = -q;
            }
            p = p.abs();
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        (a, fa) = (b, fb);
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = f(b);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::mean_field;
    use crate::theory::tests::assert_close;

    #[test]
    fn fixed_point_agrees_with_iterating_the_map() {
        let cases = [
            (Activation::Tanh, 1.2, 0.0),
            (Activation::Tanh, 1.5, 0.05),
            (Activation::Tanh, 0.8, 0.3),
            (Activation::Sigmoid, 1.0, 0.0),
            (Activation::Sigmoid, 4.0, 0.2),
            (Activation::Gelu, 1.5, 0.1),
            (Activation::Gelu, 0.5, 0.0),
        ];
        for (act, w, b) in cases {
            let q_star = mean_field(act, w, b).q_star;
            let image = variance_map(act, w, b, q_star);
            assert_close(image, q_star, 1e-10 * q_star.max(1.0), "V(q*) = q*");
            let mut q = 1.0;
            for _ in 0..300 {
                q = variance_map(act, w, b, q);
            }
            assert_close(q, q_star, 1e-9, &format!("{act:?} σ_w²={w} σ_b²={b}"));
        }
    }
}
