//! The forward pass of the deep MLP on dfdx's tape, for every skip mode.
//!
//! The tape rides on the left operand of every op. Each hidden activation is kept as a
//! tape-less copy with the same id, so after `backward` its gradient ∂L/∂h_l can be read.

use super::fused::{BlockKind, fused_block};
use super::params::{Matrix, MlpParams};
use crate::config::{Activation, SkipMode};
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

/// Which block (if any) is removed, for Veit's lesion experiment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lesion(pub Option<usize>);

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

/// One hidden layer from dfdx's own ops.
fn dfdx_block<T: Tape<f32, Cpu>>(
    h: Tensor<(usize, usize), f32, Cpu, T>,
    layer: &super::params::HiddenLayer,
    act: Activation,
    skip: SkipMode,
    gates: &mut Vec<Matrix>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let (h_prev, tape) = h.split_tape();
    match skip {
        SkipMode::Plain | SkipMode::Dense => activate(
            act,
            affine(h_prev.put_tape(tape), &layer.weight, &layer.bias),
        ),
        SkipMode::Residual { scale } => {
            let scaled = h_prev.clone().put_tape(tape) * scale;
            let (scaled, tape) = scaled.split_tape();
            let f = activate(
                act,
                affine(h_prev.put_tape(tape), &layer.weight, &layer.bias),
            );
            f + scaled
        }
        SkipMode::Highway => {
            let f = activate(
                act,
                affine(h_prev.clone().put_tape(tape), &layer.weight, &layer.bias),
            );
            let (f, tape) = f.split_tape();
            let gate = affine(
                h_prev.clone().put_tape(tape),
                &layer.gate_weight,
                &layer.gate_bias,
            )
            .sigmoid();
            let (gate, tape) = gate.split_tape();
            gates.push(gate.clone());
            // T⊙f + (1−T)⊙h written as h + T⊙(f − h): one product instead of two.
            (f.put_tape(tape) - h_prev.clone()) * gate + h_prev
        }
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
        h = if lesion.0 == Some(l) {
            let (h_prev, tape) = h.split_tape();
            match switches.skip {
                SkipMode::Residual { scale } => h_prev.put_tape(tape) * scale,
                _ => h_prev.put_tape(tape),
            }
        } else {
            match ops {
                BlockOps::Fused => {
                    let kind = match switches.skip {
                        SkipMode::Plain | SkipMode::Dense => BlockKind::Plain,
                        SkipMode::Residual { scale } => BlockKind::Residual { scale },
                        SkipMode::Highway => BlockKind::Highway,
                    };
                    let (out, gate) = fused_block(h, layer, act, kind);
                    gates.extend(gate);
                    out
                }
                BlockOps::Dfdx => dfdx_block(h, layer, act, switches.skip, &mut gates),
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
