//! The Jacobian spectrum and forward signal (`gradlab::analysis`): the f64 stack against
//! dfdx's forward pass, its Jacobian against finite differences in every skip mode, the mean
//! squared singular value and the per-layer q_l, c_l against their mean-field maps on wide
//! nets at init, and the dynamical-isometry contrast of the preset pair.

use dfdx::prelude::{Cpu, NoneTape, TensorFromVec};
use gradlab::analysis::forward_signal::forward_signal;
use gradlab::analysis::stack::{Stack, Trace};
use gradlab::analysis::{
    ANALYSIS_ROWS, analyse, analyse_on, analyse_trainer, jacobian, live_jacobian_inputs,
};
use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::model::{BatchTargets, BlockOps, Lesion, Switches, Trainer, forward_with};
use gradlab::tasks::TaskKind;

fn experiment(preset: &str, sets: &[&str]) -> Experiment {
    let base = load_preset(preset).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    apply_overrides(&base, &sets).expect("valid overrides")
}

fn trainer(preset: &str, sets: &[&str]) -> Trainer {
    Trainer::new(experiment(preset, sets), None).expect("trainer builds")
}

const SKIPS: [SkipMode; 5] = [
    SkipMode::Plain,
    SkipMode::Residual { scale: 1.0 },
    SkipMode::Residual { scale: 0.5 },
    SkipMode::Highway,
    SkipMode::Dense,
];

/// A small net with non-trivial gates and biases, so every term of each Jacobian matters.
fn small(skip: SkipMode) -> Trainer {
    let mut t = trainer(
        "plain-deep",
        &[
            "model.depth=5",
            "model.width=12",
            "model.init.weight_var=1.3",
            "model.init.bias_var=0.1",
            "model.gate_bias=-0.5",
        ],
    );
    t.set_skip(skip);
    t
}

