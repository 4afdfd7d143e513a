//! The sharded MLP step (`model::shards`): bit-identical across runs and thread counts, equal
//! to rounding to the whole-batch engine (and so to dfdx and finite differences) in every skip
//! mode with auxiliary heads and dense read-outs, and exact in log space far below f32.

use crate::common::{Batch, RefTargets, params_for, small_model};
use crate::engine::assert_close;
use dfdx::prelude::*;
use gradlab::config::{Activation, BranchScale, NormKind, NormPlace, SkipMode};
use gradlab::model::engine::{LayerStats, Net, Workspace, slot};
use gradlab::model::loss::Targets;
use gradlab::model::scaled::norm_db;
use gradlab::model::shards::{ShardedStep, shard_count};
use gradlab::model::{MlpParams, Switches, aux_head_layers, backprop};

const SKIPS: [SkipMode; 5] = [
    SkipMode::Plain,
    SkipMode::Residual { scale: 1.0 },
    SkipMode::Residual { scale: 0.5 },
    SkipMode::Highway,
    SkipMode::Dense,
];

fn net_for(depth: usize, width: usize, act: Activation, switches: &Switches, dims: usize) -> Net {
    Net {
        act,
        skip: switches.skip,
        aux_enabled: switches.aux_enabled,
        aux_weight: switches.aux_weight,
        aux_layers: aux_head_layers(depth, 2),
        input: dims,
        width,
        outputs: 4,
        depth,
        norm: switches.norm,
        norm_place: switches.norm_place,
        branch_scale: switches.branch_scale,
    }
}

/// Normalisation and branch scaling the sharded step is checked with (BatchNorm couples the
/// rows, so it runs as one shard: see `batch_norm_keeps_the_batch_in_one_shard`).
const NORMS: [(NormKind, NormPlace, BranchScale); 4] = [
    (NormKind::None, NormPlace::Pre, BranchScale::One),
    (NormKind::LayerNorm, NormPlace::Pre, BranchScale::ReZero),
    (
        NormKind::LayerNorm,
        NormPlace::Post,
        BranchScale::InvSqrtDepth,
    ),
    (NormKind::None, NormPlace::Pre, BranchScale::InvSqrtDepth),
];

/// The batch's targets as the engine reads them (values converted to f32 into `values`).
fn targets<'a>(batch: &'a Batch, values: &'a mut Vec<f32>) -> Targets<'a> {
    match &batch.targets {
        RefTargets::Labels(labels) => Targets::Labels(labels),
        RefTargets::Values(v) => {
            *values = v.iter().map(|&a| a as f32).collect();
            Targets::Values(values)
        }
    }
}

fn zeros(values: &[Vec<f32>]) -> Vec<Vec<f32>> {
    values.iter().map(|v| vec![0.0; v.len()]).collect()
}

/// The sharded step on `threads` threads: its gradients and the step itself.
fn sharded(
    net: &Net,
    values: &[Vec<f32>],
    batch: &Batch,
    threads: usize,
) -> (Vec<Vec<f32>>, ShardedStep) {
    let mut grads = zeros(values);
    let mut step = ShardedStep::new(threads);
    let mut scratch = Vec::new();
    step.run(
        net,
        values,
        &mut grads,
        &batch.x,
        targets(batch, &mut scratch),
    );
    (grads, step)
}

/// The whole-batch engine: its gradients and workspace.
fn whole(net: &Net, values: &[Vec<f32>], batch: &Batch) -> (Vec<Vec<f32>>, Workspace) {
    let mut grads = zeros(values);
    let mut work = Workspace::default();
    let mut scratch = Vec::new();
    let t = targets(batch, &mut scratch);
    work.forward(net, values, &batch.x, t, &[]);
    work.backward(net, values, &mut grads, &batch.x, t);
    (grads, work)
}

fn assert_rel(what: &str, a: f64, b: f64, tolerance: f64) {
    assert!(
        (a - b).abs() <= tolerance * a.abs().max(b.abs()) + 1e-30,
        "{what}: sharded {a:e} vs whole batch {b:e}"
    );
}

