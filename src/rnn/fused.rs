//! The whole unrolled recurrence as one tape op: forward over all T steps, and backprop
//! through time written out by hand.
//!
//! dfdx records about 20 generic ops per time step, each with its own allocations, and keeps
//! every intermediate and its gradient alive until `backward` ends; at T = 200 that working set
//! no longer fits in cache and the step slows down faster than T grows. Here the gates of a
//! cell are packed side by side, so a time step is one product h·U (two for the GRU, whose
//! candidate reads r⊙h) plus one vectorised element-wise pass; the input products of all steps
//! are one product up front, and the weight gradients of all steps are one product at the end.
//! The hidden states h_1..h_T are still separate tensors on the tape: the backward pass adds
//! the recurrent gradient to whatever the output head put on each h_t and leaves the total
//! there, so ∂L/∂h_t reads exactly as with dfdx's ops. `tests/numerics/rnn_fused.rs` checks it against
//! the dfdx-op unroll, `tests/numerics/bptt_gradcheck.rs` against finite differences.
//!
//! Every state and gradient the recurrence writes passes through [`flush`], in the pass that
//! writes it: a vanishing gradient would otherwise spend many of the T = 200 steps as subnormal
//! floats, which x86 cores handle far slower than normal ones.

use super::cells::{
    gate_mean, gru_backward_reset, gru_backward_state, gru_gates, gru_state, lstm_backward,
    lstm_forward, vanilla_backward, vanilla_forward,
};
use super::params::GateParams;
use super::workspace::{Buffers, Workspace};
use crate::config::CellKind;
use crate::model::Matrix;
use crate::model::kernels::{
    Operand, add_column_sums, add_thin_product, fill_rows, flush, matmul, matmul_into,
};
use crate::tasks::sequence::SeqBatch;
use dfdx::prelude::*;

type Taped<T> = Tensor<(usize, usize), f32, Cpu, T>;

/// Input widths up to which x·W is a few axpys rather than a gemm call (the sequence tasks
/// have 2 to 10 input features).
const THIN: usize = 16;

/// What the fused unroll hands to the output head.
pub struct FusedUnroll<T> {
    /// h_T, carrying the tape.
    pub last: Taped<T>,
    /// h_1..h_T, tape-less tensors whose ids the backward pass writes ∂L/∂h_t to.
    pub hidden: Vec<Matrix>,
    /// Per step, the mean of the gate the lab shows (LSTM forget, GRU update); empty for vanilla.
    pub gate_means: Vec<f64>,
}

/// Sizes of one unroll.
#[derive(Clone, Copy)]
struct Dims {
    steps: usize,
    rows: usize,
    inputs: usize,
    hidden: usize,
    gates: usize,
}

impl Dims {
    /// Scalars of one step's gate block (rows × gates·hidden).
    fn gate_block(&self) -> usize {
        self.rows * self.gates * self.hidden
    }

    /// Scalars of one step's hidden state (rows × hidden).
    fn state(&self) -> usize {
        self.rows * self.hidden
    }

    /// Width of the packed gate matrices.
    fn packed(&self) -> usize {
        self.gates * self.hidden
    }
}

/// Copies each gate's W, U and b side by side into the packed matrices of `buffers`.
fn pack(gates: &[GateParams], dims: Dims, buffers: &mut Buffers) {
    let (h, width) = (dims.hidden, dims.packed());
    let mut scratch = vec![0.0f32; h.max(dims.inputs) * h];
    buffers.w.resize(dims.inputs * width, 0.0);
    buffers.u.resize(h * width, 0.0);
    buffers.b.resize(width, 0.0);
    for (g, gate) in gates.iter().enumerate() {
        let columns = g * h..(g + 1) * h;
        let w = &mut scratch[..dims.inputs * h];
        gate.input_weight.copy_into(w);
        for (dst, src) in buffers.w.chunks_exact_mut(width).zip(w.chunks_exact(h)) {
            dst[columns.clone()].copy_from_slice(src);
        }
        let u = &mut scratch[..h * h];
        gate.recurrent_weight.copy_into(u);
        for (dst, src) in buffers.u.chunks_exact_mut(width).zip(u.chunks_exact(h)) {
            dst[columns.clone()].copy_from_slice(src);
        }
        gate.bias.copy_into(&mut buffers.b[columns]);
    }
}

