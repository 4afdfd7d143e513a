//! Path-length decomposition: the exact 2ⁿ-path oracle against dfdx's backward pass, the
//! sampled estimator against exact per-length means, and Veit's 54-block observation.

use crate::common::{Batch, params_for};
use gradlab::config::{
    Activation, AuxSpec, InitSpec, ModelKind, ModelSpec, SkipMode, WeightDistribution,
};
use gradlab::model::{Backprop, MlpParams, Switches, backprop};
use gradlab::paths::{PathNetwork, effective_range, norm, peak_length, summarise};

fn model(depth: usize, width: usize, weight_var: f32, skip: SkipMode) -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Mlp,
        depth,
        width,
        activation: Activation::Tanh,
        init: InitSpec {
            weight_var,
            bias_var: 0.05,
            distribution: WeightDistribution::Gaussian,
        },
        skip,
        aux: AuxSpec {
            enabled: false,
            every: 4,
            weight: 0.3,
        },
        cell: Default::default(),
        gate_bias: -1.0,
        forget_bias: 1.0,
    }
}

/// The network's path view plus dfdx's ∂L/∂h_last and ∂L/∂x on one batch.
struct Setup {
    params: MlpParams,
    net: PathNetwork,
    upstream: Vec<f64>,
    input_grad: Vec<f64>,
    batch: Batch,
}

/// dfdx's gradients of `params` on `batch`, main head only (no auxiliary losses).
fn main_head_backprop(params: &mut MlpParams, spec: &ModelSpec, batch: &Batch) -> Backprop {
    let dev = dfdx::prelude::Cpu::default();
    let (x, targets) = batch.tensors(&dev);
    let switches = Switches {
        skip: spec.skip,
        aux_enabled: false,
        aux_weight: 0.0,
    };
    backprop(params, spec.activation, &switches, x, &targets)
}

fn setup(depth: usize, width: usize, dims: usize, skip: SkipMode, seed: u64) -> Setup {
    let spec = model(depth, width, 1.0, skip);
    let mut params = params_for(&spec, dims, 3, spec.gate_bias, seed);
    let batch = Batch::random(5, dims, 3, true, seed + 100);
    let result = main_head_backprop(&mut params, &spec, &batch);
    let net = PathNetwork::new(&params, spec.activation, skip, &batch.x).expect("not dense");
    let upstream = result.hidden_grads[depth - 1]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let input_grad = result.input_grad.iter().map(|&v| f64::from(v)).collect();
    Setup {
        params,
        net,
        upstream,
        input_grad,
        batch,
    }
}

/// ∂L/∂x = (∂L/∂h_in)·W_inᵀ.
fn through_input_projection(g: &[f64], params: &MlpParams, rows: usize) -> Vec<f64> {
    let w: Vec<f64> = params
        .input_weight
        .as_vec()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let width = g.len() / rows;
    let dims = w.len() / width;
    let mut out = vec![0.0; rows * dims];
    for r in 0..rows {
        for d in 0..dims {
            out[r * dims + d] = (0..width)
                .map(|j| g[r * width + j] * w[d * width + j])
                .sum();
        }
    }
    out
}

fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&diff) / norm(b).max(1e-30)
}

fn check_oracle(depth: usize, skip: SkipMode) {
    // dims = width makes W_in square (and a.s. invertible), so agreeing on ∂L/∂x means
    // agreeing on ∂L/∂h_in itself.
    let width = 8;
    let s = setup(depth, width, width, skip, 11);
    let n = s.net.blocks();
    assert_eq!(n, depth);
    let mut sum = vec![0.0; s.net.gradient_len()];
    let mut transform = vec![false; n];
    for mask in 0u32..(1 << n) {
        for (l, t) in transform.iter_mut().enumerate() {
            *t = mask >> l & 1 == 1;
        }
        let g = s.net.path_gradient(&s.upstream, &transform);
        sum.iter_mut().zip(g).for_each(|(a, b)| *a += b);
    }
    let full = s.net.full_gradient(&s.upstream);
    let host_vs_full = relative_error(&sum, &full);
    let dx = through_input_projection(&sum, &s.params, s.batch.rows);
    let vs_dfdx = relative_error(&dx, &s.input_grad);
    println!(
        "{skip:?} n={n}: Σ paths vs full Jacobian {host_vs_full:.2e}, vs dfdx ∂L/∂x {vs_dfdx:.2e}"
    );
    assert!(host_vs_full < 1e-12, "{skip:?}: {host_vs_full}");
    assert!(vs_dfdx < 1e-4, "{skip:?}: {vs_dfdx}");
    assert!(norm(&s.input_grad) > 0.0);
}

#[test]
fn all_paths_sum_to_the_dfdx_gradient_residual() {
    check_oracle(10, SkipMode::Residual { scale: 1.0 });
}

#[test]
fn all_paths_sum_to_the_dfdx_gradient_scaled_residual() {
    check_oracle(10, SkipMode::Residual { scale: 0.5 });
}

#[test]
fn all_paths_sum_to_the_dfdx_gradient_highway() {
    check_oracle(9, SkipMode::Highway);
}

#[test]
fn enumerating_every_k_subset_gives_the_exact_per_length_means() {
    for skip in [SkipMode::Residual { scale: 1.0 }, SkipMode::Highway] {
        let s = setup(8, 8, 4, skip, 5);
        let exact = s.net.exact_grad_per_path(&s.upstream);
        // 70 = C(8, 4) is the most paths of any length: every length is enumerated.
        let enumerated = s.net.sampled_grad_per_path(&s.upstream, 70, 1);
        for (k, (e, m)) in exact.iter().zip(&enumerated).enumerate() {
            assert!(
                (e - m).abs() <= 1e-12 * e.abs().max(1e-300),
                "{skip:?} k={k}: {e} vs {m}"
            );
        }
    }
}

