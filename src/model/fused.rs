//! One hidden layer as a single tape op: φ(hW + b) combined with its skip connection, forward
//! and backward written out by hand.
//!
//! dfdx would record five to nine generic ops per layer (matmul, broadcast, add, tanh, mul…),
//! each allocating and walking strided indices, and its tanh calls libm one value at a time.
//! Here the products go straight to `gemm` and the element-wise work is one vectorised pass.
//! `tests/numerics/fused.rs` checks every mode against the dfdx-op version, and `tests/numerics/gradcheck.rs`
//! checks the result against finite differences.

use super::kernels::{
    Operand, activate, add_column_sums, fast_sigmoid, fill_rows, matmul, times_slope,
};
use super::params::{HiddenLayer, Matrix};
use crate::config::Activation;
use dfdx::prelude::*;

/// How the block combines its input with its transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlockKind {
    /// y = f.
    Plain,
    /// y = scale·h + f.
    Residual {
        /// Weight of the shortcut.
        scale: f32,
    },
    /// y = h + T⊙(f − h), T = σ(hW_T + b_T).
    Highway,
}

fn values(t: &impl HasShapeLen, tensor_copy: impl Fn(&mut [f32])) -> Vec<f32> {
    let mut out = vec![0.0; t.numel()];
    tensor_copy(&mut out);
    out
}

/// Number of scalars of a tensor (dfdx 0.13 has no public accessor on every shape).
pub trait HasShapeLen {
    /// Number of scalars.
    fn numel(&self) -> usize;
}

impl<S: Shape, T> HasShapeLen for Tensor<S, f32, Cpu, T> {
    fn numel(&self) -> usize {
        self.shape().num_elements()
    }
}

/// A block's output on the tape, and its gate values for highway blocks.
pub type BlockOutput<T> = (Tensor<(usize, usize), f32, Cpu, T>, Option<Matrix>);

/// Applies one hidden layer as a single tape op; returns its output and, for highway blocks,
/// the gate values T (for metrics).
pub fn fused_block<T: Tape<f32, Cpu>>(
    h: Tensor<(usize, usize), f32, Cpu, T>,
    layer: &HiddenLayer,
    act: Activation,
    kind: BlockKind,
) -> BlockOutput<T> {
    let (rows, width) = *h.shape();
    let (h, mut tape) = h.split_tape();
    let n = rows * width;
    let h_values = values(&h, |o| h.copy_into(o));
    let weight = values(&layer.weight, |o| layer.weight.copy_into(o));
    let bias = values(&layer.bias, |o| layer.bias.copy_into(o));

    let mut z = vec![0.0f32; n];
    fill_rows(&mut z, &bias);
    matmul(
        &mut z,
        rows,
        width,
        width,
        Operand::plain(&h_values, width),
        Operand::plain(&weight, width),
        true,
    );
    let mut f = vec![0.0f32; n];
    activate(act, &z, &mut f);

    let mut gate: Option<(Vec<f32>, Vec<f32>)> = None;
    let y: Vec<f32> = match kind {
        BlockKind::Plain => f.clone(),
        BlockKind::Residual { scale } => f
            .iter()
            .zip(&h_values)
            .map(|(&f, &h)| scale * h + f)
            .collect(),
        BlockKind::Highway => {
            let gate_weight = values(&layer.gate_weight, |o| layer.gate_weight.copy_into(o));
            let gate_bias = values(&layer.gate_bias, |o| layer.gate_bias.copy_into(o));
            let mut t = vec![0.0f32; n];
            fill_rows(&mut t, &gate_bias);
            matmul(
                &mut t,
                rows,
                width,
                width,
                Operand::plain(&h_values, width),
                Operand::plain(&gate_weight, width),
                true,
            );
            t.iter_mut().for_each(|v| *v = fast_sigmoid(*v));
            let y = t
                .iter()
                .zip(f.iter().zip(&h_values))
                .map(|(&t, (&f, &h))| t * (f - h) + h)
                .collect();
            gate = Some((t, gate_weight));
            y
        }
    };

    let dev = h.device().clone();
    let out: Matrix = dev.tensor_from_vec(y, (rows, width));
    let gate_tensor = gate
        .as_ref()
        .map(|(t, _)| dev.tensor_from_vec(t.clone(), (rows, width)));

    let out_id = out.clone();
    let (w_id, b_id) = (layer.weight.clone(), layer.bias.clone());
    let (gw_id, gb_id) = (layer.gate_weight.clone(), layer.gate_bias.clone());
    tape.add_backward_op(move |grads| {
        // Only one gradient can be borrowed at a time through dfdx's public API, so the output's
        // gradient is lifted out and put back at the end (it may still be read as ∂L/∂h).
        let dy = std::mem::take(&mut **grads.get_or_alloc_mut(&out_id)?);
        let mut dz: Vec<f32>;
        let mut dg: Option<Vec<f32>> = None;
        {
            let dh = grads.get_or_alloc_mut(&h)?;
            match kind {
                BlockKind::Plain => {
                    dz = dy.clone();
                    times_slope(act, &z, &f, &mut dz);
                }
                BlockKind::Residual { scale } => {
                    dz = dy.clone();
                    times_slope(act, &z, &f, &mut dz);
                    dh.iter_mut().zip(&dy).for_each(|(d, &g)| *d += scale * g);
                }
                BlockKind::Highway => {
                    let Some((t, _)) = gate.as_ref() else {
                        unreachable!("a highway block always has its gate")
                    };
                    dz = dy.iter().zip(t).map(|(&g, &t)| g * t).collect();
                    times_slope(act, &z, &f, &mut dz);
                    let gate_grad: Vec<f32> = dy
                        .iter()
                        .zip(t)
                        .zip(f.iter().zip(&h_values))
                        .map(|((&g, &t), (&f, &h))| g * (f - h) * t * (1.0 - t))
                        .collect();
                    dh.iter_mut()
                        .zip(dy.iter().zip(t))
                        .for_each(|(d, (&g, &t))| *d += g * (1.0 - t));
                    dg = Some(gate_grad);
                }
            }
            matmul(
                dh,
                rows,
                width,
                width,
                Operand::plain(&dz, width),
                Operand::transposed(&weight, width),
                true,
            );
            if let (Some(dg), Some((_, gate_weight))) = (&dg, &gate) {
                matmul(
                    dh,
                    rows,
                    width,
                    width,
                    Operand::plain(dg, width),
                    Operand::transposed(gate_weight, width),
                    true,
                );
            }
        }
        let dw = grads.get_or_alloc_mut(&w_id)?;
        matmul(
            dw,
            width,
            width,
            rows,
            Operand::transposed(&h_values, width),
            Operand::plain(&dz, width),
            true,
        );
        add_column_sums(&dz, width, grads.get_or_alloc_mut(&b_id)?);
        if let Some(dg) = &dg {
            let dgw = grads.get_or_alloc_mut(&gw_id)?;
            matmul(
                dgw,
                width,
                width,
                rows,
                Operand::transposed(&h_values, width),
                Operand::plain(dg, width),
                true,
            );
            add_column_sums(dg, width, grads.get_or_alloc_mut(&gb_id)?);
        }
        **grads.get_or_alloc_mut(&out_id)? = dy;
        Ok(())
    });
    (out.put_tape(tape), gate_tensor)
}
