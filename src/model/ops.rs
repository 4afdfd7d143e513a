//! Custom tape ops, for where dfdx 0.13's own are wrong or missing.
//!
//! dfdx 0.13's `accurate_gelu` backward omits the 1/√2 of the chain rule
//! (d/dx erf(x/√2) = √(2/π)·e^{-x²/2}), so its GELU gradients are wrong; our gradient check
//! caught it. GELU is therefore computed here from `theory::phi` / `theory::phi_prime`.

use crate::config::Activation;
use crate::theory::{phi, phi_prime};
use dfdx::prelude::*;

/// Applies φ element-wise with a hand-written backward pass recorded on the tape.
pub fn elementwise<T: Tape<f32, Cpu>>(
    act: Activation,
    x: Tensor<(usize, usize), f32, Cpu, T>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let inputs = x.as_vec();
    let values: Vec<f32> = inputs
        .iter()
        .map(|&v| phi(act, f64::from(v)) as f32)
        .collect();
    let out = x.device().tensor_from_vec(values, shape);
    let out_id = out.clone();
    tape.add_backward_op(move |grads| {
        // Only one gradient can be borrowed at a time through the public API, so the output's
        // gradient is lifted out and put back afterwards (it may still be read as ∂L/∂h).
        let upstream = std::mem::take(&mut **grads.get_or_alloc_mut(&out_id)?);
        let grad_x = grads.get_or_alloc_mut(&x)?;
        for ((g, &u), &v) in grad_x.iter_mut().zip(&upstream).zip(&inputs) {
            *g += u * phi_prime(act, f64::from(v)) as f32;
        }
        **grads.get_or_alloc_mut(&out_id)? = upstream;
        Ok(())
    });
    out.put_tape(tape)
}
