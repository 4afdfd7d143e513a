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

mod activation;
mod arch;
mod fixed_point;
mod moments;
mod quadrature;

pub use activation::{phi, phi_prime};
pub use arch::{
    ArchPrediction, GateMoments, GateVariances, INPUT_BINS, LayerVariances, NetArch, NetVariances,
    RNN_ROWS, gate_moments, input_bins, mean_spread, mean_sq, predict, round4, weight_var,
};
pub use moments::{Moments, moments, moments_exact};
pub use quadrature::{
    gaussian_expectation, gentle_gaussian_expectation, smooth_gaussian_expectation,
};

use crate::config::Activation;
use fixed_point::{fixed_point, solve_critical};
use quadrature::scaled_expectation_q;
use std::sync::Mutex;

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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const ALL: [Activation; 5] = [
        Activation::Linear,
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Gelu,
    ];

    pub(super) fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
        assert!(
            (actual - expected).abs() <= tol,
            "{what}: got {actual:e}, expected {expected:e} (tol {tol:e})"
        );
    }
    use fixed_point::variance_map;

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
        // GELU at σ_b² = 0.3: χ1 first reaches 1 at σ_w² ≈ 1.956 (finite q*); it touches 1
        // again at 2.0, where q* runs off to ∞ and χ1 → σ_w²/2. The lowest crossing counts.
        let gelu = critical_weight_var(Activation::Gelu, 0.3);
        assert_close(gelu, 1.956, 1e-3, "GELU σ_b² = 0.3");
        let q = fixed_point(Activation::Gelu, gelu, 0.3);
        assert!(q.is_finite(), "q* at GELU's critical point is {q}");
        assert_close(chi1_at(Activation::Gelu, gelu, q), 1.0, 1e-6, "χ1 there");
        for w in [1.90, 1.93, 1.95] {
            let below = chi1_at(Activation::Gelu, w, fixed_point(Activation::Gelu, w, 0.3));
            assert!(below < 1.0, "χ1({w}) = {below} below the critical point");
        }
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
