//! LayerNorm and BatchNorm on the engine's f32 buffers (row-major rows × width): forward in
//! training mode (the batch's own statistics) or evaluation mode (BatchNorm's running
//! estimates), and the backward pass.
//!
//! The backward pass is linear in the incoming gradient, so it commutes with the engine's
//! power-of-two rescaling (`scaled`): it runs on the rescaled signal unchanged. Sums are
//! taken in f64. `tests/numerics/norm.rs` checks it against dfdx's ops and finite differences.

use super::kernels::flush;
use crate::config::NormKind;
use crate::config::norm::{BATCH_NORM_MOMENTUM, NORM_EPS};

/// Which statistics a forward pass normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormStats {
    /// The batch's own (training): BatchNorm couples the rows of a batch.
    Batch,
    /// BatchNorm's running estimates (evaluation: test scores, lesions); rows independent.
    Running,
}

/// Statistics groups of a rows × width buffer: one per row (LayerNorm) or per unit (BatchNorm).
pub fn groups(kind: NormKind, rows: usize, width: usize) -> usize {
    match kind {
        NormKind::None => 0,
        NormKind::LayerNorm => rows,
        NormKind::BatchNorm => width,
    }
}

/// Where one norm's forward pass writes what its backward pass and the running estimates need.
pub struct NormOut<'a> {
    /// u = (v − mean)/√(var + ε), rows × width.
    pub u: &'a mut [f32],
    /// 1/√(var + ε) per group.
    pub inv_std: &'a mut [f32],
    /// The batch mean per group (BatchNorm in training; folded into the running mean).
    pub mean: &'a mut [f32],
    /// The biased batch variance per group (as for `mean`).
    pub var: &'a mut [f32],
    /// γ⊙u + β, rows × width.
    pub out: &'a mut [f32],
}

/// The per-unit gain γ and shift β of one norm, and BatchNorm's running estimates.
#[derive(Clone, Copy)]
pub struct NormParams<'a> {
    /// γ, one per unit.
    pub gain: &'a [f32],
    /// β, one per unit.
    pub shift: &'a [f32],
    /// Running mean, one per unit (read in `NormStats::Running`).
    pub running_mean: &'a [f32],
    /// Running (unbiased) variance, one per unit.
    pub running_var: &'a [f32],
}

/// Normalises `v` (rows × width) into `o`; returns Σout².
pub fn forward(
    kind: NormKind,
    stats: NormStats,
    v: &[f32],
    width: usize,
    p: NormParams,
    o: NormOut,
) -> f64 {
    let rows = v.len() / width.max(1);
    let eps = f64::from(NORM_EPS);
    match kind {
        NormKind::None => {
            o.out.copy_from_slice(v);
            return crate::metrics::sum_squares(o.out);
        }
        NormKind::LayerNorm => {
            for r in 0..rows {
                let row = &v[r * width..(r + 1) * width];
                let (mean, var) = mean_var(row.iter().copied());
                o.mean[r] = mean as f32;
                o.var[r] = var as f32;
                o.inv_std[r] = (1.0 / (var + eps).sqrt()) as f32;
            }
            for r in 0..rows {
                let (mean, inv) = (o.mean[r], o.inv_std[r]);
                for j in 0..width {
                    let i = r * width + j;
                    o.u[i] = flush((v[i] - mean) * inv);
                }
            }
        }
        NormKind::BatchNorm => {
            for j in 0..width {
                let (mean, var, inv) = match stats {
                    NormStats::Batch => {
                        let (mean, var) = mean_var((0..rows).map(|r| v[r * width + j]));
                        (mean as f32, var as f32, (1.0 / (var + eps).sqrt()) as f32)
                    }
                    NormStats::Running => {
                        let var = f64::from(p.running_var[j]);
                        (
                            p.running_mean[j],
                            var as f32,
                            (1.0 / (var + eps).sqrt()) as f32,
                        )
                    }
                };
                o.mean[j] = mean;
                o.var[j] = var;
                o.inv_std[j] = inv;
            }
            for r in 0..rows {
                for j in 0..width {
                    let i = r * width + j;
                    o.u[i] = flush((v[i] - o.mean[j]) * o.inv_std[j]);
                }
            }
        }
    }
    for (i, out) in o.out.iter_mut().enumerate() {
        let j = i % width;
        *out = flush(p.gain[j] * o.u[i] + p.shift[j]);
    }
    crate::metrics::sum_squares(o.out)
}

/// Mean and biased variance in f64 (two passes: no cancellation for large means).
fn mean_var(values: impl Iterator<Item = f32> + Clone) -> (f64, f64) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in values.clone() {
        n += 1;
        sum += f64::from(v);
    }
    let mean = sum / n.max(1) as f64;
    let sq: f64 = values.map(|v| (f64::from(v) - mean).powi(2)).sum();
    (mean, sq / n.max(1) as f64)
}

