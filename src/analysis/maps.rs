//! Mean-field maps of the hidden stack (Poole et al. 2016; Schoenholz et al. 2017; for
//! residual blocks Yang & Schoenholz 2017): the length map carrying an input's pre-activation
//! second moment q_l from layer to layer, the covariance map carrying a pair's, and the
//! correlation depth scale ξ_c.
//!
//! With z_l = h_{l−1}W_l + b_l and W_l ~ N(0, σ_w,l²/N): q_l = σ_w,l²·m_{l−1} + σ_b,l², where
//! m_l = (1/N)|h_l|² is E[φ(√q_l z)²] for a plain block and E[φ(√q_l z)²] + s²·m_{l−1} for a
//! residual block h_l = φ(z_l) + s·h_{l−1} (the cross term E[φ(z_l)h_{l−1}] vanishes because
//! W_l is independent of h_{l−1}). A pair follows the same maps with E[φ(u₁)φ(u₂)] for the
//! cross moment. Highway blocks mix in gates whose statistics no closed map describes, so
//! they get no prediction.

use super::stack::BlockKind;
use crate::config::Activation;
use crate::theory::{
    chi1_at, gaussian_expectation, gentle_gaussian_expectation, mean_field, phi, phi_prime,
    smooth_gaussian_expectation,
};
use std::f64::consts::PI;

/// One hidden layer's current σ_w² and σ_b².
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerVars {
    /// Fan-in × mean squared weight.
    pub weight_var: f64,
    /// Mean squared bias.
    pub bias_var: f64,
}

/// The skip coefficient s of a block kind the maps describe; None for highway.
fn skip_scale(kind: BlockKind) -> Option<f64> {
    match kind {
        BlockKind::Plain => Some(0.0),
        BlockKind::Residual(scale) => Some(scale),
        BlockKind::Highway => None,
    }
}

/// E[φ(√q z)²] for z ~ N(0, 1).
pub fn second_moment(act: Activation, q: f64) -> f64 {
    match act {
        Activation::Linear => q,
        Activation::Relu => q / 2.0,
        _ if q <= 0.0 => phi(act, 0.0).powi(2),
        _ => {
            let s = q.sqrt();
            gaussian_expectation(|z| phi(act, s * z).powi(2))
        }
    }
}

/// E[g(u₁)·g(u₂)] for (u₁, u₂) centred Gaussian with variances q1, q2 and covariance q12,
/// written as E_{z₁}[g(√q1 z₁)·E_{z₂}[g(a z₁ + b z₂)]] with a = q12/√q1, b² = q2 − a².
fn bivariate(g: impl Fn(f64) -> f64 + Copy, q1: f64, q2: f64, q12: f64) -> f64 {
    let rule = if q1.max(q2) <= GENTLE_Q {
        gentle_rule
    } else {
        smooth_rule
    };
    bivariate_with(rule, g, q1, q2, q12)
}

/// Largest pre-activation variance at which the 8-point rule holds the bivariate moments to
/// 1e-6 (tested): up to here the activations vary on the scale of a standard deviation; above
/// it they approach a step, which needs the 16-point panels.
const GENTLE_Q: f64 = 6.0;

/// The 8-point coarse rule (a quarter of the evaluations of the 16-point one when nested).
fn gentle_rule(f: &dyn Fn(f64) -> f64) -> f64 {
    gentle_gaussian_expectation(f)
}

/// The coarse rule for smooth integrands (the bivariate moments' activations are smooth:
/// ReLU and linear have closed forms).
fn smooth_rule(f: &dyn Fn(f64) -> f64) -> f64 {
    smooth_gaussian_expectation(f)
}

/// `bivariate` with the one-dimensional rule `expect` for both integrals.
fn bivariate_with(
    expect: fn(&dyn Fn(f64) -> f64) -> f64,
    g: impl Fn(f64) -> f64 + Copy,
    q1: f64,
    q2: f64,
    q12: f64,
) -> f64 {
    let gaussian_expectation = |f: &dyn Fn(f64) -> f64| expect(f);
    if q1 <= 0.0 {
        return g(0.0) * gaussian_expectation(&|z| g(q2.max(0.0).sqrt() * z));
    }
    let s1 = q1.sqrt();
    let a = q12 / s1;
    let b = (q2 - a * a).max(0.0).sqrt();
    if b == 0.0 {
        return gaussian_expectation(&|z| g(s1 * z) * g(a * z));
    }
    gaussian_expectation(&|z1| {
        let outer = g(s1 * z1);
        if outer == 0.0 {
            return 0.0;
        }
        outer * gaussian_expectation(&|z2| g(a * z1 + b * z2))
    })
}

