//! The forward pass of the deep MLP on dfdx's tape, for every skip mode, norm and branch
//! factor. Normalisation here always uses the batch's statistics (training mode); evaluation
//! with BatchNorm's running estimates is the engine's (`Workspace::forward_eval`).
//!
//! The tape rides on the left operand of every op. Each hidden activation is kept as a
//! tape-less copy with the same id, so after `backward` its gradient ∂L/∂h_l can be read.

use super::fused::{BlockKind, fused_block};
use super::params::{Matrix, MlpParams};
use crate::config::norm::NORM_EPS;
use crate::config::{Activation, BranchScale, NormKind, NormPlace, SkipMode};
use dfdx::prelude::*;

/// A batch's targets as dense tensors.
#[derive(Clone, Debug)]
pub enum BatchTargets {
    /// One-hot class probabilities (batch × classes): cross-entropy loss.
    OneHot(Matrix),
    /// Real-valued targets (batch × outputs): mean squared error.
    Values(Matrix),
}

/// The switches that can change between any two steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Switches {
    /// How hidden layers combine their input with their transform.
    pub skip: SkipMode,
    /// Whether auxiliary losses are part of the objective.
    pub aux_enabled: bool,
    /// Weight of each auxiliary loss.
    pub aux_weight: f32,
    /// Normalisation of the hidden layers.
    pub norm: NormKind,
    /// Where the norm sits.
    pub norm_place: NormPlace,
    /// The factor on residual branches.
    pub branch_scale: BranchScale,
}

impl Switches {
    /// The switches with `skip` and auxiliary losses as given and every normalisation and
    /// branch-scaling switch off (the network as it was before those switches existed).
    pub fn unnormalised(skip: SkipMode, aux_enabled: bool, aux_weight: f32) -> Self {
        Self {
            skip,
            aux_enabled,
            aux_weight,
            norm: NormKind::None,
            norm_place: NormPlace::Pre,
            branch_scale: BranchScale::One,
        }
    }

    /// The norm's place in effect, or `None` without normalisation.
    pub fn norm_at(&self) -> Option<NormPlace> {
        (self.norm != NormKind::None).then_some(self.norm_place)
    }

    /// Whether the blocks are exactly the fused op's (no norm, no branch factor in effect).
    fn fusable(&self) -> bool {
        self.norm == NormKind::None
            && (self.branch_scale == BranchScale::One
                || !matches!(self.skip, SkipMode::Residual { .. }))
    }
}

/// Everything the forward pass produced, for a tape `T` (owned tape when training).
pub struct ForwardPass<T> {
    /// Total objective: main loss plus weighted auxiliary losses.
    pub total_loss: Tensor<(), f32, Cpu, T>,
    /// Main loss value.
    pub main_loss: f32,
    /// Each auxiliary head's loss value (empty when auxiliary losses are off).
    pub aux_losses: Vec<f32>,
    /// Output logits (or regression outputs).
    pub logits: Matrix,
    /// Hidden activations h_l, tape-less copies sharing the ids of the taped ones.
    pub hidden: Vec<Matrix>,
    /// Highway gate values T_l (empty unless the skip mode is highway).
    pub gates: Vec<Matrix>,
}

/// Applies φ on the tape.
pub fn activate<T: Tape<f32, Cpu>>(
    act: Activation,
    z: Tensor<(usize, usize), f32, Cpu, T>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    match act {
        Activation::Linear => z,
        Activation::Tanh => z.tanh(),
        Activation::Relu => z.relu(),
        Activation::Sigmoid => z.sigmoid(),
        Activation::Gelu => super::ops::elementwise(Activation::Gelu, z),
    }
}

/// x·W + b with the bias broadcast over the batch.
fn affine<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize), f32, Cpu, T>,
    weight: &Matrix,
    bias: &Tensor<(usize,), f32, Cpu>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let z = x.matmul(weight.clone());
    let shape = *z.shape();
    z + bias.clone().broadcast_like::<_, Axis<0>>(&shape)
}

fn loss_of<T: Tape<f32, Cpu>>(
    output: Tensor<(usize, usize), f32, Cpu, T>,
    targets: &BatchTargets,
) -> Tensor<(), f32, Cpu, T> {
    match targets {
        BatchTargets::OneHot(probs) => cross_entropy_with_logits_loss(output, probs.clone()),
        BatchTargets::Values(values) => mse_loss(output, values.clone()),
    }
}

