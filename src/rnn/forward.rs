//! Backprop through time: the recurrent net unrolled over the sequence on dfdx's tape.
//!
//! As in the MLP, the tape rides on the left operand and every hidden state is kept as a
//! tape-less copy with the same id, so ∂L/∂h_t can be read after `backward`. Training runs the
//! recurrence as one fused op (`super::fused`); the version built from dfdx's own ops stays as
//! the reference it is tested against.

use super::cells::gate_mean;
use super::fused::fused_unroll;
use super::params::{GateParams, RnnParams};
use super::workspace::Workspace;
use crate::config::CellKind;
use crate::model::Matrix;
use crate::tasks::sequence::{SeqBatch, SeqTargets};
use dfdx::prelude::*;

/// The unrolled pass: objective, outputs and per-step states.
pub struct RnnPass<T> {
    /// The objective (MSE or mean cross-entropy over scored steps).
    pub loss: Tensor<(), f32, Cpu, T>,
    /// Outputs at every scored step (one matrix per scored step, in time order).
    pub outputs: Vec<Matrix>,
    /// Hidden states h_{first+1}..h_T, tape-less copies sharing the taped ids (every h_t
    /// unless the unroll kept only the states an output head reads).
    pub hidden: Vec<Matrix>,
    /// Steps whose states `hidden` leaves out (0: it holds h_1..h_T).
    pub first: usize,
    /// Per step, the mean of the gate the lab shows: LSTM forget gate or GRU update gate
    /// (empty for the vanilla cell).
    pub gate_means: Vec<f64>,
}

/// Which implementation runs the recurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnOps {
    /// The whole unroll as one hand-written tape op (`super::fused`): what training uses.
    Fused,
    /// dfdx's own ops, about 20 per time step: the reference the fused op is tested against.
    Dfdx,
}

type Taped<T> = Tensor<(usize, usize), f32, Cpu, T>;

/// x·W + h·U + b, threading the tape through both products.
fn gate_pre<T: Tape<f32, Cpu>>(gate: &GateParams, x: &Matrix, h: &Matrix, tape: T) -> Taped<T> {
    let hu = h
        .clone()
        .put_tape(tape)
        .matmul(gate.recurrent_weight.clone());
    let (hu, tape) = hu.split_tape();
    let xw = x.clone().put_tape(tape).matmul(gate.input_weight.clone());
    let shape = *xw.shape();
    xw + hu + gate.bias.clone().broadcast_like::<_, Axis<0>>(&shape)
}

/// σ of one gate's pre-activation, with the tape split off for the next op.
fn sigmoid_gate<T: Tape<f32, Cpu>>(
    gate: &GateParams,
    x: &Matrix,
    h: &Matrix,
    tape: T,
) -> (Matrix, T) {
    gate_pre(gate, x, h, tape).sigmoid().split_tape()
}

/// Runs `cell` over `batch` with the fused op; `h0` carries the tape in (use `leaky_traced` to
/// train).
pub fn unroll<T: Tape<f32, Cpu>>(
    params: &RnnParams,
    cell: CellKind,
    dev: &Cpu,
    batch: &SeqBatch,
    h0: Taped<T>,
) -> RnnPass<T> {
    unroll_with(
        RnnOps::Fused,
        &Workspace::default(),
        params,
        cell,
        dev,
        batch,
        h0,
    )
}

/// Runs `cell` over `batch` with `ops`, every h_t in `RnnPass::hidden` (so each ∂L/∂h_t can
/// be read off the gradients); the fused op keeps its buffers in `workspace`.
pub fn unroll_with<T: Tape<f32, Cpu>>(
    ops: RnnOps,
    workspace: &Workspace,
    params: &RnnParams,
    cell: CellKind,
    dev: &Cpu,
    batch: &SeqBatch,
    h0: Taped<T>,
) -> RnnPass<T> {
    match ops {
        RnnOps::Fused => unroll_scored(workspace, params, cell, dev, batch, h0, 0),
        RnnOps::Dfdx => unroll_dfdx(params, cell, dev, batch, h0),
    }
}