#[test]
fn f64_stack_matches_dfdx_forward_in_every_skip_mode() {
    for skip in SKIPS {
        let t = small(skip);
        let (act, dims) = (t.experiment().model.activation, t.task().input_dims);
        let rows = 4;
        let inputs = &t.task().train.inputs[..rows * dims];
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(inputs.to_vec(), (rows, dims));
        let outputs = match t.task().kind {
            TaskKind::Classification { classes } => classes,
            TaskKind::Regression { outputs } => outputs,
        };
        let zeros = vec![0.0; rows * outputs];
        let targets = BatchTargets::Values(dev.tensor_from_vec(zeros, (rows, outputs)));
        let switches = Switches {
            skip,
            aux_enabled: false,
            aux_weight: 0.0,
            norm: Default::default(),
            norm_place: Default::default(),
            branch_scale: Default::default(),
        };
        let params = t.params();
        let pass = forward_with::<NoneTape>(
            BlockOps::Dfdx,
            params,
            act,
            &switches,
            x,
            &targets,
            Lesion::default(),
        );
        let stack = Stack::new(params, act, skip).expect("layers");
        for (r, x) in inputs.chunks(dims).enumerate() {
            let trace = stack.run(x);
            for (l, h) in pass.hidden.iter().enumerate() {
                let want = h.as_vec();
                let width = stack.width;
                for (i, got) in trace.hidden[l].iter().enumerate() {
                    let w = f64::from(want[r * width + i]);
                    assert!(
                        (got - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{skip:?} row {r} L{} unit {i}: {got} vs {w}",
                        l + 1
                    );
                }
            }
        }
    }
}

#[test]
fn jacobian_matches_central_differences_in_every_skip_mode() {
    let eps = 1e-6;
    for skip in SKIPS {
        let t = small(skip);
        let act = t.experiment().model.activation;
        let stack = Stack::new(t.params(), act, skip).expect("layers");
        let x = &t.task().train.inputs[..t.task().input_dims];
        let trace = stack.run(x);
        let j = stack.jacobian(&trace);
        let h1 = &trace.hidden[0];
        for col in 0..stack.width {
            let (mut up, mut down) = (h1.clone(), h1.clone());
            up[col] += eps;
            down[col] -= eps;
            let (fu, fd) = (stack.propagate(&up, 1), stack.propagate(&down, 1));
            for row in 0..stack.width {
                let fd_value = (fu[row] - fd[row]) / (2.0 * eps);
                let got = j.at(row, col);
                assert!(
                    (got - fd_value).abs() <= 1e-7 * (1.0 + fd_value.abs()),
                    "{skip:?} J[{row}][{col}]: {got} vs finite difference {fd_value}"
                );
            }
        }
        // Each block's own Jacobian too (the one `block_spectrum` decomposes).
        for block in 0..stack.depth() {
            let jb = stack.block_jacobian(&trace, block);
            let input = if block == 0 {
                trace.h0.clone()
            } else {
                trace.hidden[block - 1].clone()
            };
            let next = |h: &[f64]| stack.block_output(block, h);
            for col in [0, stack.width - 1] {
                let (mut up, mut down) = (input.clone(), input.clone());
                up[col] += eps;
                down[col] -= eps;
                let (fu, fd) = (next(&up), next(&down));
                for row in 0..stack.width {
                    let fd_value = (fu[row] - fd[row]) / (2.0 * eps);
                    assert!(
                        (jb.at(row, col) - fd_value).abs() <= 1e-7 * (1.0 + fd_value.abs()),
                        "{skip:?} block {} J[{row}][{col}]",
                        block + 1
                    );
                }
            }
        }
    }
}

/// The trainer's f64 stack and its first 8 training rows run through it.
fn stack_and_traces(t: &Trainer) -> (Stack, Vec<Trace>) {
    let act = t.experiment().model.activation;
    let stack = Stack::new(t.params(), act, t.switches().skip).expect("layers");
    let dims = t.task().input_dims;
    let traces = t.task().train.inputs[..ANALYSIS_ROWS * dims]
        .chunks(dims)
        .map(|x| stack.run(x))
        .collect();
    (stack, traces)
}

/// Checks that per-seed gaps between measurement and prediction average to zero within
/// `floor` plus three standard errors of their mean, and that the scatter is small enough
/// (standard error ≤ 0.05) for that to say something. ReLU at criticality scatters most:
/// its log-norms random-walk with depth at finite width.
fn assert_within_scatter(gaps: &[f64], floor: f64, what: &str) {
    let n = gaps.len() as f64;
    let mean = gaps.iter().sum::<f64>() / n;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let se = (var / n).sqrt();
    assert!(
        se <= 0.05,
        "{what}: too scattered to test (standard error {se})"
    );
    assert!(
        mean.abs() <= floor + 3.0 * se,
        "{what}: mean gap {mean} (standard error {se}, gaps {gaps:?})"
    );
}

/// Seeds the wide-net checks average over: one net's (1/N)·tr(J Jᵀ) scatters by ~10 % around
/// its mean at any width (the weights are shared by all its directions), so single nets
/// cannot test a prediction to better than that.
const SEEDS: u64 = 8;

#[test]
fn mean_squared_singular_value_matches_mean_field_on_a_wide_net() {
    // Width 256 at init: the measured (1/N)·tr(J Jᵀ), averaged over seeds, is a Monte-Carlo
    // estimate of the mean-field product of block gains along each input's q_l.
    let cases: [(&str, &[&str]); 4] = [
        (
            "plain-deep",
            &["model.init.weight_var=1.5", "model.init.bias_var=0.05"],
        ),
        (
            "plain-deep",
            &["model.init.weight_var=0.8", "model.init.bias_var=0.0"],
        ),
        ("relu-critical", &["model.init.bias_var=0.02"]),
        ("residual-deep", &["model.init.weight_var=0.5"]),
    ];
    for (preset, sets) in cases {
        let (mut measured, mut predicted) = (Vec::new(), Vec::new());
        for seed in 1..=SEEDS {
            let seed = format!("seed={seed}");
            let mut all = vec!["model.width=256", "model.depth=6", seed.as_str()];
            all.extend_from_slice(sets);
            let t = trainer(preset, &all);
            let (stack, mut traces) = stack_and_traces(&t);
            // Two inputs per net: the scatter is between nets, not between inputs.
            traces.truncate(2);
            predicted.push(jacobian::predicted_mean_sq(&stack, &traces).expect("a prediction"));
            // (1/N)·Σσ² is (1/N)·‖J‖²_F, so the wide net needs no SVD here (the spectrum's
            // mean_sq is checked against its singular values in the CLI test).
            let per_input = traces
                .iter()
                .map(|t| jacobian::frobenius_mean_sq(&stack.jacobian(t)));
            measured.push(per_input.sum::<f64>() / traces.len() as f64);
        }
        let gaps: Vec<f64> = measured
            .iter()
            .zip(&predicted)
            .map(|(m, p)| (m / p).ln())
            .collect();
        let what = format!("{preset} {sets:?}: measured {measured:?} vs mean-field {predicted:?}");
        assert_within_scatter(&gaps, 0.03, &what);
    }
}

#[test]
fn forward_signal_matches_length_and_correlation_maps_on_a_wide_net() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "plain-deep",
            &["model.init.weight_var=2.0", "model.init.bias_var=0.05"],
        ),
        ("plain-deep", &["model.init.weight_var=0.5"]),
        // ReLU in its ordered phase: at σ_w² = 2 the length map is marginal and a finite
        // net's q_l random-walks away from it (tested through mean σ² above instead).
        (
            "relu-critical",
            &["model.init.weight_var=1.2", "model.init.bias_var=0.05"],
        ),
        ("residual-deep", &[]),
    ];
    for (preset, sets) in cases {
        let depth = 10;
        // Per layer and seed: ln(q/q_theory) and c − c_theory.
        let mut q_gaps = vec![Vec::new(); depth];
        let mut c_gaps = vec![Vec::new(); depth];
        for seed in 1..=SEEDS {
            let seed = format!("seed={seed}");
            let mut all = vec!["model.width=512", "model.depth=10", seed.as_str()];
            all.extend_from_slice(sets);
            let t = trainer(preset, &all);
            let (stack, traces) = stack_and_traces(&t);
            let f = forward_signal(&stack, &traces, 1).expect("forward signal");
            assert_eq!((f.inputs, f.pairs), (8, 4));
            for (l, layer) in f.layers.iter().enumerate() {
                q_gaps[l].push((layer.q / layer.q_theory.expect("q theory")).ln());
                c_gaps[l].push(layer.c - layer.c_theory.expect("c theory"));
            }
        }
        for l in 0..depth {
            let at = format!("{preset} {sets:?} L{}", l + 1);
            assert_within_scatter(&q_gaps[l], 0.02, &format!("{at}: ln(q/q_theory)"));
            assert_within_scatter(&c_gaps[l], 0.02, &format!("{at}: c − c_theory"));
        }
    }
}

