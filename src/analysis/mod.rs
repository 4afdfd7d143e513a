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

/// Both analyses of one network at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct StackAnalysis {
    /// The pooled Jacobian spectrum.
    pub jacobian: JacobianSpectrum,
    /// The forward signal.
    pub forward: ForwardSignal,
}

/// Both analyses of `params` wired by `skip`, on `inputs` (rows × input dims, row-major).
/// None without layers or inputs, or if the net has gone non-finite.
pub fn analyse(
    params: &MlpParams,
    act: Activation,
    skip: SkipMode,
    inputs: &[f32],
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
    let jacobian = jacobian::jacobian_spectrum(&stack, &traces)?;
    if !(jacobian.mean_sq.is_finite() && jacobian.singular_values.iter().all(|v| v.is_finite())) {
        return None;
    }
    Some(StackAnalysis {
        jacobian,
        forward: forward_signal::forward_signal(&stack, &traces)?,
    })
}

/// Both analyses of a trainer's current network on its first `ANALYSIS_ROWS` training rows.
pub fn analyse_trainer(trainer: &Trainer) -> Option<StackAnalysis> {
    let task = trainer.task();
    let rows = ANALYSIS_ROWS.min(task.train.len);
    let inputs = &task.train.inputs[..rows * task.input_dims];
    analyse(
        trainer.params(),
        trainer.experiment().model.activation,
        trainer.switches().skip,
        inputs,
    )
}
