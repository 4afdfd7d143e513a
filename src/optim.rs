//! Hand-written optimisers over runtime-sized dfdx tensors (dfdx's own need compile-time sizes).

use crate::config::OptimizerSpec;
use crate::metrics::sum_squares;

/// Per-parameter optimiser state, indexed like `MlpParams::params_mut`.
#[derive(Clone, Debug)]
pub struct Optimizer {
    spec: OptimizerSpec,
    /// Momentum (SGD) or first moment (Adam) per parameter.
    first: Vec<Vec<f32>>,
    /// Second moment per parameter (Adam only).
    second: Vec<Vec<f32>>,
    /// Updates applied to each parameter, for Adam's bias correction.
    updates: Vec<u64>,
}

/// What one parameter update did, for the update-to-weight ratio.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateNorms {
    /// ‖ΔW‖.
    pub update: f64,
    /// ‖W‖ before the update.
    pub weight: f64,
}

impl Optimizer {
    /// Fresh state for parameters of the given sizes.
    pub fn new(spec: &OptimizerSpec, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|&n| vec![0.0; n]).collect::<Vec<_>>();
        Self {
            spec: spec.clone(),
            first: zeros(),
            second: match spec {
                OptimizerSpec::Adam { .. } => zeros(),
                OptimizerSpec::Sgd { .. } => Vec::new(),
            },
            updates: vec![0; sizes.len()],
        }
    }

    /// Whether the optimiser keeps a second moment (Adam) besides the first (SGD: momentum).
    pub fn has_second_moment(&self) -> bool {
        matches!(self.spec, OptimizerSpec::Adam { .. })
    }

    /// Momentum (SGD) or first moment (Adam) of every parameter, for checkpoints.
    pub fn first_moments(&self) -> &[Vec<f32>] {
        &self.first
    }

    /// Adam's second moment of every parameter (empty for SGD), for checkpoints.
    pub fn second_moments(&self) -> &[Vec<f32>] {
        &self.second
    }

    /// Updates applied to each parameter (Adam's bias correction counts them), for checkpoints.
    pub fn update_counts(&self) -> &[u64] {
        &self.updates
    }

    /// Replaces the state with one read from a checkpoint; refuses sizes that differ from the
    /// parameters' (leaving the state as it was).
    pub fn restore(
        &mut self,
        first: Vec<Vec<f32>>,
        second: Vec<Vec<f32>>,
        updates: Vec<u64>,
    ) -> Result<(), String> {
        let sizes = |v: &[Vec<f32>]| v.iter().map(Vec::len).collect::<Vec<_>>();
        let expected = sizes(&self.first);
        if sizes(&first) != expected {
            return Err("the first moments do not match the parameters' sizes".into());
        }
        if sizes(&second) != sizes(&self.second) {
            return Err("the second moments do not match the parameters' sizes".into());
        }
        if updates.len() != expected.len() {
            return Err(format!(
                "{} update counts for {} parameters",
                updates.len(),
                expected.len()
            ));
        }
        self.first = first;
        self.second = second;
        self.updates = updates;
        Ok(())
    }

    /// Updates `values` of parameter `index` in place from `grad` scaled by `grad_scale`;
    /// with `measure`, also returns the norms of the update and of the weights before it.
    pub fn update(
        &mut self,
        index: usize,
        values: &mut [f32],
        grad: &[f32],
        grad_scale: f32,
        lr: f32,
        measure: bool,
    ) -> UpdateNorms {
        let mut norms = UpdateNorms::default();
        if measure {
            norms.weight = sum_squares(values).sqrt();
        }
        let first = &mut self.first[index];
        self.updates[index] += 1;
        match self.spec {
            OptimizerSpec::Sgd { momentum, .. } => {
                // Plain f32 arithmetic in the loop keeps it vectorised; the norm comes after.
                for ((w, v), &g) in values.iter_mut().zip(first.iter_mut()).zip(grad) {
                    *v = momentum * *v + g * grad_scale;
                    *w -= lr * *v;
                }
                if measure {
                    norms.update = f64::from(lr) * sum_squares(first).sqrt();
                }
            }
            OptimizerSpec::Adam {
                beta1, beta2, eps, ..
            } => {
                let t = self.updates[index] as i32;
                let correction1 = 1.0 - beta1.powi(t);
                let correction2 = 1.0 - beta2.powi(t);
                let second = &mut self.second[index];
                for (((w, m), v), &g) in values
                    .iter_mut()
                    .zip(first.iter_mut())
                    .zip(second.iter_mut())
                    .zip(grad)
                {
                    let g = g * grad_scale;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let delta = lr * (*m / correction1) / ((*v / correction2).sqrt() + eps);
                    if measure {
                        norms.update += f64::from(delta) * f64::from(delta);
                    }
                    *w -= delta;
                }
                norms.update = norms.update.sqrt();
            }
        }
        norms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_with_momentum_accumulates_velocity() {
        let spec = OptimizerSpec::Sgd {
            lr: 0.1,
            momentum: 0.5,
            warmup: 0,
        };
        let mut opt = Optimizer::new(&spec, &[1]);
        let mut w = [1.0f32];
        opt.update(0, &mut w, &[1.0], 1.0, 0.1, true);
        assert!((w[0] - 0.9).abs() < 1e-7);
        opt.update(0, &mut w, &[1.0], 1.0, 0.1, true);
        // v = 0.5·1 + 1 = 1.5
        assert!((w[0] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        let spec = OptimizerSpec::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup: 0,
        };
        let mut opt = Optimizer::new(&spec, &[2]);
        let mut w = [0.0f32, 0.0];
        let norms = opt.update(0, &mut w, &[3.0, -0.5], 1.0, 0.01, true);
        assert!((w[0] + 0.01).abs() < 1e-6 && (w[1] - 0.01).abs() < 1e-6);
        assert!((norms.update - 0.01 * 2f64.sqrt()).abs() < 1e-6);
    }
}
