//! One training step: forward on the tape, backward, gradient metrics, divergence check, update.

use crate::config::{Experiment, SkipMode};
use crate::metrics::{Divergence, LayerMetrics, Snapshot, gradient_ratios, l2_norm, rms};
use crate::model::params::ParamRole;
use crate::model::{
    BatchTargets, ForwardPass, Lesion, Matrix, MlpParams, Switches, forward, init_params,
};
use crate::optim::{Optimizer, UpdateNorms};
use crate::tasks::{BatchSampler, SamplerPosition, Split, TaskData, TaskKind, build_task};
use anyhow::Result;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::path::Path;

/// Test-set results from the last evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct TestResult {
    loss: f64,
    accuracy: Option<f64>,
}

/// Where a run stands besides its parameters and optimiser state: what a checkpoint stores
/// so a resumed run takes exactly the steps the original would.
#[derive(Clone, Debug)]
pub struct MlpPosition {
    /// Updates applied so far.
    pub step: u64,
    /// Learning rate in effect.
    pub learning_rate: f32,
    /// The live switches.
    pub switches: Switches,
    /// Where the batch sampler stands.
    pub sampler: SamplerPosition,
    /// The last test-set evaluation (loss, accuracy), reported until the next one.
    pub last_test: Option<(f64, Option<f64>)>,
}

/// A network being trained on a task, with its live switches and optimiser state.
///
/// Cloning is a fork: dfdx tensors share their buffers until one side writes (copy on write),
/// and the device keeps no state a step depends on (its cache is off, its rng unused).
#[derive(Clone)]
pub struct Trainer {
    experiment: Experiment,
    dev: Cpu,
    task: TaskData,
    params: MlpParams,
    optimizer: Optimizer,
    switches: Switches,
    learning_rate: f32,
    step: u64,
    sampler: BatchSampler,
    divergence: Option<Divergence>,
    last_test: Option<TestResult>,
    batch_indices: Vec<usize>,
    batch_inputs: Vec<f32>,
    batch_labels: Vec<usize>,
    batch_targets: Vec<f32>,
    scratch: Vec<f32>,
}

/// Outputs the head produces: classes, or regression outputs.
fn output_width(kind: TaskKind) -> usize {
    match kind {
        TaskKind::Classification { classes } => classes,
        TaskKind::Regression { outputs } => outputs,
    }
}