/// Adds column block `g` (`hidden` wide) of the packed `packed` (rows × width) to `dst`.
fn add_block(dst: &mut [f32], packed: &[f32], width: usize, g: usize, hidden: usize) {
    for (dst, src) in dst.chunks_exact_mut(hidden).zip(packed.chunks_exact(width)) {
        dst.iter_mut()
            .zip(&src[g * hidden..(g + 1) * hidden])
            .for_each(|(d, &s)| *d += s);
    }
}

/// Runs `cell` (whose gates are `gates`) over `batch` from `h0` as one tape op, with buffers
/// from `workspace`.
pub fn fused_unroll<T: Tape<f32, Cpu>>(
    gates: &[GateParams],
    cell: CellKind,
    batch: &SeqBatch,
    h0: Taped<T>,
    workspace: &Workspace,
) -> FusedUnroll<T> {
    let (rows, hidden) = *h0.shape();
    let dims = Dims {
        steps: batch.steps,
        rows,
        inputs: batch.input_dims,
        hidden,
        gates: gates.len(),
    };
    let (h0, mut tape) = h0.split_tape();
    let mut buffers = workspace.take();
    pack(gates, dims, &mut buffers);
    let gate_means = forward(cell, dims, &batch.inputs, &h0, &mut buffers, T::OWNS_TAPE);

    let dev = h0.device().clone();
    let state = dims.state();
    let hidden_states: Vec<Matrix> = buffers.states[state..]
        .chunks_exact(state)
        .map(|h| dev.tensor_from_vec(h.to_vec(), (rows, hidden)))
        .collect();

    // A zero-length sequence leaves h_0 as the last state, as dfdx's unroll does.
    let last = hidden_states.last().unwrap_or(&h0).clone();
    if T::OWNS_TAPE {
        buffers.x.clear();
        buffers.x.extend_from_slice(&batch.inputs);
        let ids = (h0, hidden_states.clone(), gates.to_vec());
        let workspace = workspace.clone();
        tape.add_backward_op(move |grads| {
            let mut buffers = buffers;
            let (h0, hidden_states, gates) = &ids;
            let result = backward(cell, dims, &mut buffers, grads, h0, hidden_states, gates);
            workspace.give(buffers);
            result
        });
    } else {
        workspace.give(buffers);
    }
    FusedUnroll {
        last: last.put_tape(tape),
        hidden: hidden_states,
        gate_means,
    }
}

/// dst (m × n) += x (m × k) · w (k × n): axpys for thin inputs, gemm otherwise.
fn add_input_products(dst: &mut [f32], x: &[f32], w: &[f32], m: usize, k: usize, n: usize) {
    if k <= THIN {
        add_thin_product(dst, x, w, k, n);
    } else {
        matmul(
            dst,
            m,
            n,
            k,
            Operand::plain(x, k),
            Operand::plain(w, n),
            true,
        );
    }
}

/// Slots `from` (read) and `to` (written) of a buffer of `len`-sized slots.
fn slot_pair(buffer: &mut [f32], len: usize, from: usize, to: usize) -> (&[f32], &mut [f32]) {
    if from < to {
        let (low, high) = buffer.split_at_mut(to * len);
        (&low[from * len..(from + 1) * len], &mut high[..len])
    } else {
        let (low, high) = buffer.split_at_mut(from * len);
        (&high[..len], &mut low[to * len..(to + 1) * len])
    }
}