/// The angle θ with cos θ = q12/√(q1 q2), clamped to [0, π].
fn angle(q1: f64, q2: f64, q12: f64) -> f64 {
    (q12 / (q1 * q2).sqrt()).clamp(-1.0, 1.0).acos()
}

/// E[φ(u₁)φ(u₂)] for the bivariate Gaussian (q1, q2, q12); ReLU and linear in closed form
/// (ReLU: the arc-cosine kernel of Cho & Saul 2009).
pub fn cross_moment(act: Activation, q1: f64, q2: f64, q12: f64) -> f64 {
    match act {
        Activation::Linear => q12,
        Activation::Relu if q1 > 0.0 && q2 > 0.0 => {
            let theta = angle(q1, q2, q12);
            (q1 * q2).sqrt() / (2.0 * PI) * (theta.sin() + (PI - theta) * theta.cos())
        }
        Activation::Relu => 0.0,
        _ => bivariate(|x| phi(act, x), q1, q2, q12),
    }
}

/// E[φ′(u₁)φ′(u₂)] for the bivariate Gaussian (q, q, c·q); ReLU: (π − θ)/(2π).
pub fn slope_cross_moment(act: Activation, q: f64, c: f64) -> f64 {
    match act {
        Activation::Linear => 1.0,
        Activation::Relu => (PI - c.clamp(-1.0, 1.0).acos()) / (2.0 * PI),
        _ => bivariate(|x| phi_prime(act, x), q, q, c * q),
    }
}

/// Predicted pre-activation second moments q_1..q_L of one input whose input projection
/// output has second moment `m0`; None for highway stacks.
pub fn length_map(
    act: Activation,
    kind: BlockKind,
    vars: &[LayerVars],
    m0: f64,
) -> Option<Vec<f64>> {
    let s = skip_scale(kind)?;
    let mut m = m0;
    let mut out = Vec::with_capacity(vars.len());
    for v in vars {
        let q = v.weight_var * m + v.bias_var;
        m = second_moment(act, q) + s * s * m;
        out.push(q);
    }
    Some(out)
}

/// Predicted pre-activation correlations c_1..c_L of a pair of inputs whose input projection
/// outputs have second moments `m11`, `m22` and cross moment `m12`; None for highway stacks.
pub fn correlation_map(
    act: Activation,
    kind: BlockKind,
    vars: &[LayerVars],
    (m11, m22, m12): (f64, f64, f64),
) -> Option<Vec<f64>> {
    let s = skip_scale(kind)?;
    let (mut a, mut b, mut ab) = (m11, m22, m12);
    let mut out = Vec::with_capacity(vars.len());
    for v in vars {
        let q1 = v.weight_var * a + v.bias_var;
        let q2 = v.weight_var * b + v.bias_var;
        let q12 = v.weight_var * ab + v.bias_var;
        out.push(q12 / (q1 * q2).sqrt());
        a = second_moment(act, q1) + s * s * a;
        b = second_moment(act, q2) + s * s * b;
        ab = cross_moment(act, q1, q2, q12) + s * s * ab;
    }
    Some(out)
}

/// Mean-field E[(1/N)·tr(J Jᵀ)] of one block, J = ∂h_l/∂h_{l−1}, at pre-activation second
/// moment q: χ₁(q) = σ_w² E[φ′(√q z)²] for a plain block, χ₁(q) + s² for a residual one
/// (the cross terms vanish in expectation over W).
pub fn block_gain(act: Activation, kind: BlockKind, vars: LayerVars, q: f64) -> Option<f64> {
    let s = skip_scale(kind)?;
    Some(chi1_at(act, vars.weight_var, q) + s * s)
}

/// Root of `gap` in [0, 1) with gap(0) ≥ 0 > gap just below 1, by the Illinois variant of
/// false position (each bivariate expectation costs ~10⁵ evaluations of φ, so the fewer the
/// better; iterating the map itself converges only like χ_c^n, slowly near criticality).
fn root_below_one(gap: impl Fn(f64) -> f64) -> f64 {
    let (mut a, mut fa) = (0.0, gap(0.0));
    if fa <= 0.0 {
        return 0.0;
    }
    // The unstable fixed point c = 1 is excluded by starting a little below it.
    let (mut b, mut fb) = (1.0 - 1e-6, gap(1.0 - 1e-6));
    if fb >= 0.0 {
        return b;
    }
    let mut side = 0;
    for _ in 0..100 {
        let c = (a * fb - b * fa) / (fb - fa);
        let fc = gap(c);
        if fc == 0.0 || (b - a).abs() < 1e-12 {
            return c;
        }
        if (fc > 0.0) == (fa > 0.0) {
            (a, fa) = (c, fc);
            if side == -1 {
                fb /= 2.0;
            }
            side = -1;
        } else {
            (b, fb) = (c, fc);
            if side == 1 {
                fa /= 2.0;
            }
            side = 1;
        }
        if (b - a).abs() < 1e-12 {
            break;
        }
    }
    0.5 * (a + b)
}

