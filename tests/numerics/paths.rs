//! Path-length decompositions: the exact 2ⁿ-path oracle against dfdx's backward pass, the exact
//! split by length against dfdx and against enumeration, the sampled estimator (and its
//! standard error) against exact per-length means, and Veit's 54-block observation.

use crate::common::{Batch, params_for};
use gradlab::config::{
    Activation, AuxSpec, InitSpec, ModelKind, ModelSpec, SkipMode, WeightDistribution,
};
use gradlab::model::{Backprop, MlpParams, Switches, backprop};
use gradlab::paths::{
    PathNetwork, effective_range, exact_mean_length, exact_shares, norm, peak_length, summarise,
};

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
        carry_bias: Default::default(),
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
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
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
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

const SKIPS: [SkipMode; 3] = [
    SkipMode::Residual { scale: 1.0 },
    SkipMode::Residual { scale: 0.5 },
    SkipMode::Highway,
];

#[test]
fn exact_split_sums_to_the_dfdx_input_gradient() {
    for skip in SKIPS {
        for depth in [2, 7, 16, 33] {
            for seed in [1, 2, 3] {
                let width = 8;
                let s = setup(depth, width, width, skip, seed);
                let split = s.net.exact_split(&s.upstream);
                assert_eq!(split.len(), depth + 1, "lengths 0..=n");
                let mut sum = vec![0.0; s.net.gradient_len()];
                for g in &split {
                    sum.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                }
                let vs_full = relative_error(&sum, &s.net.full_gradient(&s.upstream));
                let dx = through_input_projection(&sum, &s.params, s.batch.rows);
                let vs_dfdx = relative_error(&dx, &s.input_grad);
                let what = format!("{skip:?} n={depth} seed {seed}");
                assert!(vs_full < 1e-12, "{what}: vs full Jacobian {vs_full:e}");
                assert!(vs_dfdx < 1e-4, "{what}: vs dfdx ∂L/∂x {vs_dfdx:e}");
                let shares = exact_shares(&split);
                let total: f64 = shares.iter().map(|l| l.share).sum();
                assert!((total - 1.0).abs() < 1e-9, "{what}: shares sum to {total}");
                let stats = s.net.stats(&s.upstream, 4, seed);
                assert_eq!(stats.exact_by_length, shares);
                assert_eq!(stats.rows, Some(s.batch.rows));
            }
        }
    }
}

#[test]
fn exact_split_is_the_sum_of_the_paths_of_each_length() {
    let n = 6;
    for skip in SKIPS {
        let s = setup(n, 8, 4, skip, 9);
        let split = s.net.exact_split(&s.upstream);
        let mut by_length = vec![vec![0.0; s.net.gradient_len()]; n + 1];
        let mut transform = vec![false; n];
        for mask in 0u32..(1 << n) {
            for (l, t) in transform.iter_mut().enumerate() {
                *t = mask >> l & 1 == 1;
            }
            let g = s.net.path_gradient(&s.upstream, &transform);
            let k = mask.count_ones() as usize;
            by_length[k].iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
        for (k, (fast, brute)) in split.iter().zip(&by_length).enumerate() {
            let error = relative_error(fast, brute);
            assert!(error < 1e-12, "{skip:?} k={k}: {error:e}");
            assert!(
                norm(brute) > 0.0,
                "{skip:?} k={k}: every length carries gradient"
            );
        }
        // The shares from the enumeration, computed here by hand.
        let total: Vec<f64> = (0..s.net.gradient_len())
            .map(|i| by_length.iter().map(|g| g[i]).sum())
            .collect();
        let energy: f64 = total.iter().map(|v| v * v).sum();
        for (k, entry) in exact_shares(&split).iter().enumerate() {
            let share = by_length[k]
                .iter()
                .zip(&total)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / energy;
            assert!((entry.share - share).abs() < 1e-12, "{skip:?} k={k}");
            assert!((entry.grad_norm - norm(&by_length[k])).abs() <= 1e-12 * entry.grad_norm);
        }
    }
}

#[test]
fn plain_nets_split_into_one_length() {
    let s = setup(5, 8, 4, SkipMode::Plain, 4);
    let split = s.net.exact_split(&s.upstream);
    assert!(split[..5].iter().all(|g| norm(g) == 0.0));
    assert_eq!(split[5], s.net.full_gradient(&s.upstream));
    let stats = s.net.stats(&s.upstream, 4, 0);
    assert_eq!(stats.exact_by_length.len(), 1);
    assert_eq!(stats.exact_by_length[0].length, 5);
    assert_eq!(stats.exact_by_length[0].share, 1.0);
}

/// The reported standard errors against the spread of the estimate over independent seeds: the
/// estimator's own Monte-Carlo check.
#[test]
fn standard_errors_match_the_spread_over_seeds() {
    let s = setup(10, 8, 4, SkipMode::Residual { scale: 1.0 }, 3);
    let (samples, seeds) = (8, 400);
    let runs: Vec<_> = (0..seeds)
        .map(|seed| s.net.stats(&s.upstream, samples, seed))
        .collect();
    let n = s.net.blocks();
    let mut ratios = Vec::new();
    for k in 0..=n {
        let values: Vec<f64> = runs.iter().map(|r| r.by_length[k].contribution).collect();
        let mean = values.iter().sum::<f64>() / seeds as f64;
        let spread =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (seeds - 1) as f64).sqrt();
        let reported = runs
            .iter()
            .map(|r| r.by_length[k].contribution_se.expect("M > 1"))
            .sum::<f64>()
            / seeds as f64;
        let entry = &runs[0].by_length[k];
        if entry.paths_used == Some(samples) && entry.grad_per_path_se != Some(0.0) {
            ratios.push((k, reported / spread));
        } else {
            // Enumerated lengths: the grad term is exact, only the normalisation moves.
            assert!(entry.grad_per_path_se == Some(0.0), "k={k}");
        }
    }
    println!("reported SE / spread over {seeds} seeds, per length (M = {samples}): {ratios:.2?}");
    assert!(!ratios.is_empty());
    for (k, ratio) in &ratios {
        assert!((0.6..1.5).contains(ratio), "k={k}: ratio {ratio}");
    }
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

    // The exact split of the same gradient: the shares add up, and sit at shorter lengths.
    let exact = &stats.exact_by_length;
    let shares: f64 = exact.iter().map(|l| l.share).sum();
    let exact_mean = exact_mean_length(exact);
    let negative: f64 = exact.iter().map(|l| l.share.min(0.0)).sum();
    println!(
        "exact split: peak {}, mean length {exact_mean:.2} (Veit's profile: {:.2}), shares sum \
         to {shares:.12}, negative shares total {negative:.3}",
        stats.exact_peak_length.unwrap_or(usize::MAX),
        stats.mean_length
    );
    assert!((shares - 1.0).abs() < 1e-9);
    assert_eq!(stats.exact_mean_length, Some(exact_mean));
    assert!(exact_mean + 3.0 < stats.mean_length, "exact {exact_mean}");
}

#[test]
fn sampled_paths_give_the_same_statistics_on_one_thread_or_two() {
    for skip in [SkipMode::Residual { scale: 1.0 }, SkipMode::Highway] {
        let s = setup(7, 8, 2, skip, 11);
        let one = s.net.clone().on_threads(1).stats(&s.upstream, 4, 5);
        let two = s.net.clone().on_threads(2).stats(&s.upstream, 4, 5);
        assert_eq!(one, two, "{skip:?}");
        // C(7, k) > 4 for 1 ≤ k ≤ 6: those lengths are sampled, 0 and 7 enumerated.
        assert_eq!(one.by_length.len(), 8);
    }
}
