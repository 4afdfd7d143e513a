//! The whole unrolled recurrence as one tape op: forward over all T steps, and backprop
//! through time written out by hand.
//!
//! dfdx records about 20 generic ops per time step, each with its own allocations, and keeps
//! every intermediate and its gradient alive until `backward` ends; at T = 200 that working set
//! no longer fits in cache and the step slows down faster than T grows. Here the gates of a
//! cell are packed side by side, so a time step is one product h·U (two for the GRU, whose
//! candidate reads r⊙h) plus one vectorised element-wise pass; the input products of all steps
//! are one product up front, and the weight gradients of all steps are one product at the end.
//!
//! The batch is cut into a fixed number of shards (`super::workspace`) that run both passes
//! side by side; their weight gradients, gate sums and norms are added up in shard order.
//!
//! Only the hidden states an output head reads need to be tensors on the tape (training keeps
//! those; `unroll_with` keeps every h_t so tests can read each ∂L/∂h_t off the tape). The
//! backward pass takes the head's ∂L/∂h_t from those tensors, adds the recurrent share, and
//! measures ‖∂L/∂h_t‖ of every step on the way, in the pass that already holds it: the signal
//! is carried at a power-of-two scale (`super::scale`), so the norms are exact (as log₂) far
//! below f32's range and the recurrence never computes on subnormal floats.
//! `tests/numerics/rnn_fused.rs` checks all this against the dfdx-op unroll,
//! `tests/numerics/bptt_gradcheck.rs` against finite differences.
//!
//! Every state the forward pass writes passes through [`flush`](crate::model::kernels::flush):
//! subnormal floats cost x86 cores a microcode assist about a hundred times slower than a
//! normal operation.

use super::cells::{
    gate_sum, gru_backward_reset, gru_backward_state, gru_gates, gru_state, lstm_backward,
    lstm_forward, vanilla_backward, vanilla_forward,
};
use super::params::GateParams;
use super::scale::{
    add_flushed, combine_log2, exponent, log2_norm, next_scale, scale_pow2, scaled_copy,
    sum_squares_and_max,
};
use super::workspace::{Buffers, Shard, Workspace};
use crate::config::CellKind;
use crate::model::Matrix;
use crate::model::kernels::{
    Operand, add_column_sums, add_thin_product, fill_rows, matmul, matmul_into,
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
    /// h_{first+1}..h_T, tape-less tensors whose ids the backward pass reads the head's
    /// ∂L/∂h_t from (and, when every step is kept, leaves the total ∂L/∂h_t on).
    pub hidden: Vec<Matrix>,
    /// Steps not kept as tensors: `hidden[0]` is h_{first+1}.
    pub first: usize,
    /// Per step, the mean of the gate the lab shows (LSTM forget, GRU update); empty for vanilla.
    pub gate_means: Vec<f64>,
}

/// Sizes of one unroll (or of one shard of it).
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

    /// The same unroll over `rows` rows (one shard).
    fn with_rows(self, rows: usize) -> Self {
        Self { rows, ..self }
    }
}

