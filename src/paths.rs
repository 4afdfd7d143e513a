//! Path-length decompositions of the input-side gradient of a chain of residual or highway
//! blocks.
//!
//! Each residual or highway block's backward Jacobian splits into two branches that sum to it:
//!
//! * residual `h' = scale·h + φ(hW + b)`: skip `g ↦ scale·g`, transform `g ↦ (g⊙φ′(z))Wᵀ`;
//! * highway `h' = h + T⊙(f − h)`, `T = σ(hW_T + b_T)`: carry `g ↦ g⊙(1−T)`, transform
//!   `g ↦ (g⊙T⊙φ′(z))Wᵀ + (g⊙(f−h)⊙T⊙(1−T))W_Tᵀ`.
//!
//! A path picks one branch per block; its length is the number of transform branches. Because
//! the backward pass is linear in the upstream gradient, the 2ⁿ path gradients sum exactly to
//! the full gradient. The gradient is taken at **h_in, the output of the input projection**
//! (the input of block 1), so every block takes part; the upstream gradient is ∂L/∂h_last of
//! the main loss (auxiliary heads and dense read-outs inject gradient elsewhere and are not
//! decomposed here). Norms are Frobenius norms over the sub-batch, like `act_grad_norm`.
//!
//! Two views per length k, both here:
//!
//! * **Veit's profile** (Veit, Wilber & Belongie 2016, "Residual networks behave like
//!   ensembles of relatively shallow networks"): C(n, k)·E‖g_path‖, the number of length-k
//!   paths times the mean norm of one path's gradient, normalised over k. It measures how much
//!   gradient *magnitude* paths of each length carry; it is not a share of the gradient, since
//!   norms of path gradients do not add (they partly cancel). E‖g_path‖ is estimated from M
//!   random paths per length, with its standard error.
//! * **The exact split** (`exact`): g_k, the sum of all length-k path gradients, from one
//!   polynomial backward pass; Σ g_k is the gradient, and ⟨g_k, g⟩/‖g‖² is the share of it
//!   paths of length k carry. Not sampled: exact for the sub-batch.
//!
//! Everything runs on the host in f64: the sub-batch is small and the cost is dominated by
//! n·(n+1)·M small matrix products, off the training hot path.

mod exact;

pub use exact::{ExactLength, exact_mean_length, exact_peak_length, exact_shares};

use crate::config::{Activation, BranchScale, NormKind, SkipMode};
use crate::model::MlpParams;
use crate::theory::{binomial_log10, phi, phi_prime};
use dfdx::prelude::HasShape;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// Share of the total contribution the effective range must hold.
pub const EFFECTIVE_MASS: f64 = 0.9;

/// How a block's backward Jacobian is split.
#[derive(Clone, Copy, Debug, PartialEq)]
enum BlockKind {
    /// No skip branch: the only path is through every transform.
    Plain,
    /// `scale·h + f`.
    Residual(f64),
    /// `h + T⊙(f − h)`.
    Highway,
}

/// What the backward pass of one block needs from its forward pass (row-major rows × width).
#[derive(Clone, Debug)]
struct BlockCache {
    /// φ′(z), z the transform's pre-activation.
    slope: Vec<f64>,
    /// The gate T (highway only).
    gate: Vec<f64>,
    /// f − h (highway only).
    f_minus_h: Vec<f64>,
    /// Transform weights transposed, Wᵀ (width × width), f64 copy: the backward multiplies
    /// by it for every path sampled.
    weight_t: Vec<f64>,
    /// Gate weights transposed, W_Tᵀ (highway only).
    gate_weight_t: Vec<f64>,
}

/// A network's blocks, run forward on a sub-batch and ready to backpropagate along any path.
#[derive(Clone, Debug)]
pub struct PathNetwork {
    kind: BlockKind,
    rows: usize,
    width: usize,
    blocks: Vec<BlockCache>,
    /// Threads the sampled paths' backward passes may run on (the results do not depend on it).
    threads: usize,
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

/// `a (rows × inner) · w (inner × cols)`.
fn matmul(a: &[f64], rows: usize, inner: usize, w: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        let out_row = &mut out[r * cols..(r + 1) * cols];
        for (k, &a_rk) in a[r * inner..(r + 1) * inner].iter().enumerate() {
            if a_rk == 0.0 {
                continue;
            }
            for (o, &w_kc) in out_row.iter_mut().zip(&w[k * cols..(k + 1) * cols]) {
                *o += a_rk * w_kc;
            }
        }
    }
    out
}