impl Trainer {
    /// Builds the task and the network for `experiment`; `base_dir` resolves relative CSV paths.
    pub fn new(experiment: Experiment, base_dir: Option<&Path>) -> Result<Self> {
        let task = build_task(&experiment.task, experiment.seed, base_dir)?;
        let dev = Cpu::default();
        let mut rng = StdRng::seed_from_u64(experiment.seed);
        let gate_bias = experiment.model.gate_bias;
        let mut params = init_params(
            &dev,
            &experiment.model,
            task.input_dims,
            output_width(task.kind),
            gate_bias,
            &mut rng,
        );
        let sizes: Vec<usize> = params.params_mut().iter().map(|(_, p)| p.len()).collect();
        let optimizer = Optimizer::new(&experiment.optimizer, &sizes);
        let switches = Switches {
            skip: experiment.model.skip,
            aux_enabled: experiment.model.aux.enabled,
            aux_weight: experiment.model.aux.weight,
        };
        let sampler = BatchSampler::new(task.train.len, experiment.seed.wrapping_add(1));
        Ok(Self {
            learning_rate: experiment.optimizer.learning_rate(),
            experiment,
            dev,
            task,
            params,
            optimizer,
            switches,
            step: 0,
            sampler,
            divergence: None,
            last_test: None,
            batch_indices: Vec::new(),
            batch_inputs: Vec::new(),
            batch_labels: Vec::new(),
            batch_targets: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The experiment as loaded (switch changes are not written back into it).
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// The task the network learns.
    pub fn task(&self) -> &TaskData {
        &self.task
    }

    /// Updates applied so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The live switches.
    pub fn switches(&self) -> Switches {
        self.switches
    }

    /// Learning rate in effect.
    pub fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    /// The divergence, once the run has produced NaN/Inf.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    /// The parameters (read-only), for tests and analysis.
    pub fn params(&self) -> &MlpParams {
        &self.params
    }

    /// The parameters, for tests that set weights by hand.
    pub fn params_mut(&mut self) -> &mut MlpParams {
        &mut self.params
    }

    /// The optimiser's state (checkpoints read and restore it).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    /// Where the run stands, for a checkpoint.
    pub fn position(&self) -> MlpPosition {
        MlpPosition {
            step: self.step,
            learning_rate: self.learning_rate,
            switches: self.switches,
            sampler: self.sampler.position(),
            last_test: self.last_test.map(|t| (t.loss, t.accuracy)),
        }
    }

    /// Puts a freshly built trainer where a checkpoint says its run stood.
    pub fn restore_position(&mut self, position: &MlpPosition) -> Result<(), String> {
        self.sampler.set_position(&position.sampler)?;
        self.step = position.step;
        self.learning_rate = position.learning_rate;
        self.switches = position.switches;
        self.last_test = position
            .last_test
            .map(|(loss, accuracy)| TestResult { loss, accuracy });
        self.divergence = None;
        Ok(())
    }

    /// Changes the skip mode from the next step on; no parameter is touched.
    pub fn set_skip(&mut self, skip: SkipMode) {
        self.switches.skip = skip;
    }

    /// Turns the auxiliary losses on or off from the next step on.
    pub fn set_aux(&mut self, enabled: bool) {
        self.switches.aux_enabled = enabled;
    }

    /// Sets the learning rate from the next step on.
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    /// Builds input and target tensors for rows `indices` of `split`.
    fn batch_tensors(&mut self, from_test: bool, count: Option<usize>) -> (Matrix, BatchTargets) {
        let split: &Split = if from_test {
            &self.task.test
        } else {
            &self.task.train
        };
        if let Some(count) = count {
            self.batch_indices.clear();
            self.batch_indices.extend(0..count.min(split.len));
        }
        let outputs = output_width(self.task.kind);
        split.gather(
            &self.batch_indices,
            self.task.input_dims,
            outputs,
            &mut self.batch_inputs,
            &mut self.batch_labels,
            &mut self.batch_targets,
        );
        let rows = self.batch_indices.len();
        let x = self
            .dev
            .tensor_from_vec(self.batch_inputs.clone(), (rows, self.task.input_dims));
        let targets = match self.task.kind {
            TaskKind::Classification { classes } => {
                let mut one_hot = vec![0.0f32; rows * classes];
                for (row, &label) in self.batch_labels.iter().enumerate() {
                    one_hot[row * classes + label] = 1.0;
                }
                BatchTargets::OneHot(self.dev.tensor_from_vec(one_hot, (rows, classes)))
            }
            TaskKind::Regression { outputs } => BatchTargets::Values(
                self.dev
                    .tensor_from_vec(self.batch_targets.clone(), (rows, outputs)),
            ),
        };
        (x, targets)
    }

    /// Fraction of rows whose arg-max logit is the label (None for regression).
    fn accuracy(&self, logits: &Matrix, labels: &[usize]) -> Option<f64> {
        let TaskKind::Classification { classes } = self.task.kind else {
            return None;
        };
        let values = logits.as_vec();
        let correct = values
            .chunks(classes)
            .zip(labels)
            .filter(|(row, label)| {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i);
                best == Some(**label)
            })
            .count();
        Some(correct as f64 / labels.len().max(1) as f64)
    }

    /// Loss and accuracy on the whole test split, with block `lesion` removed if given.
    pub fn evaluate_test(&mut self, lesion: Lesion) -> (f64, Option<f64>) {
        let (x, targets) = self.batch_tensors(true, Some(usize::MAX));
        let pass = forward(
            &self.params,
            self.experiment.model.activation,
            &self.switches,
            x,
            &targets,
            lesion,
        );
        let labels = self.batch_labels.clone();
        (
            f64::from(pass.main_loss),
            self.accuracy(&pass.logits, &labels),
        )
    }

    /// Runs one step: measures the network on the next batch and, if `update`, applies the
    /// optimiser. With `measure`, the per-layer gradient metrics are read into the snapshot.
    /// A run that has diverged does nothing until it is reset.
    pub fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot> {
        if self.divergence.is_some() {
            return None;
        }
        if self.step.is_multiple_of(self.experiment.test_every as u64) || self.last_test.is_none() {
            let (loss, accuracy) = self.evaluate_test(Lesion::default());
            self.last_test = Some(TestResult { loss, accuracy });
        }
        // A measurement without an update leaves the data stream where it was, so a run
        // checkpointed after its final measurement resumes on the batch it would have taken.
        let kept = (!update).then(|| self.sampler.clone());
        let mut indices = std::mem::take(&mut self.batch_indices);
        self.sampler
            .next_indices(self.experiment.batch, &mut indices);
        self.batch_indices = indices;
        if let Some(kept) = kept {
            self.sampler = kept;
        }
        let (x, targets) = self.batch_tensors(false, None);
        let pass = forward(
            &self.params,
            self.experiment.model.activation,
            &self.switches,
            x.leaky_traced(),
            &targets,
            Lesion::default(),
        );
        let ForwardPass {
            total_loss,
            main_loss,
            aux_losses,
            logits,
            hidden,
            gates,
        } = pass;
        let total = total_loss.retaped::<NoneTape>().array();
        let mut grads = total_loss.backward();

        let (grad_norm, weight_grad_norms) = self.gradient_norms(&mut grads);
        let mut layers: Vec<LayerMetrics> = Vec::new();
        if measure || !total.is_finite() || !grad_norm.is_finite() {
            layers = self.layer_metrics(&hidden, &gates, &weight_grad_norms, &mut grads);
        }
        if !total.is_finite() || !grad_norm.is_finite() {
            self.divergence = Some(self.locate_divergence(total, &hidden, &layers));
        }

        if update && self.divergence.is_none() {
            let scale = match self.experiment.clip_grad_norm {
                Some(max) if grad_norm > f64::from(max) => (f64::from(max) / grad_norm) as f32,
                _ => 1.0,
            };
            let updates = self.apply_update(&mut grads, scale, measure);
            for (metrics, norms) in layers.iter_mut().zip(updates) {
                metrics.update_ratio = if norms.weight > 0.0 {
                    norms.update / norms.weight
                } else {
                    0.0
                };
            }
        }
        let labels = self.batch_labels.clone();
        let train_accuracy = self.accuracy(&logits, &labels);
        let snapshot = (measure || self.divergence.is_some()).then(|| {
            let norms: Vec<f64> = layers.iter().map(|l| l.act_grad_norm).collect();
            let (ratio, db, chi1) = gradient_ratios(&norms);
            Snapshot {
                preset: self.experiment.name.clone(),
                step: self.step,
                loss: f64::from(total),
                main_loss: f64::from(main_loss),
                aux_losses: aux_losses.iter().map(|&v| f64::from(v)).collect(),
                train_accuracy,
                test_accuracy: self.last_test.and_then(|t| t.accuracy),
                test_loss: self.last_test.map(|t| t.loss),
                diverged: self.divergence.is_some(),
                divergence: self.divergence.clone(),
                learning_rate: f64::from(self.learning_rate),
                skip: self.switches.skip.label(),
                aux_enabled: self.switches.aux_enabled,
                grad_norm,
                layers,
                grad_ratio_first_last: ratio,
                grad_ratio_db: db,
                measured_chi1: chi1,
                variances: Some(super::variances::net_variances(
                    &self.params,
                    self.experiment.model.activation,
                    &self.switches,
                    &self.task,
                )),
                ..Snapshot::default()
            }
        });
        if update && self.divergence.is_none() {
            self.step += 1;
        }
        snapshot
    }

    /// Whether parameter `role` takes part in the objective under the current switches.
    fn is_active(&self, role: ParamRole) -> bool {
        let depth = self.params.layers.len();
        match role {
            ParamRole::Gate(_) => matches!(self.switches.skip, SkipMode::Highway),
            ParamRole::Readout(l) => matches!(self.switches.skip, SkipMode::Dense) && l + 1 < depth,
            ParamRole::Aux(_) => self.switches.aux_enabled,
            _ => true,
        }
    }

    /// Norm of the whole active gradient, and ‖∂L/∂W_l‖ per hidden layer.
    fn gradient_norms(&mut self, grads: &mut Gradients<f32, Cpu>) -> (f64, Vec<f64>) {
        let active: Vec<bool> = {
            let roles: Vec<ParamRole> = self.params.params_mut().iter().map(|(r, _)| *r).collect();
            roles.into_iter().map(|r| self.is_active(r)).collect()
        };
        let mut total = 0.0f64;
        let mut per_layer = Vec::new();
        for ((role, param), active) in self.params.params_mut().into_iter().zip(active) {
            if !active {
                continue;
            }
            let norm = l2_norm(param.grad(grads));
            total += norm * norm;
            if let ParamRole::LayerWeight(_) = role {
                per_layer.push(norm);
            }
        }
        (total.sqrt(), per_layer)
    }

    /// Applies the optimiser to every active parameter; returns the update norms of each W_l.
    fn apply_update(
        &mut self,
        grads: &mut Gradients<f32, Cpu>,
        scale: f32,
        measure: bool,
    ) -> Vec<UpdateNorms> {
        let active: Vec<bool> = {
            let roles: Vec<ParamRole> = self.params.params_mut().iter().map(|(r, _)| *r).collect();
            roles.into_iter().map(|r| self.is_active(r)).collect()
        };
        let lr = self.learning_rate;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut layer_updates = Vec::new();
        for (index, ((role, mut param), active)) in
            self.params.params_mut().into_iter().zip(active).enumerate()
        {
            if !active {
                continue;
            }
            scratch.resize(param.len(), 0.0);
            param.copy_into(&mut scratch);
            let is_layer_weight = matches!(role, ParamRole::LayerWeight(_));
            let norms = self.optimizer.update(
                index,
                &mut scratch,
                param.grad(grads),
                scale,
                lr,
                measure && is_layer_weight,
            );
            param.copy_from(&scratch);
            if let ParamRole::LayerWeight(_) = role {
                layer_updates.push(norms);
            }
        }
        self.scratch = scratch;
        layer_updates
    }

    /// Per-layer gradient and activation metrics from a finished backward pass.
    fn layer_metrics(
        &mut self,
        hidden: &[Matrix],
        gates: &[Matrix],
        weight_norms: &[f64],
        grads: &mut Gradients<f32, Cpu>,
    ) -> Vec<LayerMetrics> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let metrics = hidden
            .iter()
            .enumerate()
            .map(|(index, h)| {
                let act_grad_norm = grads
                    .get_or_alloc_mut(h)
                    .map(|g| l2_norm(g))
                    .unwrap_or(f64::NAN);
                scratch.resize(h.shape().0 * h.shape().1, 0.0);
                h.copy_into(&mut scratch);
                let act_rms = rms(&scratch);
                let gate_mean = gates.get(index).map(|gate| {
                    gate.copy_into(&mut scratch);
                    scratch.iter().map(|&v| f64::from(v)).sum::<f64>() / scratch.len().max(1) as f64
                });
                let gate_bias_mean = gate_mean.and_then(|_| {
                    let bias = self.params.layers.get(index)?.gate_bias.as_vec();
                    Some(bias.iter().map(|&b| f64::from(b)).sum::<f64>() / bias.len().max(1) as f64)
                });
                LayerMetrics {
                    layer: index + 1,
                    weight_grad_norm: weight_norms.get(index).copied().unwrap_or(f64::NAN),
                    act_grad_norm,
                    act_rms,
                    gate_mean,
                    gate_bias_mean,
                    update_ratio: 0.0,
                }
            })
            .collect();
        self.scratch = scratch;
        metrics
    }

    /// Names the first layer whose activations or gradients went non-finite.
    fn locate_divergence(
        &mut self,
        loss: f32,
        hidden: &[Matrix],
        layers: &[LayerMetrics],
    ) -> Divergence {
        let mut scratch = std::mem::take(&mut self.scratch);
        let first_bad_activation = hidden.iter().position(|h| {
            scratch.resize(h.shape().0 * h.shape().1, 0.0);
            h.copy_into(&mut scratch);
            scratch.iter().any(|v| !v.is_finite())
        });
        self.scratch = scratch;
        let first_bad_gradient = layers
            .iter()
            .position(|l| !l.act_grad_norm.is_finite() || !l.weight_grad_norm.is_finite());
        let (layer, what) = match (first_bad_activation, first_bad_gradient) {
            // Layers are numbered from 1 at the input wherever a person reads them.
            (Some(l), _) => (
                Some(l + 1),
                format!("activations of layer {} are NaN/Inf", l + 1),
            ),
            (None, Some(l)) => (
                Some(l + 1),
                format!("gradient at layer {} is NaN/Inf", l + 1),
            ),
            (None, None) if !loss.is_finite() => (None, format!("loss is {loss}")),
            (None, None) => (None, "gradient of the head is NaN/Inf".to_string()),
        };
        Divergence {
            step: self.step,
            layer,
            what,
        }
    }
}
