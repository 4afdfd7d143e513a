//! One training step: forward on the tape, backward, gradient metrics, divergence check, update.

use crate::config::{BranchScale, Experiment, NormKind, NormPlace, SkipMode};
use crate::metrics::{Divergence, LayerMetrics, Snapshot, gradient_ratios};
use crate::model::engine::Net;
use crate::model::eval::ShardedEval;
use crate::model::loss::Targets;
use crate::model::params::ParamRole;
use crate::model::scaled::{norm_db, norm_f64};
use crate::model::shards::ShardedStep;
use crate::model::{Lesion, MlpParams, Switches, aux_head_layers, init_params};
use crate::optim::{Optimizer, UpdateNorms};
use crate::tasks::{BatchSampler, SamplerPosition, TaskData, TaskKind, build_task};
use anyhow::Result;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cell::OnceCell;
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
/// The parameters live as plain f32 buffers (`values`, `params_mut` order) that the engine
/// reads and the optimiser updates in place; the dfdx tensors other code reads (`params`)
/// are built from them on demand and written back if edited. Cloning is a fork.
#[derive(Clone)]
pub struct Trainer {
    experiment: Experiment,
    task: TaskData,
    /// The training inputs' ‖x‖²/d in bins, for the mean-field prediction (fixed by the task).
    input_sq: Vec<f64>,
    /// Shapes (and step-0 values) of every parameter, for building `view`.
    template: MlpParams,
    /// The parameters as dfdx tensors, built when asked for and dropped by the next update.
    view: OnceCell<MlpParams>,
    /// `view` was handed out mutably: its values are the truth until copied back.
    view_edited: bool,
    values: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    roles: Vec<ParamRole>,
    net: Net,
    work: ShardedStep,
    test_work: ShardedEval,
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
    /// Per parameter, whether the next update touches it and measures it (kept between steps).
    update_plan: Vec<Option<bool>>,
    /// Per parameter, the norms of its last update (kept between steps).
    update_norms: Vec<UpdateNorms>,
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
        let roles: Vec<ParamRole> = params.params_mut().iter().map(|(r, _)| *r).collect();
        let values = params.values();
        let grads = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let optimizer = Optimizer::new(&experiment.optimizer, &sizes);
        let model = &experiment.model;
        let net = Net {
            act: model.activation,
            skip: model.skip,
            aux_enabled: model.aux.enabled,
            aux_weight: model.aux.weight,
            aux_layers: aux_head_layers(model.depth, model.aux.every),
            input: task.input_dims,
            width: model.width,
            outputs: output_width(task.kind),
            depth: model.depth,
            norm: model.norm,
            norm_place: model.norm_place,
            branch_scale: model.branch_scale,
        };
        let switches = Switches {
            skip: experiment.model.skip,
            aux_enabled: experiment.model.aux.enabled,
            aux_weight: experiment.model.aux.weight,
            norm: model.norm,
            norm_place: model.norm_place,
            branch_scale: model.branch_scale,
        };
        let sampler = BatchSampler::new(task.train.len, experiment.seed.wrapping_add(1));
        Ok(Self {
            learning_rate: experiment.optimizer.learning_rate(),
            experiment,
            input_sq: super::variances::task_input_bins(&task),
            task,
            template: params,
            view: OnceCell::new(),
            view_edited: false,
            values,
            grads,
            roles,
            net,
            work: ShardedStep::new(crate::parallel::RUN_THREADS),
            test_work: ShardedEval::default(),
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
            update_plan: Vec::new(),
            update_norms: Vec::new(),
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

    /// The parameters (read-only) as dfdx tensors, for tests and analysis.
    pub fn params(&self) -> &MlpParams {
        self.view.get_or_init(|| {
            let mut view = self.template.clone();
            for ((_, mut p), values) in view.params_mut().into_iter().zip(&self.values) {
                p.copy_from(values);
            }
            view
        })
    }

    /// The parameters, for tests that set weights by hand (read back before the next pass).
    pub fn params_mut(&mut self) -> &mut MlpParams {
        self.params();
        self.view_edited = true;
        match self.view.get_mut() {
            Some(view) => view,
            None => unreachable!("params() just built the view"),
        }
    }

    /// The parameters as the engine reads them, one f32 buffer each in `params_mut` order.
    pub fn param_values(&mut self) -> &[Vec<f32>] {
        self.sync_from_view();
        &self.values
    }

    /// The gradient of the last training step, one buffer per parameter in `params_mut`
    /// order (parameters the switches did not use keep older values, or zeros once a switch
    /// changed which are used).
    pub fn param_grads(&self) -> &[Vec<f32>] {
        &self.grads
    }

    /// What the last pass measured per layer (norms in rescaled form), for tests.
    pub fn layer_stats(&self) -> &[crate::model::engine::LayerStats] {
        &self.work.stats
    }

    /// Lets one run use up to `threads` threads (runs sharing the machine take 1 each); the
    /// batch is cut into the same shards whatever this is, so the numbers do not change.
    pub fn set_threads(&mut self, threads: usize) {
        self.work.set_threads(threads);
    }

    /// Threads this run may use ([`Trainer::set_threads`]).
    pub fn threads_allowed(&self) -> usize {
        self.work.threads()
    }

    /// Threads the last training step ran on.
    pub fn threads_used(&self) -> usize {
        self.work.threads_used()
    }

    /// Copies tensors edited through `params_mut` back into the engine's buffers.
    fn sync_from_view(&mut self) {
        if !self.view_edited {
            return;
        }
        self.view_edited = false;
        if let Some(view) = self.view.get_mut() {
            for ((_, p), values) in view.params_mut().into_iter().zip(self.values.iter_mut()) {
                p.copy_into(values);
            }
        }
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
        self.sync_net();
        self.last_test = position
            .last_test
            .map(|(loss, accuracy)| TestResult { loss, accuracy });
        self.divergence = None;
        Ok(())
    }

    /// Changes the skip mode from the next step on; no parameter is touched.
    pub fn set_skip(&mut self, skip: SkipMode) {
        self.switches.skip = skip;
        self.sync_net();
    }

    /// Turns the auxiliary losses on or off from the next step on.
    pub fn set_aux(&mut self, enabled: bool) {
        self.switches.aux_enabled = enabled;
        self.sync_net();
    }

    /// Changes the normalisation from the next step on; γ, β and the running estimates
    /// exist from step 0, so nothing is created (BatchNorm's running estimates resume from
    /// wherever they last stood).
    pub fn set_norm(&mut self, norm: NormKind) {
        self.switches.norm = norm;
        self.sync_net();
    }

    /// Moves the norm (pre / post) from the next step on.
    pub fn set_norm_place(&mut self, place: NormPlace) {
        self.switches.norm_place = place;
        self.sync_net();
    }

    /// Changes the residual-branch factor from the next step on (α keeps its learned value
    /// while another scale is in effect).
    pub fn set_branch_scale(&mut self, scale: BranchScale) {
        self.switches.branch_scale = scale;
        self.sync_net();
    }

    /// The engine's view of the network follows the live switches.
    fn sync_net(&mut self) {
        let s = self.switches;
        self.net.skip = s.skip;
        self.net.aux_enabled = s.aux_enabled;
        self.net.aux_weight = s.aux_weight;
        self.net.norm = s.norm;
        self.net.norm_place = s.norm_place;
        self.net.branch_scale = s.branch_scale;
    }

    /// Whether a training step couples the rows of its batch (BatchNorm in effect): such a
    /// step must see the whole batch at once, never shards of it.
    pub fn couples_rows(&self) -> bool {
        self.net.couples_rows()
    }

    /// The learning rate the next update uses: the live rate times the warm-up factor.
    pub fn effective_learning_rate(&self) -> f32 {
        self.learning_rate * self.experiment.optimizer.warmup_factor(self.step)
    }

    /// Sets the learning rate from the next step on.
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    /// Gathers the rows of the current training batch into the trainer's buffers.
    fn gather_batch(&mut self) {
        let outputs = output_width(self.task.kind);
        self.task.train.gather(
            &self.batch_indices,
            self.task.input_dims,
            outputs,
            &mut self.batch_inputs,
            &mut self.batch_labels,
            &mut self.batch_targets,
        );
    }

    /// Loss and accuracy on the whole test split, with the blocks in `lesion` removed.
    pub fn evaluate_test(&mut self, lesion: Lesion) -> (f64, Option<f64>) {
        self.sync_from_view();
        let score = self.test_work.score(
            &self.net,
            &self.values,
            &self.task.test,
            self.task.input_dims,
            self.task.kind,
            lesion.removed(),
            self.work.threads(),
        );
        (score.loss, score.accuracy)
    }

    /// Loss and accuracy on the whole training split as in evaluation (BatchNorm reads its
    /// running estimates), with block `lesion` removed if given.
    pub fn evaluate_train(&self, lesion: Lesion) -> (f64, Option<f64>) {
        let edited;
        let values: &[Vec<f32>] = if self.view_edited {
            edited = self.params().clone().values();
            &edited
        } else {
            &self.values
        };
        let score = ShardedEval::default().score(
            &self.net,
            values,
            &self.task.train,
            self.task.input_dims,
            self.task.kind,
            lesion.removed(),
            self.work.threads(),
        );
        (score.loss, score.accuracy)
    }

    /// Runs one step: measures the network on the next batch and, if `update`, applies the
    /// optimiser. With `measure`, the per-layer gradient metrics are read into the snapshot.
    /// A run that has diverged does nothing until it is reset.
    pub fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot> {
        if self.divergence.is_some() {
            return None;
        }
        self.sync_from_view();
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
        self.gather_batch();
        let targets = targets_of(self.task.kind, &self.batch_labels, &self.batch_targets);
        self.work.run(
            &self.net,
            &self.values,
            &mut self.grads,
            &self.batch_inputs,
            targets,
        );
        let total = self.work.total_loss;
        let grad_norm = self.work.grad_sumsq.sqrt();
        let mut layers: Vec<LayerMetrics> = Vec::new();
        if measure || !total.is_finite() || !grad_norm.is_finite() {
            layers = self.layer_metrics();
        }
        if !total.is_finite() || !grad_norm.is_finite() {
            self.divergence = Some(self.locate_divergence(total, &layers));
        }

        if update && self.divergence.is_none() {
            let scale = match self.experiment.clip_grad_norm {
                Some(max) if grad_norm > f64::from(max) => (f64::from(max) / grad_norm) as f32,
                _ => 1.0,
            };
            self.work.fold_batch_statistics(&self.net, &mut self.values);
            let updates = self.apply_update(scale, measure);
            for (metrics, norms) in layers.iter_mut().zip(updates) {
                metrics.update_ratio = if norms.weight > 0.0 {
                    norms.update / norms.weight
                } else {
                    0.0
                };
            }
        }
        let train_accuracy = accuracy(self.task.kind, self.work.outputs(), &self.batch_labels);
        let snapshot = (measure || self.divergence.is_some()).then(|| {
            let norms: Vec<f64> = layers.iter().map(|l| l.act_grad_norm).collect();
            let (ratio, db, chi1) = gradient_ratios(&norms);
            let (db, chi1) = self.log_ratios(db, chi1);
            Snapshot {
                preset: self.experiment.name.clone(),
                step: self.step,
                loss: f64::from(total),
                main_loss: f64::from(self.work.main_loss),
                aux_losses: self.work.aux_losses.iter().map(|&v| f64::from(v)).collect(),
                train_accuracy,
                test_accuracy: self.last_test.and_then(|t| t.accuracy),
                test_loss: self.last_test.map(|t| t.loss),
                diverged: self.divergence.is_some(),
                divergence: self.divergence.clone(),
                learning_rate: f64::from(self.effective_learning_rate()),
                skip: self.switches.skip.label(),
                aux_enabled: self.switches.aux_enabled,
                grad_norm,
                layers,
                grad_ratio_first_last: ratio,
                grad_ratio_db: db,
                measured_chi1: chi1,
                // The mean-field recursion has no normalisation step: no prediction with one.
                norm: (self.switches.norm != NormKind::None)
                    .then(|| self.switches.norm.label().to_string()),
                variances: (self.switches.norm == NormKind::None).then(|| {
                    super::variances::net_variances(
                        &self.values,
                        &self.net,
                        &self.switches,
                        &self.input_sq,
                    )
                }),
                ..Snapshot::default()
            }
        });
        if update && self.divergence.is_none() {
            self.step += 1;
        }
        snapshot
    }

    /// The first/last ratio in dB and χ₁ from the rescaled norms, exact even where the
    /// norms themselves underflow f64 (the f64 figures are kept where they are finite).
    fn log_ratios(&self, db: f64, chi1: f64) -> (f64, f64) {
        let stats = &self.work.stats;
        let (Some(first), Some(last)) = (stats.first(), stats.last()) else {
            return (db, chi1);
        };
        let first_db = norm_db(first.grad_sumsq, first.grad_exp);
        let last_db = norm_db(last.grad_sumsq, last.grad_exp);
        let exact = first_db - last_db;
        if !exact.is_finite() || db.is_finite() && (db - exact).abs() < 1e-9 * exact.abs().max(1.0)
        {
            return (db, chi1);
        }
        let hops = stats.len() - 1;
        let chi1 = if hops == 0 {
            f64::NAN
        } else {
            10f64.powf(exact / 10.0 / hops as f64)
        };
        (exact, chi1)
    }

    /// Whether parameter `role` takes part in the objective under the current switches.
    fn is_active(&self, role: ParamRole) -> bool {
        let depth = self.net.depth;
        match role {
            ParamRole::Gate(_) => matches!(self.switches.skip, SkipMode::Highway),
            ParamRole::Readout(l) => matches!(self.switches.skip, SkipMode::Dense) && l + 1 < depth,
            ParamRole::Aux(_) => self.switches.aux_enabled,
            ParamRole::NormGain(_) | ParamRole::NormShift(_) => {
                self.switches.norm != NormKind::None
            }
            ParamRole::RunningMean(_) | ParamRole::RunningVar(_) => false,
            ParamRole::BranchAlpha(_) => {
                self.switches.branch_scale == BranchScale::ReZero
                    && matches!(self.switches.skip, SkipMode::Residual { .. })
            }
            _ => true,
        }
    }

    /// Applies the optimiser to every active parameter; returns the update norms of each W_l.
    fn apply_update(&mut self, scale: f32, measure: bool) -> Vec<UpdateNorms> {
        let lr = self.effective_learning_rate();
        let mut plan = std::mem::take(&mut self.update_plan);
        plan.clear();
        plan.extend(self.roles.iter().map(|&role| {
            let is_layer_weight = matches!(role, ParamRole::LayerWeight(_));
            self.is_active(role).then_some(measure && is_layer_weight)
        }));
        let mut norms = std::mem::take(&mut self.update_norms);
        norms.clear();
        norms.resize(self.values.len(), UpdateNorms::default());
        self.optimizer.update_all(
            &mut self.values,
            &self.grads,
            &plan,
            &mut norms,
            scale,
            lr,
            self.work.threads(),
        );
        let mut layer_updates = Vec::with_capacity(if measure { self.net.depth } else { 0 });
        if measure {
            layer_updates.extend(
                plan.iter()
                    .zip(&norms)
                    .filter(|(p, _)| **p == Some(true))
                    .map(|(_, n)| *n),
            );
        }
        self.update_plan = plan;
        self.update_norms = norms;
        // The tensors built for readers are stale now.
        self.view = OnceCell::new();
        layer_updates
    }

    /// Per-layer gradient and activation metrics of the last pass (measured inside it).
    fn layer_metrics(&self) -> Vec<LayerMetrics> {
        let per_layer = (self.work.rows() * self.net.width).max(1) as f64;
        self.work
            .stats
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let gate_mean =
                    (self.switches.skip == SkipMode::Highway).then(|| s.gate_sum / per_layer);
                let gate_bias_mean = gate_mean.map(|_| {
                    let bias = &self.values[crate::model::engine::slot::gate_bias(index)];
                    bias.iter().map(|&b| f64::from(b)).sum::<f64>() / bias.len().max(1) as f64
                });
                LayerMetrics {
                    layer: index + 1,
                    weight_grad_norm: norm_f64(s.weight_sumsq, s.weight_exp),
                    act_grad_norm: norm_f64(s.grad_sumsq, s.grad_exp),
                    act_rms: (s.act_sumsq / per_layer).sqrt(),
                    gate_mean,
                    gate_bias_mean,
                    update_ratio: 0.0,
                    act_grad_db: Some(norm_db(s.grad_sumsq, s.grad_exp)),
                    weight_grad_db: Some(norm_db(s.weight_sumsq, s.weight_exp)),
                    below_f32: s.weight_below_f32(),
                }
            })
            .collect()
    }

    /// Names the first layer whose activations or gradients went non-finite.
    fn locate_divergence(&self, loss: f32, layers: &[LayerMetrics]) -> Divergence {
        let first_bad_activation = self
            .work
            .stats
            .iter()
            .position(|s| !s.act_sumsq.is_finite());
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

/// The loss's targets for a split's labels or values.
fn targets_of<'a>(kind: TaskKind, labels: &'a [usize], values: &'a [f32]) -> Targets<'a> {
    match kind {
        TaskKind::Classification { .. } => Targets::Labels(labels),
        TaskKind::Regression { .. } => Targets::Values(values),
    }
}

/// Rows whose arg-max logit is the label (0 for regression).
pub fn correct_rows(logits: &[f32], labels: &[usize], kind: TaskKind) -> usize {
    let TaskKind::Classification { classes } = kind else {
        return 0;
    };
    logits
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
        .count()
}

/// Fraction of rows whose arg-max logit is the label (None for regression).
fn accuracy(kind: TaskKind, logits: &[f32], labels: &[usize]) -> Option<f64> {
    matches!(kind, TaskKind::Classification { .. })
        .then(|| correct_rows(logits, labels, kind) as f64 / labels.len().max(1) as f64)
}
