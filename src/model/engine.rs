//! The training step of the deep MLP on preallocated f32 buffers: forward, loss, backward with
//! the rescaled backward signal (`scaled`), and every metric fused into the passes.
//!
//! dfdx's tape allocated, zeroed and copied every tensor of every step; here each buffer is
//! sized once and rewritten in place, products go straight to `gemm`, and the element-wise
//! work is one pass per block (`passes`). dfdx's ops stay the reference: `tests/numerics`
//! checks this engine against `model::backprop` (dfdx) and against finite differences in
//! every skip mode, with auxiliary heads, dense read-outs and lesions.

use super::kernels::{Operand, fill_rows, matmul};
use super::loss::{Targets, loss};
use super::norm::{self, NormBack, NormOut, NormParams, NormStats};
use super::passes::{
    HighwayBack, act_in_place, act_into, column_sums, highway_combine, residual_combine,
    residual_combine_branch, slope, slope_highway, slope_residual,
};
use super::scaled::{renormaliser, shift, to_true_scale, to_true_scale_from};
use crate::config::{Activation, BranchScale, NormKind, NormPlace, SkipMode};

/// Where each parameter sits in `MlpParams::params_mut` order.
pub mod slot {
    /// Input projection weight.
    pub const INPUT_WEIGHT: usize = 0;
    /// Input projection bias.
    pub const INPUT_BIAS: usize = 1;
    /// W_l.
    pub fn weight(l: usize) -> usize {
        2 + 5 * l
    }
    /// The hidden layer whose W_l sits at `index` in a net of `depth` layers, if any.
    pub fn weight_layer(index: usize, depth: usize) -> Option<usize> {
        let l = index.checked_sub(2)? / 5;
        (l < depth && weight(l) == index).then_some(l)
    }
    /// b_l.
    pub fn bias(l: usize) -> usize {
        3 + 5 * l
    }
    /// Highway gate weight of layer l.
    pub fn gate_weight(l: usize) -> usize {
        4 + 5 * l
    }
    /// Highway gate bias of layer l.
    pub fn gate_bias(l: usize) -> usize {
        5 + 5 * l
    }
    /// Dense read-out of layer l.
    pub fn readout(l: usize) -> usize {
        6 + 5 * l
    }
    /// Output head weight.
    pub fn head_weight(depth: usize) -> usize {
        2 + 5 * depth
    }
    /// Output head bias.
    pub fn head_bias(depth: usize) -> usize {
        3 + 5 * depth
    }
    /// Auxiliary head i's weight.
    pub fn aux_weight(depth: usize, i: usize) -> usize {
        4 + 5 * depth + 2 * i
    }
    /// Auxiliary head i's bias.
    pub fn aux_bias(depth: usize, i: usize) -> usize {
        5 + 5 * depth + 2 * i
    }
    /// The first slot after the `heads` auxiliary heads: the per-layer norm and branch
    /// parameters come last, so the older slots keep their indices.
    fn norm_base(depth: usize, heads: usize) -> usize {
        4 + 5 * depth + 2 * heads
    }
    /// The norm's gain γ of layer l.
    pub fn norm_gain(depth: usize, heads: usize, l: usize) -> usize {
        norm_base(depth, heads) + 5 * l
    }
    /// The norm's shift β of layer l.
    pub fn norm_shift(depth: usize, heads: usize, l: usize) -> usize {
        norm_base(depth, heads) + 5 * l + 1
    }
    /// BatchNorm's running mean of layer l.
    pub fn running_mean(depth: usize, heads: usize, l: usize) -> usize {
        norm_base(depth, heads) + 5 * l + 2
    }
    /// BatchNorm's running variance of layer l.
    pub fn running_var(depth: usize, heads: usize, l: usize) -> usize {
        norm_base(depth, heads) + 5 * l + 3
    }
    /// The residual-branch factor α of layer l (1 × 1).
    pub fn branch_alpha(depth: usize, heads: usize, l: usize) -> usize {
        norm_base(depth, heads) + 5 * l + 4
    }
}