/// Every per-layer measurement of the sharded step against the whole-batch one, in dB where
/// the norms are rescaled.
/// ‖∂L/∂W_l‖ is compared only where `weight_norm_holds(l)`.
fn assert_same_stats(
    label: &str,
    sharded: &[LayerStats],
    whole: &[LayerStats],
    db_tol: f64,
    weight_norm_holds: impl Fn(usize) -> bool,
) {
    for (l, (s, w)) in sharded.iter().zip(whole).enumerate() {
        let what = |q: &str| format!("{label} layer {} {q}", l + 1);
        assert_rel(&what("Σh²"), s.act_sumsq, w.act_sumsq, 1e-5);
        assert_rel(&what("Σ T"), s.gate_sum, w.gate_sum, 1e-5);
        let (a, b) = (
            norm_db(s.grad_sumsq, s.grad_exp),
            norm_db(w.grad_sumsq, w.grad_exp),
        );
        // Both −∞ where the gradient is exactly zero (a ReZero branch at α = 0).
        assert!(
            a == b || (a - b).abs() <= db_tol,
            "{}: {a} vs {b} dB",
            what("‖∂L/∂h‖")
        );
        let (a, b) = (
            norm_db(s.weight_sumsq, s.weight_exp),
            norm_db(w.weight_sumsq, w.weight_exp),
        );
        if weight_norm_holds(l) {
            assert!(
                a == b || (a - b).abs() <= db_tol,
                "{}: {a} vs {b} dB",
                what("‖∂L/∂W‖")
            );
        }
        assert_rel(
            &what("Σ(∂L/∂W)² in f32"),
            s.weight_true_sumsq,
            w.weight_true_sumsq,
            1e-4,
        );
        assert_eq!(
            s.weight_below_f32(),
            w.weight_below_f32(),
            "{}",
            what("below f32")
        );
    }
}

fn bits(step: &ShardedStep) -> Vec<u64> {
    let mut out = vec![
        u64::from(step.main_loss.to_bits()),
        u64::from(step.total_loss.to_bits()),
        step.grad_sumsq.to_bits(),
    ];
    out.extend(step.aux_losses.iter().map(|v| u64::from(v.to_bits())));
    for s in &step.stats {
        out.extend([
            s.act_sumsq.to_bits(),
            s.gate_sum.to_bits(),
            s.grad_sumsq.to_bits(),
            s.grad_exp as u64,
            s.weight_sumsq.to_bits(),
            s.weight_exp as u64,
            s.weight_true_sumsq.to_bits(),
        ]);
    }
    out.extend(step.outputs().iter().map(|v| u64::from(v.to_bits())));
    out
}

#[test]
fn the_sharded_step_is_bit_identical_on_one_or_two_threads_and_matches_the_whole_batch_and_dfdx() {
    for act in Activation::ALL {
        for (skip, (norm, norm_place, branch_scale)) in SKIPS
            .into_iter()
            .flat_map(|skip| NORMS.into_iter().map(move |combo| (skip, combo)))
        {
            for (aux, classification) in [(true, true), (false, false), (true, false)] {
                let (depth, width, dims) = (6, 24, 3);
                let model = small_model(depth, width, act, skip, 2);
                let mut params: MlpParams = params_for(&model, dims, 4, -1.0, 9);
                // 37 rows: shards of 19 and 18, so an uneven cut is covered too.
                let batch = Batch::random(37, dims, 4, classification, 4);
                let switches = Switches {
                    skip,
                    aux_enabled: aux,
                    aux_weight: 0.3,
                    norm,
                    norm_place,
                    branch_scale,
                };
                let net = net_for(depth, width, act, &switches, dims);
                assert_eq!(shard_count(&net, 37), 2);
                let values = params.values();
                let label = format!(
                    "{act:?}/{}/{norm:?} {norm_place:?}/{branch_scale:?}/aux {aux}/classes {classification}",
                    skip.label()
                );
                let (one, step_one) = sharded(&net, &values, &batch, 1);
                let (two, step_two) = sharded(&net, &values, &batch, 2);
                let (again, step_again) = sharded(&net, &values, &batch, 2);
                assert_eq!(one, two, "{label}: gradients on 1 vs 2 threads");
                assert_eq!(two, again, "{label}: gradients of two runs");
                assert_eq!(bits(&step_one), bits(&step_two), "{label}: measurements");
                assert_eq!(bits(&step_two), bits(&step_again), "{label}: measurements");

                let (reference, work) = whole(&net, &values, &batch);
                assert_rel(
                    &format!("{label}: loss"),
                    f64::from(step_two.total_loss),
                    f64::from(work.total_loss),
                    1e-6,
                );
                assert_rel(
                    &format!("{label}: Σ(∂L/∂θ)²"),
                    step_two.grad_sumsq,
                    work.grad_sumsq,
                    1e-5,
                );
                assert_eq!(step_two.outputs(), work.outputs(&net), "{label}: logits");
                for (p, (a, b)) in two.iter().zip(&reference).enumerate() {
                    assert_close(&format!("{label} param {p} vs whole batch"), a, b);
                }
                assert_same_stats(&label, &step_two.stats, &work.stats, 1e-4, |_| true);

                let (x, t) = batch.tensors(&Cpu::default());
                let dfdx = backprop(&mut params, act, &switches, x, &t);
                for (p, (a, b)) in two.iter().zip(&dfdx.param_grads).enumerate() {
                    if b.iter().any(|&v| v != 0.0) || a.iter().any(|&v| v != 0.0) {
                        assert_close(&format!("{label} param {p} vs dfdx"), a, b);
                    }
                }
            }
        }
    }
}

