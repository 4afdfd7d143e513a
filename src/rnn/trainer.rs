//! Training a recurrent net: fresh sequences every step, backprop through time, per-time-step
//! gradient and gate metrics, live cell switching.

use super::forward::{RnnPass, first_scored, unroll_scored};
use super::params::{RnnParams, init_rnn_params};
use super::workspace::Workspace;
use crate::config::{CellKind, Experiment};
use crate::metrics::{Divergence, Snapshot, TimestepMetrics, gradient_ratios, l2_norm};
use crate::model::Matrix;
use crate::optim::Optimizer;
use crate::tasks::sequence::{SeqBatch, SeqKind, SeqTargets, SeqTask};
use anyhow::Result;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_chacha::ChaCha12Rng;

/// Where a recurrent run stands besides its parameters and optimiser state (for checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct RnnPosition {
    /// Updates applied so far.
    pub step: u64,
    /// Learning rate in effect.
    pub learning_rate: f32,
    /// The cell in effect.
    pub cell: CellKind,
    /// The batch generator's position in its stream, in 32-bit words.
    pub batches_word_pos: u128,
    /// The last test-set evaluation (loss, accuracy), reported until the next one.
    pub last_test: Option<(f64, Option<f64>)>,
}

/// A recurrent net being trained on a sequence task. Cloning is a fork (see `Trainer`).
#[derive(Clone)]
pub struct RnnTrainer {
    experiment: Experiment,
    dev: Cpu,
    task: SeqTask,
    params: RnnParams,
    optimizer: Optimizer,
    cell: CellKind,
    learning_rate: f32,
    step: u64,
    /// ChaCha12 seeded as `StdRng` seeds it (the same stream), by name so a checkpoint can
    /// read and set its position.
    batches: ChaCha12Rng,
    divergence: Option<Divergence>,
    last_test: Option<(f64, Option<f64>)>,
    scratch: Vec<f32>,
    workspace: Workspace,
    grad_log2: Vec<f64>,
}

impl RnnTrainer {
    /// Builds the task and all three cells for `experiment` (its model kind must be `Rnn`).
    pub fn new(experiment: Experiment) -> Result<Self> {
        let task = SeqTask::new(&experiment.task, experiment.seed)?;
        let outputs = match task.kind {
            SeqKind::Regression => 1,
            SeqKind::Classification { classes, .. } => classes,
        };
        let dev = Cpu::default();
        let mut rng = StdRng::seed_from_u64(experiment.seed);
        let mut params =
            init_rnn_params(&dev, &experiment.model, task.input_dims, outputs, &mut rng);
        let sizes: Vec<usize> = params.params_mut().iter().map(|(_, p)| p.len()).collect();
        Ok(Self {
            optimizer: Optimizer::new(&experiment.optimizer, &sizes),
            cell: experiment.model.cell,
            learning_rate: experiment.optimizer.learning_rate(),
            batches: ChaCha12Rng::seed_from_u64(experiment.seed.wrapping_add(1)),
            experiment,
            dev,
            task,
            params,
            step: 0,
            divergence: None,
            last_test: None,
            scratch: Vec::new(),
            workspace: Workspace::default(),
            grad_log2: Vec::new(),
        })
    }

    /// The sequence task.
    pub fn task(&self) -> &SeqTask {
        &self.task
    }

    /// The cell in effect.
    pub fn cell(&self) -> CellKind {
        self.cell
    }

    /// All parameters, for tests and analysis.
    pub fn params_mut(&mut self) -> &mut RnnParams {
        &mut self.params
    }

    fn hidden_size(&self) -> usize {
        self.experiment.model.width
    }

    /// Lets one run use up to `threads` threads (default 2); runs sharing the machine (compare,
    /// sweeps) should take 1 each. The batch is cut into the same shards whatever this is, so
    /// the numbers do not change.
    pub fn set_threads(&mut self, threads: usize) {
        self.workspace.set_threads(threads);
    }

    /// Threads a step runs on: the shards side by side, up to the threads allowed.
    pub fn threads_used(&self) -> usize {
        self.workspace.threads().min(self.workspace.shards())
    }