/// Copies each gate's W, U and b side by side into the packed matrices of `buffers`.
fn pack(gates: &[GateParams], dims: Dims, buffers: &mut Buffers) {
    let (h, width) = (dims.hidden, dims.packed());
    let Buffers {
        w, u, b, scratch, ..
    } = buffers;
    scratch.resize(h.max(dims.inputs) * h, 0.0);
    w.resize(dims.inputs * width, 0.0);
    u.resize(h * width, 0.0);
    b.resize(width, 0.0);
    for (g, gate) in gates.iter().enumerate() {
        let columns = g * h..(g + 1) * h;
        let wg = &mut scratch[..dims.inputs * h];
        gate.input_weight.copy_into(wg);
        for (dst, src) in w.chunks_exact_mut(width).zip(wg.chunks_exact(h)) {
            dst[columns.clone()].copy_from_slice(src);
        }
        let ug = &mut scratch[..h * h];
        gate.recurrent_weight.copy_into(ug);
        for (dst, src) in u.chunks_exact_mut(width).zip(ug.chunks_exact(h)) {
            dst[columns.clone()].copy_from_slice(src);
        }
        gate.bias.copy_into(&mut b[columns]);
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

/// Runs `work` on every shard on up to `threads` threads: the shared persistent shard
/// worker, so no thread is started per pass (see `parallel::run_shards`).
fn run_shards(shards: &mut [Shard], threads: usize, work: impl Fn(&mut Shard) + Sync) {
    crate::parallel::run_shards(shards, threads, work);
}

/// Runs `cell` (whose gates are `gates`) over `batch` from `h0` as one tape op, with buffers
/// from `workspace`; h_t becomes a tensor for t > `keep_from` (0: every step).
pub fn fused_unroll<T: Tape<f32, Cpu>>(
    gates: &[GateParams],
    cell: CellKind,
    batch: &SeqBatch,
    h0: Taped<T>,
    workspace: &Workspace,
    keep_from: usize,
) -> FusedUnroll<T> {
    let (rows, hidden) = *h0.shape();
    let dims = Dims {
        steps: batch.steps,
        rows,
        inputs: batch.input_dims,
        hidden,
        gates: gates.len(),
    };
    let first = keep_from.min(dims.steps);
    let (h0, mut tape) = h0.split_tape();
    let mut buffers = workspace.take();
    buffers.cut(rows, workspace.shards());
    buffers.grad_log2.clear();
    pack(gates, dims, &mut buffers);
    let keep = T::OWNS_TAPE;
    {
        let Buffers {
            w,
            u,
            b,
            shards,
            scratch,
            ..
        } = &mut buffers;
        scratch.resize(rows * hidden, 0.0);
        h0.copy_into(&mut scratch[..rows * hidden]);
        let packed: [&[f32]; 3] = [w, u, b];
        let h0: &[f32] = scratch;
        run_shards(shards, workspace.threads(), |shard| {
            let dims = dims.with_rows(shard.rows);
            gather_inputs(&batch.inputs, rows, shard, dims);
            let h0 = &h0[shard.start * hidden..(shard.start + shard.rows) * hidden];
            forward(cell, dims, h0, packed, shard, keep);
        });
    }
    let gate_means = if cell == CellKind::Vanilla {
        Vec::new()
    } else {
        let count = (rows * hidden).max(1) as f64;
        (0..dims.steps)
            .map(|t| buffers.shards.iter().map(|s| s.gate_sums[t]).sum::<f64>() / count)
            .collect()
    };

    let dev = h0.device().clone();
    let hidden_states: Vec<Matrix> = (first..dims.steps)
        .map(|t| {
            let mut data = vec![0.0f32; rows * hidden];
            for shard in &buffers.shards {
                let n = shard.rows * hidden;
                let from = &shard.states[(t + 1) * n..(t + 2) * n];
                data[shard.start * hidden..shard.start * hidden + n].copy_from_slice(from);
            }
            dev.tensor_from_vec(data, (rows, hidden))
        })
        .collect();

    // A zero-length sequence leaves h_0 as the last state, as dfdx's unroll does.
    let last = hidden_states.last().unwrap_or(&h0).clone();
    if keep {
        let ids = (h0, hidden_states.clone(), gates.to_vec());
        let workspace = workspace.clone();
        tape.add_backward_op(move |grads| {
            let mut buffers = buffers;
            let (h0, kept, gates) = &ids;
            let threads = workspace.threads();
            let result = backward(
                cell,
                dims,
                first,
                threads,
                &mut buffers,
                grads,
                h0,
                kept,
                gates,
            );
            workspace.give(buffers);
            result
        });
    } else {
        workspace.give(buffers);
    }
    FusedUnroll {
        last: last.put_tape(tape),
        hidden: hidden_states,
        first,
        gate_means,
    }
}

/// Copies the shard's rows of every step's inputs (time-major) into `shard.x`.
fn gather_inputs(inputs: &[f32], rows: usize, shard: &mut Shard, dims: Dims) {
    let width = dims.inputs;
    shard.x.clear();
    for t in 0..dims.steps {
        let from = (t * rows + shard.start) * width;
        shard
            .x
            .extend_from_slice(&inputs[from..from + shard.rows * width]);
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

/// The forward recurrence of one shard: fills `states` (h_0..h_T) and the shown gate's sum
/// per step. With `keep` it also keeps every step's gate activations and the cell's own traces
/// for the backward pass; without (evaluation), one step's worth is reused, so the 512-sequence
/// test set at T = 200 needs a few megabytes instead of a few hundred.
fn forward(
    cell: CellKind,
    dims: Dims,
    h0: &[f32],
    [w, u, b]: [&[f32]; 3],
    shard: &mut Shard,
    keep: bool,
) {
    let Dims {
        steps,
        rows,
        inputs: input_dims,
        hidden,
        gates,
    } = dims;
    let (state, block, width) = (dims.state(), dims.gate_block(), dims.packed());
    let Shard {
        acts,
        states,
        cells,
        tanh_c,
        reset_h,
        x: inputs,
        gate_sums,
        ..
    } = shard;
    let traced = if keep { steps } else { 1 };
    acts.resize(traced * block, 0.0);
    states.resize((steps + 1) * state, 0.0);
    if keep {
        // Every step's x_t·W at once: the inputs are time-major, so the rows line up.
        fill_rows(acts, b);
        add_input_products(acts, inputs, w, steps * rows, input_dims, width);
    }
    states[..state].copy_from_slice(h0);
    if cell == CellKind::Lstm {
        cells.clear();
        cells.resize((traced + 1) * state, 0.0);
        tanh_c.resize(traced * state, 0.0);
    }
    if cell == CellKind::Gru {
        reset_h.resize(traced * state, 0.0);
    }
    gate_sums.clear();
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
            gate_sums.push(gate_sum(a, gates, 1, hidden));
        }
    }
}

/// Backprop through time: ∂L/∂h_0 added to h0, every gate's ∂L/∂W, ∂L/∂U, ∂L/∂b, and
/// log₂ ‖∂L/∂h_t‖ of every step into `buffers.grad_log2`; when every step was kept
/// (`first` = 0), the total ∂L/∂h_t (head's share plus the recurrent share) left on each h_t.
#[allow(clippy::too_many_arguments)]
fn backward(
    cell: CellKind,
    dims: Dims,
    first: usize,
    threads: usize,
    buffers: &mut Buffers,
    grads: &mut Gradients<f32, Cpu>,
    h0: &Matrix,
    kept: &[Matrix],
    gates: &[GateParams],
) -> Result<(), dfdx::tensor::CpuError> {
    let Dims { steps, hidden, .. } = dims;
    let width = dims.packed();
    let every_step = first == 0;
    let Buffers {
        u,
        shards,
        dw,
        du,
        db,
        grad_log2,
        ..
    } = buffers;
    // The head's share of each kept ∂L/∂h_t, copied off the tape so the shards need no tape.
    for shard in shards.iter_mut() {
        shard.head.resize(kept.len() * shard.rows * hidden, 0.0);
    }
    for (i, h) in kept.iter().enumerate() {
        let g = grads.get_or_alloc_mut(h)?;
        for shard in shards.iter_mut() {
            let n = shard.rows * hidden;
            shard.head[i * n..(i + 1) * n]
                .copy_from_slice(&g[shard.start * hidden..shard.start * hidden + n]);
        }
    }
    let u: &[f32] = u;
    run_shards(shards, threads, |shard| {
        backward_shard(cell, dims.with_rows(shard.rows), first, u, shard);
    });
    if every_step {
        for (t, h) in kept.iter().enumerate() {
            let g = grads.get_or_alloc_mut(h)?;
            for shard in shards.iter() {
                let n = shard.rows * hidden;
                g[shard.start * hidden..shard.start * hidden + n]
                    .copy_from_slice(&shard.totals[t * n..(t + 1) * n]);
            }
        }
    }
    let g0 = grads.get_or_alloc_mut(h0)?;
    for shard in shards.iter() {
        let n = shard.rows * hidden;
        add_flushed(
            &mut g0[shard.start * hidden..shard.start * hidden + n],
            &shard.carry[..n],
        );
    }
    grad_log2.clear();
    grad_log2.extend((0..steps).map(|t| {
        combine_log2(
            shards
                .iter()
                .map(|s| log2_norm(s.sum_squares[t], s.log2_scales[t])),
        )
    }));

    // The shards' weight gradients, added in shard order.
    for (total, part) in [(&mut *dw, 0), (&mut *du, 1), (&mut *db, 2)] {
        total.clear();
        for (i, shard) in shards.iter().enumerate() {
            let mine = [&shard.dw, &shard.du, &shard.db][part];
            if i == 0 {
                total.extend_from_slice(mine);
            } else {
                total.iter_mut().zip(mine).for_each(|(t, &m)| *t += m);
            }
        }
    }
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

/// Adds the head's share `g` (true scale) to the carried `dh` (scale 2^k), moving `dh` and
/// `dc` to the scale the sum needs; returns that scale.
fn add_head_share(dh: &mut [f32], dc: &mut [f32], g: &mut [f32], k: i32) -> i32 {
    if k == 0 {
        add_flushed(dh, g);
        return 0;
    }
    let mut head = (0.0, 0.0);
    sum_squares_and_max(g, &[], &mut head);
    if head.1 == 0.0 {
        return k;
    }
    let mut carried = (0.0, 0.0);
    sum_squares_and_max(dh, dc, &mut carried);
    let to_exponent = |m: f32, k: i32| (m > 0.0).then(|| exponent(m) + k);
    let target = if head.1.is_finite() && carried.1.is_finite() {
        let top = to_exponent(head.1, 0).max(to_exponent(carried.1, k));
        match top {
            Some(e) if e < super::scale::LOW => e,
            _ => 0,
        }
    } else {
        // A NaN or ±∞ shows as such at scale 1.
        0
    };
    scale_pow2(dh, k - target);
    scale_pow2(dc, k - target);
    scale_pow2(g, -target);
    add_flushed(dh, g);
    target
}

/// Backprop through time over one shard (see `backward`); leaves ∂L/∂h_0 at its true scale
/// in `carry` and the shard's weight gradients in its `dw`, `du`, `db`.
fn backward_shard(cell: CellKind, dims: Dims, first: usize, u: &[f32], shard: &mut Shard) {
    let Dims {
        steps,
        rows,
        inputs,
        hidden,
        ..
    } = dims;
    let (state, block, width) = (dims.state(), dims.gate_block(), dims.packed());
    let lstm = cell == CellKind::Lstm;
    let Shard {
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
        head,
        totals,
        sum_squares,
        log2_scales,
        dw,
        du,
        db,
        ..
    } = shard;
    dacts.resize(steps * block, 0.0);
    carry.clear();
    carry.resize(state, 0.0);
    dh.clear();
    dh.resize(state, 0.0);
    dc.clear();
    dc.resize(if lstm { state } else { 0 }, 0.0);
    d_reset_h.resize(state, 0.0);
    sum_squares.clear();
    sum_squares.resize(steps, 0.0);
    log2_scales.clear();
    log2_scales.resize(steps, 0);
    if first == 0 {
        totals.resize(steps * state, 0.0);
    }
    // ∂L/∂h and ∂L/∂c are carried divided by 2^k (see `super::scale`).
    let mut k = 0i32;
    for t in (0..steps).rev() {
        // dh becomes ∂L/∂h_t through the recurrence; carry is free for ∂L/∂h_{t-1}.
        std::mem::swap(carry, dh);
        if t >= first {
            let g = &mut head[(t - first) * state..(t - first + 1) * state];
            k = add_head_share(dh, dc, g, k);
        }
        let mut measured = (0.0, 0.0);
        sum_squares_and_max(dh, dc, &mut measured);
        sum_squares[t] = measured.0;
        log2_scales[t] = k;
        let top = (measured.1 > 0.0 && measured.1.is_finite()).then(|| exponent(measured.1) + k);
        let next = next_scale(k, top);
        if next != k {
            scale_pow2(dh, k - next);
            scale_pow2(dc, k - next);
            k = next;
        }
        if first == 0 {
            scaled_copy(&mut totals[t * state..(t + 1) * state], dh, k);
        }
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
        // The weight gradients take this step's share at its true scale.
        scale_pow2(da, k);
    }
    scale_pow2(carry, k);

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
}