#[test]
fn plain_net_forward_signal_collapses_and_xi_c_is_reported() {
    // plain-deep (σ_w² = 0.5, σ_b² = 0): q_l shrinks by about a factor χ₁ = 0.5 per layer, so
    // every input reaches layer 32 as nearly the zero vector.
    let t = trainer("plain-deep", &[]);
    let f = analyse_trainer(&t, ANALYSIS_ROWS)
        .expect("analysis")
        .forward;
    let (first, last) = (&f.layers[0], f.layers.last().expect("layers"));
    assert!(last.q < 1e-6 * first.q, "q_1 {} q_L {}", first.q, last.q);
    let xi = f.xi_c.expect("ξ_c for a plain chain");
    assert!((xi - 1.0 / 2f64.ln()).abs() < 0.05, "ξ_c = {xi}");
    // Highway stacks have no map: no theory, said so.
    let mut h = trainer("plain-deep", &["model.depth=4"]);
    h.set_skip(SkipMode::Highway);
    let a = analyse_trainer(&h, ANALYSIS_ROWS).expect("analysis");
    assert!(a.jacobian.predicted_mean_sq.is_none() && a.forward.xi_c.is_none());
    assert!(a.jacobian.theory.starts_with("no prediction"));
    assert!(a.forward.layers.iter().all(|l| l.q_theory.is_none()));
}