/// The square `w` (width × width) transposed.
fn transposed(w: &[f64], width: usize) -> Vec<f64> {
    let mut w_t = vec![0.0; width * width];
    for (i, row) in w.chunks_exact(width).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            w_t[k * width + i] = v;
        }
    }
    w_t
}

fn add_bias(z: &mut [f64], bias: &[f64]) {
    for row in z.chunks_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Frobenius norm.
pub fn norm(values: &[f64]) -> f64 {
    values.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Why the path analysis cannot be computed for a net with these switches, or `None` when it
/// can: the decomposition is a sum over products of the blocks' branch Jacobians with plain
/// identity or scaled shortcuts, and a normalisation step (which couples the units of a row,
/// or the rows of a batch) or a branch factor α is not part of that chain here.
pub fn not_defined(norm: NormKind, skip: SkipMode, branch: BranchScale) -> Option<&'static str> {
    if norm != NormKind::None {
        return Some("not defined with normalisation");
    }
    if matches!(skip, SkipMode::Residual { .. }) && branch != BranchScale::One {
        return Some("not computed with a branch factor α ≠ 1");
    }
    None
}

impl PathNetwork {
    /// Runs the network forward on `x` (rows × input dims, row-major) and caches what each
    /// block's branches need. `None` for dense nets, whose read-outs feed the loss from every
    /// layer and so are not a single chain of blocks.
    pub fn new(params: &MlpParams, act: Activation, skip: SkipMode, x: &[f32]) -> Option<Self> {
        if matches!(skip, SkipMode::Dense) {
            return None;
        }
        Self::chain(params, act, skip, x)
    }

    /// Like `new`, but a dense net is taken as its chain of plain blocks (its read-outs are
    /// handled by the caller, as in `sources`).
    pub fn chain(params: &MlpParams, act: Activation, skip: SkipMode, x: &[f32]) -> Option<Self> {
        let kind = match skip {
            SkipMode::Plain | SkipMode::Dense => BlockKind::Plain,
            SkipMode::Residual { scale } => BlockKind::Residual(f64::from(scale)),
            SkipMode::Highway => BlockKind::Highway,
        };
        let (dims, width) = *params.input_weight.shape();
        if dims == 0 || !x.len().is_multiple_of(dims) {
            return None;
        }
        let rows = x.len() / dims;
        let mut h = matmul(
            &to_f64(x),
            rows,
            dims,
            &to_f64(&params.input_weight.as_vec()),
            width,
        );
        add_bias(&mut h, &to_f64(&params.input_bias.as_vec()));
        let mut blocks = Vec::with_capacity(params.layers.len());
        for layer in &params.layers {
            let weight = to_f64(&layer.weight.as_vec());
            let mut z = matmul(&h, rows, width, &weight, width);
            add_bias(&mut z, &to_f64(&layer.bias.as_vec()));
            let f: Vec<f64> = z.iter().map(|&v| phi(act, v)).collect();
            let slope: Vec<f64> = z.iter().map(|&v| phi_prime(act, v)).collect();
            let mut cache = BlockCache {
                slope,
                gate: Vec::new(),
                f_minus_h: Vec::new(),
                weight_t: transposed(&weight, width),
                gate_weight_t: Vec::new(),
            };
            h = match kind {
                BlockKind::Plain => f,
                BlockKind::Residual(scale) => {
                    f.iter().zip(&h).map(|(f, h)| scale * h + f).collect()
                }
                BlockKind::Highway => {
                    let gate_weight = to_f64(&layer.gate_weight.as_vec());
                    let mut a = matmul(&h, rows, width, &gate_weight, width);
                    add_bias(&mut a, &to_f64(&layer.gate_bias.as_vec()));
                    let gate: Vec<f64> = a.into_iter().map(sigmoid).collect();
                    let f_minus_h: Vec<f64> = f.iter().zip(&h).map(|(f, h)| f - h).collect();
                    let next = h
                        .iter()
                        .zip(gate.iter().zip(&f_minus_h))
                        .map(|(h, (t, d))| h + t * d)
                        .collect();
                    cache.gate = gate;
                    cache.f_minus_h = f_minus_h;
                    cache.gate_weight_t = transposed(&gate_weight, width);
                    next
                }
            };
            blocks.push(cache);
        }
        Some(Self {
            kind,
            rows,
            width,
            blocks,
            threads: 1,
        })
    }

    /// Lets the sampled paths run on up to `threads` threads (a run's own two: the shard
    /// worker is idle while the trainer thread analyses).
    pub fn on_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Number of blocks n.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Rows × width of every gradient this network takes and returns.
    pub fn gradient_len(&self) -> usize {
        self.rows * self.width
    }

    /// Whether the blocks have a skip branch (plain nets have a single path).
    pub fn has_skips(&self) -> bool {
        self.kind != BlockKind::Plain
    }

    /// The skip (carry) branch of block `l` applied to `g`.
    fn skip_branch(&self, l: usize, g: &[f64]) -> Vec<f64> {
        match self.kind {
            BlockKind::Plain => vec![0.0; g.len()],
            BlockKind::Residual(scale) => g.iter().map(|v| scale * v).collect(),
            BlockKind::Highway => g
                .iter()
                .zip(&self.blocks[l].gate)
                .map(|(g, t)| g * (1.0 - t))
                .collect(),
        }
    }

    /// The transform branch of block `l` applied to `g`.
    fn transform_branch(&self, l: usize, g: &[f64]) -> Vec<f64> {
        let block = &self.blocks[l];
        match self.kind {
            BlockKind::Plain | BlockKind::Residual(_) => {
                let dz: Vec<f64> = g.iter().zip(&block.slope).map(|(g, s)| g * s).collect();
                // g·Wᵀ as sums of scaled rows of Wᵀ, which vectorise (dot products do not).
                matmul(&dz, self.rows, self.width, &block.weight_t, self.width)
            }
            BlockKind::Highway => {
                let dz: Vec<f64> = g
                    .iter()
                    .zip(block.gate.iter().zip(&block.slope))
                    .map(|(g, (t, s))| g * t * s)
                    .collect();
                let da: Vec<f64> = g
                    .iter()
                    .zip(block.gate.iter().zip(&block.f_minus_h))
                    .map(|(g, (t, d))| g * d * t * (1.0 - t))
                    .collect();
                let mut out = matmul(&dz, self.rows, self.width, &block.weight_t, self.width);
                let through_gate =
                    matmul(&da, self.rows, self.width, &block.gate_weight_t, self.width);
                out.iter_mut().zip(through_gate).for_each(|(o, v)| *o += v);
                out
            }
        }
    }

    /// The gradient at h_in carried by one path: `transform[l]` picks block l's transform
    /// branch, otherwise its skip. `upstream` is ∂L/∂h_last (rows × width).
    pub fn path_gradient(&self, upstream: &[f64], transform: &[bool]) -> Vec<f64> {
        let mut g = upstream.to_vec();
        for l in (0..self.blocks.len()).rev() {
            g = if transform.get(l).copied().unwrap_or(false) {
                self.transform_branch(l, &g)
            } else {
                self.skip_branch(l, &g)
            };
        }
        g
    }

    /// The full gradient at h_in: every block's whole Jacobian (skip + transform).
    pub fn full_gradient(&self, upstream: &[f64]) -> Vec<f64> {
        let mut g = upstream.to_vec();
        for l in (0..self.blocks.len()).rev() {
            g = self.block_backward(l, &g);
        }
        g
    }

    /// Block `l`'s whole Jacobian (skip + transform) applied to `g`, the gradient at its
    /// output: the gradient at its input.
    pub fn block_backward(&self, l: usize, g: &[f64]) -> Vec<f64> {
        let mut next = self.transform_branch(l, g);
        if self.has_skips() {
            next.iter_mut()
                .zip(self.skip_branch(l, g))
                .for_each(|(a, b)| *a += b);
        }
        next
    }

    /// Mean norm of the path gradient for each length k = 0..=n over **all** 2ⁿ paths.
    /// Exponential in n: meant as the oracle for small nets (n ≤ ~16).
    pub fn exact_grad_per_path(&self, upstream: &[f64]) -> Vec<f64> {
        let n = self.blocks.len();
        let mut sums = vec![0.0; n + 1];
        let mut counts = vec![0usize; n + 1];
        let mut transform = vec![false; n];
        for mask in 0u64..(1u64 << n) {
            for (l, t) in transform.iter_mut().enumerate() {
                *t = mask >> l & 1 == 1;
            }
            let k = mask.count_ones() as usize;
            sums[k] += norm(&self.path_gradient(upstream, &transform));
            counts[k] += 1;
        }
        sums.iter()
            .zip(counts)
            .map(|(s, c)| s / c.max(1) as f64)
            .collect()
    }

    /// Veit's estimator of the mean path-gradient norm per length k = 0..=n: `samples` random
    /// k-subsets of blocks take the transform branch, the rest the skip. Lengths with at most
    /// `samples` paths are enumerated exactly instead. Deterministic given `seed`.
    pub fn sampled_grad_per_path(&self, upstream: &[f64], samples: usize, seed: u64) -> Vec<f64> {
        self.sampled_path_norms(upstream, samples, seed)
            .iter()
            .map(|s| s.mean)
            .collect()
    }

    /// Like `sampled_grad_per_path`, with each length's standard error and paths used.
    pub fn sampled_path_norms(
        &self,
        upstream: &[f64],
        samples: usize,
        seed: u64,
    ) -> Vec<SampledNorms> {
        let n = self.blocks.len();
        let samples = samples.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        // Every length's subsets drawn first, in length order (so the draws do not depend on
        // threads); then every path's backward pass, in parallel and returned in order.
        let lengths: Vec<(bool, Vec<Vec<usize>>)> = (0..=n)
            .map(|k| {
                let enumerated = binomial_log10(n, k) <= (samples as f64).log10() + 1e-9;
                let subsets: Vec<Vec<usize>> = if enumerated {
                    k_subsets(n, k)
                } else {
                    (0..samples)
                        .map(|_| rand::seq::index::sample(&mut rng, n, k).into_vec())
                        .collect()
                };
                (enumerated, subsets)
            })
            .collect();
        let paths: Vec<&Vec<usize>> = lengths.iter().flat_map(|(_, s)| s).collect();
        let norms = crate::parallel::map_in_order(&paths, self.threads, |subset| {
            let mut transform = vec![false; n];
            subset.iter().for_each(|&l| transform[l] = true);
            norm(&self.path_gradient(upstream, &transform))
        });
        let mut next = norms.iter();
        lengths
            .iter()
            .map(|(enumerated, subsets)| {
                let norms: Vec<f64> = next.by_ref().take(subsets.len()).copied().collect();
                SampledNorms::of(&norms, *enumerated)
            })
            .collect()
    }

    /// Veit's profile (M = `samples` random paths per length) and the exact split of this
    /// network for upstream gradient ∂L/∂h_last; plain nets report their single path of
    /// length n.
    pub fn stats(&self, upstream: &[f64], samples: usize, seed: u64) -> PathStats {
        let n = self.blocks.len();
        if !self.has_skips() {
            let g = norm(&self.path_gradient(upstream, &vec![true; n]));
            return PathStats {
                blocks: n,
                samples_per_length: 1,
                peak_length: n,
                mean_length: n as f64,
                effective_range: [n, n],
                by_length: vec![LengthStats {
                    length: n,
                    paths_log10: 0.0,
                    grad_per_path: g,
                    contribution: 1.0,
                    paths_used: Some(1),
                    grad_per_path_se: Some(0.0),
                    contribution_se: Some(0.0),
                }],
                rows: Some(self.rows),
                exact_by_length: vec![ExactLength {
                    length: n,
                    share: 1.0,
                    grad_norm: g,
                }],
                exact_peak_length: Some(n),
                exact_mean_length: Some(n as f64),
            };
        }
        let sampled = self.sampled_path_norms(upstream, samples, seed);
        let mut stats = summarise_sampled(&sampled, samples);
        let exact = self.exact_by_length(upstream);
        stats.rows = Some(self.rows);
        stats.exact_peak_length = Some(exact_peak_length(&exact));
        stats.exact_mean_length = Some(exact_mean_length(&exact));
        stats.exact_by_length = exact;
        stats
    }
}

/// The sampled norms of one length's path gradients, summarised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampledNorms {
    /// Mean norm of the paths used.
    pub mean: f64,
    /// Standard error of `mean` as an estimate of the mean over every path of this length:
    /// 0 when every path was used, None from a single sample.
    pub se: Option<f64>,
    /// Paths used.
    pub paths: usize,
}

