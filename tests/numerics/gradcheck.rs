//! Finite-difference checks of every gradient the lab shows: ∂L/∂W for every parameter and
//! ∂L/∂h_l for every hidden layer, for every skip mode, with and without auxiliary losses,
//! for every activation. The oracle is an independent f64 implementation (tests/common).

use crate::common::{Batch, Reference, params_for, small_model};
use gradlab::config::{Activation, SkipMode};
use gradlab::model::{Switches, backprop};

const SKIPS: [SkipMode; 5] = [
    SkipMode::Plain,
    SkipMode::Residual { scale: 1.0 },
    SkipMode::Residual { scale: 0.5 },
    SkipMode::Highway,
    SkipMode::Dense,
];

/// Central difference in f64 with step `eps`.
fn central(f: impl Fn(f64) -> f64, eps: f64) -> f64 {
    (f(eps) - f(-eps)) / (2.0 * eps)
}

/// Asserts that dfdx's f32 gradient matches the f64 finite difference, entry by entry.
fn assert_close(what: &str, analytic: &[f32], numeric: &[f64]) {
    let scale = numeric.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let err = (f64::from(a) - n).abs();
        let tol = 2e-3 * n.abs() + 1e-4 * scale + 1e-7;
        assert!(
            err <= tol,
            "{what}[{i}]: backprop {a:e} vs finite difference {n:e} (|err| {err:e} > {tol:e})"
        );
    }
}

fn check(act: Activation, skip: SkipMode, aux: bool, classification: bool) {
    let (dims, outputs, rows) = (3, 3, 5);
    let model = small_model(5, 8, act, skip, 2);
    let mut params = params_for(&model, dims, outputs, -1.0, 12);
    let batch = Batch::random(rows, dims, outputs, classification, 5);
    let switches = Switches {
        skip,
        aux_enabled: aux,
        aux_weight: 0.3,
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    };
    let reference = Reference::new(&mut params, &model, dims, outputs);
    let dev = dfdx::prelude::Cpu::default();
    let (x, targets) = batch.tensors(&dev);
    let result = backprop(&mut params, act, &switches, x, &targets);
    let label = format!("{act:?}/{}/aux={aux}", skip.label());

    let loss = reference.loss(&batch, &switches, None);
    assert!(
        (f64::from(result.loss) - loss).abs() <= 1e-5 * loss.abs().max(1.0),
        "{label}: loss {} vs reference {loss}",
        result.loss
    );

    let eps = 1e-6;
    for (p, analytic) in result.param_grads.iter().enumerate() {
        let numeric: Vec<f64> = (0..analytic.len())
            .map(|i| {
                central(
                    |d| {
                        let mut nudged = Reference {
                            values: reference.values.clone(),
                            ..reference_clone(&reference)
                        };
                        nudged.values[p][i] += d;
                        nudged.loss(&batch, &switches, None)
                    },
                    eps,
                )
            })
            .collect();
        assert_close(&format!("{label} param {p}"), analytic, &numeric);
    }
    for (l, analytic) in result.hidden_grads.iter().enumerate() {
        let numeric: Vec<f64> = (0..analytic.len())
            .map(|i| central(|d| reference.loss(&batch, &switches, Some((l, i, d))), eps))
            .collect();
        assert_close(&format!("{label} ∂L/∂h_{l}"), analytic, &numeric);
        assert!(
            numeric.iter().any(|v| v.abs() > 1e-9),
            "{label}: ∂L/∂h_{l} is all zero, the check would be vacuous"
        );
    }
}

fn reference_clone(r: &Reference) -> Reference {
    Reference {
        values: Vec::new(),
        dims: r.dims,
        width: r.width,
        outputs: r.outputs,
        depth: r.depth,
        act: r.act,
        aux_layers: r.aux_layers.clone(),
    }
}

macro_rules! activation_tests {
    ($($name:ident: $act:expr,)*) => {$(
        #[test]
        fn $name() {
            for skip in SKIPS {
                for aux in [false, true] {
                    check($act, skip, aux, true);
                }
            }
        }
    )*};
}

activation_tests! {
    gradients_match_finite_differences_linear: Activation::Linear,
    gradients_match_finite_differences_tanh: Activation::Tanh,
    gradients_match_finite_differences_relu: Activation::Relu,
    gradients_match_finite_differences_sigmoid: Activation::Sigmoid,
    gradients_match_finite_differences_gelu: Activation::Gelu,
}

#[test]
fn regression_loss_gradients_match_finite_differences() {
    for skip in SKIPS {
        check(Activation::Tanh, skip, true, false);
    }
}
