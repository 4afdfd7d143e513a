//! Normalisation (LayerNorm, BatchNorm; pre and post) and residual-branch scaling (1/√depth,
//! ReZero): the engine against dfdx's ops and against finite differences in every
//! combination, BatchNorm's evaluation mode, and ReZero's identity at step 0.

use crate::common::{Batch, params_for, small_model};
use crate::engine::{
    SKIPS, assert_close, check_against_dfdx, check_finite_differences, engine_grads, net_for,
    targets,
};
use gradlab::config::{Activation, BranchScale, NormKind, NormPlace, SkipMode};
use gradlab::model::engine::{Net, Workspace, slot};
use gradlab::model::params::ParamRole;
use gradlab::model::{MlpParams, Switches};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every norm × place × branch factor (a branch factor without a norm too).
fn combinations() -> Vec<(NormKind, NormPlace, BranchScale)> {
    let mut out = Vec::new();
    for norm in NormKind::ALL {
        for place in [NormPlace::Pre, NormPlace::Post] {
            for branch in BranchScale::ALL {
                if norm == NormKind::None && place == NormPlace::Post {
                    continue;
                }
                out.push((norm, place, branch));
            }
        }
    }
    out
}

/// γ, β, α and the running estimates moved off their step-0 values, so that every term of
/// their gradients (and of the gradients they scale) is exercised.
fn perturb(params: &mut MlpParams, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (role, mut p) in params.params_mut() {
        let mut values = vec![0.0; p.len()];
        p.copy_into(&mut values);
        let (centre, spread) = match role {
            ParamRole::NormGain(_) => (1.0, 0.3),
            ParamRole::NormShift(_) | ParamRole::RunningMean(_) => (0.0, 0.2),
            ParamRole::RunningVar(_) => (1.0, 0.5),
            ParamRole::BranchAlpha(_) => (0.6, 0.2),
            _ => continue,
        };
        values
            .iter_mut()
            .for_each(|v| *v = centre + spread * (rng.r#gen::<f32>() - 0.5) * 2.0);
        p.copy_from(&values);
    }
}

fn switches(skip: SkipMode, aux: bool, combo: (NormKind, NormPlace, BranchScale)) -> Switches {
    Switches {
        skip,
        aux_enabled: aux,
        aux_weight: 0.3,
        norm: combo.0,
        norm_place: combo.1,
        branch_scale: combo.2,
    }
}

#[test]
fn the_engine_matches_dfdx_with_every_norm_place_and_branch_factor() {
    for act in [Activation::Tanh, Activation::Relu, Activation::Gelu] {
        for skip in SKIPS {
            for combo in combinations() {
                for (aux, classification) in [(true, true), (false, false)] {
                    let (depth, width, dims, outputs) = (5, 12, 3, 4);
                    let model = small_model(depth, width, act, skip, 2);
                    let mut params = params_for(&model, dims, outputs, -1.0, 9);
                    perturb(&mut params, 5);
                    let batch = Batch::random(23, dims, outputs, classification, 4);
                    let sw = switches(skip, aux, combo);
                    let net = net_for(depth, width, act, &sw, 2, dims, outputs);
                    let label = format!("{act:?}/{}/{combo:?}/aux {aux}", skip.label());
                    check_against_dfdx(
                        &mut params,
                        act,
                        &sw,
                        &net,
                        &batch,
                        &label,
                        close_up_to_noise,
                    );
                }
            }
        }
    }
}

#[test]
fn the_engine_gradient_matches_finite_differences_with_every_norm_and_branch_factor() {
    for skip in SKIPS {
        for combo in combinations() {
            let (depth, width, dims, outputs) = (3, 6, 2, 3);
            let act = Activation::Tanh;
            let model = small_model(depth, width, act, skip, 2);
            let mut params = params_for(&model, dims, outputs, -1.0, 3);
            perturb(&mut params, 11);
            let batch = Batch::random(9, dims, outputs, true, 5);
            let sw = switches(skip, true, combo);
            let net = net_for(depth, width, act, &sw, 2, dims, outputs);
            check_finite_differences(
                &mut params,
                &net,
                &batch,
                &format!("{}/{combo:?}", skip.label()),
            );
        }
    }
}

/// `assert_close` with an absolute floor: under BatchNorm some gradients are exactly zero in
/// theory (a bias before a norm over the batch shifts nothing), and both sides then hold
/// rounding noise of order 1e-8 that no relative test can compare.
fn close_up_to_noise(what: &str, a: &[f32], b: &[f32]) {
    let scale = b.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let err = f64::from(x - y).abs();
        assert!(
            err <= 1e-4 * scale + 1e-4 * f64::from(y.abs()) + 1e-6,
            "{what}[{i}]: engine {x:e} vs dfdx {y:e}"
        );
    }
}

fn residual_net(combo: (NormKind, NormPlace, BranchScale)) -> (Net, MlpParams, Batch) {
    let (depth, width, dims, outputs) = (4, 10, 3, 2);
    let skip = SkipMode::Residual { scale: 1.0 };
    let model = small_model(depth, width, Activation::Tanh, skip, 2);
    let params = params_for(&model, dims, outputs, -1.0, 17);
    let sw = switches(skip, false, combo);
    let net = net_for(depth, width, Activation::Tanh, &sw, 2, dims, outputs);
    (net, params, Batch::random(16, dims, outputs, true, 2))
}

#[test]
fn batch_norm_evaluates_with_running_estimates_and_layer_norm_does_not_care() {
    for place in [NormPlace::Pre, NormPlace::Post] {
        let combo = (NormKind::BatchNorm, place, BranchScale::One);
        let (net, mut params, batch) = residual_net(combo);
        perturb(&mut params, 23);
        let mut values = params.values();
        let mut scratch = Vec::new();
        let t = targets(&batch, &mut scratch);
        let mut work = Workspace::default();
        work.forward(&net, &values, &batch.x, t, &[]);
        let train = work.outputs(&net).to_vec();
        work.forward_eval(&net, &values, &batch.x, t, &[]);
        let eval = work.outputs(&net).to_vec();
        assert!(
            train.iter().zip(&eval).any(|(a, b)| (a - b).abs() > 1e-3),
            "{place:?}: batch and running statistics gave the same outputs"
        );
        // Evaluation treats every row alone: a row scored in a batch of one is what it is in
        // the whole batch; training does not (one row's batch statistics are degenerate).
        let (dims, outputs) = (net.input, net.outputs);
        let one = &batch.x[..dims];
        let first_label: Vec<usize> = match t {
            gradlab::model::loss::Targets::Labels(l) => l[..1].to_vec(),
            _ => unreachable!("a classification batch"),
        };
        let one_t = gradlab::model::loss::Targets::Labels(&first_label);
        work.forward_eval(&net, &values, one, one_t, &[]);
        assert_close("row alone", work.outputs(&net), &eval[..outputs]);

        // The running estimates are what evaluation reads: set them to the batch's own
        // statistics layer by layer and evaluation reproduces training, for pre-norm whose
        // norms read inputs that do not depend on later running estimates.
        if place == NormPlace::Pre {
            let heads = net.aux_layers.len();
            for l in 0..net.depth {
                work.forward(&net, &values, &batch.x, t, &[]);
                // The biased batch variance: fold it in with momentum 1 by hand.
                let layer_mean = column_stat(&work, &net, l, &batch, true);
                let layer_var = column_stat(&work, &net, l, &batch, false);
                values[slot::running_mean(net.depth, heads, l)] = layer_mean;
                values[slot::running_var(net.depth, heads, l)] = layer_var;
            }
            work.forward_eval(&net, &values, &batch.x, t, &[]);
            assert_close("running = batch", work.outputs(&net), &train);
        }
    }
    let combo = (NormKind::LayerNorm, NormPlace::Post, BranchScale::One);
    let (net, mut params, batch) = residual_net(combo);
    perturb(&mut params, 29);
    let values = params.values();
    let mut scratch = Vec::new();
    let t = targets(&batch, &mut scratch);
    let mut work = Workspace::default();
    work.forward(&net, &values, &batch.x, t, &[]);
    let train = work.outputs(&net).to_vec();
    work.forward_eval(&net, &values, &batch.x, t, &[]);
    assert_eq!(
        train,
        work.outputs(&net),
        "LayerNorm has no running estimates"
    );
}

/// Per unit over the batch, the mean (or biased variance) of what layer l's pre-norm reads.
fn column_stat(work: &Workspace, net: &Net, l: usize, batch: &Batch, mean: bool) -> Vec<f32> {
    let w = net.width;
    let n = batch.rows * w;
    let x = &work.h[l * n..(l + 1) * n];
    (0..w)
        .map(|j| {
            let col: Vec<f64> = (0..batch.rows).map(|r| f64::from(x[r * w + j])).collect();
            let m = col.iter().sum::<f64>() / col.len() as f64;
            if mean {
                m as f32
            } else {
                (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / col.len() as f64) as f32
            }
        })
        .collect()
}

#[test]
fn rezero_blocks_start_as_the_identity_and_only_alpha_learns_at_step_zero() {
    let combo = (NormKind::None, NormPlace::Pre, BranchScale::ReZero);
    let (net, mut params, batch) = residual_net(combo);
    let (_, grads, work) = engine_grads(&mut params, &net, &batch);
    let n = batch.rows * net.width;
    for l in 0..net.depth {
        assert_eq!(
            &work.h[(l + 1) * n..(l + 2) * n],
            &work.h[..n],
            "block {} is not the identity at step 0",
            l + 1
        );
        assert!(grads[slot::weight(l)].iter().all(|&g| g == 0.0));
        let alpha = slot::branch_alpha(net.depth, net.aux_layers.len(), l);
        assert!(
            grads[alpha][0] != 0.0,
            "α of block {} gets no gradient",
            l + 1
        );
    }
}

#[test]
fn the_new_parameters_come_last_at_their_documented_start_values() {
    // γ 1, β 0, running mean 0 and variance 1, α 0, after every older slot; constants, not
    // draws, so the older parameters of a seed are what they were.
    let skip = SkipMode::Residual { scale: 1.0 };
    let model = small_model(3, 8, Activation::Tanh, skip, 2);
    let mut with = params_for(&model, 2, 2, -1.0, 4);
    let older = slot::head_bias(3) + 1 + 2 * with.aux_heads.len();
    let values = with.values();
    assert_eq!(values.len(), older + 5 * 3);
    for (role, p) in with.params_mut().into_iter().skip(older) {
        let mut v = vec![0.0; p.len()];
        p.copy_into(&mut v);
        let expected = match role {
            ParamRole::NormGain(_) | ParamRole::RunningVar(_) => 1.0,
            _ => 0.0,
        };
        assert!(v.iter().all(|&x| x == expected), "{role:?}: {v:?}");
    }
}