impl SampledNorms {
    /// Summarises `norms`; `enumerated` when they are every path of the length.
    pub fn of(norms: &[f64], enumerated: bool) -> Self {
        let m = norms.len();
        let mean = norms.iter().sum::<f64>() / m.max(1) as f64;
        let se = if enumerated {
            Some(0.0)
        } else if m > 1 {
            // Independent uniform draws: the sample variance over m, Bessel-corrected.
            let var = norms.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
            Some((var / m as f64).sqrt())
        } else {
            None
        };
        Self { mean, se, paths: m }
    }
}

/// Every k-subset of 0..n in lexicographic order (only called when there are few).
fn k_subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..k).collect();
    loop {
        out.push(current.clone());
        // Advance the rightmost index that still has room.
        let Some(i) = (0..k).rev().find(|&i| current[i] < n - k + i) else {
            return out;
        };
        current[i] += 1;
        for j in i + 1..k {
            current[j] = current[j - 1] + 1;
        }
    }
}

/// One path length's numbers in Veit's profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthStats {
    /// Path length k: the number of transform branches on the path.
    pub length: usize,
    /// log10 C(n, k), the number of paths of this length.
    pub paths_log10: f64,
    /// Mean Frobenius norm of the gradient at h_in carried by one path of this length
    /// (estimated from `paths_used` paths unless they are all of them).
    pub grad_per_path: f64,
    /// Veit's profile: C(n, k)·grad_per_path normalised over all lengths to sum to 1. A
    /// magnitude profile, not a share of the gradient (norms of path gradients do not add;
    /// `PathStats::exact_by_length` is the split that does).
    pub contribution: f64,
    /// Paths whose gradient was computed for this length (all C(n, k) when that is at most
    /// M). None in recordings made before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths_used: Option<usize>,
    /// Standard error of `grad_per_path` (0 when every path was used; None from one sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_per_path_se: Option<f64>,
    /// Standard error of `contribution`, propagated from every length's `grad_per_path_se`
    /// to first order (the lengths are sampled independently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution_se: Option<f64>,
}

