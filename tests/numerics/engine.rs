//! The preallocated engine (`model::engine`) against dfdx's tape (`model::backprop`), against
//! finite differences, against itself with the rescaled backward, and against mean-field theory
//! far below f32's range.

use crate::common::{Batch, RefTargets, params_for, small_model};
use dfdx::prelude::*;
use gradlab::config::{Activation, SkipMode};
use gradlab::model::engine::{Net, Workspace};
use gradlab::model::loss::Targets;
use gradlab::model::scaled::norm_db;
use gradlab::model::{Lesion, MlpParams, Switches, aux_head_layers, backprop, forward_with};

/// Every skip mode, with a residual shortcut scaled by ½ too.
pub(crate) const SKIPS: [SkipMode; 5] = [
    SkipMode::Plain,
    SkipMode::Residual { scale: 1.0 },
    SkipMode::Residual { scale: 0.5 },
    SkipMode::Highway,
    SkipMode::Dense,
];

pub(crate) fn net_for(
    depth: usize,
    width: usize,
    act: Activation,
    switches: &Switches,
    every: usize,
    dims: usize,
    outputs: usize,
) -> Net {
    Net {
        act,
        skip: switches.skip,
        aux_enabled: switches.aux_enabled,
        aux_weight: switches.aux_weight,
        aux_layers: aux_head_layers(depth, every),
        input: dims,
        width,
        outputs,
        depth,
        norm: switches.norm,
        norm_place: switches.norm_place,
        branch_scale: switches.branch_scale,
    }
}

pub(crate) fn targets(batch: &Batch, values: &mut Vec<f32>) -> Targets<'static> {
    // The batch outlives every use in these tests; leak the small copies to keep the helper simple.
    match &batch.targets {
        RefTargets::Labels(labels) => Targets::Labels(Box::leak(labels.clone().into_boxed_slice())),
        RefTargets::Values(v) => {
            *values = v.iter().map(|&a| a as f32).collect();
            Targets::Values(Box::leak(values.clone().into_boxed_slice()))
        }
    }
}

/// Engine loss and gradients, with inactive parameters' gradients zeroed as dfdx reports them.
pub(crate) fn engine_grads(
    params: &mut MlpParams,
    net: &Net,
    batch: &Batch,
) -> (f32, Vec<Vec<f32>>, Workspace) {
    let values = params.values();
    let mut grads: Vec<Vec<f32>> = values.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut work = Workspace::default();
    let mut scratch = Vec::new();
    let t = targets(batch, &mut scratch);
    work.forward(net, &values, &batch.x, t, &[]);
    work.backward(net, &values, &mut grads, &batch.x, t);
    (work.total_loss, grads, work)
}

pub(crate) fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let scale = b.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let err = f64::from(x - y).abs();
        assert!(
            err <= 1e-4 * scale + 1e-4 * f64::from(y.abs()) + 1e-9,
            "{what}[{i}]: engine {x:e} vs dfdx {y:e}"
        );
    }
}

/// Checks the engine's loss, every parameter gradient (compared by `close`), ‖∂L/∂h_l‖² and
/// Σh² of every layer against dfdx's tape, for one net and batch.
pub(crate) fn check_against_dfdx(
    params: &mut MlpParams,
    act: Activation,
    switches: &Switches,
    net: &Net,
    batch: &Batch,
    label: &str,
    close: fn(&str, &[f32], &[f32]),
) {
    let (x, t) = batch.tensors(&Cpu::default());
    let reference = backprop(params, act, switches, x, &t);
    let (loss, grads, work) = engine_grads(params, net, batch);
    assert!(
        (loss - reference.loss).abs() <= 1e-5 * reference.loss.abs().max(1.0),
        "{label}: loss {loss} vs {}",
        reference.loss
    );
    let roles: Vec<_> = params.params_mut().iter().map(|(r, _)| *r).collect();
    for (p, (a, b)) in grads.iter().zip(&reference.param_grads).enumerate() {
        let active = b.iter().any(|&v| v != 0.0) || a.iter().any(|&v| v != 0.0);
        if active {
            close(&format!("{label} param {p} {:?}", roles[p]), a, b);
        }
    }
    for (l, b) in reference.hidden_grads.iter().enumerate() {
        let exact = b.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        let s = work.stats[l];
        let engine = s.grad_sumsq * 4f64.powi(s.grad_exp);
        assert!(
            (engine - exact).abs() <= 1e-4 * exact + 1e-30,
            "{label} ‖∂L/∂h_{}‖²: engine {engine:e} vs dfdx {exact:e}",
            l + 1
        );
        let h = &reference.hidden[l];
        let act_sumsq = h.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        assert!(
            (s.act_sumsq - act_sumsq).abs() <= 1e-4 * act_sumsq + 1e-30,
            "{label} Σh² layer {}",
            l + 1
        );
    }
}