/// The network's shape and the switches in effect.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// φ of the hidden layers.
    pub act: Activation,
    /// Skip mode in effect.
    pub skip: SkipMode,
    /// Whether the auxiliary losses are part of the objective.
    pub aux_enabled: bool,
    /// Weight of each auxiliary loss.
    pub aux_weight: f32,
    /// The hidden layer (0-based) each auxiliary head reads.
    pub aux_layers: Vec<usize>,
    /// Input dimensions.
    pub input: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Head outputs.
    pub outputs: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Normalisation in effect.
    pub norm: NormKind,
    /// Where the norm sits.
    pub norm_place: NormPlace,
    /// The factor on residual branches.
    pub branch_scale: BranchScale,
}

impl Net {
    /// Whether a training step couples the rows of its batch (BatchNorm normalises with the
    /// batch's statistics), so it cannot be split into independent shards of rows.
    pub fn couples_rows(&self) -> bool {
        self.norm == NormKind::BatchNorm
    }

    /// The norm's place in effect, or `None` without normalisation.
    pub fn norm_at(&self) -> Option<NormPlace> {
        (self.norm != NormKind::None).then_some(self.norm_place)
    }

    /// α on the residual branch of layer l, `None` where there is no factor to apply (α = 1,
    /// or no residual branch).
    pub fn branch_factor(&self, params: &[Vec<f32>], l: usize) -> Option<f32> {
        if !matches!(self.skip, SkipMode::Residual { .. }) {
            return None;
        }
        match self.branch_scale {
            BranchScale::One => None,
            BranchScale::InvSqrtDepth => Some(1.0 / (self.depth.max(1) as f32).sqrt()),
            BranchScale::ReZero => {
                let slot = slot::branch_alpha(self.depth, self.aux_layers.len(), l);
                Some(params[slot].first().copied().unwrap_or(0.0))
            }
        }
    }

    fn norm_params<'a>(&self, params: &'a [Vec<f32>], l: usize) -> NormParams<'a> {
        let (d, heads) = (self.depth, self.aux_layers.len());
        NormParams {
            gain: &params[slot::norm_gain(d, heads, l)],
            shift: &params[slot::norm_shift(d, heads, l)],
            running_mean: &params[slot::running_mean(d, heads, l)],
            running_var: &params[slot::running_var(d, heads, l)],
        }
    }
}

/// What one pass measured of hidden layer l (0-based), all fused into the passes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerStats {
    /// Σh² of the layer's output.
    pub act_sumsq: f64,
    /// Σ T of the highway gate (0 in other modes).
    pub gate_sum: f64,
    /// Σ(∂L/∂h)² at exponent `grad_exp`: ‖∂L/∂h‖ = √grad_sumsq · 2^grad_exp.
    pub grad_sumsq: f64,
    /// Exponent of `grad_sumsq`.
    pub grad_exp: i32,
    /// Σ(∂L/∂W)² at exponent `weight_exp`, before rounding to f32's range.
    pub weight_sumsq: f64,
    /// Exponent of `weight_sumsq`.
    pub weight_exp: i32,
    /// Σ(∂L/∂W)² of the f32 gradient the optimiser applies.
    pub weight_true_sumsq: f64,
}

impl LayerStats {
    /// The true ∂L/∂W is nonzero but below f32's normal range in every entry: the f32
    /// update of this layer is zero.
    pub fn weight_below_f32(&self) -> bool {
        self.weight_sumsq > 0.0 && self.weight_true_sumsq == 0.0
    }
}