/// Which blocks are removed (none by default), for Veit's lesion experiments: a removed block
/// passes its input on unchanged (times the shortcut's scale in residual mode).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lesion(Vec<usize>);

impl Lesion {
    /// Block `block` (0-based) removed.
    pub fn block(block: usize) -> Self {
        Self(vec![block])
    }

    /// Every block in `blocks` (0-based) removed; order and repeats do not matter.
    pub fn blocks(blocks: impl IntoIterator<Item = usize>) -> Self {
        let mut blocks: Vec<usize> = blocks.into_iter().collect();
        blocks.sort_unstable();
        blocks.dedup();
        Self(blocks)
    }

    /// The removed blocks, ascending.
    pub fn removed(&self) -> &[usize] {
        &self.0
    }

    /// Whether block `block` is removed.
    pub fn removes(&self, block: usize) -> bool {
        self.0.binary_search(&block).is_ok()
    }
}

/// Which implementation runs each hidden layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOps {
    /// One hand-written tape op per layer (`fused_block`): what training uses.
    Fused,
    /// dfdx's own ops, one per operation: the reference the fused op is tested against.
    Dfdx,
}

/// Runs the network on `x` and computes the objective, with fused layer ops.
pub fn forward<T: Tape<f32, Cpu>>(
    params: &MlpParams,
    act: Activation,
    switches: &Switches,
    x: Tensor<(usize, usize), f32, Cpu, T>,
    targets: &BatchTargets,
    lesion: Lesion,
) -> ForwardPass<T> {
    forward_with(BlockOps::Fused, params, act, switches, x, targets, lesion)
}

/// γ⊙normalise(h) + β from dfdx's ops, with the batch's statistics (training mode):
/// per row for LayerNorm, per unit over the batch for BatchNorm.
fn dfdx_norm<T: Tape<f32, Cpu>>(
    kind: NormKind,
    h: Tensor<(usize, usize), f32, Cpu, T>,
    layer: &super::params::HiddenLayer,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let shape = *h.shape();
    let u = match kind {
        NormKind::None => return h,
        NormKind::LayerNorm => h.normalize::<Axis<1>>(NORM_EPS),
        NormKind::BatchNorm => h.normalize::<Axis<0>>(NORM_EPS),
    };
    u * layer.norm_gain.clone().broadcast_like::<_, Axis<0>>(&shape)
        + layer
            .norm_shift
            .clone()
            .broadcast_like::<_, Axis<0>>(&shape)
}

/// α·f for a residual branch. The learnable α (1 × 1) is spread over the batch as
/// 1_rows·α·1_widthᵀ, two products dfdx differentiates, since it cannot broadcast a
/// one-element tensor along both axes.
fn scale_branch<T: Tape<f32, Cpu>>(
    f: Tensor<(usize, usize), f32, Cpu, T>,
    scale: BranchScale,
    depth: usize,
    layer: &super::params::HiddenLayer,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    match scale {
        BranchScale::One => f,
        BranchScale::InvSqrtDepth => f * (1.0 / (depth.max(1) as f32).sqrt()),
        BranchScale::ReZero => {
            let (rows, width) = *f.shape();
            let (f, tape) = f.split_tape();
            let dev = f.device().clone();
            let ones_col: Matrix = dev.ones_like(&(rows, 1));
            let ones_row: Matrix = dev.ones_like(&(1, width));
            let alpha = ones_col
                .put_tape(tape)
                .matmul(layer.branch_alpha.clone())
                .matmul(ones_row);
            alpha * f
        }
    }
}