#[test]
fn the_engine_matches_dfdx_in_every_mode_activation_and_head() {
    for act in Activation::ALL {
        for skip in SKIPS {
            for (aux, classification) in [(true, true), (false, false)] {
                let (depth, width, dims, outputs) = (6, 24, 3, 4);
                let model = small_model(depth, width, act, skip, 2);
                let mut params = params_for(&model, dims, outputs, -1.0, 9);
                let batch = Batch::random(37, dims, outputs, classification, 4);
                let switches = Switches {
                    skip,
                    aux_enabled: aux,
                    aux_weight: 0.3,
                    norm: Default::default(),
                    norm_place: Default::default(),
                    branch_scale: Default::default(),
                };
                let net = net_for(depth, width, act, &switches, 2, dims, outputs);
                let label = format!("{act:?}/{}/aux {aux}", skip.label());
                check_against_dfdx(
                    &mut params,
                    act,
                    &switches,
                    &net,
                    &batch,
                    &label,
                    assert_close,
                );
            }
        }
    }
}

#[test]
fn the_engine_loss_has_the_engine_gradient() {
    // Central differences on the engine's own loss, for a few entries of every parameter.
    for skip in SKIPS {
        let (depth, width, dims, outputs) = (4, 8, 2, 3);
        let act = Activation::Tanh;
        let model = small_model(depth, width, act, skip, 2);
        let mut params = params_for(&model, dims, outputs, -1.0, 3);
        let batch = Batch::random(11, dims, outputs, true, 5);
        let switches = Switches {
            skip,
            aux_enabled: true,
            aux_weight: 0.3,
            norm: Default::default(),
            norm_place: Default::default(),
            branch_scale: Default::default(),
        };
        let net = net_for(depth, width, act, &switches, 2, dims, outputs);
        check_finite_differences(&mut params, &net, &batch, &skip.label());
    }
}

/// Central differences on the engine's own loss (f32, step 1e-2) for the first, middle and
/// last entry of every parameter that takes part.
pub(crate) fn check_finite_differences(
    params: &mut MlpParams,
    net: &Net,
    batch: &Batch,
    label: &str,
) {
    let (_, grads, _) = engine_grads(params, net, batch);
    let values = params.values();
    let mut scratch = Vec::new();
    let t = targets(batch, &mut scratch);
    let loss_at = |values: &[Vec<f32>]| {
        let mut work = Workspace::default();
        work.forward(net, values, &batch.x, t, &[]);
        f64::from(work.total_loss)
    };
    for (p, grad) in grads.iter().enumerate() {
        for i in [0, grad.len() / 2, grad.len() - 1] {
            let h = 1e-2f32;
            let mut plus = values.clone();
            plus[p][i] += h;
            let mut minus = values.clone();
            minus[p][i] -= h;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            let analytic = f64::from(grad[i]);
            let used = analytic != 0.0 || numeric.abs() > 1e-6;
            if used {
                assert!(
                    (analytic - numeric).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                    "{label} param {p}[{i}]: engine {analytic:e} vs finite difference {numeric:e}"
                );
            }
        }
    }
}

#[test]
fn a_lesioned_forward_matches_dfdx() {
    // Every single block, and sets of blocks (adjacent, spread, unordered, all of them), as
    // Veit's k-block lesions remove them.
    let (depth, width, dims, outputs) = (5, 16, 3, 2);
    let mut sets: Vec<Vec<usize>> = (0..depth).map(|b| vec![b]).collect();
    sets.extend([vec![1, 2], vec![4, 0], vec![0, 2, 4], (0..depth).collect()]);
    for skip in SKIPS {
        let act = Activation::Tanh;
        let model = small_model(depth, width, act, skip, 2);
        let mut params = params_for(&model, dims, outputs, -1.0, 21);
        let batch = Batch::random(19, dims, outputs, true, 8);
        let switches = Switches {
            skip,
            aux_enabled: false,
            aux_weight: 0.3,
            norm: Default::default(),
            norm_place: Default::default(),
            branch_scale: Default::default(),
        };
        let net = net_for(depth, width, act, &switches, 2, dims, outputs);
        let values = params.values();
        let mut intact = Workspace::default();
        let mut scratch = Vec::new();
        intact.forward(&net, &values, &batch.x, targets(&batch, &mut scratch), &[]);
        for blocks in &sets {
            let (x, t) = batch.tensors(&Cpu::default());
            let pass = forward_with(
                gradlab::model::BlockOps::Dfdx,
                &params,
                act,
                &switches,
                x,
                &t,
                Lesion::blocks(blocks.iter().copied()),
            );
            let mut work = Workspace::default();
            work.forward(
                &net,
                &values,
                &batch.x,
                targets(&batch, &mut scratch),
                blocks,
            );
            assert!(
                (work.main_loss - pass.main_loss).abs() <= 1e-5 * pass.main_loss.abs().max(1.0),
                "{} lesion {blocks:?}: {} vs {}",
                skip.label(),
                work.main_loss,
                pass.main_loss
            );
            assert_ne!(
                work.main_loss,
                intact.main_loss,
                "{} lesion {blocks:?} removed nothing",
                skip.label()
            );
        }
    }
}