/// The correlation depth scale ξ_c = −1/ln χ_c of a plain stack with σ_w², σ_b² at every
/// layer (Schoenholz et al. 2017), χ_c = σ_w² E[φ′(u₁)φ′(u₂)] at the fixed point (q*, c*):
/// the number of layers over which the correlation of two inputs approaches c*. Infinite at
/// criticality (χ_c = 1); NaN when q* is not finite.
pub fn correlation_depth(act: Activation, weight_var: f64, bias_var: f64) -> f64 {
    let mf = mean_field(act, weight_var, bias_var);
    let q = mf.q_star;
    if !q.is_finite() || !mf.chi1.is_finite() {
        return f64::NAN;
    }
    let chi_c = if mf.chi1 <= 1.0 || q == 0.0 {
        // Ordered phase: c* = 1, where χ_c is χ₁.
        mf.chi1
    } else {
        // Chaotic phase: c = 1 is unstable and the stable c* < 1 is the root of C(c) − c,
        // positive at c = 0 (C(0) = σ_b²/q* ≥ 0) and negative just below 1 (slope χ₁ > 1).
        let gap = |c: f64| (weight_var * cross_moment(act, q, q, c * q) + bias_var) / q - c;
        let c = root_below_one(gap);
        weight_var * slope_cross_moment(act, q, c)
    };
    if chi_c == 1.0 {
        f64::INFINITY
    } else {
        -1.0 / chi_c.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64, what: &str) {
        assert!((got - want).abs() <= tol, "{what}: {got} vs {want}");
    }

    /// The fine rule (1e-13) for both integrals, the reference of the coarse one.
    fn fine_rule(f: &dyn Fn(f64) -> f64) -> f64 {
        gaussian_expectation(f)
    }

    /// The coarse and fine rules agree on E[g(u₁)g(u₂)] at (q, 1.3q, correlation c).
    fn check(g: impl Fn(f64) -> f64 + Copy, act: Activation, name: &str, q: f64, c: f64) {
        let q12 = c * q * 1.3f64.sqrt();
        let coarse = bivariate(g, q, 1.3 * q, q12);
        let fine = bivariate_with(fine_rule, g, q, 1.3 * q, q12);
        let scale = fine.abs().max(q.min(1.0));
        assert!(
            (coarse - fine).abs() <= 1e-6 * scale,
            "{act:?} {name} q {q} c {c}: {coarse} vs {fine}"
        );
    }

    #[test]
    fn the_coarse_bivariate_rule_matches_the_fine_one() {
        for act in [Activation::Tanh, Activation::Sigmoid, Activation::Gelu] {
            // Both rules: the 8-point one up to GENTLE_Q (6 / 1.3 makes q2 = 6 exactly), the
            // 16-point one above.
            for q in [1e-10, 1e-3, 0.3, 1.0, 4.0, GENTLE_Q / 1.3, 5.0, 30.0, 1e3] {
                for c in [-0.9, 0.0, 0.5, 0.99, 1.0] {
                    let value = move |x| phi(act, x);
                    let slope = move |x| phi_prime(act, x);
                    check(value, act, "φ", q, c);
                    check(slope, act, "φ′", q, c);
                }
            }
        }
    }

    #[test]
    fn relu_closed_form_matches_quadrature() {
        // The arc-cosine kernel against the generic bivariate quadrature (smooth enough here:
        // the kink integrates with small error at these nodes).
        for (q1, q2, c) in [(1.0_f64, 1.0_f64, 0.3), (0.5, 2.0, -0.4), (1.5, 0.7, 0.9)] {
            let q12 = c * (q1 * q2).sqrt();
            let closed = cross_moment(Activation::Relu, q1, q2, q12);
            // The 16-point panels: a kink is not what the 8-point rule is for (ReLU never
            // reaches the quadrature outside this check).
            let generic = bivariate_with(smooth_rule, |x: f64| x.max(0.0), q1, q2, q12);
            close(closed, generic, 1e-6, "relu kernel");
        }
        // c = 1 is E[relu²] = q/2; c = 0 is (E relu)² = q/(2π).
        close(
            cross_moment(Activation::Relu, 2.0, 2.0, 2.0),
            1.0,
            1e-12,
            "c = 1",
        );
        close(
            cross_moment(Activation::Relu, 2.0, 2.0, 0.0),
            1.0 / PI,
            1e-12,
            "c = 0",
        );
    }

    #[test]
    fn cross_moment_of_identical_inputs_is_the_second_moment() {
        for act in [Activation::Tanh, Activation::Sigmoid, Activation::Gelu] {
            for q in [0.05, 1.0, 7.0] {
                let cross = cross_moment(act, q, q, q);
                close(cross, second_moment(act, q), 1e-10, "c = 1");
            }
        }
        // Independent inputs of an odd φ: E[tanh u₁]·E[tanh u₂] = 0.
        close(
            cross_moment(Activation::Tanh, 1.0, 2.0, 0.0),
            0.0,
            1e-14,
            "tanh c = 0",
        );
    }

    #[test]
    fn tanh_cross_moment_matches_its_small_variance_expansion() {
        // tanh u = u − u³/3 + …: E[tanh u₁ tanh u₂] = q12 − q12(q1 + q2) + O(q³) by Isserlis.
        let (q1, q2, q12) = (1e-3, 2e-3, 0.5e-3);
        let want = q12 - q12 * (q1 + q2);
        close(
            cross_moment(Activation::Tanh, q1, q2, q12),
            want,
            1e-8,
            "expansion",
        );
    }

    #[test]
    fn correlation_depth_follows_chi1_in_the_ordered_phase() {
        let mf = mean_field(Activation::Tanh, 0.5, 0.05);
        let xi = correlation_depth(Activation::Tanh, 0.5, 0.05);
        close(xi, -1.0 / mf.chi1.ln(), 1e-12, "ordered ξ_c");
        // Chaotic tanh (σ_w² = 4, σ_b² = 0.05): c* < 1 is a fixed point of the correlation map,
        // and χ_c = σ_w² E[φ′φ′] is the map's slope there (Price's theorem), checked against
        // a central difference of the map itself.
        let (w, b) = (4.0, 0.05);
        let q = mean_field(Activation::Tanh, w, b).q_star;
        let map = |c: f64| (w * cross_moment(Activation::Tanh, q, q, c * q) + b) / q;
        let c_star = root_below_one(|c| map(c) - c);
        assert!(c_star > 0.0 && c_star < 0.99, "c* = {c_star}");
        close(map(c_star), c_star, 1e-10, "C(c*) = c*");
        let h = 1e-4;
        let slope = (map(c_star + h) - map(c_star - h)) / (2.0 * h);
        let chi_c = w * slope_cross_moment(Activation::Tanh, q, c_star);
        close(chi_c, slope, 1e-6, "χ_c = C′(c*)");
        let xi = correlation_depth(Activation::Tanh, w, b);
        close(xi, -1.0 / chi_c.ln(), 1e-9, "chaotic ξ_c");
        assert!(xi > 0.5 && xi < 20.0, "ξ_c = {xi}");
        // ξ_c grows without bound at the critical point.
        let w = mean_field(Activation::Tanh, 1.0, 0.05).critical_weight_var;
        assert!(correlation_depth(Activation::Tanh, w, 0.05) > 1e4);
    }

    #[test]
    fn maps_reduce_to_the_theory_fixed_point() {
        // Iterated long enough, the length map reaches q* for every layer having the same
        // variances.
        let vars = vec![
            LayerVars {
                weight_var: 1.5,
                bias_var: 0.05
            };
            200
        ];
        let q = length_map(Activation::Tanh, BlockKind::Plain, &vars, 1.0).unwrap();
        let q_star = mean_field(Activation::Tanh, 1.5, 0.05).q_star;
        close(*q.last().unwrap(), q_star, 1e-9, "q_L → q*");
        assert!(length_map(Activation::Tanh, BlockKind::Highway, &vars, 1.0).is_none());
        // The correlation map of a pair with equal norms starts at its cosine.
        let c = correlation_map(
            Activation::Tanh,
            BlockKind::Plain,
            &vars[..3],
            (1.0, 1.0, 0.2),
        )
        .unwrap();
        close(c[0], (1.5 * 0.2 + 0.05) / (1.5 + 0.05), 1e-15, "c_1");
    }
}
