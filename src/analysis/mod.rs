//! Analyses of the MLP's hidden stack on a few training rows, in f64: the singular values of
//! the input–output Jacobian (`jacobian`) and the forward signal's length and correlation
//! (`forward_signal`), each beside its mean-field prediction (`maps`). `stack` rebuilds the
//! stack from the current weights; `svd` is the one-sided Jacobi SVD they share.

pub mod forward_signal;
pub mod jacobian;
pub mod maps;
pub mod stack;
pub mod svd;

pub use forward_signal::{ForwardSignal, LayerSignal};
pub use jacobian::{JacobianSpectrum, Spread};

use crate::config::{Activation, SkipMode};
use crate::model::{MlpParams, Trainer};

/// Training rows both analyses use (their first rows, so every refresh sees the same inputs).
pub const ANALYSIS_ROWS: usize = 8;

/// Width up to which a live analysis takes all `ANALYSIS_ROWS` Jacobians.
const LIVE_FULL_WIDTH: usize = 128;

/// How many Jacobians (inputs) a live analysis takes at `width`: all `ANALYSIS_ROWS` up to
/// width 128, then fewer (at least one), so the O(N³) product and SVD per input cost no more
/// than eight at width 128 and the trainer thread is not held up for seconds.
pub fn live_jacobian_inputs(width: usize) -> usize {
    let budget = ANALYSIS_ROWS * LIVE_FULL_WIDTH.pow(3);
    (budget / width.max(1).pow(3)).clamp(1, ANALYSIS_ROWS)
}

/// Both analyses of one network at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct StackAnalysis {
    /// The pooled Jacobian spectrum.
    pub jacobian: JacobianSpectrum,
    /// The forward signal.
    pub forward: ForwardSignal,
}

/// Both analyses of `params` wired by `skip`, on `inputs` (rows × input dims, row-major):
/// the forward signal on every row, the Jacobian spectrum on the first `jacobian_inputs`.
/// None without layers or inputs, or if the net has gone non-finite.
pub fn analyse(
    params: &MlpParams,
    act: Activation,
    skip: SkipMode,
    inputs: &[f32],
    jacobian_inputs: usize,
) -> Option<StackAnalysis> {
    analyse_on(params, act, skip, inputs, jacobian_inputs, 1)
}

/// [`analyse`] with the inputs' Jacobians and the pairs' correlation maps run on up to
/// `threads` threads (the run's own: the result is the same on any number).
pub fn analyse_on(
    params: &MlpParams,
    act: Activation,
    skip: SkipMode,
    inputs: &[f32],
    jacobian_inputs: usize,
    threads: usize,
) -> Option<StackAnalysis> {
    let stack = stack::Stack::new(params, act, skip)?;
    if stack.input_dims == 0 {
        return None;
    }
    let traces: Vec<_> = inputs
        .chunks_exact(stack.input_dims)
        .map(|x| stack.run(x))
        .collect();
    let finite = |t: &stack::Trace| t.pre.iter().flatten().chain(&t.h0).all(|v| v.is_finite());
    if !traces.iter().all(finite) {
        return None;
    }
    let jacobian_traces = &traces[..jacobian_inputs.max(1).min(traces.len())];
    let jacobian = jacobian::jacobian_spectrum(&stack, jacobian_traces, threads)?;
    if !(jacobian.mean_sq.is_finite() && jacobian.singular_values.iter().all(|v| v.is_finite())) {
        return None;
    }
    Some(StackAnalysis {
        jacobian,
        forward: forward_signal::forward_signal(&stack, &traces, threads)?,
    })
}

/// Both analyses of a trainer's current network on its first `ANALYSIS_ROWS` training rows,
/// the Jacobian spectrum on the first `jacobian_inputs` of them.
pub fn analyse_trainer(trainer: &Trainer, jacobian_inputs: usize) -> Option<StackAnalysis> {
    let task = trainer.task();
    let rows = ANALYSIS_ROWS.min(task.train.len);
    let inputs = &task.train.inputs[..rows * task.input_dims];
    analyse_on(
        trainer.params(),
        trainer.experiment().model.activation,
        trainer.switches().skip,
        inputs,
        jacobian_inputs,
        trainer.threads_allowed(),
    )
}