/// The path-length decompositions of one network, the `"paths"` object of `--json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathStats {
    /// Number of blocks n.
    pub blocks: usize,
    /// Random paths sampled per length for Veit's profile (M).
    pub samples_per_length: usize,
    /// The length where Veit's profile peaks.
    pub peak_length: usize,
    /// Mean path length weighted by Veit's profile.
    pub mean_length: f64,
    /// Shortest contiguous range of lengths holding ≥ 90 % of Veit's profile, inclusive.
    pub effective_range: [usize; 2],
    /// Veit's profile per length, shortest first.
    pub by_length: Vec<LengthStats>,
    /// The sub-batch: the first `rows` rows of the training split. None in recordings made
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// The exact split of the gradient at h_in by path length (exact for the sub-batch, not
    /// sampled), shortest first; the shares sum to 1. Empty in recordings made before it
    /// existed (and then left out when written, so such recordings round-trip unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact_by_length: Vec<ExactLength>,
    /// The length with the largest exact share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_peak_length: Option<usize>,
    /// Σ k·share_k over the exact split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_mean_length: Option<f64>,
}

/// Veit's profile from sampled norms (index = length), with standard errors.
pub fn summarise_sampled(sampled: &[SampledNorms], samples: usize) -> PathStats {
    let means: Vec<f64> = sampled.iter().map(|s| s.mean).collect();
    let mut stats = summarise(&means, samples);
    // First-order propagation through c_k = C_k·m_k / Σ_j C_j·m_j, with r_j = se_j/m_j:
    // Var c_k = c_k²(1 − c_k)² r_k² + Σ_{j≠k} c_k² c_j² r_j².
    let rel: Option<Vec<f64>> = sampled
        .iter()
        .map(|s| {
            s.se.map(|se| if se == 0.0 { 0.0 } else { se / s.mean.abs() })
        })
        .collect();
    let contribution: Vec<f64> = stats.by_length.iter().map(|l| l.contribution).collect();
    for (k, (entry, s)) in stats.by_length.iter_mut().zip(sampled).enumerate() {
        entry.paths_used = Some(s.paths);
        entry.grad_per_path_se = s.se;
        entry.contribution_se = rel.as_ref().map(|rel| {
            let c_k = contribution[k];
            let var: f64 = contribution
                .iter()
                .zip(rel)
                .enumerate()
                .map(|(j, (c_j, r_j))| {
                    let d = if j == k { c_k * (1.0 - c_k) } else { c_k * c_j };
                    (d * r_j).powi(2)
                })
                .sum();
            var.sqrt()
        });
    }
    stats
}

