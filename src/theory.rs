//! Mean-field predictions for deep random networks, and path counts for residual networks.
//!
//! When weights are drawn i.i.d. from N(0, σ_w²/fan_in) and biases from N(0, σ_b²), a wide
//! network's pre-activation variance follows a deterministic layer-to-layer map whose fixed
//! point q* and slope χ1 decide whether gradients shrink (χ1 < 1), explode (χ1 > 1) or survive
//! (χ1 = 1) with depth (Poole et al. 2016; Schoenholz et al. 2017). The lab draws these
//! predictions next to the measured per-layer gradient norms so the two can be compared.
//!
//! A residual network with n blocks behaves like an ensemble of 2ⁿ paths, C(n, k) of them of
//! length k (Veit et al. 2016); those counts overflow every integer type long before n gets
//! interesting, so they are handled as logarithms.

use crate::config::Activation;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};
use std::sync::{Mutex, OnceLock};

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

/// E_{z~N(0,1)}[f(z)], accurate to ~1e-13 for smooth f and exact for piecewise polynomials
/// with a kink at 0 (ReLU and its powers).
///
/// The line is split at 0 and each half integrated with composite 16-point Gauss–Legendre
/// panels out to |z| = 13 (beyond which the Gaussian weighs less than 1e-37). A single
/// Gauss–Hermite rule was avoided because it converges only algebraically across a kink and
/// poorly on the near-step integrands tanh(√q z) produces at large q.
pub fn gaussian_expectation(f: impl Fn(f64) -> f64) -> f64 {
    scaled_expectation(&f, 1.0)
}

/// Mean-field results for one (activation, σ_w², σ_b²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanField {
    /// Fixed point of the variance map reached from q⁰ = 1: the pre-activation variance deep
    /// layers settle to. `f64::INFINITY` when the variance grows without bound.
    pub q_star: f64,
    /// χ1 = σ_w² E[φ′(√q* z)²], the factor by which the mean squared gradient grows per layer
    /// going backwards (and the slope of the correlation map at c = 1).
    pub chi1: f64,
    /// 1/|ln χ1|: the number of layers over which gradient energy changes by a factor e. It is
    /// a decay length when χ1 < 1 and a growth length when χ1 > 1; `f64::INFINITY` at χ1 = 1,
    /// where signals propagate arbitrarily deep.
    pub depth_scale: f64,
    /// 10·log10 χ1: the predicted change in gradient energy per layer in decibels, the unit the
    /// lab uses for measured per-layer gradient norms.
    pub predicted_db_per_layer: f64,
    /// σ_w² giving χ1 = 1 at this σ_b² (the order-to-chaos boundary); NaN when χ1 never equals
    /// 1 for σ_w² in (0, 100], including when it jumps across 1 because q* jumps between 0
    /// and ∞.
    pub critical_weight_var: f64,
}

/// Mean-field fixed point, gradient factor and critical σ_w² for one configuration.
///
/// q* is the fixed point of q_l = σ_w² E[φ(√q_{l-1} z)²] + σ_b² that the recursion reaches from
/// q⁰ = 1. Because the map is increasing, that is the nearest root of V(q) − q on the side the
/// first step moves towards; it is found by bracketing and Brent's method rather than by
/// iterating, which would need millions of layers near σ_w² = 1 (the approach to q* = 0 is
/// ~1/l there). Linear and ReLU use their closed forms. When the variance grows without bound
/// (beyond 1e12) q* is infinite and χ1 is its q → ∞ limit. Negative or non-finite variances
/// give NaN fields.
pub fn mean_field(act: Activation, weight_var: f64, bias_var: f64) -> MeanField {
    let q_star = fixed_point(act, weight_var, bias_var);
    let chi1 = chi1_at(act, weight_var, q_star);
    let depth_scale = if chi1 == 1.0 {
        f64::INFINITY
    } else {
        1.0 / chi1.ln().abs()
    };
    MeanField {
        q_star,
        chi1,
        depth_scale,
        predicted_db_per_layer: 10.0 * chi1.log10(),
        critical_weight_var: critical_weight_var(act, bias_var),
    }
}

