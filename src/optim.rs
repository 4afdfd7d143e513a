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
        let state = ParamState {
            first: &mut self.first[index],
            second: self.second.get_mut(index).map(Vec::as_mut_slice),
            updates: &mut self.updates[index],
        };
        update_one(&self.spec, state, (values, grad), (grad_scale, lr), measure)
    }

    /// Updates every parameter whose `plan` entry is `Some(measure)`, as [`Optimizer::update`]
    /// would one after the other, writing each one's norms into `norms`. The parameters are
    /// cut into two runs of about equal size, one per thread when `threads` > 1; each
    /// parameter is updated whole by one thread, so the bits do not depend on `threads`.
    #[allow(clippy::too_many_arguments)]
    pub fn update_all(
        &mut self,
        values: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        plan: &[Option<bool>],
        norms: &mut [UpdateNorms],
        grad_scale: f32,
        lr: f32,
        threads: usize,
    ) {
        let spec = &self.spec;
        let sizes = values
            .iter()
            .zip(plan)
            .map(|(v, p)| p.map_or(0, |_| v.len()));
        let split = crate::parallel::balanced_split(sizes);
        let split = split.min(values.len());
        let (values_a, values_b) = values.split_at_mut(split);
        let (first_a, first_b) = self.first.split_at_mut(split);
        let second_split = split.min(self.second.len());
        let (second_a, second_b) = self.second.split_at_mut(second_split);
        let (updates_a, updates_b) = self.updates.split_at_mut(split);
        let (norms_a, norms_b) = norms.split_at_mut(split.min(norms.len()));
        let mut halves = [
            (0, values_a, first_a, second_a, updates_a, norms_a),
            (split, values_b, first_b, second_b, updates_b, norms_b),
        ];
        crate::parallel::run_shards(&mut halves, threads, |half| {
            let (start, values, first, second, updates, norms) = half;
            for (k, (values, (first, updates))) in values
                .iter_mut()
                .zip(first.iter_mut().zip(updates.iter_mut()))
                .enumerate()
            {
                let index = *start + k;
                let Some(measure) = plan.get(index).copied().flatten() else {
                    continue;
                };
                let state = ParamState {
                    first,
                    second: second.get_mut(k).map(Vec::as_mut_slice),
                    updates,
                };
                let done = update_one(
                    spec,
                    state,
                    (values, &grads[index]),
                    (grad_scale, lr),
                    measure,
                );
                if let Some(slot) = norms.get_mut(k) {
                    *slot = done;
                }
            }
        });
    }
}

/// One parameter's optimiser state, borrowed.
struct ParamState<'a> {
    first: &'a mut [f32],
    /// Adam's second moment (None for SGD).
    second: Option<&'a mut [f32]>,
    updates: &'a mut u64,
}

/// One parameter's update (see [`Optimizer::update`]).
fn update_one(
    spec: &OptimizerSpec,
    state: ParamState,
    (values, grad): (&mut [f32], &[f32]),
    (grad_scale, lr): (f32, f32),
    measure: bool,
) -> UpdateNorms {
    let mut norms = UpdateNorms::default();
    if measure {
        norms.weight = sum_squares(values).sqrt();
    }
    let ParamState {
        first,
        second,
        updates,
    } = state;
    *updates += 1;
    match (spec, second) {
        (
            OptimizerSpec::Adam {
                beta1, beta2, eps, ..
            },
            Some(second),
        ) => {
            let t = *updates as i32;
            let moments = AdamMoments {
                beta1: *beta1,
                beta2: *beta2,
                eps: *eps,
                correction1: 1.0 - beta1.powi(t),
                correction2: 1.0 - beta2.powi(t),
            };
            norms.update = adam_step(values, first, second, grad, moments, grad_scale, lr).sqrt();
        }
        (OptimizerSpec::Sgd { momentum, .. }, _) => {
            sgd_step(values, first, grad, *momentum, grad_scale, lr);
            if measure {
                norms.update = f64::from(lr) * sum_squares(first).sqrt();
            }
        }
        // `Optimizer::new` and `restore` keep a second moment for every parameter under Adam.
        (OptimizerSpec::Adam { .. }, None) => {
            debug_assert!(false, "Adam without a second moment");
        }
    }
    norms
}