/// Every buffer a step touches, sized once per shape and reused.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    rows: usize,
    /// h_0 (the input projection) and the outputs of the hidden layers: (depth+1) × rows × width.
    pub h: Vec<f32>,
    f: Vec<f32>,
    z: Vec<f32>,
    t: Vec<f32>,
    /// Output logits (or regression outputs), rows × outputs.
    pub logits: Vec<f32>,
    aux_logits: Vec<f32>,
    d_out: Vec<f32>,
    d_aux: Vec<f32>,
    g: Vec<f32>,
    g_next: Vec<f32>,
    dz: Vec<f32>,
    dg: Vec<f32>,
    direct: Vec<f32>,
    /// Pre-norm: what the transforms read, N(x_l) (depth × n).
    nx: Vec<f32>,
    /// Post-norm: the block's output before its norm (depth × n).
    pre: Vec<f32>,
    /// The normalised values u of each layer's norm (depth × n).
    nu: Vec<f32>,
    /// Per layer and statistics group: 1/√(var + ε), the mean and the biased variance.
    n_inv: Vec<f32>,
    n_mean: Vec<f32>,
    n_var: Vec<f32>,
    /// Post-norm backward: ∂L/∂(the block's output before its norm).
    gp: Vec<f32>,
    /// Pre-norm backward: ∂L/∂N(x_l).
    dn: Vec<f32>,
    /// Per hidden layer, input side first.
    pub stats: Vec<LayerStats>,
    /// The main loss of the last forward pass.
    pub main_loss: f32,
    /// Each auxiliary loss (empty when they are off).
    pub aux_losses: Vec<f32>,
    /// Main loss plus the weighted auxiliary losses.
    pub total_loss: f32,
    /// Σ(∂L/∂θ)² of the f32 gradient over every parameter the switches use.
    pub grad_sumsq: f64,
    /// Rows of the whole batch when this pass is one shard of it (0: the pass is the whole
    /// batch); the loss gradient is then this shard's share of the batch mean (`shards`).
    pub batch_rows: usize,
    /// Also keep each ∂L/∂W_l that was computed at a nonzero exponent as it was before
    /// rounding to f32, so shards can combine their norms below f32's range (`shards`).
    pub keep_rescaled: bool,
    rescaled: Vec<Vec<f32>>,
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl Workspace {
    fn ensure(&mut self, net: &Net, rows: usize) {
        let n = rows * net.width;
        self.rows = rows;
        grow(&mut self.h, (net.depth + 1) * n);
        if !matches!(net.skip, SkipMode::Plain | SkipMode::Dense) {
            grow(&mut self.f, net.depth * n);
        }
        if net.act == Activation::Gelu {
            grow(&mut self.z, net.depth * n);
        }
        if net.skip == SkipMode::Highway {
            grow(&mut self.t, net.depth * n);
            grow(&mut self.dg, n);
        }
        let heads = net.aux_layers.len();
        grow(&mut self.logits, rows * net.outputs);
        grow(&mut self.aux_logits, heads * rows * net.outputs);
        for buffer in [
            &mut self.g,
            &mut self.g_next,
            &mut self.dz,
            &mut self.direct,
        ] {
            grow(buffer, n);
        }
        if let Some(place) = net.norm_at() {
            let groups = norm::groups(net.norm, rows, net.width);
            grow(&mut self.nu, net.depth * n);
            for buffer in [&mut self.n_inv, &mut self.n_mean, &mut self.n_var] {
                grow(buffer, net.depth * groups);
            }
            match place {
                NormPlace::Pre => {
                    grow(&mut self.nx, net.depth * n);
                    grow(&mut self.dn, n);
                }
                NormPlace::Post => {
                    grow(&mut self.pre, net.depth * n);
                    grow(&mut self.gp, n);
                }
            }
        }
        grow(&mut self.d_out, rows * net.outputs);
        grow(&mut self.d_aux, heads * rows * net.outputs);
        self.stats.resize(net.depth, LayerStats::default());
        if self.keep_rescaled {
            self.rescaled.resize_with(net.depth, Vec::new);
        }
    }

    /// ∂L/∂W_l of the last backward pass before rounding to f32, at exponent
    /// `stats[l].weight_exp`; kept only with `keep_rescaled` and a nonzero exponent (else the
    /// gradient itself is that value).
    pub fn rescaled_weight_grad(&self, l: usize) -> &[f32] {
        self.rescaled.get(l).map_or(&[], Vec::as_slice)
    }

    /// Rows of the last forward pass.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Output of hidden layer l (0-based) for the last forward pass.
    pub fn hidden(&self, net: &Net, l: usize) -> &[f32] {
        let n = self.rows * net.width;
        &self.h[(l + 1) * n..(l + 2) * n]
    }

    /// Gate values of hidden layer l (highway only).
    pub fn gate(&self, net: &Net, l: usize) -> &[f32] {
        let n = self.rows * net.width;
        &self.t[l * n..(l + 1) * n]
    }

    /// The output logits of the last forward pass.
    pub fn outputs(&self, net: &Net) -> &[f32] {
        &self.logits[..self.rows * net.outputs]
    }

    /// Runs the network on `x` (rows × input) as in training (BatchNorm normalises with the
    /// batch's statistics) and computes its losses; the blocks in `lesion` (0-based) are
    /// removed (identity, or the scaled shortcut in residual mode; their norms go with them).
    pub fn forward(
        &mut self,
        net: &Net,
        params: &[Vec<f32>],
        x: &[f32],
        targets: Targets,
        lesion: &[usize],
    ) {
        self.forward_stats(net, params, x, targets, lesion, NormStats::Batch);
    }

    /// `forward` as in evaluation: BatchNorm reads its running estimates, so every row's
    /// output depends on that row alone (test scores, lesions).
    pub fn forward_eval(
        &mut self,
        net: &Net,
        params: &[Vec<f32>],
        x: &[f32],
        targets: Targets,
        lesion: &[usize],
    ) {
        self.forward_stats(net, params, x, targets, lesion, NormStats::Running);
    }

    /// Folds the BatchNorm statistics of the last (training, lesion-free) forward pass into
    /// the running estimates in `params`; nothing for other norms.
    pub fn fold_batch_statistics(&self, net: &Net, params: &mut [Vec<f32>]) {
        if net.norm != NormKind::BatchNorm {
            return;
        }
        let (w, d, heads) = (net.width, net.depth, net.aux_layers.len());
        for l in 0..d {
            let range = l * w..(l + 1) * w;
            let mean_slot = slot::running_mean(d, heads, l);
            let var_slot = slot::running_var(d, heads, l);
            let (low, high) = params.split_at_mut(var_slot);
            norm::fold_running(
                &self.n_mean[range.clone()],
                &self.n_var[range],
                self.rows,
                &mut low[mean_slot],
                &mut high[0],
            );
        }
    }

    fn forward_stats(
        &mut self,
        net: &Net,
        params: &[Vec<f32>],
        x: &[f32],
        targets: Targets,
        lesion: &[usize],
        norm_stats: NormStats,
    ) {
        let rows = x.len() / net.input.max(1);
        self.ensure(net, rows);
        let (w, n, depth) = (net.width, rows * net.width, net.depth);
        {
            let h0 = &mut self.h[..n];
            fill_rows(h0, &params[slot::INPUT_BIAS]);
            let weight = &params[slot::INPUT_WEIGHT];
            if net.input <= 4 {
                super::kernels::add_thin_product(h0, x, weight, net.input, w);
            } else {
                matmul(
                    h0,
                    rows,
                    w,
                    net.input,
                    Operand::plain(x, net.input),
                    Operand::plain(weight, w),
                    true,
                );
            }
        }
        let groups = norm::groups(net.norm, rows, w);
        let place = net.norm_at();
        for l in 0..depth {
            let (before, after) = self.h.split_at_mut((l + 1) * n);
            let x_l = &before[l * n..];
            let y = &mut after[..n];
            let stats = &mut self.stats[l];
            stats.gate_sum = 0.0;
            if lesion.contains(&l) {
                let scale = match net.skip {
                    SkipMode::Residual { scale } => scale,
                    _ => 1.0,
                };
                y.iter_mut().zip(x_l).for_each(|(o, &v)| *o = scale * v);
                stats.act_sumsq = crate::metrics::sum_squares(y);
                continue;
            }
            let layer = l * n..(l + 1) * n;
            let group = l * groups..(l + 1) * groups;
            if place == Some(NormPlace::Pre) {
                norm::forward(
                    net.norm,
                    norm_stats,
                    x_l,
                    w,
                    net.norm_params(params, l),
                    NormOut {
                        u: &mut self.nu[layer.clone()],
                        inv_std: &mut self.n_inv[group.clone()],
                        mean: &mut self.n_mean[group.clone()],
                        var: &mut self.n_var[group.clone()],
                        out: &mut self.nx[layer.clone()],
                    },
                );
            }
            // What the transforms read: N(x) before the block under pre-norm, x otherwise.
            let read: &[f32] = if place == Some(NormPlace::Pre) {
                &self.nx[layer.clone()]
            } else {
                x_l
            };
            let product = |dst: &mut [f32], weight: &[f32], bias: &[f32]| {
                fill_rows(dst, bias);
                matmul(
                    dst,
                    rows,
                    w,
                    w,
                    Operand::plain(read, w),
                    Operand::plain(weight, w),
                    true,
                );
            };
            // Under post-norm the block writes its output before the norm apart.
            let post = place == Some(NormPlace::Post);
            let out: &mut [f32] = if post {
                &mut self.pre[layer.clone()]
            } else {
                &mut *y
            };
            let (weight, bias) = (&params[slot::weight(l)], &params[slot::bias(l)]);
            let gelu = net.act == Activation::Gelu;
            match net.skip {
                SkipMode::Plain | SkipMode::Dense => {
                    stats.act_sumsq = if gelu {
                        let z = &mut self.z[layer.clone()];
                        product(z, weight, bias);
                        act_into(net.act, z, out)
                    } else {
                        product(out, weight, bias);
                        act_in_place(net.act, out)
                    };
                }
                SkipMode::Residual { .. } | SkipMode::Highway => {
                    let f = &mut self.f[layer.clone()];
                    if gelu {
                        let z = &mut self.z[layer.clone()];
                        product(z, weight, bias);
                        act_into(net.act, z, f);
                    } else {
                        product(f, weight, bias);
                        act_in_place(net.act, f);
                    }
                    if let SkipMode::Residual { scale } = net.skip {
                        stats.act_sumsq = match net.branch_factor(params, l) {
                            None => residual_combine(scale, x_l, f, out),
                            Some(alpha) => residual_combine_branch(scale, alpha, x_l, f, out),
                        };
                    } else {
                        let t = &mut self.t[layer.clone()];
                        product(
                            t,
                            &params[slot::gate_weight(l)],
                            &params[slot::gate_bias(l)],
                        );
                        let (act_sumsq, gate_sum) = highway_combine(x_l, f, t, out);
                        stats.act_sumsq = act_sumsq;
                        stats.gate_sum = gate_sum;
                    }
                }
            }
            if post {
                stats.act_sumsq = norm::forward(
                    net.norm,
                    norm_stats,
                    &self.pre[layer.clone()],
                    w,
                    net.norm_params(params, l),
                    NormOut {
                        u: &mut self.nu[layer],
                        inv_std: &mut self.n_inv[group.clone()],
                        mean: &mut self.n_mean[group.clone()],
                        var: &mut self.n_var[group],
                        out: y,
                    },
                );
            }
        }
        self.heads_forward(net, params, rows);
        let c = net.outputs;
        self.main_loss = loss(&self.logits[..rows * c], c, targets, 1.0, None);
        self.aux_losses.clear();
        let mut total = self.main_loss;
        if net.aux_enabled {
            for i in 0..net.aux_layers.len() {
                let logits = &self.aux_logits[i * rows * c..(i + 1) * rows * c];
                let value = loss(logits, c, targets, net.aux_weight, None);
                self.aux_losses.push(value);
                total += value * net.aux_weight;
            }
        }
        self.total_loss = total;
    }

    /// Logits of the head (with dense read-outs) and of the auxiliary heads.
    fn heads_forward(&mut self, net: &Net, params: &[Vec<f32>], rows: usize) {
        let (w, n, c, depth) = (net.width, rows * net.width, net.outputs, net.depth);
        let logits = &mut self.logits[..rows * c];
        fill_rows(logits, &params[slot::head_bias(depth)]);
        let last = &self.h[depth * n..(depth + 1) * n];
        matmul(
            logits,
            rows,
            c,
            w,
            Operand::plain(last, w),
            Operand::plain(&params[slot::head_weight(depth)], c),
            true,
        );
        if net.skip == SkipMode::Dense {
            for l in 0..depth.saturating_sub(1) {
                matmul(
                    logits,
                    rows,
                    c,
                    w,
                    Operand::plain(&self.h[(l + 1) * n..(l + 2) * n], w),
                    Operand::plain(&params[slot::readout(l)], c),
                    true,
                );
            }
        }
        if net.aux_enabled {
            for (i, &after) in net.aux_layers.iter().enumerate() {
                let out = &mut self.aux_logits[i * rows * c..(i + 1) * rows * c];
                fill_rows(out, &params[slot::aux_bias(depth, i)]);
                matmul(
                    out,
                    rows,
                    c,
                    w,
                    Operand::plain(&self.h[(after + 1) * n..(after + 2) * n], w),
                    Operand::plain(&params[slot::aux_weight(depth, i)], c),
                    true,
                );
            }
        }
    }

    /// Backpropagates the last forward pass (which must have had no lesion) into `grads`
    /// (one buffer per parameter, `params_mut` order), writing every parameter the switches
    /// use; the others are left as they were.
    pub fn backward(
        &mut self,
        net: &Net,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        x: &[f32],
        targets: Targets,
    ) {
        let rows = self.rows;
        let (w, n, c, depth) = (net.width, rows * net.width, net.outputs, net.depth);
        let mut total = 0.0f64;
        let share = if self.batch_rows == 0 {
            1.0
        } else {
            rows as f32 / self.batch_rows as f32
        };
        // The heads: their gradients are at true scale (exponent 0).
        loss(
            &self.logits[..rows * c],
            c,
            targets,
            share,
            Some(&mut self.d_out[..rows * c]),
        );
        let d_out = &self.d_out[..rows * c];
        let last = &self.h[depth * n..(depth + 1) * n];
        total += weight_grad(
            &mut grads[slot::head_weight(depth)],
            last,
            d_out,
            (w, c, rows),
            0,
        );
        total += bias_grad(&mut grads[slot::head_bias(depth)], d_out, c, 0);
        if net.skip == SkipMode::Dense {
            for l in 0..depth.saturating_sub(1) {
                let h = &self.h[(l + 1) * n..(l + 2) * n];
                total += weight_grad(&mut grads[slot::readout(l)], h, d_out, (w, c, rows), 0);
            }
        }
        if net.aux_enabled {
            for (i, &after) in net.aux_layers.iter().enumerate() {
                let range = i * rows * c..(i + 1) * rows * c;
                loss(
                    &self.aux_logits[range.clone()],
                    c,
                    targets,
                    net.aux_weight * share,
                    Some(&mut self.d_aux[range.clone()]),
                );
                let h = &self.h[(after + 1) * n..(after + 2) * n];
                total += weight_grad(
                    &mut grads[slot::aux_weight(depth, i)],
                    h,
                    &self.d_aux[range.clone()],
                    (w, c, rows),
                    0,
                );
                total += bias_grad(
                    &mut grads[slot::aux_bias(depth, i)],
                    &self.d_aux[range],
                    c,
                    0,
                );
            }
        }
        // ∂L/∂h_L, exponent 0.
        matmul(
            &mut self.g[..n],
            rows,
            w,
            c,
            Operand::plain(d_out, c),
            Operand::transposed(&params[slot::head_weight(depth)], c),
            false,
        );
        let mut exp = 0i32;
        let (heads, groups, place) = (
            net.aux_layers.len(),
            norm::groups(net.norm, rows, w),
            net.norm_at(),
        );
        let plain = matches!(net.skip, SkipMode::Plain | SkipMode::Dense);
        for l in (0..depth).rev() {
            exp = self.add_direct(net, params, rows, l, exp);
            let layer = l * n..(l + 1) * n;
            let group = l * groups..(l + 1) * groups;
            let gain_slot = slot::norm_gain(depth, heads, l);
            let shift_slot = slot::norm_shift(depth, heads, l);
            // Post-norm: ∂L/∂h_l goes through the norm first; the block's own backward then
            // carries ∂L/∂(its output before the norm). The norm's backward is linear, so it
            // runs on the rescaled signal at the same exponent.
            let mut measured = None;
            if place == Some(NormPlace::Post) {
                let g = &self.g[..n];
                measured = Some(crate::metrics::sum_squares(g));
                let (d_gain, d_shift) = pair_mut(grads, gain_slot, shift_slot);
                norm::backward(
                    net.norm,
                    w,
                    NormBack {
                        g,
                        u: &self.nu[layer.clone()],
                        inv_std: &self.n_inv[group.clone()],
                        gain: &params[gain_slot],
                    },
                    d_gain,
                    d_shift,
                    &mut self.gp[..n],
                    false,
                );
                total += to_true_scale(d_gain, exp) + to_true_scale(d_shift, exp);
            }
            let x_l = &self.h[l * n..(l + 1) * n];
            let read: &[f32] = if place == Some(NormPlace::Pre) {
                &self.nx[layer.clone()]
            } else {
                x_l
            };
            let g: &[f32] = if place == Some(NormPlace::Post) {
                &self.gp[..n]
            } else {
                &self.g[..n]
            };
            let dz = &mut self.dz[..n];
            let next = &mut self.g_next[..n];
            let src: &[f32] = if net.act == Activation::Gelu {
                &self.z[layer.clone()]
            } else if plain && place == Some(NormPlace::Post) {
                &self.pre[layer.clone()]
            } else if plain {
                &self.h[(l + 1) * n..(l + 2) * n]
            } else {
                &self.f[layer.clone()]
            };
            let grad_sumsq = match net.skip {
                SkipMode::Plain | SkipMode::Dense => slope(net.act, g, src, dz),
                SkipMode::Residual { scale } => slope_residual(net.act, scale, g, src, dz, next),
                SkipMode::Highway => slope_highway(
                    net.act,
                    &HighwayBack {
                        g,
                        src,
                        f: &self.f[layer.clone()],
                        x: x_l,
                        t: &self.t[layer.clone()],
                    },
                    dz,
                    &mut self.dg[..n],
                    next,
                ),
            };
            if let Some(alpha) = net.branch_factor(params, l) {
                if net.branch_scale == BranchScale::ReZero {
                    // ∂L/∂α = Σ g⊙f, at the signal's exponent.
                    let f = &self.f[layer.clone()];
                    let d: f64 = g
                        .iter()
                        .zip(f)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let d_alpha = &mut grads[slot::branch_alpha(depth, heads, l)];
                    d_alpha[0] = d as f32;
                    total += to_true_scale(d_alpha, exp);
                }
                dz.iter_mut()
                    .for_each(|v| *v = super::kernels::flush(*v * alpha));
            }
            let stats = &mut self.stats[l];
            stats.grad_sumsq = measured.unwrap_or(grad_sumsq);
            stats.grad_exp = exp;
            // Keep what flows on in f32's comfortable range (exact powers of two).
            let k = renormaliser(grad_sumsq);
            if k != 0 {
                shift(dz, k);
                if net.skip == SkipMode::Highway {
                    shift(&mut self.dg[..n], k);
                }
                if !plain {
                    shift(next, k);
                }
                exp -= k;
            }
            let weight = &mut grads[slot::weight(l)];
            let keep = self
                .rescaled
                .get_mut(l)
                .filter(|_| self.keep_rescaled && exp != 0);
            let (scaled, true_sumsq) =
                weight_grad_measured(weight, read, dz, (w, w, rows), exp, keep);
            stats.weight_sumsq = scaled;
            stats.weight_exp = exp;
            stats.weight_true_sumsq = true_sumsq;
            total += true_sumsq;
            total += bias_grad(&mut grads[slot::bias(l)], dz, w, exp);
            if net.skip == SkipMode::Highway {
                let dg = &self.dg[..n];
                total += weight_grad(
                    &mut grads[slot::gate_weight(l)],
                    read,
                    dg,
                    (w, w, rows),
                    exp,
                );
                total += bias_grad(&mut grads[slot::gate_bias(l)], dg, w, exp);
            }
            // ∂L/∂(what the transforms read): into the carried signal directly, or into ∂L/∂N(x)
            // under pre-norm, which the norm's backward then adds to the shortcut's part.
            let pre = place == Some(NormPlace::Pre);
            let (into, accumulate): (&mut [f32], bool) = if pre {
                (&mut self.dn[..n], false)
            } else {
                (&mut *next, !plain)
            };
            matmul(
                into,
                rows,
                w,
                w,
                Operand::plain(dz, w),
                Operand::transposed(&params[slot::weight(l)], w),
                accumulate,
            );
            if net.skip == SkipMode::Highway {
                matmul(
                    into,
                    rows,
                    w,
                    w,
                    Operand::plain(&self.dg[..n], w),
                    Operand::transposed(&params[slot::gate_weight(l)], w),
                    true,
                );
            }
            if pre {
                let (d_gain, d_shift) = pair_mut(grads, gain_slot, shift_slot);
                norm::backward(
                    net.norm,
                    w,
                    NormBack {
                        g: &self.dn[..n],
                        u: &self.nu[layer],
                        inv_std: &self.n_inv[group],
                        gain: &params[gain_slot],
                    },
                    d_gain,
                    d_shift,
                    next,
                    !plain,
                );
                total += to_true_scale(d_gain, exp) + to_true_scale(d_shift, exp);
            }
            std::mem::swap(&mut self.g, &mut self.g_next);
        }
        // The input projection, from ∂L/∂h_0.
        let g = &self.g[..n];
        total += weight_grad(
            &mut grads[slot::INPUT_WEIGHT],
            x,
            g,
            (net.input, w, rows),
            exp,
        );
        total += bias_grad(&mut grads[slot::INPUT_BIAS], g, w, exp);
        self.grad_sumsq = total;
    }

    /// Adds the read-outs' and auxiliary heads' ∂L/∂h to the carried signal of layer l
    /// (they are at exponent 0); returns the exponent afterwards.
    fn add_direct(
        &mut self,
        net: &Net,
        params: &[Vec<f32>],
        rows: usize,
        l: usize,
        exp: i32,
    ) -> i32 {
        let (w, n, c, depth) = (net.width, rows * net.width, net.outputs, net.depth);
        let dense = net.skip == SkipMode::Dense && l + 1 < depth;
        let reads_here = |i: &usize| net.aux_enabled && net.aux_layers[*i] == l;
        if !dense && !(0..net.aux_layers.len()).any(|i| reads_here(&i)) {
            return exp;
        }
        // At exponent 0 the contributions go straight into the signal; otherwise they are
        // summed apart and merged at the larger of the two scales.
        let target: &mut [f32] = if exp == 0 {
            &mut self.g[..n]
        } else {
            let direct = &mut self.direct[..n];
            direct.iter_mut().for_each(|v| *v = 0.0);
            direct
        };
        if dense {
            matmul(
                target,
                rows,
                w,
                c,
                Operand::plain(&self.d_out[..rows * c], c),
                Operand::transposed(&params[slot::readout(l)], c),
                true,
            );
        }
        for i in (0..net.aux_layers.len()).filter(reads_here) {
            matmul(
                target,
                rows,
                w,
                c,
                Operand::plain(&self.d_aux[i * rows * c..(i + 1) * rows * c], c),
                Operand::transposed(&params[slot::aux_weight(depth, i)], c),
                true,
            );
        }
        if exp == 0 {
            return 0;
        }
        let g = &mut self.g[..n];
        let direct = &self.direct[..n];
        if exp > 0 {
            // The carried signal is huge: the direct part joins it at its scale.
            let factor = (-f64::from(exp)).exp2() as f32;
            g.iter_mut()
                .zip(direct)
                .for_each(|(a, &b)| *a += super::kernels::flush(b * factor));
            exp
        } else {
            // The carried signal is tiny: bring it to the direct part's scale (exponent 0).
            to_true_scale(g, exp);
            g.iter_mut().zip(direct).for_each(|(a, &b)| *a += b);
            0
        }
    }
}

