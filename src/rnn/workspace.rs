//! The fused unroll's buffers, kept from one training step to the next, and how the batch is
//! split into shards.
//!
//! At T = 200 an LSTM step needs tens of megabytes of traces; allocated afresh, every page
//! of them is faulted in again each step. The unroll takes the buffers out, its backward op
//! gives them back, and the next step finds them already mapped.
//!
//! The rows of a batch never meet in the recurrence, so the batch is cut into a fixed number
//! of shards ([`SHARDS`]) that run the forward and backward passes on their own; only the
//! weight gradients, gate means and norms are summed, shard by shard in order. The number of
//! shards is fixed, not taken from the machine, so a seed gives the same bits on any core
//! count; threads only decide whether the shards run side by side.

use std::sync::{Arc, Mutex, PoisonError};

/// Shards a batch is cut into for training and evaluation.
pub const SHARDS: usize = 2;

/// One shard's traces and scratch: rows `start..start + rows` of the batch.
#[derive(Default)]
pub struct Shard {
    /// First batch row of the shard.
    pub start: usize,
    /// Rows of the shard.
    pub rows: usize,
    /// Gate activations of every step (T·rows × gates·hidden).
    pub acts: Vec<f32>,
    /// h_0..h_T.
    pub states: Vec<f32>,
    /// LSTM: c_0..c_T.
    pub cells: Vec<f32>,
    /// LSTM: tanh(c_1)..tanh(c_T).
    pub tanh_c: Vec<f32>,
    /// GRU: r_t⊙h_{t-1} for every step.
    pub reset_h: Vec<f32>,
    /// The shard's inputs (time-major), kept for the weight gradients.
    pub x: Vec<f32>,
    /// Per step, the sum of the shown gate over the shard (LSTM forget, GRU update).
    pub gate_sums: Vec<f64>,
    /// Gate pre-activation gradients of every step, at their true scale.
    pub dacts: Vec<f32>,
    /// ∂L/∂h_{t-1} through the recurrence, divided by 2^`log2_scale`.
    pub carry: Vec<f32>,
    /// The total ∂L/∂h_t of the step being processed, on the same scale.
    pub dh: Vec<f32>,
    /// LSTM: ∂L/∂c carried back, on the same scale.
    pub dc: Vec<f32>,
    /// GRU: ∂L/∂(r⊙h_{t-1}), on the same scale.
    pub d_reset_h: Vec<f32>,
    /// The output head's ∂L/∂h_t of the kept steps (copied off the tape before the shards run).
    pub head: Vec<f32>,
    /// With every step kept: the total ∂L/∂h_t of each step at its true scale (f32), to be
    /// written back to the tape.
    pub totals: Vec<f32>,
    /// Per step, Σ (∂L/∂h_t / 2^k_t)² over the shard, in f64.
    pub sum_squares: Vec<f64>,
    /// Per step, the k_t of the line above.
    pub log2_scales: Vec<i32>,
    /// The shard's ∂L/∂W, ∂L/∂U, ∂L/∂b (packed).
    pub dw: Vec<f32>,
    /// See `dw`.
    pub du: Vec<f32>,
    /// See `dw`.
    pub db: Vec<f32>,
}

/// Every buffer of one unroll: packed parameters, shards, reduced gradients and norms.
#[derive(Default)]
pub struct Buffers {
    /// Packed input weights (inputs × gates·hidden).
    pub w: Vec<f32>,
    /// Packed recurrent weights (hidden × gates·hidden).
    pub u: Vec<f32>,
    /// Packed biases.
    pub b: Vec<f32>,
    /// Scratch for packing the parameters and holding h_0.
    pub scratch: Vec<f32>,
    /// The shards, in row order.
    pub shards: Vec<Shard>,
    /// Packed ∂L/∂W summed over the shards.
    pub dw: Vec<f32>,
    /// Packed ∂L/∂U summed over the shards.
    pub du: Vec<f32>,
    /// Packed ∂L/∂b summed over the shards.
    pub db: Vec<f32>,
    /// Per step t = 1..T of the last backward pass, log₂ ‖∂L/∂h_t‖ over the whole batch,
    /// exact far below f32's range (−∞ for an exactly zero gradient).
    pub grad_log2: Vec<f64>,
}

impl Buffers {
    /// Cuts `rows` into `count` shards (the first ones one row longer when it does not divide),
    /// keeping the buffers already there.
    pub fn cut(&mut self, rows: usize, count: usize) {
        let count = count.clamp(1, rows.max(1));
        self.shards.resize_with(count, Shard::default);
        let mut start = 0;
        for (i, shard) in self.shards.iter_mut().enumerate() {
            shard.start = start;
            shard.rows = rows / count + usize::from(i < rows % count);
            start += shard.rows;
        }
    }
}

/// A shared slot for one set of `Buffers` (cheap to clone; clones share the slot), with the
/// number of shards a batch is cut into and the threads they may use.
#[derive(Clone)]
pub struct Workspace {
    slot: Arc<Mutex<Option<Buffers>>>,
    shards: usize,
    threads: usize,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::with_shards(SHARDS)
    }
}

impl Workspace {
    /// A workspace cutting each batch into `shards` (at least 1), run on up to two threads.
    pub fn with_shards(shards: usize) -> Self {
        Self {
            slot: Arc::default(),
            shards: shards.max(1),
            threads: 2,
        }
    }

    /// Shards a batch is cut into.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Threads the shards may run on (1: one after the other on the calling thread).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Lets the shards run on up to `threads` threads (results do not depend on it).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// The kept buffers, or empty ones when none are kept (first use, or in use elsewhere).
    pub fn take(&self) -> Buffers {
        // A panic elsewhere cannot leave a half-written Option behind, so poison is harmless.
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.take().unwrap_or_default()
    }

    /// Keeps `buffers` for the next unroll.
    pub fn give(&self, buffers: Buffers) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(buffers);
    }

    /// log₂ ‖∂L/∂h_t‖ for t = 1..T of the last backward pass run on these buffers, into `out`
    /// (emptied first; left empty when no backward pass has run).
    pub fn hidden_grad_log2(&self, out: &mut Vec<f64>) {
        out.clear();
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(buffers) = slot.as_ref() {
            out.extend_from_slice(&buffers.grad_log2);
        }
    }
}