    /// log₂ ‖∂L/∂h_t‖ for t = 1..T of the last training batch, exact where f32 (and f64)
    /// would round the norm to zero: 20·log₁₀ 2 times these is the norm in dB.
    pub fn hidden_grad_log2(&self) -> &[f64] {
        &self.grad_log2
    }

    /// The fused unroll of the cell in effect, on the trainer's buffers, keeping as tensors
    /// only the states the output head reads.
    fn unroll<T: Tape<f32, Cpu>>(
        &self,
        batch: &SeqBatch,
        h0: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> RnnPass<T> {
        let (params, cell, dev) = (&self.params, self.cell, &self.dev);
        let keep_from = first_scored(batch);
        unroll_scored(&self.workspace, params, cell, dev, batch, h0, keep_from)
    }

    /// Loss and accuracy on the fixed test set.
    pub fn evaluate_test(&self) -> (f64, Option<f64>) {
        let h0: Matrix = self
            .dev
            .zeros_like(&(self.task.test.rows, self.hidden_size()));
        let pass = self.unroll(&self.task.test, h0);
        let loss = f64::from(pass.loss.array());
        (loss, accuracy(&pass, &self.task.test))
    }
}

/// Fraction of scored outputs whose arg-max is the label (None for regression).
fn accuracy<T>(pass: &RnnPass<T>, batch: &SeqBatch) -> Option<f64> {
    let labels: &[usize] = match &batch.targets {
        SeqTargets::FinalValue(_) => return None,
        SeqTargets::FinalClass(labels) | SeqTargets::TailClasses { labels, .. } => labels,
    };
    let mut correct = 0usize;
    let mut total = 0usize;
    for (k, out) in pass.outputs.iter().enumerate() {
        let classes = out.shape().1;
        let values = out.as_vec();
        for (row, scores) in values.chunks(classes).enumerate() {
            let best = scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            correct += usize::from(best == labels.get(k * batch.rows + row).copied());
            total += 1;
        }
    }
    Some(correct as f64 / total.max(1) as f64)
}

/// What the driver needs of a recurrent run (the `Learner` trait delegates here).
impl RnnTrainer {
    /// The experiment as loaded.
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// Updates applied so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The divergence, once NaN/Inf appeared.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    /// Learning rate in effect.
    pub fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    /// The optimiser's state (checkpoints read and restore it).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    /// Where the run stands, for a checkpoint.
    pub fn position(&self) -> RnnPosition {
        RnnPosition {
            step: self.step,
            learning_rate: self.learning_rate,
            cell: self.cell,
            batches_word_pos: self.batches.get_word_pos(),
            last_test: self.last_test,
        }
    }

    /// Puts a freshly built trainer where a checkpoint says its run stood.
    pub fn restore_position(&mut self, position: &RnnPosition) {
        self.step = position.step;
        self.learning_rate = position.learning_rate;
        self.cell = position.cell;
        self.batches.set_word_pos(position.batches_word_pos);
        self.last_test = position.last_test;
        self.divergence = None;
    }

    /// Switches the cell from the next step on (each cell keeps its own weights).
    pub fn set_cell(&mut self, cell: CellKind) {
        self.cell = cell;
    }

    /// The learning rate the next update uses: the live rate times the warm-up factor.
    pub fn effective_learning_rate(&self) -> f32 {
        self.learning_rate * self.experiment.optimizer.warmup_factor(self.step)
    }