/// Adam's constants for one update.
#[derive(Clone, Copy)]
struct AdamMoments {
    beta1: f32,
    beta2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
}

crate::simd::multiversion! {
/// SGD with momentum on one parameter: v ← μv + s·g, w ← w − lr·v. Element-wise, so every
/// vector width gives the same bits.
fn sgd_step(values: &mut [f32], velocity: &mut [f32], grad: &[f32], momentum: f32, scale: f32, lr: f32) {
    for ((w, v), &g) in values.iter_mut().zip(velocity.iter_mut()).zip(grad) {
        *v = momentum * *v + g * scale;
        *w -= lr * *v;
    }
}
}

crate::simd::multiversion! {
/// Adam on one parameter; returns Σ(Δw)² in f64, summed in eight fixed lanes so the loop
/// vectorises and every vector width gives the same bits.
fn adam_step(values: &mut [f32], first: &mut [f32], second: &mut [f32], grad: &[f32], k: AdamMoments, scale: f32, lr: f32) -> f64 {
    let mut lanes = [0.0f64; 8];
    let one = |w: &mut f32, m: &mut f32, v: &mut f32, g: f32, lane: &mut f64| {
        let g = g * scale;
        *m = k.beta1 * *m + (1.0 - k.beta1) * g;
        *v = k.beta2 * *v + (1.0 - k.beta2) * g * g;
        let delta = lr * (*m / k.correction1) / ((*v / k.correction2).sqrt() + k.eps);
        *lane += f64::from(delta) * f64::from(delta);
        *w -= delta;
    };
    let n = values.len().min(first.len()).min(second.len()).min(grad.len());
    let whole = n - n % 8;
    for start in (0..whole).step_by(8) {
        let w = &mut values[start..start + 8];
        let m = &mut first[start..start + 8];
        let v = &mut second[start..start + 8];
        let g = &grad[start..start + 8];
        for i in 0..8 {
            one(&mut w[i], &mut m[i], &mut v[i], g[i], &mut lanes[i]);
        }
    }
    let mut rest = 0.0f64;
    for i in whole..n {
        one(&mut values[i], &mut first[i], &mut second[i], grad[i], &mut rest);
    }
    lanes.iter().sum::<f64>() + rest
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updating_all_at_once_on_two_threads_is_updating_each_in_turn() {
        let specs = [
            OptimizerSpec::Sgd {
                lr: 0.1,
                momentum: 0.9,
                warmup: 0,
            },
            OptimizerSpec::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                warmup: 0,
            },
        ];
        let sizes = [300, 7, 300, 7, 500, 1];
        // Parameter 3 is switched off; 0 and 4 are measured.
        let plan = [
            Some(true),
            Some(false),
            Some(false),
            None,
            Some(true),
            Some(false),
        ];
        let fill = |seed: f32| -> Vec<Vec<f32>> {
            sizes
                .iter()
                .enumerate()
                .map(|(p, &n)| (0..n).map(|i| ((i * 7 + p) as f32 * seed).sin()).collect())
                .collect()
        };
        for spec in &specs {
            let (mut one, mut all) = (Optimizer::new(spec, &sizes), Optimizer::new(spec, &sizes));
            let (mut in_turn, mut at_once) = (fill(0.3), fill(0.3));
            let mut norms = vec![UpdateNorms::default(); sizes.len()];
            for step in 0..3 {
                let grads = fill(0.7 + step as f32);
                let mut expected = vec![UpdateNorms::default(); sizes.len()];
                for (index, p) in plan.iter().enumerate() {
                    if let Some(measure) = *p {
                        expected[index] = one.update(
                            index,
                            &mut in_turn[index],
                            &grads[index],
                            0.5,
                            0.1,
                            measure,
                        );
                    }
                }
                all.update_all(&mut at_once, &grads, &plan, &mut norms, 0.5, 0.1, 2);
                assert_eq!(at_once, in_turn, "{spec:?} step {step}");
                assert_eq!(norms, expected, "{spec:?} step {step}");
                assert_eq!(all.first_moments(), one.first_moments());
                assert_eq!(all.second_moments(), one.second_moments());
                assert_eq!(all.update_counts(), one.update_counts());
            }
        }
    }

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