#[test]
fn sampled_estimator_converges_to_the_exact_means() {
    let s = setup(10, 8, 4, SkipMode::Residual { scale: 1.0 }, 3);
    let exact = s.net.exact_grad_per_path(&s.upstream);
    let mean_error = |samples: usize| {
        let seeds = 6;
        let mut total = 0.0;
        for seed in 0..seeds {
            let est = s.net.sampled_grad_per_path(&s.upstream, samples, seed);
            total += est
                .iter()
                .zip(&exact)
                .map(|(e, x)| ((e - x) / x).abs())
                .sum::<f64>()
                / exact.len() as f64;
        }
        total / seeds as f64
    };
    let errors: Vec<(usize, f64)> = [2, 8, 32, 128]
        .iter()
        .map(|&m| (m, mean_error(m)))
        .collect();
    println!("mean relative error of the per-length estimate by M: {errors:?}");
    for pair in errors.windows(2) {
        assert!(
            pair[1].1 < pair[0].1,
            "error must shrink with M: {errors:?}"
        );
    }
    assert!(errors[3].1 < 0.5 * errors[0].1, "{errors:?}");
    assert!(errors[3].1 < 0.05, "{errors:?}");
    // M = C(10, 5) = 252 enumerates every length.
    assert!(mean_error(252) < 1e-12);
}

#[test]
fn peak_and_effective_range_of_a_hand_made_contribution() {
    let contribution = [0.01, 0.04, 0.30, 0.35, 0.20, 0.06, 0.04];
    assert_eq!(peak_length(&contribution), 3);
    // 0.30 + 0.35 + 0.20 = 0.85 < 0.9; adding 0.06 reaches 0.91 with four lengths, while
    // 0.04 on the left would give only 0.89.
    assert_eq!(effective_range(&contribution, 0.9), (2, 5));
    assert_eq!(effective_range(&[0.0, 1.0, 0.0], 0.9), (1, 1));
    assert_eq!(effective_range(&[0.5, 0.5], 0.9), (0, 1));

    // Per-path gradients halving with length on 4 blocks: C(4,k)·2^-k ∝ 1, 2, 1.5, 0.5, 1/16.
    let stats = summarise(&[1.0, 0.5, 0.25, 0.125, 0.0625], 8);
    let c: Vec<f64> = stats.by_length.iter().map(|l| l.contribution).collect();
    let total = 1.0 + 2.0 + 1.5 + 0.5 + 0.0625;
    for (got, want) in c.iter().zip([1.0, 2.0, 1.5, 0.5, 0.0625]) {
        assert!((got - want / total).abs() < 1e-12);
    }
    assert_eq!(stats.peak_length, 1);
    assert_eq!(stats.effective_range, [0, 3]);
    let mean = (2.0 + 3.0 + 1.5 + 0.25) / total;
    assert!((stats.mean_length - mean).abs() < 1e-12);
    assert!((stats.by_length[2].paths_log10 - 6f64.log10()).abs() < 1e-12);
}

#[test]
fn plain_nets_have_one_path_of_full_length() {
    let s = setup(6, 8, 4, SkipMode::Plain, 2);
    let stats = s.net.stats(&s.upstream, 8, 0);
    assert_eq!(stats.by_length.len(), 1);
    assert_eq!(stats.peak_length, 6);
    assert_eq!(stats.effective_range, [6, 6]);
    let full = norm(&s.net.full_gradient(&s.upstream));
    assert!((stats.by_length[0].grad_per_path - full).abs() <= 1e-12 * full);
}

#[test]
fn veit_54_blocks_gradient_comes_from_short_paths() {
    let depth = 54;
    let skip = SkipMode::Residual { scale: 1.0 };
    // The residual-deep preset's initialisation (σ_w² = 0.5, σ_b² = 0), narrower for speed.
    let mut spec = model(depth, 24, 0.5, skip);
    spec.init.bias_var = 0.0;
    let mut params = params_for(&spec, 2, 3, -1.0, 7);
    let batch = Batch::random(32, 2, 3, true, 8);
    let result = main_head_backprop(&mut params, &spec, &batch);
    let upstream: Vec<f64> = result.hidden_grads[depth - 1]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let net = PathNetwork::new(&params, spec.activation, skip, &batch.x).expect("residual");
    let stats = net.stats(&upstream, 8, 0);
    let count_peak = peak_length(
        &stats
            .by_length
            .iter()
            .map(|l| l.paths_log10)
            .collect::<Vec<_>>(),
    );
    let [lo, hi] = stats.effective_range;
    let share_log10 = {
        // Fraction of all 2ⁿ paths whose length is inside the effective range.
        let sum: f64 = stats.by_length[lo..=hi]
            .iter()
            .map(|l| 10f64.powf(l.paths_log10 - depth as f64 * 2f64.log10()))
            .sum();
        sum.log10()
    };
    println!(
        "54-block residual tanh (width 24, σ_w² 0.5, batch 32, M 8): contribution peak {}, \
         mean length {:.2}, 90 % effective range {lo}–{hi} ({:.3} % of all paths); \
         path counts peak at {count_peak}",
        stats.peak_length,
        stats.mean_length,
        100.0 * 10f64.powf(share_log10)
    );
    assert_eq!(count_peak, 27);
    assert!(
        stats.peak_length + 5 <= depth / 2,
        "peak {}",
        stats.peak_length
    );
    assert!(stats.mean_length < 22.0, "mean {}", stats.mean_length);
    assert!(hi < depth / 2 + 5 && lo > 0, "range {lo}–{hi}");
    let total: f64 = stats.by_length.iter().map(|l| l.contribution).sum();
    assert!((total - 1.0).abs() < 1e-9);
}