/// A deep plain tanh net at σ_w² = 0.5, σ_b² = 0 (the lab's vanishing preset), width 64.
fn deep_plain(depth: usize, seed: u64) -> (MlpParams, Net, Batch) {
    let (width, dims, outputs) = (64, 2, 2);
    let mut model = small_model(depth, width, Activation::Tanh, SkipMode::Plain, 8);
    model.init.weight_var = 0.5;
    model.init.bias_var = 0.0;
    let params = params_for(&model, dims, outputs, -1.0, seed);
    let switches = Switches {
        skip: SkipMode::Plain,
        aux_enabled: false,
        aux_weight: 0.3,
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    };
    let net = net_for(depth, width, Activation::Tanh, &switches, 8, dims, outputs);
    (
        params,
        net,
        Batch::random(128, dims, outputs, true, seed + 1),
    )
}

#[test]
fn a_depth_512_plain_net_reports_finite_first_layer_norms_on_the_mean_field_slope() {
    // At σ_w² = 0.5 and σ_b² = 0 the pre-activations shrink toward 0, where tanh′ → 1, so
    // χ₁ = σ_w² E[φ′(z)²] → 0.5: each layer toward the input costs 10·log10(0.5) ≈ −3.01 dB
    // of ‖∂L/∂h‖. At depth 512 the first layer sits ~1 540 dB down, far below f32 (−900 dB
    // is already 1e-45), yet its norm must be finite and on the slope.
    let (mut params, net, batch) = deep_plain(512, 11);
    let (_, _, work) = engine_grads(&mut params, &net, &batch);
    let db: Vec<f64> = work
        .stats
        .iter()
        .map(|s| norm_db(s.grad_sumsq, s.grad_exp))
        .collect();
    assert!(
        db.iter().all(|v| v.is_finite()),
        "every layer's norm is finite"
    );
    assert!(db[0] < -1000.0, "first layer at {} dB", db[0]);
    // Fit the slope over layers deep enough for the activations to be small (tanh′ ≈ 1),
    // in dB per layer toward the input.
    let (from, to) = (100, 500);
    let slope = (db[from] - db[to]) / (to - from) as f64;
    let chi1_db = 10.0 * 0.5f64.log10();
    // Through one fixed random layer ‖gWᵀ‖²/‖g‖² ~ χ₁·χ²_N/N, whose log has mean
    // ln χ₁ − 1/N: a finite-width bias of −10·log10(e)/N dB per layer (−0.068 at N = 64).
    let expected = chi1_db - 10.0 * std::f64::consts::LOG10_E / 64.0;
    assert!(
        (slope - expected).abs() < 0.04 && (slope - chi1_db).abs() < 0.15,
        "slope {slope:.4} dB per layer vs mean field {chi1_db:.4} ({expected:.4} at width 64)"
    );
    // ... and the layers near the input, where activations are still O(1), lose more.
    assert!(db[0] - db[100] < 100.0 * chi1_db + 1.0);
}

#[test]
fn rescaling_changes_no_bit_where_f32_holds_the_signal() {
    // At depth 24 the signal stays in range: no renormalisation happens, exponents are 0, and
    // the engine's gradients equal a second run's bit for bit (determinism), and are finite.
    let (mut params, net, batch) = deep_plain(24, 5);
    let (_, first, work) = engine_grads(&mut params, &net, &batch);
    assert!(work.stats.iter().all(|s| s.grad_exp == 0));
    let (_, second, _) = engine_grads(&mut params, &net, &batch);
    assert_eq!(first, second);
    // At depth 256 the signal is renormalised on its way down; where the true weight gradient
    // is still inside f32's normal range, it matches dfdx (which computes it with subnormal
    // intermediates only below that range).
    let (mut params, net, batch) = deep_plain(160, 5);
    let (_, grads, work) = engine_grads(&mut params, &net, &batch);
    assert!(
        work.stats.iter().any(|s| s.grad_exp != 0),
        "deep enough to rescale"
    );
    let switches = Switches {
        skip: SkipMode::Plain,
        aux_enabled: false,
        aux_weight: 0.3,
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    };
    let (x, t) = batch.tensors(&Cpu::default());
    let reference = backprop(&mut params, Activation::Tanh, &switches, x, &t);
    for (l, s) in work.stats.iter().enumerate() {
        let w = gradlab::model::engine::slot::weight(l);
        let exact_db = norm_db(s.weight_sumsq, s.weight_exp);
        if exact_db > -600.0 {
            assert_close(
                &format!("W_{}", l + 1),
                &grads[w],
                &reference.param_grads[w],
            );
        }
    }
}