/// χ1 = σ_w² E[φ′(√q z)²] at a given q ≥ 0 (q may be `f64::INFINITY`).
///
/// Exposed separately so callers can evaluate the gradient factor at the measured variance of
/// a real, finite network rather than at the idealised fixed point. Linear and ReLU give σ_w²
/// and σ_w²/2 for every q (ReLU's value at q = 0 is taken as this limit). Negative or NaN q
/// gives NaN.
pub fn chi1_at(act: Activation, weight_var: f64, q: f64) -> f64 {
    if q.is_nan() || q < 0.0 {
        return f64::NAN;
    }
    let mean_sq_slope = match act {
        Activation::Linear => 1.0,
        Activation::Relu => 0.5,
        // At q = ∞, φ′(√q z) is φ′(+∞) for z > 0 and φ′(−∞) for z < 0.
        Activation::Tanh | Activation::Sigmoid if q == f64::INFINITY => 0.0,
        Activation::Gelu if q == f64::INFINITY => 0.5,
        _ => scaled_expectation_q(&|x: f64| phi_prime(act, x).powi(2), q),
    };
    weight_var * mean_sq_slope
}

/// σ_w² at which χ1(σ_w², q*(σ_w²)) = 1 for this σ_b²; NaN if there is none in (0, 100].
///
/// The lowest crossing is bracketed on a coarse grid and refined with Brent's method. The
/// search costs a few hundred fixed-point solves, so results are memoised per
/// (activation, σ_b²); repeated calls while the user only moves σ_w² are free.
pub fn critical_weight_var(act: Activation, bias_var: f64) -> f64 {
    if !(bias_var.is_finite() && bias_var >= 0.0) {
        return f64::NAN;
    }
    match act {
        Activation::Linear => return 1.0,
        Activation::Relu => return 2.0,
        _ => {}
    }
    static CACHE: Mutex<Vec<(Activation, u64, f64)>> = Mutex::new(Vec::new());
    let key = bias_var.to_bits();
    if let Ok(cache) = CACHE.lock()
        && let Some(&(_, _, w)) = cache.iter().find(|e| e.0 == act && e.1 == key)
    {
        return w;
    }
    let w = solve_critical(act, bias_var);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.push((act, key, w));
    }
    w
}

/// log10 C(n, k): the number of length-k paths through n residual blocks, as a logarithm
/// because C(100_000, 50_000) has ~30_000 digits. −∞ when k > n (no such paths).
///
/// Summed as Σ ln((n − k′ + i)/i) over the smaller of k and n − k with compensated summation,
/// which keeps ~1e-12 relative accuracy without a ln-gamma implementation.
pub fn binomial_log10(n: usize, k: usize) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    let k = k.min(n - k);
    let base = (n - k) as f64;
    let (mut sum, mut comp) = (0.0_f64, 0.0_f64);
    for i in 1..=k {
        let term = ((base + i as f64) / i as f64).ln();
        // Neumaier summation: ~50_000 terms would otherwise lose several digits.
        let t = sum + term;
        if sum.abs() >= term.abs() {
            comp += (sum - t) + term;
        } else {
            comp += (term - t) + sum;
        }
        sum = t;
    }
    (sum + comp) / std::f64::consts::LN_10
}

// ---------------------------------------------------------------------------------------------
// Fixed point and criticality.

/// Variance above which the recursion is declared divergent.
const Q_DIVERGED: f64 = 1e12;

