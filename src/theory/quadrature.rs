//! Gaussian expectations E[g(√q z)] by composite Gauss–Legendre panels.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};
use std::sync::OnceLock;

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

/// Nodes per Gauss–Legendre panel.
const GL_POINTS: usize = 16;

/// Half-width of the integration range in standard deviations; the Gaussian beyond is < 1e-37.
const TAIL_SIGMAS: f64 = 13.0;

/// Gauss–Legendre nodes and weights on [−1, 1], computed once by Newton's method on P_n.
pub(super) fn gauss_legendre() -> &'static [(f64, f64)] {
    static RULE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    RULE.get_or_init(|| legendre_rule(GL_POINTS))
}

/// The 8-point Gauss–Legendre rule of [`gentle_gaussian_expectation`].
fn gauss_legendre_8() -> &'static [(f64, f64)] {
    static RULE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    RULE.get_or_init(|| legendre_rule(8))
}

/// The n-point Gauss–Legendre rule on [−1, 1] (n even), by Newton's method on P_n.
fn legendre_rule(n: usize) -> Vec<(f64, f64)> {
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
    let mut rule = vec![(0.0, 0.0); n];
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
}

/// E[g(√q z)] for z ~ N(0, 1) and finite q ≥ 0.
pub(super) fn scaled_expectation_q(g: &impl Fn(f64) -> f64, q: f64) -> f64 {
    if q == 0.0 {
        g(0.0)
    } else {
        scaled_expectation(g, q.sqrt())
    }
}

/// E_{z~N(0,1)}[f(z)] for smooth f with ~19× fewer evaluations than [`gaussian_expectation`]:
/// panels up to 3σ wide (still at most max(1, x/2) in x) out to 8σ, where the Gaussian weighs
/// under 1e-15. For the inner and outer integrals of bivariate moments, which nest and so pay
/// the square of the count; checked against the fine rule to 1e-6 in `maps`' tests (the panels print three digits).
pub fn smooth_gaussian_expectation(f: impl Fn(f64) -> f64) -> f64 {
    panel_expectation(&f, gauss_legendre(), 1.0, 8.0, 3.0)
}

/// [`smooth_gaussian_expectation`] with 8 nodes per panel instead of 16, for integrands that
/// vary on a scale of a standard deviation or more (an activation of a pre-activation whose
/// variance is a few units at most); a quarter of the evaluations when nested. Checked against
/// the fine rule in `maps`' tests where it is used.
pub fn gentle_gaussian_expectation(f: impl Fn(f64) -> f64) -> f64 {
    panel_expectation(&f, gauss_legendre_8(), 1.0, 8.0, 3.0)
}

/// E[g(s z)] for z ~ N(0, 1) and s > 0, integrated over x = s z.
///
/// Panels are at most s wide (to resolve the Gaussian) and at most max(1, x/2) wide (to
/// resolve activations, whose features sit within a few units of 0 and decay exponentially
/// beyond), so both tanh(√q z) at q = 10⁶ and at q = 10⁻⁶ are integrated to near machine
/// precision with a few dozen panels.
fn scaled_expectation(g: &impl Fn(f64) -> f64, s: f64) -> f64 {
    panel_expectation(g, gauss_legendre(), s, TAIL_SIGMAS, 1.0)
}

/// E[g(s z)] by Gauss–Legendre panels (`rule`) out to `tail` σ, each at most `panel` σ and
/// max(1, x/2) wide.
fn panel_expectation(
    g: &impl Fn(f64) -> f64,
    rule: &[(f64, f64)],
    s: f64,
    tail: f64,
    panel: f64,
) -> f64 {
    let end = tail * s;
    let inv_s = 1.0 / s;
    let mut a = 0.0_f64;
    let mut total = 0.0;
    while a < end {
        let width = (panel * s).min(1.0_f64.max(0.5 * a));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use crate::theory::tests::assert_close;
    use crate::theory::{phi, phi_prime};

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
}
