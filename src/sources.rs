//! Where each layer's gradient comes from: the main head, each dense read-out, each auxiliary
//! head. The objective is a sum of terms, so ∂L/∂h_l is the sum of each term's gradient, each
//! injected at the layer its head reads and carried down by the blocks' Jacobians.

use crate::config::{Activation, SkipMode};
use crate::model::{BatchTargets, Lesion, Matrix, MlpParams, Switches, forward};
use crate::paths::{PathNetwork, norm};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

/// Each source's gradient at every hidden layer (row-major rows × width, f64).
#[derive(Clone, Debug)]
pub struct SourceGradients {
    /// The main head (through the last layer).
    pub main: Vec<Vec<f64>>,
    /// Dense read-out r (through layer r), for r = 0..depth−1; empty unless the mode is dense.
    pub readouts: Vec<Vec<Vec<f64>>>,
    /// Auxiliary head i (through its layer); empty unless auxiliary losses are on.
    pub aux: Vec<Vec<Vec<f64>>>,
}

/// The norms of each source's share of ‖∂L/∂h_l‖ at one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSources {
    /// The hidden layer, numbered from 1 at the input (L1).
    pub layer: usize,
    /// ‖∂L/∂h_l‖ of the whole objective.
    pub total: f64,
    /// ‖∂L_main/∂h_l‖ through the main head.
    pub main: f64,
    /// ‖·‖ of the part carried by each dense read-out r (0 where r < l).
    pub readouts: Vec<f64>,
    /// ‖·‖ of the part from each (weighted) auxiliary loss (0 above its layer).
    pub aux: Vec<f64>,
}

impl LayerSources {
    /// Each part's norm as a share of the sum of the parts' norms, in the order main head,
    /// the dense read-outs together (only if there are any), each auxiliary head. The parts
    /// add up to the layer's gradient as vectors but are not orthogonal, so shares of the sum
    /// of norms are what can be stacked to 100 %. All zeros when nothing reaches the layer.
    pub fn shares(&self) -> Vec<f64> {
        let mut parts = vec![self.main];
        if !self.readouts.is_empty() {
            parts.push(self.readouts.iter().sum());
        }
        parts.extend(&self.aux);
        let total: f64 = parts.iter().sum();
        if total <= 0.0 || !total.is_finite() {
            return vec![0.0; parts.len()];
        }
        parts.iter().map(|p| p / total).collect()
    }
}

/// ∂ℓ/∂output of a loss at the outputs `out` (rows × outputs), scaled by `weight`.
fn output_gradient(out: &[f64], rows: usize, targets: &BatchTargets, weight: f64) -> Vec<f64> {
    let cols = out.len() / rows.max(1);
    match targets {
        BatchTargets::OneHot(one_hot) => {
            let one_hot = one_hot.as_vec();
            let mut grad = vec![0.0; out.len()];
            for r in 0..rows {
                let row = &out[r * cols..(r + 1) * cols];
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
                for c in 0..cols {
                    let p = (row[c] - max).exp() / sum;
                    grad[r * cols + c] =
                        weight * (p - f64::from(one_hot[r * cols + c])) / rows as f64;
                }
            }
            grad
        }
        BatchTargets::Values(values) => out
            .iter()
            .zip(values.as_vec())
            .map(|(o, t)| weight * 2.0 * (o - f64::from(t)) / out.len() as f64)
            .collect(),
    }
}

/// `a (rows × k) · wᵀ` for `w` stored as (width × k): a head's backward to its input.
fn times_transposed(a: &[f64], rows: usize, w: &[f32], width: usize) -> Vec<f64> {
    let k = w.len() / width.max(1);
    let mut out = vec![0.0; rows * width];
    for r in 0..rows {
        for i in 0..width {
            out[r * width + i] = (0..k).map(|c| a[r * k + c] * f64::from(w[i * k + c])).sum();
        }
    }
    out
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

/// Splits ∂L/∂h_l by source on the batch `x` (rows × input dims) with `targets`.
pub fn source_gradients(
    params: &MlpParams,
    act: Activation,
    switches: &Switches,
    x: &Matrix,
    targets: &BatchTargets,
) -> Option<SourceGradients> {
    if crate::paths::not_defined(switches.norm, switches.skip, switches.branch_scale).is_some() {
        return None;
    }
    let rows = x.shape().0;
    let depth = params.layers.len();
    let chain = PathNetwork::chain(params, act, switches.skip, &x.as_vec())?;
    let pass = forward(params, act, switches, x.clone(), targets, Lesion::default());
    let width = params.head_weight.shape().0;
    let dlogits = output_gradient(&to_f64(&pass.logits.as_vec()), rows, targets, 1.0);

    // Carries a gradient injected at h_from down to h_0; zero above `from`.
    let carry = |from: usize, injected: Vec<f64>| -> Vec<Vec<f64>> {
        let mut grads = vec![vec![0.0; rows * width]; depth];
        grads[from] = injected;
        for l in (1..=from).rev() {
            grads[l - 1] = chain.block_backward(l, &grads[l]);
        }
        grads
    };
    let main = carry(
        depth - 1,
        times_transposed(&dlogits, rows, &params.head_weight.as_vec(), width),
    );
    let readouts = if matches!(switches.skip, SkipMode::Dense) {
        (0..depth - 1)
            .map(|r| {
                carry(
                    r,
                    times_transposed(&dlogits, rows, &params.layers[r].readout.as_vec(), width),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let aux = if switches.aux_enabled {
        params
            .aux_heads
            .iter()
            .map(|head| {
                let h = pass.hidden[head.after_layer].clone();
                let out = h.matmul(head.weight.clone());
                let shape = *out.shape();
                let out = out + head.bias.clone().broadcast_like::<_, Axis<0>>(&shape);
                let d = output_gradient(
                    &to_f64(&out.as_vec()),
                    rows,
                    targets,
                    f64::from(switches.aux_weight),
                );
                carry(
                    head.after_layer,
                    times_transposed(&d, rows, &head.weight.as_vec(), width),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(SourceGradients {
        main,
        readouts,
        aux,
    })
}

/// Per-layer norms of each source's share.
pub fn summarise_sources(sources: &SourceGradients) -> Vec<LayerSources> {
    (0..sources.main.len())
        .map(|layer| {
            let mut total = sources.main[layer].clone();
            for g in sources.readouts.iter().chain(&sources.aux) {
                total.iter_mut().zip(&g[layer]).for_each(|(t, v)| *t += v);
            }
            LayerSources {
                layer: layer + 1,
                total: norm(&total),
                main: norm(&sources.main[layer]),
                readouts: sources.readouts.iter().map(|g| norm(&g[layer])).collect(),
                aux: sources.aux.iter().map(|g| norm(&g[layer])).collect(),
            }
        })
        .collect()
}