#[test]
fn the_sharded_loss_has_the_sharded_gradient() {
    for skip in SKIPS {
        let (depth, width, dims) = (4, 8, 2);
        let act = Activation::Tanh;
        let model = small_model(depth, width, act, skip, 2);
        let mut params = params_for(&model, dims, 4, -1.0, 3);
        let batch = Batch::random(17, dims, 4, true, 5);
        let switches = Switches {
            skip,
            aux_enabled: true,
            aux_weight: 0.3,
            norm: NormKind::None,
            norm_place: NormPlace::Pre,
            branch_scale: BranchScale::One,
        };
        let net = net_for(depth, width, act, &switches, dims);
        let values = params.values();
        let (grads, _) = sharded(&net, &values, &batch, 2);
        let loss_at =
            |values: &[Vec<f32>]| f64::from(sharded(&net, values, &batch, 2).1.total_loss);
        for (p, grad) in grads.iter().enumerate() {
            for i in [0, grad.len() / 2, grad.len() - 1] {
                let h = 1e-2f32;
                let mut plus = values.clone();
                plus[p][i] += h;
                let mut minus = values.clone();
                minus[p][i] -= h;
                let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
                let analytic = f64::from(grad[i]);
                if analytic != 0.0 || numeric.abs() > 1e-6 {
                    assert!(
                        (analytic - numeric).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                        "{} param {p}[{i}]: sharded {analytic:e} vs finite difference {numeric:e}",
                        skip.label()
                    );
                }
            }
        }
    }
}

/// A deep plain tanh net at σ_w² = 0.5, σ_b² = 0 (the lab's vanishing preset), width 64.
fn deep_plain(depth: usize, seed: u64) -> (Vec<Vec<f32>>, Net, Batch) {
    let (width, dims) = (64, 2);
    let mut model = small_model(depth, width, Activation::Tanh, SkipMode::Plain, 8);
    model.init.weight_var = 0.5;
    model.init.bias_var = 0.0;
    let mut params = params_for(&model, dims, 4, -1.0, seed);
    let switches = Switches {
        skip: SkipMode::Plain,
        aux_enabled: false,
        aux_weight: 0.3,
        norm: NormKind::None,
        norm_place: NormPlace::Pre,
        branch_scale: BranchScale::One,
    };
    let net = net_for(depth, width, Activation::Tanh, &switches, dims);
    (
        params.values(),
        net,
        Batch::random(128, dims, 4, true, seed + 1),
    )
}

#[test]
fn shards_combine_norms_far_below_f32_as_the_whole_batch_measures_them() {
    // Depth 512: the first layers' ∂L/∂h and ∂L/∂W sit ~1 500 dB down, far below f32 and f64;
    // each shard carries its own exponent, and the combined norms must be the whole batch's.
    let (values, net, batch) = deep_plain(512, 11);
    let (grads, step) = sharded(&net, &values, &batch, 2);
    let (reference, work) = whole(&net, &values, &batch);
    let first = norm_db(step.stats[0].grad_sumsq, step.stats[0].grad_exp);
    assert!(
        first < -1000.0 && first.is_finite(),
        "first layer at {first} dB"
    );
    assert!(step.stats[0].weight_below_f32(), "W_1 cannot learn in f32");
    // ∂L/∂W_l = h_{l-1}ᵀ·∂L/∂z_l is a product in f32: once the activations h_{l-1} themselves
    // near f32's smallest normal numbers (rms below 2^-115, from layer ~220 here), their products
    // with the signal round differently at each shard's scale, in the whole batch as much as
    // in a shard; above that the norms must agree to rounding.
    let rows_width = (128 * 64) as f64;
    let holds = |l: usize| l == 0 || work.stats[l - 1].act_sumsq / rows_width > 2f64.powi(-230);
    assert!(
        holds(200),
        "the comparison covers layers far below f32's range"
    );
    assert_same_stats(
        "depth 512",
        &step.stats,
        &work.stats,
        1e-6 * first.abs(),
        holds,
    );
    for (l, s) in work.stats.iter().enumerate() {
        if norm_db(s.weight_sumsq, s.weight_exp) > -600.0 {
            let w = slot::weight(l);
            assert_close(&format!("W_{}", l + 1), &grads[w], &reference[w]);
        }
    }
    let (again, step_again) = sharded(&net, &values, &batch, 1);
    assert_eq!(grads, again);
    assert_eq!(bits(&step), bits(&step_again));
}