/// One hidden layer from dfdx's own ops (with the norm and branch factor in `switches`).
fn dfdx_block<T: Tape<f32, Cpu>>(
    h: Tensor<(usize, usize), f32, Cpu, T>,
    layer: &super::params::HiddenLayer,
    act: Activation,
    switches: &Switches,
    depth: usize,
    gates: &mut Vec<Matrix>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let place = switches.norm_at();
    let (h_prev, tape) = h.split_tape();
    // What the transforms read: N(h) under pre-norm, h otherwise.
    let (read, tape) = if place == Some(NormPlace::Pre) {
        dfdx_norm(switches.norm, h_prev.clone().put_tape(tape), layer).split_tape()
    } else {
        (h_prev.clone(), tape)
    };
    let out = match switches.skip {
        SkipMode::Plain | SkipMode::Dense => {
            activate(act, affine(read.put_tape(tape), &layer.weight, &layer.bias))
        }
        SkipMode::Residual { scale } => {
            let scaled = h_prev.clone().put_tape(tape) * scale;
            let (scaled, tape) = scaled.split_tape();
            let f = activate(act, affine(read.put_tape(tape), &layer.weight, &layer.bias));
            scale_branch(f, switches.branch_scale, depth, layer) + scaled
        }
        SkipMode::Highway => {
            let f = activate(
                act,
                affine(read.clone().put_tape(tape), &layer.weight, &layer.bias),
            );
            let (f, tape) = f.split_tape();
            let gate = affine(read.put_tape(tape), &layer.gate_weight, &layer.gate_bias).sigmoid();
            let (gate, tape) = gate.split_tape();
            gates.push(gate.clone());
            // T⊙f + (1−T)⊙h written as h + T⊙(f − h): one product instead of two.
            (f.put_tape(tape) - h_prev.clone()) * gate + h_prev
        }
    };
    if place == Some(NormPlace::Post) {
        dfdx_norm(switches.norm, out, layer)
    } else {
        out
    }
}

/// Runs the network on `x` with the chosen layer implementation.
#[allow(clippy::too_many_arguments)]
pub fn forward_with<T: Tape<f32, Cpu>>(
    ops: BlockOps,
    params: &MlpParams,
    act: Activation,
    switches: &Switches,
    x: Tensor<(usize, usize), f32, Cpu, T>,
    targets: &BatchTargets,
    lesion: Lesion,
) -> ForwardPass<T> {
    let depth = params.layers.len();
    let mut h = affine(x, &params.input_weight, &params.input_bias);
    let mut hidden = Vec::with_capacity(depth);
    let mut gates = Vec::new();
    for (l, layer) in params.layers.iter().enumerate() {
        h = if lesion.removes(l) {
            let (h_prev, tape) = h.split_tape();
            match switches.skip {
                SkipMode::Residual { scale } => h_prev.put_tape(tape) * scale,
                _ => h_prev.put_tape(tape),
            }
        } else {
            match ops {
                // The fused op has no norm or branch factor: those nets run dfdx's ops.
                BlockOps::Fused if switches.fusable() => {
                    let kind = match switches.skip {
                        SkipMode::Plain | SkipMode::Dense => BlockKind::Plain,
                        SkipMode::Residual { scale } => BlockKind::Residual { scale },
                        SkipMode::Highway => BlockKind::Highway,
                    };
                    let (out, gate) = fused_block(h, layer, act, kind);
                    gates.extend(gate);
                    out
                }
                _ => dfdx_block(h, layer, act, switches, depth, &mut gates),
            }
        };
        hidden.push(h.retaped::<NoneTape>());
    }

    let output = affine(h, &params.head_weight, &params.head_bias);
    let output = if matches!(switches.skip, SkipMode::Dense) {
        let mut acc = output;
        for (layer, h_l) in params.layers.iter().zip(&hidden).take(depth - 1) {
            let (sum, tape) = acc.split_tape();
            acc = h_l.clone().put_tape(tape).matmul(layer.readout.clone()) + sum;
        }
        acc
    } else {
        output
    };
    let logits = output.retaped::<NoneTape>();
    let main = loss_of(output, targets);
    let main_loss = main.retaped::<NoneTape>().array();

    let mut total = main;
    let mut aux_losses = Vec::new();
    if switches.aux_enabled {
        for head in &params.aux_heads {
            let (sum, tape) = total.split_tape();
            let aux = loss_of(
                affine(
                    hidden[head.after_layer].clone().put_tape(tape),
                    &head.weight,
                    &head.bias,
                ),
                targets,
            );
            aux_losses.push(aux.retaped::<NoneTape>().array());
            total = aux * switches.aux_weight + sum;
        }
    }

    ForwardPass {
        total_loss: total,
        main_loss,
        aux_losses,
        logits,
        hidden,
        gates,
    }
}
