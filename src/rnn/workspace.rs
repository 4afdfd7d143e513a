//! The fused unroll's buffers, kept from one training step to the next.
//!
//! At T = 200 an LSTM step needs tens of megabytes of traces; allocated afresh, every page
//! of them is faulted in again each step. The unroll takes the buffers out, its backward op
//! gives them back, and the next step finds them already mapped.

use std::sync::{Arc, Mutex, PoisonError};

/// Every buffer of one unroll: packed parameters, forward traces, backward scratch.
#[derive(Default)]
pub struct Buffers {
    /// Packed input weights (inputs × gates·hidden).
    pub w: Vec<f32>,
    /// Packed recurrent weights (hidden × gates·hidden).
    pub u: Vec<f32>,
    /// Packed biases.
    pub b: Vec<f32>,
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
    /// The batch's inputs, kept for the weight gradients.
    pub x: Vec<f32>,
    /// Gate pre-activation gradients of every step.
    pub dacts: Vec<f32>,
    /// ∂L/∂h_{t-1} through the recurrence.
    pub carry: Vec<f32>,
    /// The total ∂L/∂h_t of the step being processed.
    pub dh: Vec<f32>,
    /// LSTM: ∂L/∂c carried back.
    pub dc: Vec<f32>,
    /// GRU: ∂L/∂(r⊙h_{t-1}).
    pub d_reset_h: Vec<f32>,
    /// Packed ∂L/∂W.
    pub dw: Vec<f32>,
    /// Packed ∂L/∂U.
    pub du: Vec<f32>,
    /// Packed ∂L/∂b.
    pub db: Vec<f32>,
}

/// A shared slot for one set of `Buffers` (cheap to clone; clones share the slot).
#[derive(Clone, Default)]
pub struct Workspace(Arc<Mutex<Option<Buffers>>>);

impl Workspace {
    /// The kept buffers, or empty ones when none are kept (first use, or in use elsewhere).
    pub fn take(&self) -> Buffers {
        // A panic elsewhere cannot leave a half-written Option behind, so poison is harmless.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.take().unwrap_or_default()
    }

    /// Keeps `buffers` for the next unroll.
    pub fn give(&self, buffers: Buffers) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(buffers);
    }
}
