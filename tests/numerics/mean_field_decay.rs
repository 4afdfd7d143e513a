//! The measured per-layer gradient decay of wide plain nets at initialisation against the
//! mean-field χ₁ (Schoenholz et al. 2017), in the ordered phase, the chaotic phase and at the
//! critical point.

use crate::common::{Batch, params_for};
use gradlab::config::{
    Activation, AuxSpec, InitSpec, ModelKind, ModelSpec, SkipMode, WeightDistribution,
};
use gradlab::metrics::l2_norm;
use gradlab::model::{Switches, backprop};
use gradlab::theory::mean_field;

const WIDTH: usize = 128;
const DEPTH: usize = 24;
const BATCH: usize = 256;
/// Layers left out at each end of the fit: the variance needs a few layers to reach q*, and
/// the last layer's gradient comes straight from the head.
const EDGE: usize = 4;
const SEEDS: u64 = 3;

/// Geometric mean over seeds of (‖∂L/∂h_a‖ / ‖∂L/∂h_b‖)^(2/(b−a)) over the middle layers.
fn measured_chi1(act: Activation, weight_var: f32, bias_var: f32) -> f64 {
    let spec = ModelSpec {
        kind: ModelKind::Mlp,
        depth: DEPTH,
        width: WIDTH,
        activation: act,
        init: InitSpec {
            weight_var,
            bias_var,
            distribution: WeightDistribution::Gaussian,
        },
        skip: SkipMode::Plain,
        aux: AuxSpec {
            enabled: false,
            every: 8,
            weight: 0.3,
        },
        cell: Default::default(),
        gate_bias: -1.0,
        forget_bias: 1.0,
        carry_bias: Default::default(),
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    };
    let switches = Switches {
        skip: SkipMode::Plain,
        aux_enabled: false,
        aux_weight: 0.0,
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    };
    let dev = dfdx::prelude::Cpu::default();
    let mut log_chi1 = 0.0;
    for seed in 0..SEEDS {
        let mut params = params_for(&spec, 16, 4, -1.0, 100 + seed);
        let batch = Batch::random(BATCH, 16, 4, true, 200 + seed);
        let (x, targets) = batch.tensors(&dev);
        let result = backprop(&mut params, act, &switches, x, &targets);
        let norms: Vec<f64> = result.hidden_grads.iter().map(|g| l2_norm(g)).collect();
        let (a, b) = (EDGE, DEPTH - 1 - EDGE);
        log_chi1 += 2.0 * (norms[a] / norms[b]).ln() / (b - a) as f64;
    }
    (log_chi1 / SEEDS as f64).exp()
}

fn check_phase(act: Activation, weight_var: f32, bias_var: f32) -> (f64, f64) {
    let theory = mean_field(act, f64::from(weight_var), f64::from(bias_var));
    let measured = measured_chi1(act, weight_var, bias_var);
    println!(
        "{act:?} σ_w²={weight_var} σ_b²={bias_var}: q* {:.4}, χ₁ theory {:.4}, measured {:.4} \
         ({:+.1} %), {:.3} dB/layer predicted, {:.3} measured",
        theory.q_star,
        theory.chi1,
        measured,
        100.0 * (measured / theory.chi1 - 1.0),
        theory.predicted_db_per_layer,
        10.0 * measured.log10()
    );
    (theory.chi1, measured)
}

#[test]
fn ordered_phase_decay_matches_chi1() {
    let (theory, measured) = check_phase(Activation::Tanh, 0.5, 0.0);
    assert!(
        (theory - 0.5).abs() < 1e-9,
        "tanh, σ_b = 0, σ_w² < 1 gives χ₁ = σ_w²"
    );
    assert!((measured / theory - 1.0).abs() < 0.1);
}

#[test]
fn chaotic_phase_growth_matches_chi1() {
    for (weight_var, bias_var) in [(2.0, 0.0), (4.0, 0.0), (2.0, 0.05)] {
        let (theory, measured) = check_phase(Activation::Tanh, weight_var, bias_var);
        assert!(theory > 1.0, "σ_w² = {weight_var} is chaotic");
        assert!(
            (measured / theory - 1.0).abs() < 0.1,
            "σ_w² {weight_var}: {measured} vs {theory}"
        );
    }
}

#[test]
fn critical_relu_keeps_gradients_flat() {
    let (theory, measured) = check_phase(Activation::Relu, 2.0, 0.0);
    assert!((theory - 1.0).abs() < 1e-12, "ReLU: χ₁ = σ_w²/2");
    let db_per_layer = 10.0 * measured.log10();
    assert!(db_per_layer.abs() < 0.3, "{db_per_layer} dB/layer");
}
