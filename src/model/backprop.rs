//! One forward and backward pass on a given batch, returning every gradient as plain vectors.
//!
//! The trainer reads gradients in place for speed; this is the slow, explicit path used by
//! gradient checks and analyses that need the numbers themselves.

use super::forward::{BatchTargets, Lesion, Switches, forward};
use super::params::{Matrix, MlpParams};
use crate::config::Activation;
use dfdx::prelude::*;

/// Loss and gradients of one batch.
#[derive(Clone, Debug)]
pub struct Backprop {
    /// The total objective.
    pub loss: f32,
    /// ∂L/∂θ for every parameter, in `MlpParams::params_mut` order.
    pub param_grads: Vec<Vec<f32>>,
    /// ∂L/∂h_l for every hidden layer (row-major batch × width).
    pub hidden_grads: Vec<Vec<f32>>,
    /// The hidden activations h_l themselves.
    pub hidden: Vec<Vec<f32>>,
    /// ∂L/∂x for the network's input (row-major batch × input dims): with the input
    /// projection's weights it pins down ∂L/∂h_in, which `hidden_grads` does not hold.
    pub input_grad: Vec<f32>,
}

/// The gradients of `tensors` as plain vectors (zeros for a tensor outside the graph).
pub fn grads_of(grads: &mut Gradients<f32, Cpu>, tensors: &[Matrix]) -> Vec<Vec<f32>> {
    tensors
        .iter()
        .map(|t| {
            grads
                .get_or_alloc_mut(t)
                .map(|g| g.to_vec())
                .unwrap_or_default()
        })
        .collect()
}

/// Runs the network on `x` with the tape and collects every gradient.
pub fn backprop(
    params: &mut MlpParams,
    act: Activation,
    switches: &Switches,
    x: Matrix,
    targets: &BatchTargets,
) -> Backprop {
    let input = x.clone();
    let pass = forward(
        params,
        act,
        switches,
        x.leaky_traced(),
        targets,
        Lesion::default(),
    );
    let loss = pass.total_loss.retaped::<NoneTape>().array();
    let hidden: Vec<Matrix> = pass.hidden;
    let mut grads = pass.total_loss.backward();
    let hidden_grads = grads_of(&mut grads, &hidden);
    let input_grad = grads_of(&mut grads, std::slice::from_ref(&input))
        .pop()
        .unwrap_or_default();
    let param_grads = params
        .params_mut()
        .into_iter()
        .map(|(_, p)| p.grad(&mut grads).to_vec())
        .collect();
    Backprop {
        loss,
        param_grads,
        hidden_grads,
        hidden: hidden.iter().map(|h| h.as_vec()).collect(),
        input_grad,
    }
}