/// log10(p95/p5) of a preset's Jacobian spectrum at init, and whether p5 was resolved.
fn spread_of(preset: &str, sets: &[&str]) -> jacobian::Spread {
    let t = trainer(preset, sets);
    analyse_trainer(&t, ANALYSIS_ROWS)
        .expect("analysis")
        .jacobian
        .spread()
}

#[test]
fn orthogonal_net_is_isometric_gaussian_spreads_and_relu_cannot() {
    let orthogonal = spread_of("isometry-orthogonal", &[]);
    let gaussian = spread_of("isometry-gaussian", &[]);
    assert!(
        orthogonal.resolved && orthogonal.decades < 1.5,
        "{orthogonal:?}"
    );
    assert!(gaussian.decades > 6.0, "{gaussian:?}");
    assert!(gaussian.decades > orthogonal.decades + 5.0);
    // ReLU at its critical point with orthogonal weights: units off for an input zero whole
    // directions, so the spectrum keeps (numerically) zero singular values.
    let relu = spread_of(
        "isometry-orthogonal",
        &["model.activation=Relu", "model.init.weight_var=2.0"],
    );
    assert!(!relu.resolved && relu.decades > 6.0, "{relu:?}");
}

#[test]
fn block_spectrum_of_an_orthogonal_linear_block_is_its_gain() {
    // A linear block with orthogonal W scaled by σ_w has every singular value σ_w.
    let t = trainer(
        "isometry-orthogonal",
        &["model.activation=Linear", "model.init.weight_var=0.64"],
    );
    let stack = Stack::new(
        t.params(),
        gradlab::config::Activation::Linear,
        SkipMode::Plain,
    )
    .expect("layers");
    let traces: Vec<_> = t.task().train.inputs[..4]
        .chunks(2)
        .map(|x| stack.run(x))
        .collect();
    let values = jacobian::block_spectrum(&stack, &traces, 3).expect("block 3");
    assert_eq!(values.len(), 2 * stack.width);
    for v in values {
        assert!((v - 0.8).abs() < 1e-5, "{v}");
    }
    assert!(jacobian::block_spectrum(&stack, &traces, 0).is_none());
}

#[test]
fn analysis_refuses_a_net_without_inputs() {
    let t = small(SkipMode::Plain);
    let act = t.experiment().model.activation;
    assert!(analyse(t.params(), act, SkipMode::Plain, &[], ANALYSIS_ROWS).is_none());
}

#[test]
fn live_analyses_take_fewer_jacobians_on_wide_nets() {
    assert_eq!(live_jacobian_inputs(64), 8);
    assert_eq!(live_jacobian_inputs(128), 8);
    assert_eq!(live_jacobian_inputs(160), 4);
    assert_eq!(live_jacobian_inputs(256), 1);
    assert_eq!(live_jacobian_inputs(4096), 1);
    let t = trainer("plain-deep", &["model.width=160", "model.depth=3"]);
    let a = analyse_trainer(&t, live_jacobian_inputs(160)).expect("analysis");
    assert_eq!(a.jacobian.inputs, 4);
    assert_eq!(a.jacobian.singular_values.len(), 4 * 160);
    assert_eq!(a.forward.inputs, 8, "the forward signal keeps every row");
}

#[test]
fn the_analyses_give_the_same_bits_on_one_thread_or_two() {
    for skip in ["Plain", "Residual(scale: 1.0)"] {
        let t = trainer(
            "plain-deep",
            &["model.depth=6", &format!("model.skip={skip}")],
        );
        let task = t.task();
        let inputs = &task.train.inputs[..ANALYSIS_ROWS * task.input_dims];
        let act = t.experiment().model.activation;
        let skip = t.switches().skip;
        let one = analyse_on(t.params(), act, skip, inputs, 8, 1).expect("analysis");
        let two = analyse_on(t.params(), act, skip, inputs, 8, 2).expect("analysis");
        assert_eq!(one, two, "{skip:?}");
        assert_eq!(one.forward.pairs, ANALYSIS_ROWS / 2);
    }
}