/// Turns per-length mean path-gradient norms (index = length) into Veit's profile and its
/// peak, mean and effective range (no standard errors, no exact split).
pub fn summarise(grad_per_path: &[f64], samples: usize) -> PathStats {
    let n = grad_per_path.len().saturating_sub(1);
    // Contributions are C(n,k)·g_k with C(n,k) up to ~10^(0.3n): scale by the largest log
    // before leaving log space so deep nets do not overflow.
    let logs: Vec<f64> = grad_per_path
        .iter()
        .enumerate()
        .map(|(k, g)| binomial_log10(n, k) + g.log10())
        .collect();
    let max_log = logs
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let raw: Vec<f64> = logs
        .iter()
        .map(|&l| {
            if max_log.is_finite() {
                10f64.powf(l - max_log)
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = raw.iter().sum();
    let contribution: Vec<f64> = raw
        .iter()
        .map(|r| if total > 0.0 { r / total } else { 0.0 })
        .collect();
    let by_length = grad_per_path
        .iter()
        .zip(&contribution)
        .enumerate()
        .map(|(k, (&g, &c))| LengthStats {
            length: k,
            paths_log10: binomial_log10(n, k),
            grad_per_path: g,
            contribution: c,
            paths_used: None,
            grad_per_path_se: None,
            contribution_se: None,
        })
        .collect();
    let (lo, hi) = effective_range(&contribution, EFFECTIVE_MASS);
    PathStats {
        blocks: n,
        samples_per_length: samples,
        peak_length: peak_length(&contribution),
        mean_length: contribution
            .iter()
            .enumerate()
            .map(|(k, c)| k as f64 * c)
            .sum(),
        effective_range: [lo, hi],
        by_length,
        rows: None,
        exact_by_length: Vec::new(),
        exact_peak_length: None,
        exact_mean_length: None,
    }
}

/// Index of the largest contribution (the first on ties; 0 for an empty vector).
pub fn peak_length(contribution: &[f64]) -> usize {
    contribution
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (k, &c)| {
            if c > best.1 { (k, c) } else { best }
        })
        .0
}

/// Shortest contiguous `[lo, hi]` (inclusive) whose contributions sum to at least `mass` of
/// the total; among equally short ranges the one holding the most wins. Two pointers: O(n).
pub fn effective_range(contribution: &[f64], mass: f64) -> (usize, usize) {
    let total: f64 = contribution.iter().sum();
    if contribution.is_empty() || total <= 0.0 {
        return (0, contribution.len().saturating_sub(1));
    }
    // A relative tolerance keeps a range that holds exactly `mass` from failing on rounding.
    let target = mass * total * (1.0 - 1e-12);
    let mut best: Option<(usize, usize, f64)> = None;
    let mut lo = 0;
    let mut sum = 0.0;
    for (hi, &c) in contribution.iter().enumerate() {
        sum += c;
        while lo < hi && sum - contribution[lo] >= target {
            sum -= contribution[lo];
            lo += 1;
        }
        if sum >= target {
            let better = match best {
                None => true,
                Some((blo, bhi, bsum)) => {
                    hi - lo < bhi - blo || (hi - lo == bhi - blo && sum > bsum)
                }
            };
            if better {
                best = Some((lo, hi, sum));
            }
        }
    }
    best.map_or((0, contribution.len() - 1), |(lo, hi, _)| (lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_subsets_are_all_distinct_subsets() {
        let all = k_subsets(5, 2);
        assert_eq!(all.len(), 10);
        assert_eq!(k_subsets(4, 0), vec![Vec::<usize>::new()]);
        assert_eq!(k_subsets(3, 3), vec![vec![0, 1, 2]]);
    }
}