/// What a norm's backward pass reads.
#[derive(Clone, Copy)]
pub struct NormBack<'a> {
    /// ∂L/∂out (possibly rescaled), rows × width.
    pub g: &'a [f32],
    /// u from the forward pass.
    pub u: &'a [f32],
    /// 1/√(var + ε) per group from the forward pass.
    pub inv_std: &'a [f32],
    /// γ.
    pub gain: &'a [f32],
}

/// The backward pass of a training-mode norm: writes ∂L/∂γ into `d_gain`, ∂L/∂β into
/// `d_shift`, and ∂L/∂v into `dv` (added to it when `accumulate`):
/// ∂L/∂v = inv_std·(ĝ − mean ĝ − u·mean(ĝu)), ĝ = γ⊙g, means over each group.
pub fn backward(
    kind: NormKind,
    width: usize,
    b: NormBack,
    d_gain: &mut [f32],
    d_shift: &mut [f32],
    dv: &mut [f32],
    accumulate: bool,
) {
    let rows = b.g.len() / width.max(1);
    let mut gain_acc = vec![0.0f64; width];
    let mut shift_acc = vec![0.0f64; width];
    for (i, (&g, &u)) in b.g.iter().zip(b.u).enumerate() {
        let j = i % width;
        gain_acc[j] += f64::from(g) * f64::from(u);
        shift_acc[j] += f64::from(g);
    }
    d_gain
        .iter_mut()
        .zip(&gain_acc)
        .for_each(|(d, &a)| *d = a as f32);
    d_shift
        .iter_mut()
        .zip(&shift_acc)
        .for_each(|(d, &a)| *d = a as f32);
    let write = |dv: &mut [f32], i: usize, value: f64| {
        let value = value as f32;
        dv[i] = flush(if accumulate { dv[i] + value } else { value });
    };
    match kind {
        NormKind::None => {
            for (i, &g) in b.g.iter().enumerate() {
                write(dv, i, f64::from(g));
            }
        }
        NormKind::LayerNorm => {
            for r in 0..rows {
                let range = r * width..(r + 1) * width;
                let (mut m_g, mut m_gu) = (0.0f64, 0.0f64);
                for i in range.clone() {
                    let gh = f64::from(b.gain[i - r * width]) * f64::from(b.g[i]);
                    m_g += gh;
                    m_gu += gh * f64::from(b.u[i]);
                }
                m_g /= width as f64;
                m_gu /= width as f64;
                let inv = f64::from(b.inv_std[r]);
                for i in range.clone() {
                    let gh = f64::from(b.gain[i - r * width]) * f64::from(b.g[i]);
                    write(dv, i, inv * (gh - m_g - f64::from(b.u[i]) * m_gu));
                }
            }
        }
        NormKind::BatchNorm => {
            let n = rows.max(1) as f64;
            let m_g: Vec<f64> = (0..width)
                .map(|j| f64::from(b.gain[j]) * shift_acc[j] / n)
                .collect();
            let m_gu: Vec<f64> = (0..width)
                .map(|j| f64::from(b.gain[j]) * gain_acc[j] / n)
                .collect();
            for i in 0..rows * width {
                let j = i % width;
                let gh = f64::from(b.gain[j]) * f64::from(b.g[i]);
                let inv = f64::from(b.inv_std[j]);
                write(dv, i, inv * (gh - m_g[j] - f64::from(b.u[i]) * m_gu[j]));
            }
        }
    }
}

/// Folds a training batch's BatchNorm statistics (biased `var` of `rows` rows) into the
/// running estimates.
pub fn fold_running(
    mean: &[f32],
    var: &[f32],
    rows: usize,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    let m = BATCH_NORM_MOMENTUM;
    let unbias = if rows > 1 {
        rows as f32 / (rows - 1) as f32
    } else {
        1.0
    };
    for (r, &b) in running_mean.iter_mut().zip(mean) {
        *r = (1.0 - m) * *r + m * b;
    }
    for (r, &b) in running_var.iter_mut().zip(var) {
        *r = (1.0 - m) * *r + m * b * unbias;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_estimates_move_a_tenth_of_the_way_with_the_unbiased_variance() {
        let (mut rm, mut rv) = (vec![0.0f32], vec![1.0f32]);
        fold_running(&[2.0], &[3.0], 4, &mut rm, &mut rv);
        assert!((rm[0] - 0.2).abs() < 1e-6);
        assert!((rv[0] - (0.9 + 0.1 * 4.0)).abs() < 1e-6);
    }
}