/// The forward recurrence: fills `states` (h_0..h_T) and returns the shown gate's mean per
/// step. With `keep` it also keeps every step's gate activations and the cell's own traces
/// for the backward pass; without (evaluation), one step's worth is reused, so the 512-sequence
/// test set at T = 200 needs a few megabytes instead of a few hundred.
fn forward(
    cell: CellKind,
    dims: Dims,
    inputs: &[f32],
    h0: &Matrix,
    buffers: &mut Buffers,
    keep: bool,
) -> Vec<f64> {
    let Dims {
        steps,
        rows,
        inputs: input_dims,
        hidden,
        gates,
    } = dims;
    let (state, block, width) = (dims.state(), dims.gate_block(), dims.packed());
    let Buffers {
        w,
        u,
        b,
        acts,
        states,
        cells,
        tanh_c,
        reset_h,
        ..
    } = buffers;
    let traced = if keep { steps } else { 1 };
    acts.resize(traced * block, 0.0);
    states.resize((steps + 1) * state, 0.0);
    if keep {
        // Every step's x_t·W at once: the inputs are time-major, so the rows line up.
        fill_rows(acts, b);
        add_input_products(acts, inputs, w, steps * rows, input_dims, width);
    }
    h0.copy_into(&mut states[..state]);
    if cell == CellKind::Lstm {
        cells.clear();
        cells.resize((traced + 1) * state, 0.0);
        tanh_c.resize(traced * state, 0.0);
    }
    if cell == CellKind::Gru {
        reset_h.resize(traced * state, 0.0);
    }
    let mut gate_means = Vec::with_capacity(steps);
    for t in 0..steps {
        let slot = if keep { t } else { 0 };
        let (done, next) = states.split_at_mut((t + 1) * state);
        let h_prev = &done[t * state..];
        let h = &mut next[..state];
        let a = &mut acts[slot * block..(slot + 1) * block];
        if !keep {
            fill_rows(a, b);
            let x = &inputs[t * rows * input_dims..(t + 1) * rows * input_dims];
            add_input_products(a, x, w, rows, input_dims, width);
        }
        let prev = Operand::plain(h_prev, hidden);
        match cell {
            CellKind::Vanilla => {
                matmul(
                    a,
                    rows,
                    hidden,
                    hidden,
                    prev,
                    Operand::plain(u, width),
                    true,
                );
                vanilla_forward(a, h);
            }
            CellKind::Lstm => {
                matmul(a, rows, width, hidden, prev, Operand::plain(u, width), true);
                let (from, to) = if keep {
                    (t, t + 1)
                } else {
                    (t % 2, (t + 1) % 2)
                };
                let (c_prev, c) = slot_pair(cells, state, from, to);
                let tc = &mut tanh_c[slot * state..(slot + 1) * state];
                lstm_forward(a, c_prev, c, tc, h, hidden);
            }
            CellKind::Gru => {
                let rh = &mut reset_h[slot * state..(slot + 1) * state];
                let u_rz = Operand::plain(u, width);
                matmul_into(a, width, rows, 2 * hidden, hidden, prev, u_rz, true);
                gru_gates(a, h_prev, rh, hidden);
                let u_n = Operand::plain(&u[2 * hidden..], width);
                let rh = Operand::plain(rh, hidden);
                matmul_into(
                    &mut a[2 * hidden..],
                    width,
                    rows,
                    hidden,
                    hidden,
                    rh,
                    u_n,
                    true,
                );
                gru_state(a, h_prev, h, hidden);
            }
        }
        if cell != CellKind::Vanilla {
            // Both shown gates sit in block 1: the LSTM's f of [i f g o], the GRU's z of [r z n].
            gate_means.push(gate_mean(a, gates, 1, hidden));
        }
    }
    gate_means
}