#[test]
fn a_switch_leaves_no_stale_gradient_in_the_sums() {
    // Highway writes the gate gradients; after switching to plain they are unused, and the
    // global norm (what clipping reads) must be plain's alone.
    let (depth, width, dims) = (4, 16, 3);
    let act = Activation::Tanh;
    let model = small_model(depth, width, act, SkipMode::Highway, 2);
    let values = params_for(&model, dims, 4, -1.0, 2).values();
    let batch = Batch::random(32, dims, 4, true, 6);
    let highway = Switches {
        skip: SkipMode::Highway,
        aux_enabled: true,
        aux_weight: 0.3,
        norm: NormKind::None,
        norm_place: NormPlace::Pre,
        branch_scale: BranchScale::One,
    };
    let plain = Switches {
        skip: SkipMode::Plain,
        aux_enabled: false,
        aux_weight: 0.3,
        norm: NormKind::None,
        norm_place: NormPlace::Pre,
        branch_scale: BranchScale::One,
    };
    let mut grads = zeros(&values);
    let mut step = ShardedStep::new(2);
    let mut scratch = Vec::new();
    for switches in [highway, plain] {
        let net = net_for(depth, width, act, &switches, dims);
        step.run(
            &net,
            &values,
            &mut grads,
            &batch.x,
            targets(&batch, &mut scratch),
        );
    }
    let net = net_for(depth, width, act, &plain, dims);
    let (_, work) = whole(&net, &values, &batch);
    assert_rel(
        "Σ(∂L/∂θ)² after the switch",
        step.grad_sumsq,
        work.grad_sumsq,
        1e-5,
    );
}

#[test]
fn a_trainer_gives_the_same_bits_on_one_thread_as_on_two() {
    let experiment = gradlab::config::load_preset("plain-shallow").expect("built-in preset");
    let mut runs = Vec::new();
    for threads in [1, 2] {
        let mut trainer =
            gradlab::model::Trainer::new(experiment.clone(), None).expect("preset builds");
        trainer.set_threads(threads);
        let mut losses = Vec::new();
        for _ in 0..30 {
            let snapshot = trainer.train_step(true, true).expect("measured");
            losses.push(snapshot.loss.to_bits());
        }
        runs.push((losses, trainer.param_values().to_vec()));
    }
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn batch_norm_keeps_the_batch_in_one_shard() {
    // BatchNorm's batch statistics couple the rows: the sharded step must run it whole, and
    // give exactly the whole-batch engine's gradients.
    let (depth, width, dims) = (4, 16, 3);
    let act = Activation::Tanh;
    for skip in [SkipMode::Plain, SkipMode::Residual { scale: 1.0 }] {
        let model = small_model(depth, width, act, skip, 2);
        let mut params: MlpParams = params_for(&model, dims, 4, -1.0, 5);
        let batch = Batch::random(37, dims, 4, true, 6);
        let switches = Switches {
            skip,
            aux_enabled: true,
            aux_weight: 0.3,
            norm: NormKind::BatchNorm,
            norm_place: NormPlace::Pre,
            branch_scale: BranchScale::One,
        };
        let net = net_for(depth, width, act, &switches, dims);
        assert_eq!(shard_count(&net, 37), 1);
        let values = params.values();
        let (two, step) = sharded(&net, &values, &batch, 2);
        let (reference, work) = whole(&net, &values, &batch);
        assert_eq!(two, reference, "{}: gradients", skip.label());
        assert_eq!(step.total_loss.to_bits(), work.total_loss.to_bits());
    }
}
