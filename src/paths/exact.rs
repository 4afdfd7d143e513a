//! The exact path-length split of the gradient at h_in.
//!
//! Block l's backward Jacobian is the sum of its skip branch S_l and transform branch T_l
//! (see the parent module), so the gradient at h_in is (S_1 + T_1)ᵀ ⋯ (S_n + T_n)ᵀ applied to
//! ∂L/∂h_last. Putting a `t` on every transform branch, ∏(S_l + t·T_l)ᵀ is a polynomial in t
//! whose coefficient of t^k, applied to ∂L/∂h_last, is g_k: the sum of the gradients of all
//! C(n, k) paths through exactly k transform branches. At t = 1 the coefficients add up to the
//! gradient g itself, so unlike norms of path gradients (which do not add), the g_k split it.
//! Each length's part of g is its projection ⟨g_k, g⟩/‖g‖² (Frobenius inner product over the
//! sub-batch's rows): these shares sum to 1, and a length whose g_k points against g has a
//! negative share.
//!
//! The backward pass carries the whole polynomial: one vector of coefficients per power of t,
//! each block mapping g_k ← S_lᵀ g_k + T_lᵀ g_{k−1}. After j blocks only g_0..g_j are non-zero,
//! so the cost is n(n+1)/2 transform branches, fewer than one Veit estimate with M ≥ 1.

use super::{PathNetwork, norm};
use serde::{Deserialize, Serialize};

/// One path length's part of the exact split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExactLength {
    /// Path length k: the number of transform branches on the paths.
    pub length: usize,
    /// ⟨g_k, g⟩/‖g‖²: the projection onto the gradient g at h_in of g_k, the summed gradient
    /// of every path of this length. Shares sum to 1 over the lengths; negative when g_k
    /// points against g.
    pub share: f64,
    /// ‖g_k‖, Frobenius norm over the sub-batch.
    pub grad_norm: f64,
}

impl PathNetwork {
    /// g_0..g_n (index = length): the coefficients of t^k in ∏(S_l + t·T_l)ᵀ applied to
    /// `upstream` (∂L/∂h_last). They sum to `full_gradient(upstream)`. A plain net has no skip
    /// branch: its one path has length n.
    pub fn exact_split(&self, upstream: &[f64]) -> Vec<Vec<f64>> {
        let n = self.blocks.len();
        if !self.has_skips() {
            let mut split = vec![vec![0.0; upstream.len()]; n];
            split.push(self.full_gradient(upstream));
            return split;
        }
        let mut coefficients = vec![upstream.to_vec()];
        for l in (0..n).rev() {
            let mut next: Vec<Vec<f64>> = coefficients
                .iter()
                .map(|g| self.skip_branch(l, g))
                .collect();
            next.push(vec![0.0; upstream.len()]);
            for (k, g) in coefficients.iter().enumerate() {
                let through = self.transform_branch(l, g);
                next[k + 1]
                    .iter_mut()
                    .zip(through)
                    .for_each(|(a, b)| *a += b);
            }
            coefficients = next;
        }
        coefficients
    }

    /// The exact split as shares of the gradient at h_in, shortest length first.
    pub fn exact_by_length(&self, upstream: &[f64]) -> Vec<ExactLength> {
        exact_shares(&self.exact_split(upstream))
    }
}

/// Each coefficient's projection onto their sum, with its norm. All shares are NaN when the
/// sum is zero (no gradient to split).
pub fn exact_shares(split: &[Vec<f64>]) -> Vec<ExactLength> {
    let len = split.first().map_or(0, Vec::len);
    let mut total = vec![0.0; len];
    for g in split {
        total.iter_mut().zip(g).for_each(|(a, b)| *a += b);
    }
    let energy = norm(&total).powi(2);
    split
        .iter()
        .enumerate()
        .map(|(k, g)| ExactLength {
            length: k,
            share: g.iter().zip(&total).map(|(a, b)| a * b).sum::<f64>() / energy,
            grad_norm: norm(g),
        })
        .collect()
}

/// Σ k·share_k: the share-weighted mean length (the shares sum to 1).
pub fn exact_mean_length(split: &[ExactLength]) -> f64 {
    split.iter().map(|l| l.length as f64 * l.share).sum()
}

/// The length with the largest share (the first on ties).
pub fn exact_peak_length(split: &[ExactLength]) -> usize {
    split
        .iter()
        .fold((0, f64::NEG_INFINITY), |best, l| {
            if l.share > best.1 {
                (l.length, l.share)
            } else {
                best
            }
        })
        .0
}