/// Two distinct buffers of `grads` at once (i < j).
fn pair_mut(grads: &mut [Vec<f32>], i: usize, j: usize) -> (&mut [f32], &mut [f32]) {
    let (low, high) = grads.split_at_mut(j);
    (&mut low[i], &mut high[0])
}

/// dst (m × n) ← aᵀ · b for a (k × m) and b (k × n), brought to true scale from `exp`;
/// returns Σ(scaled)² and Σ(true f32)². `keep` receives the scaled values.
fn weight_grad_measured(
    dst: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    exp: i32,
    keep: Option<&mut Vec<f32>>,
) -> (f64, f64) {
    matmul(
        dst,
        m,
        n,
        k,
        Operand::transposed(a, m),
        Operand::plain(b, n),
        false,
    );
    let scaled = crate::metrics::sum_squares(dst);
    let true_sumsq = to_true_scale_from(dst, exp, scaled, keep);
    (scaled, true_sumsq)
}

/// `weight_grad_measured`, returning Σ(true f32)² only.
fn weight_grad(
    dst: &mut [f32],
    a: &[f32],
    b: &[f32],
    dims: (usize, usize, usize),
    exp: i32,
) -> f64 {
    matmul(
        dst,
        dims.0,
        dims.1,
        dims.2,
        Operand::transposed(a, dims.0),
        Operand::plain(b, dims.1),
        false,
    );
    to_true_scale(dst, exp)
}

/// dst ← column sums of `m` at true scale from `exp`; returns Σ(true f32)².
fn bias_grad(dst: &mut [f32], m: &[f32], cols: usize, exp: i32) -> f64 {
    column_sums(m, cols, dst);
    to_true_scale(dst, exp)
}