    /// Changes the learning rate from the next step on.
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    /// Measures the next batch and, with `update`, applies the optimiser.
    pub fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot> {
        if self.divergence.is_some() {
            return None;
        }
        if self.step.is_multiple_of(self.experiment.test_every as u64) || self.last_test.is_none() {
            self.last_test = Some(self.evaluate_test());
        }
        // A measurement without an update leaves the data stream where it was (see `Trainer`).
        let kept = (!update).then(|| self.batches.get_word_pos());
        let batch = self.task.sample(self.experiment.batch, &mut self.batches);
        if let Some(word_pos) = kept {
            self.batches.set_word_pos(word_pos);
        }
        let h0: Matrix = self.dev.zeros_like(&(batch.rows, self.hidden_size()));
        let pass = self.unroll(&batch, h0.leaky_traced());
        let loss = pass.loss.retaped::<NoneTape>().array();
        let train_accuracy = accuracy(&pass, &batch);
        let RnnPass {
            loss: taped_loss,
            gate_means,
            ..
        } = pass;
        let mut grads = taped_loss.backward();
        // The backward pass measured every ‖∂L/∂h_t‖ (as log₂) while it held ∂L/∂h_t.
        self.workspace.hidden_grad_log2(&mut self.grad_log2);

        let active_cell = self.cell;
        let mut grad_norm_sq = 0.0f64;
        for (owner, param) in self.params.params_mut() {
            if owner.is_none() || owner == Some(active_cell) {
                let norm = l2_norm(param.grad(&mut grads));
                grad_norm_sq += norm * norm;
            }
        }
        let grad_norm = grad_norm_sq.sqrt();

        let mut timesteps = Vec::new();
        if measure || !loss.is_finite() || !grad_norm.is_finite() {
            for (index, &log2) in self.grad_log2.iter().enumerate() {
                // f64 holds the norm down to 2^-1074 (−6 465 dB); `hidden_grad_log2` goes further.
                let hidden_grad_norm = log2.exp2();
                let gate_mean = gate_means.get(index).copied();
                timesteps.push(TimestepMetrics {
                    t: index + 1,
                    hidden_grad_norm,
                    forget_gate_mean: gate_mean.filter(|_| active_cell == CellKind::Lstm),
                    update_gate_mean: gate_mean.filter(|_| active_cell == CellKind::Gru),
                });
            }
        }

        if !loss.is_finite() || !grad_norm.is_finite() {
            let first_bad = timesteps
                .iter()
                .position(|t| !t.hidden_grad_norm.is_finite());
            self.divergence = Some(Divergence {
                step: self.step,
                layer: first_bad,
                what: match first_bad {
                    Some(t) => format!("gradient at time step {} is NaN/Inf", t + 1),
                    None => format!("loss is {loss}"),
                },
            });
        }

        if update && self.divergence.is_none() {
            let scale = match self.experiment.clip_grad_norm {
                Some(max) if grad_norm > f64::from(max) => (f64::from(max) / grad_norm) as f32,
                _ => 1.0,
            };
            let lr = self.effective_learning_rate();
            let mut scratch = std::mem::take(&mut self.scratch);
            for (index, (owner, mut param)) in self.params.params_mut().into_iter().enumerate() {
                if owner.is_some() && owner != Some(active_cell) {
                    continue;
                }
                scratch.resize(param.len(), 0.0);
                param.copy_into(&mut scratch);
                self.optimizer.update(
                    index,
                    &mut scratch,
                    param.grad(&mut grads),
                    scale,
                    lr,
                    false,
                );
                param.copy_from(&scratch);
            }
            self.scratch = scratch;
        }

        let snapshot = (measure || self.divergence.is_some()).then(|| {
            let norms: Vec<f64> = timesteps.iter().map(|t| t.hidden_grad_norm).collect();
            let (ratio, db, chi1) = gradient_ratios(&norms);
            Snapshot {
                preset: self.experiment.name.clone(),
                step: self.step,
                loss: f64::from(loss),
                main_loss: f64::from(loss),
                train_accuracy,
                test_accuracy: self.last_test.and_then(|t| t.1),
                test_loss: self.last_test.map(|t| t.0),
                diverged: self.divergence.is_some(),
                divergence: self.divergence.clone(),
                learning_rate: f64::from(self.effective_learning_rate()),
                skip: "rnn".into(),
                grad_norm,
                grad_ratio_first_last: ratio,
                grad_ratio_db: db,
                measured_chi1: chi1,
                timesteps,
                cell: Some(active_cell.label().into()),
                baseline_loss: Some(self.task.baseline_loss),
                variances: super::variances::net_variances(&self.params, active_cell, &batch),
                ..Snapshot::default()
            }
        });
        if update && self.divergence.is_none() {
            self.step += 1;
        }
        snapshot
    }
}