/// The first step (0-based) an output head reads: the states before it need not be tensors.
pub fn first_scored(batch: &SeqBatch) -> usize {
    match &batch.targets {
        SeqTargets::FinalValue(_) | SeqTargets::FinalClass(_) => batch.steps.saturating_sub(1),
        SeqTargets::TailClasses { steps, .. } => batch.steps.saturating_sub(*steps),
    }
}

/// The fused unroll keeping h_t as tensors for t > `keep_from` only (training keeps
/// [`first_scored`] onwards and reads ‖∂L/∂h_t‖ from the workspace instead).
pub fn unroll_scored<T: Tape<f32, Cpu>>(
    workspace: &Workspace,
    params: &RnnParams,
    cell: CellKind,
    dev: &Cpu,
    batch: &SeqBatch,
    h0: Taped<T>,
    keep_from: usize,
) -> RnnPass<T> {
    let gates = &params.cell(cell).gates;
    let run = fused_unroll(gates, cell, batch, h0, workspace, keep_from);
    readout(
        params,
        dev,
        batch,
        run.last,
        run.hidden,
        run.first,
        run.gate_means,
    )
}

/// The recurrence from dfdx's own ops.
fn unroll_dfdx<T: Tape<f32, Cpu>>(
    params: &RnnParams,
    cell: CellKind,
    dev: &Cpu,
    batch: &SeqBatch,
    h0: Taped<T>,
) -> RnnPass<T> {
    let hidden_size = h0.shape().1;
    let gates = &params.cell(cell).gates;
    let mut h = h0;
    let mut c: Matrix = dev.zeros_like(&(batch.rows, hidden_size));
    let mut hidden = Vec::with_capacity(batch.steps);
    let mut shown_gates = Vec::new();
    for t in 0..batch.steps {
        let x: Matrix = dev.tensor_from_vec(
            batch.step_inputs(t).to_vec(),
            (batch.rows, batch.input_dims),
        );
        let (h_prev, tape) = h.split_tape();
        h = match cell {
            CellKind::Vanilla => gate_pre(&gates[0], &x, &h_prev, tape).tanh(),
            CellKind::Gru => {
                let (reset, tape) = sigmoid_gate(&gates[0], &x, &h_prev, tape);
                let (update, tape) = sigmoid_gate(&gates[1], &x, &h_prev, tape);
                let (reset_h, tape) = (reset.put_tape(tape) * h_prev.clone()).split_tape();
                let (candidate, tape) = gate_pre(&gates[2], &x, &reset_h, tape).tanh().split_tape();
                shown_gates.push(update.clone());
                // (1−z)⊙n + z⊙h written as n + z⊙(h − n).
                (h_prev.put_tape(tape) - candidate.clone()) * update + candidate
            }
            CellKind::Lstm => {
                let (input, tape) = sigmoid_gate(&gates[0], &x, &h_prev, tape);
                let (forget, tape) = sigmoid_gate(&gates[1], &x, &h_prev, tape);
                let (candidate, tape) = gate_pre(&gates[2], &x, &h_prev, tape).tanh().split_tape();
                let (output, tape) = sigmoid_gate(&gates[3], &x, &h_prev, tape);
                shown_gates.push(forget.clone());
                let (kept, tape) = (forget.put_tape(tape) * c).split_tape();
                let (cell_state, tape) = (input.put_tape(tape) * candidate + kept).split_tape();
                c = cell_state.clone();
                cell_state.put_tape(tape).tanh() * output
            }
        };
        hidden.push(h.retaped::<NoneTape>());
    }
    let gate_means = shown_gates
        .iter()
        .map(|gate| gate_mean(&gate.as_vec(), 1, 0, hidden_size))
        .collect();
    readout(params, dev, batch, h, hidden, 0, gate_means)
}

