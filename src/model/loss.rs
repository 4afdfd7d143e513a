//! The losses on plain f32 buffers, with their gradients: the same objectives as dfdx's
//! `cross_entropy_with_logits_loss` (mean over the batch) and `mse_loss` (mean over entries).

/// What a batch's outputs are compared against.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class labels (cross-entropy on the logits).
    Labels(&'a [usize]),
    /// Real targets, row-major batch × outputs (mean squared error).
    Values(&'a [f32]),
}

/// The loss of `outputs` (rows × cols, row-major); with `grad`, also writes
/// `weight · ∂loss/∂outputs` into it (overwriting).
pub fn loss(
    outputs: &[f32],
    cols: usize,
    targets: Targets,
    weight: f32,
    grad: Option<&mut [f32]>,
) -> f32 {
    let rows = outputs.len() / cols.max(1);
    if rows == 0 {
        return f32::NAN;
    }
    match targets {
        Targets::Labels(labels) => {
            let mut total = 0.0f64;
            let scale = weight / rows as f32;
            let mut grad = grad;
            for (row, (logits, &label)) in outputs.chunks_exact(cols).zip(labels).enumerate() {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = logits.iter().map(|&v| (v - max).exp()).sum();
                let log_sum = sum.ln();
                total -= f64::from(logits[label] - max - log_sum);
                if let Some(grad) = grad.as_deref_mut() {
                    let out = &mut grad[row * cols..(row + 1) * cols];
                    for (c, (o, &v)) in out.iter_mut().zip(logits).enumerate() {
                        let p = (v - max).exp() / sum;
                        let y = if c == label { 1.0 } else { 0.0 };
                        *o = (p - y) * scale;
                    }
                }
            }
            (total / rows as f64) as f32
        }
        Targets::Values(values) => {
            let n = outputs.len();
            let mut total = 0.0f64;
            let scale = 2.0 * weight / n as f32;
            for (&o, &t) in outputs.iter().zip(values) {
                let d = o - t;
                total += f64::from(d) * f64::from(d);
            }
            if let Some(grad) = grad {
                for ((g, &o), &t) in grad.iter_mut().zip(outputs).zip(values) {
                    *g = (o - t) * scale;
                }
            }
            (total / n as f64) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn central(f: impl Fn(f32) -> f32, x: f32) -> f64 {
        let h = 1e-2f32;
        (f64::from(f(x + h)) - f64::from(f(x - h))) / (2.0 * f64::from(h))
    }

    #[test]
    fn both_losses_have_the_gradient_of_their_value() {
        let outputs = [0.3f32, -1.2, 0.7, 2.0, -0.4, 0.1];
        let labels = [2usize, 0];
        let values = [0.5f32, 0.0, -1.0, 1.0, 1.5, -0.5];
        for targets in [Targets::Labels(&labels), Targets::Values(&values)] {
            let mut grad = [0.0f32; 6];
            loss(&outputs, 3, targets, 0.5, Some(&mut grad));
            for i in 0..6 {
                let numeric = central(
                    |x| {
                        let mut o = outputs;
                        o[i] = x;
                        0.5 * loss(&o, 3, targets, 1.0, None)
                    },
                    outputs[i],
                );
                assert!(
                    (f64::from(grad[i]) - numeric).abs() < 2e-3,
                    "{targets:?} [{i}]: {} vs {numeric}",
                    grad[i]
                );
            }
        }
    }
}