/// σ_w² E[φ(√q z)²] + σ_b², the variance of the next layer's pre-activations.
fn variance_map(act: Activation, weight_var: f64, bias_var: f64, q: f64) -> f64 {
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
fn fixed_point(act: Activation, weight_var: f64, bias_var: f64) -> f64 {
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

/// Lowest σ_w² in (0, 100] with χ1 = 1 at q*(σ_w²), or NaN.
fn solve_critical(act: Activation, bias_var: f64) -> f64 {
    let excess = |w: f64| chi1_at(act, w, fixed_point(act, w, bias_var)) - 1.0;
    // χ1 → 0 as σ_w² → 0, so the bracket can start at 0 without evaluating there.
    let (mut lo, mut h_lo) = (0.0, -1.0);
    for k in (0..=9).rev() {
        let hi = 100.0 / f64::from(1u32 << k);
        let h_hi = excess(hi);
        if h_hi >= 0.0 {
            // 1e-12 is far below what a slider can show and saves ~15 solves on jumps.
            let w = brent(excess, lo, hi, h_lo, h_hi, 1e-12);
            // A sign change without a root means q* jumped (e.g. GELU between 0 and ∞).
            return if excess(w).abs() <= 1e-6 { w } else { f64::NAN };
        }
        (lo, h_lo) = (hi, h_hi);
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

// ---------------------------------------------------------------------------------------------
// Quadrature and special functions.

/// Nodes per Gauss–Legendre panel.
const GL_POINTS: usize = 16;

/// Half-width of the integration range in standard deviations; the Gaussian beyond is < 1e-37.
const TAIL_SIGMAS: f64 = 13.0;

/// Gauss–Legendre nodes and weights on [−1, 1], computed once by Newton's method on P_n.
fn gauss_legendre() -> &'static [(f64, f64); GL_POINTS] {
    static RULE: OnceLock<[(f64, f64); GL_POINTS]> = OnceLock::new();
    RULE.get_or_init(|| {
        let n = GL_POINTS;
        let nf = n as f64;
        // (P_n(x), P_n′(x)) by the three-term recurrence.
        let legendre = |x: f64| {
            let (mut p_prev, mut p) = (1.0, x);
            for k in 2..=n {
                let kf = k as f64;
                (p_prev, p) = (p, ((2.0 * kf - 1.0) * x * p - (kf - 1.0) * p_prev) / kf);
            }
            (p, nf * (x * p - p_prev) / (x * x - 1.0))
        };
        let mut rule = [(0.0, 0.0); GL_POINTS];
        for i in 0..n / 2 {
            let mut x = (PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
            for _ in 0..100 {
                let (p, dp) = legendre(x);
                let dx = p / dp;
                x -= dx;
                if dx.abs() <= 1e-16 {
                    break;
                }
            }
            let (_, dp) = legendre(x);
            let w = 2.0 / ((1.0 - x * x) * dp * dp);
            rule[i] = (x, w);
            rule[n - 1 - i] = (-x, w);
        }
        rule
    })
}

/// E[g(√q z)] for z ~ N(0, 1) and finite q ≥ 0.
fn scaled_expectation_q(g: &impl Fn(f64) -> f64, q: f64) -> f64 {
    if q == 0.0 {
        g(0.0)
    } else {
        scaled_expectation(g, q.sqrt())
    }
}

/// E[g(s z)] for z ~ N(0, 1) and s > 0, integrated over x = s z.
///
/// Panels are at most s wide (to resolve the Gaussian) and at most max(1, x/2) wide (to
/// resolve activations, whose features sit within a few units of 0 and decay exponentially
/// beyond), so both tanh(√q z) at q = 10⁶ and at q = 10⁻⁶ are integrated to near machine
/// precision with a few dozen panels.
fn scaled_expectation(g: &impl Fn(f64) -> f64, s: f64) -> f64 {
    let rule = gauss_legendre();
    let end = TAIL_SIGMAS * s;
    let inv_s = 1.0 / s;
    let mut a = 0.0_f64;
    let mut total = 0.0;
    while a < end {
        let width = s.min(1.0_f64.max(0.5 * a));
        let b = (a + width).min(end);
        let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
        let mut panel = 0.0;
        for &(t, w) in rule {
            let x = mid + half * t;
            let z = x * inv_s;
            panel += w * (g(x) + g(-x)) * (-0.5 * z * z).exp();
        }
        total += panel * half;
        a = b;
    }
    total * inv_s * FRAC_1_SQRT_2 * 0.5 * FRAC_2_SQRT_PI
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

    const ALL: [Activation; 5] = [
        Activation::Linear,
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Gelu,
    ];

    fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
        assert!(
            (actual - expected).abs() <= tol,
            "{what}: got {actual:e}, expected {expected:e} (tol {tol:e})"
        );
    }

    #[test]
    fn quadrature_matches_gaussian_moments() {
        assert_close(gaussian_expectation(|_| 1.0), 1.0, 1e-13, "E[1]");
        assert_close(gaussian_expectation(|z| z), 0.0, 1e-13, "E[z]");
        assert_close(gaussian_expectation(|z| z * z), 1.0, 1e-12, "E[z²]");
        assert_close(gaussian_expectation(|z| z.powi(4)), 3.0, 1e-12, "E[z⁴]");
        assert_close(gaussian_expectation(|z| z.powi(6)), 15.0, 1e-11, "E[z⁶]");
        let cos = gaussian_expectation(f64::cos);
        assert_close(cos, (-0.5_f64).exp(), 1e-13, "E[cos z]");
        let shifted = gaussian_expectation(|z| (0.5 * z).exp());
        assert_close(shifted, 0.125_f64.exp(), 1e-13, "E[e^{z/2}]");
    }

    #[test]
    fn quadrature_is_exact_across_relu_kink() {
        let relu = |z| phi(Activation::Relu, z);
        let mean = gaussian_expectation(relu);
        assert_close(mean, 1.0 / (2.0 * PI).sqrt(), 1e-13, "E[relu z]");
        let second = gaussian_expectation(|z| relu(z).powi(2));
        assert_close(second, 0.5, 1e-13, "E[relu² z]");
        let step = gaussian_expectation(|z| phi_prime(Activation::Relu, 1.7 * z).powi(2));
        assert_close(step, 0.5, 1e-13, "E[relu′²]");
    }

    #[test]
    fn scaled_quadrature_resolves_near_step_integrands() {
        // E[tanh²(s z)] → 1 − E[sech²(s z)] ≈ 1 − 2/(s√(2π)) for large s: a near-step integrand
        // that a plain Gauss–Hermite rule gets wrong in the fourth digit.
        let s = 1000.0_f64;
        let by_panels = scaled_expectation_q(&|x: f64| x.tanh().powi(2), s * s);
        let sech2 = scaled_expectation_q(&|x: f64| phi_prime(Activation::Tanh, x), s * s);
        assert_close(by_panels + sech2, 1.0, 1e-13, "tanh² + sech² = 1");
        assert_close(sech2 * s * (2.0 * PI).sqrt(), 2.0, 1e-5, "∫sech² = 2");
    }

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

    #[test]
    fn relu_matches_closed_forms() {
        for w in [0.5, 1.0, 1.5, 1.9] {
            for b in [0.0, 0.1, 0.3] {
                let mf = mean_field(Activation::Relu, w, b);
                assert_close(mf.chi1, w / 2.0, 1e-9, "relu χ1");
                assert_close(mf.q_star, b / (1.0 - w / 2.0), 1e-9, "relu q*");
            }
        }
        // The closed forms must agree with the generic quadrature they replace.
        for q in [0.3, 2.0, 50.0] {
            let second = scaled_expectation_q(&|x: f64| phi(Activation::Relu, x).powi(2), q);
            assert_close(second, q / 2.0, 1e-12 * q, "E[relu²(√q z)]");
        }
        let mf = mean_field(Activation::Relu, 2.5, 0.1);
        assert_eq!(mf.q_star, f64::INFINITY);
        assert_eq!(mf.chi1, 1.25);
    }

    #[test]
    fn linear_matches_closed_forms() {
        for w in [0.2, 0.5, 0.9] {
            let mf = mean_field(Activation::Linear, w, 0.2);
            assert_close(mf.q_star, 0.2 / (1.0 - w), 1e-12, "linear q*");
            assert_eq!(mf.chi1, w);
        }
        let mf = mean_field(Activation::Linear, 1.0, 0.1);
        assert_eq!(mf.q_star, f64::INFINITY);
        assert_eq!(mf.chi1, 1.0);
        assert_eq!(mf.depth_scale, f64::INFINITY);
        assert_eq!(mf.predicted_db_per_layer, 0.0);
        assert_eq!(mean_field(Activation::Linear, 1.0, 0.0).q_star, 1.0);
    }

    #[test]
    fn tanh_without_bias_collapses_to_zero_in_ordered_phase() {
        for w in [0.5, 0.9, 1.0] {
            let mf = mean_field(Activation::Tanh, w, 0.0);
            assert_eq!(mf.q_star, 0.0, "σ_w² = {w}");
            assert_close(mf.chi1, w, 1e-15, "tanh χ1 at q* = 0");
        }
    }

    #[test]
    fn tanh_without_bias_has_positive_fixed_point_in_chaotic_phase() {
        let mf = mean_field(Activation::Tanh, 2.0, 0.0);
        assert!(mf.q_star > 0.1, "q* = {}", mf.q_star);
        let image = variance_map(Activation::Tanh, 2.0, 0.0, mf.q_star);
        assert_close(image, mf.q_star, 1e-10, "V(q*) = q*");
        assert!(mf.chi1 > 1.0, "χ1 = {}", mf.chi1);
        // Just above σ_w² = 1 the fixed point is tiny: q* ≈ (σ_w² − 1)/(2σ_w²).
        let near = mean_field(Activation::Tanh, 1.0 + 1e-6, 0.0).q_star;
        assert_close(near / 5e-7, 1.0, 1e-5, "q* near σ_w² = 1");
    }

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

    #[test]
    fn sigmoid_never_collapses() {
        let mf = mean_field(Activation::Sigmoid, 1.0, 0.0);
        assert!(mf.q_star > 0.2, "q* = {}", mf.q_star);
    }

    #[test]
    fn gelu_reports_divergence_with_its_relu_like_limit() {
        let mf = mean_field(Activation::Gelu, 3.0, 0.1);
        assert_eq!(mf.q_star, f64::INFINITY);
        assert_eq!(mf.chi1, 1.5);
        assert_eq!(chi1_at(Activation::Tanh, 3.0, f64::INFINITY), 0.0);
    }

    #[test]
    fn chi1_at_zero_variance_is_slope_at_origin() {
        assert_eq!(chi1_at(Activation::Tanh, 1.7, 0.0), 1.7);
        assert_close(chi1_at(Activation::Gelu, 2.0, 0.0), 0.5, 1e-15, "gelu");
        assert!(chi1_at(Activation::Tanh, 1.0, -1.0).is_nan());
    }

    #[test]
    fn depth_scale_and_decibels_follow_chi1() {
        let mf = mean_field(Activation::Relu, 1.0, 0.0);
        assert_close(mf.depth_scale, 1.0 / 2.0_f64.ln(), 1e-12, "ξ");
        assert_close(mf.predicted_db_per_layer, -3.010299956639812, 1e-12, "dB");
        let mf = mean_field(Activation::Relu, 4.0, 0.0);
        assert_close(mf.depth_scale, 1.0 / 2.0_f64.ln(), 1e-12, "growth ξ");
        assert_close(mf.predicted_db_per_layer, 3.010299956639812, 1e-12, "dB");
        assert_eq!(
            mean_field(Activation::Relu, 2.0, 0.5).depth_scale,
            f64::INFINITY
        );
    }

    #[test]
    fn critical_weight_variance() {
        let tanh = critical_weight_var(Activation::Tanh, 0.0);
        assert_close(tanh, 1.0, 1e-6, "tanh σ_b² = 0");
        assert_eq!(critical_weight_var(Activation::Relu, 0.0), 2.0);
        assert_eq!(critical_weight_var(Activation::Relu, 0.3), 2.0);
        assert_eq!(critical_weight_var(Activation::Linear, 0.3), 1.0);
        let w = critical_weight_var(Activation::Tanh, 0.05);
        assert_close(w, 1.76, 0.05, "tanh σ_b² = 0.05 (Schoenholz et al.)");
        let chi = chi1_at(Activation::Tanh, w, fixed_point(Activation::Tanh, w, 0.05));
        assert_close(chi, 1.0, 1e-6, "χ1 at the critical point");
        // The field in MeanField is the same number (and the memoised path agrees).
        let mf = mean_field(Activation::Tanh, 1.0, 0.05);
        assert_eq!(mf.critical_weight_var, w);
        assert!(critical_weight_var(Activation::Tanh, -1.0).is_nan());
        // Without bias GELU's q* jumps from 0 (χ1 = σ_w²/4) to ∞ (χ1 = σ_w²/2): no χ1 = 1.
        assert!(critical_weight_var(Activation::Gelu, 0.0).is_nan());
        // Sigmoid's slope never exceeds 1/4, so χ1 stays below 1 up to σ_w² = 100.
        assert!(critical_weight_var(Activation::Sigmoid, 0.0).is_nan());
    }

    #[test]
    fn invalid_variances_give_nan() {
        let mf = mean_field(Activation::Tanh, -1.0, 0.0);
        assert!(mf.q_star.is_nan() && mf.chi1.is_nan());
        assert!(mean_field(Activation::Gelu, 1.0, f64::NAN).q_star.is_nan());
    }

    #[test]
    fn binomial_log10_matches_exact_values() {
        assert_close(binomial_log10(10, 3), 120.0_f64.log10(), 1e-14, "C(10,3)");
        let c54 = 1_946_939_425_648_112.0_f64.log10();
        assert_close(binomial_log10(54, 27), c54, 1e-13, "C(54,27)");
        assert_eq!(binomial_log10(7, 0), 0.0);
        assert_eq!(binomial_log10(7, 7), 0.0);
        assert_eq!(binomial_log10(0, 0), 0.0);
        assert_eq!(binomial_log10(3, 4), f64::NEG_INFINITY);
        let big = binomial_log10(100_000, 50_000);
        assert_close(big, 30_100.401_505_373_87, 1e-8, "C(100000,50000)");
        for k in [1, 17, 123, 49_999] {
            let (a, b) = (
                binomial_log10(100_000, k),
                binomial_log10(100_000, 100_000 - k),
            );
            assert_close(a, b, 0.0, "symmetry");
        }
    }
}