/// The output head on the scored steps, and the loss.
fn readout<T: Tape<f32, Cpu>>(
    params: &RnnParams,
    dev: &Cpu,
    batch: &SeqBatch,
    last: Taped<T>,
    hidden: Vec<Matrix>,
    first: usize,
    gate_means: Vec<f64>,
) -> RnnPass<T> {
    let head = |h: Taped<T>| {
        let out = h.matmul(params.head_weight.clone());
        let shape = *out.shape();
        out + params
            .head_bias
            .clone()
            .broadcast_like::<_, Axis<0>>(&shape)
    };
    let one_hot = |labels: &[usize], classes: usize| -> Matrix {
        let mut data = vec![0.0f32; labels.len() * classes];
        for (row, &label) in labels.iter().enumerate() {
            data[row * classes + label] = 1.0;
        }
        dev.tensor_from_vec(data, (labels.len(), classes))
    };
    let classes = params.head_weight.shape().1;
    match &batch.targets {
        SeqTargets::FinalValue(values) => {
            let out = head(last);
            let outputs = vec![out.retaped::<NoneTape>()];
            let targets: Matrix = dev.tensor_from_vec(values.clone(), (values.len(), 1));
            let loss = mse_loss(out, targets);
            RnnPass {
                loss,
                outputs,
                hidden,
                first,
                gate_means,
            }
        }
        SeqTargets::FinalClass(labels) => {
            let out = head(last);
            let outputs = vec![out.retaped::<NoneTape>()];
            let loss = cross_entropy_with_logits_loss(out, one_hot(labels, classes));
            RnnPass {
                loss,
                outputs,
                hidden,
                first,
                gate_means,
            }
        }
        SeqTargets::TailClasses { steps, labels } => {
            let rows = batch.rows;
            let scored = batch.steps - steps;
            let (_, mut tape) = last.split_tape();
            let mut sum: Option<Tensor<(), f32, Cpu>> = None;
            let mut outputs = Vec::with_capacity(*steps);
            for k in 0..*steps {
                let out = head(hidden[scored + k - first].clone().put_tape(tape));
                outputs.push(out.retaped::<NoneTape>());
                let targets = one_hot(&labels[k * rows..(k + 1) * rows], classes);
                let step_loss = cross_entropy_with_logits_loss(out, targets);
                let running = match sum {
                    None => step_loss,
                    Some(previous) => step_loss + previous,
                };
                let (running, rest) = running.split_tape();
                sum = Some(running);
                tape = rest;
            }
            let sum = sum.unwrap_or_else(|| dev.zeros());
            let loss = sum.put_tape(tape) * (1.0 / *steps as f32);
            RnnPass {
                loss,
                outputs,
                hidden,
                first,
                gate_means,
            }
        }
    }
}

/// Loss and every gradient of one batch, as plain vectors (for gradient checks).
#[derive(Clone, Debug)]
pub struct RnnBackprop {
    /// The objective.
    pub loss: f32,
    /// ∂L/∂θ in `RnnParams::params_mut` order (zeros for cells not in use).
    pub param_grads: Vec<Vec<f32>>,
    /// ∂L/∂h_t for t = 1..T (row-major batch × hidden).
    pub hidden_grads: Vec<Vec<f32>>,
}

/// Runs `cell` over `batch` with the tape (fused, as training does) and collects every gradient.
pub fn rnn_backprop(
    params: &mut RnnParams,
    cell: CellKind,
    dev: &Cpu,
    batch: &SeqBatch,
) -> RnnBackprop {
    rnn_backprop_with(RnnOps::Fused, params, cell, dev, batch)
}

/// `rnn_backprop` with the chosen implementation of the recurrence.
pub fn rnn_backprop_with(
    ops: RnnOps,
    params: &mut RnnParams,
    cell: CellKind,
    dev: &Cpu,
    batch: &SeqBatch,
) -> RnnBackprop {
    let hidden_size = params.head_weight.shape().0;
    let h0: Matrix = dev.zeros_like(&(batch.rows, hidden_size));
    let workspace = Workspace::default();
    let pass = unroll_with(ops, &workspace, params, cell, dev, batch, h0.leaky_traced());
    let loss = pass.loss.retaped::<NoneTape>().array();
    let hidden = pass.hidden;
    let mut grads = pass.loss.backward();
    let hidden_grads = crate::model::backprop::grads_of(&mut grads, &hidden);
    let param_grads = params
        .params_mut()
        .into_iter()
        .map(|(_, p)| p.grad(&mut grads).to_vec())
        .collect();
    RnnBackprop {
        loss,
        param_grads,
        hidden_grads,
    }
}