/// Backprop through time: ∂L/∂h_t (head's share plus the recurrent share) left on every h_t,
/// ∂L/∂h_0 added to h0, and every gate's ∂L/∂W, ∂L/∂U, ∂L/∂b.
fn backward(
    cell: CellKind,
    dims: Dims,
    buffers: &mut Buffers,
    grads: &mut Gradients<f32, Cpu>,
    h0: &Matrix,
    hidden_states: &[Matrix],
    gates: &[GateParams],
) -> Result<(), dfdx::tensor::CpuError> {
    let Dims {
        steps,
        rows,
        inputs,
        hidden,
        ..
    } = dims;
    let (state, block, width) = (dims.state(), dims.gate_block(), dims.packed());
    let Buffers {
        u,
        acts,
        states,
        cells,
        tanh_c,
        reset_h,
        x,
        dacts,
        carry,
        dh,
        dc,
        d_reset_h,
        dw,
        du,
        db,
        ..
    } = buffers;
    dacts.resize(steps * block, 0.0);
    carry.clear();
    carry.resize(state, 0.0);
    dh.resize(state, 0.0);
    dc.clear();
    dc.resize(state, 0.0);
    d_reset_h.resize(state, 0.0);
    for t in (0..steps).rev() {
        let total = grads.get_or_alloc_mut(&hidden_states[t])?;
        // The carry comes from a product, which can round a tiny gradient to a subnormal one.
        total
            .iter_mut()
            .zip(carry.iter())
            .for_each(|(g, &c)| *g = flush(*g + c));
        dh.copy_from_slice(total);
        let a = &acts[t * block..(t + 1) * block];
        let da = &mut dacts[t * block..(t + 1) * block];
        let h_prev = &states[t * state..(t + 1) * state];
        let u_t = Operand::transposed(u, width);
        match cell {
            CellKind::Vanilla => {
                vanilla_backward(&states[(t + 1) * state..(t + 2) * state], dh, da);
                matmul(
                    carry,
                    rows,
                    hidden,
                    width,
                    Operand::plain(da, width),
                    u_t,
                    false,
                );
            }
            CellKind::Lstm => {
                let c_prev = &cells[t * state..(t + 1) * state];
                let tc = &tanh_c[t * state..(t + 1) * state];
                lstm_backward(a, c_prev, tc, dh, dc, da, hidden);
                matmul(
                    carry,
                    rows,
                    hidden,
                    width,
                    Operand::plain(da, width),
                    u_t,
                    false,
                );
            }
            CellKind::Gru => {
                gru_backward_state(a, h_prev, dh, da, carry, hidden);
                let da_n = Operand::plain(&da[2 * hidden..], width);
                let u_n_t = Operand::transposed(&u[2 * hidden..], width);
                matmul(d_reset_h, rows, hidden, hidden, da_n, u_n_t, false);
                gru_backward_reset(a, h_prev, d_reset_h, da, carry, hidden);
                let da_rz = Operand::plain(da, width);
                matmul_into(carry, hidden, rows, hidden, 2 * hidden, da_rz, u_t, true);
            }
        }
    }
    grads
        .get_or_alloc_mut(h0)?
        .iter_mut()
        .zip(carry.iter())
        .for_each(|(g, &c)| *g = flush(*g + c));

    // All steps' weight gradients in one product each: Σ_t x_tᵀ·da_t and Σ_t h_{t-1}ᵀ·da_t.
    let all_rows = steps * rows;
    dw.resize(inputs * width, 0.0);
    du.resize(hidden * width, 0.0);
    db.clear();
    db.resize(width, 0.0);
    let da_all = Operand::plain(dacts, width);
    matmul(
        dw,
        inputs,
        width,
        all_rows,
        Operand::transposed(x, inputs),
        da_all,
        false,
    );
    let h_prev_all = Operand::transposed(&states[..steps * state], hidden);
    if cell == CellKind::Gru {
        // The candidate's U multiplies r⊙h_{t-1}, not h_{t-1}.
        matmul_into(
            du,
            width,
            hidden,
            2 * hidden,
            all_rows,
            h_prev_all,
            da_all,
            false,
        );
        let rh_all = Operand::transposed(reset_h, hidden);
        let da_n = Operand::plain(&dacts[2 * hidden..], width);
        matmul_into(
            &mut du[2 * hidden..],
            width,
            hidden,
            hidden,
            all_rows,
            rh_all,
            da_n,
            false,
        );
    } else {
        matmul(du, hidden, width, all_rows, h_prev_all, da_all, false);
    }
    add_column_sums(dacts, width, db);

    for (g, gate) in gates.iter().enumerate() {
        add_block(
            grads.get_or_alloc_mut(&gate.input_weight)?,
            dw,
            width,
            g,
            hidden,
        );
        add_block(
            grads.get_or_alloc_mut(&gate.recurrent_weight)?,
            du,
            width,
            g,
            hidden,
        );
        add_block(grads.get_or_alloc_mut(&gate.bias)?, db, width, g, hidden);
    }
    Ok(())
}
