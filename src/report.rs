//! The analyses `gradlab run --json` adds beside the final snapshot: path-length statistics,
//! the mean-field prediction for the network in effect, and lesions (one block, or k at once).

use crate::analysis::{ANALYSIS_ROWS, ForwardSignal, JacobianSpectrum, analyse_trainer};
use crate::config::{Experiment, SkipMode};
use crate::learner::Learner;
use crate::metrics::Snapshot;
use crate::model::Trainer;
use crate::model::{BatchTargets, Lesion, Matrix, Switches, backprop, forward};
use crate::paths::{PathNetwork, PathStats};
use crate::protocol::LesionResult;
use crate::sources::{LayerSources, source_gradients, summarise_sources};
use crate::tasks::TaskKind;
use crate::theory::{mean_field, predict};
use dfdx::prelude::{Cpu, TensorFromVec};
use serde::{Deserialize, Serialize};

/// Rows of the training split the path decomposition runs on by default.
pub const DEFAULT_PATH_ROWS: usize = 32;
/// Random paths per length by default (Veit's M).
pub const DEFAULT_PATH_SAMPLES: usize = 8;

/// Mean-field numbers (the `"theory"` object): the plain-net fixed point for the preset's
/// activation, σ_w² and σ_b², and the prediction for the architecture in effect at the final
/// snapshot, computed from each layer's current weight and bias variances (mean-field from
/// current variances: exact in the wide limit at initialisation, an approximation once
/// training has correlated the weights). Non-finite values are `None` and print as `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TheoryReport {
    /// Plain net at the preset's initialisation: χ₁ = σ_w² E[φ′(√q* z)²].
    pub chi1: Option<f64>,
    /// Plain net at the preset's initialisation: fixed point of the pre-activation variance map.
    pub q_star: Option<f64>,
    /// Plain net at the preset's initialisation: ξ = 1/|ln χ₁| in layers.
    pub depth_scale: Option<f64>,
    /// Plain net at the preset's initialisation: 10·log10 χ₁, the change in gradient energy per
    /// layer in dB.
    pub predicted_db_per_layer: Option<f64>,
    /// σ_w² that would put a plain net at χ₁ = 1 for this σ_b² (the lowest crossing).
    pub critical_weight_var: Option<f64>,
    /// The architecture the prediction below is for: `plain`, `residual`, `highway`, `dense`
    /// or `rnn` (along time); null where no mean-field prediction exists (GRU, LSTM).
    #[serde(default)]
    pub architecture: Option<String>,
    /// Predicted 20·log10(‖∂L/∂h_first‖/‖∂L/∂h_last‖), the quantity `grad_ratio_db` measures
    /// (batch Frobenius norms of the gradient of the mean loss), mean-field from the current
    /// variances, averaged over inputs as the batch norm averages them.
    #[serde(default)]
    pub predicted_ratio_db: Option<f64>,
    /// Per layer (time step for an RNN), the predicted ‖∂L/∂h_l‖ relative to the last layer in
    /// dB; null for layers the prediction does not cover (at or below an auxiliary head).
    #[serde(default)]
    pub per_layer_db: Vec<Option<f64>>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl TheoryReport {
    /// The plain-net numbers for `experiment`'s initialisation, without an architecture
    /// prediction (for callers that have no snapshot).
    pub fn for_experiment(experiment: &Experiment) -> Self {
        let init = &experiment.model.init;
        let mf = mean_field(
            experiment.model.activation,
            f64::from(init.weight_var),
            f64::from(init.bias_var),
        );
        Self {
            chi1: finite(mf.chi1),
            q_star: finite(mf.q_star),
            depth_scale: finite(mf.depth_scale),
            predicted_db_per_layer: finite(mf.predicted_db_per_layer),
            critical_weight_var: finite(mf.critical_weight_var),
            architecture: None,
            predicted_ratio_db: None,
            per_layer_db: Vec::new(),
        }
    }

    /// The plain-net numbers plus the prediction for the architecture in effect at `snapshot`
    /// (from the variances it carries).
    pub fn for_snapshot(experiment: &Experiment, snapshot: &Snapshot) -> Self {
        let mut report = Self::for_experiment(experiment);
        if let Some(prediction) = snapshot.variances.as_ref().map(predict) {
            report.architecture = Some(prediction.arch.name().to_string());
            report.predicted_ratio_db = prediction.ratio_db();
            report.per_layer_db = prediction.per_layer_db;
        }
        report
    }

    /// The prediction along time for a vanilla RNN's snapshot (the plain-net fields do not
    /// apply); None for cells without one.
    pub fn for_rnn(snapshot: &Snapshot) -> Option<Self> {
        let prediction = predict(snapshot.variances.as_ref()?);
        Some(Self {
            chi1: None,
            q_star: None,
            depth_scale: None,
            predicted_db_per_layer: None,
            critical_weight_var: None,
            architecture: Some(prediction.arch.name().to_string()),
            predicted_ratio_db: prediction.ratio_db(),
            per_layer_db: prediction.per_layer_db,
        })
    }
}

/// Evaluates the test set once per block with that block removed (Veit's lesion experiment).
pub fn lesion_all(trainer: &mut Trainer) -> Vec<LesionResult> {
    (0..trainer.params().layers.len())
        .map(|block| {
            let (test_loss, test_accuracy) = trainer.evaluate_test(Lesion::block(block));
            LesionResult {
                block: block + 1,
                test_loss,
                test_accuracy,
            }
        })
        .collect()
}

/// Loss and accuracy of the trainer's current network on the whole training split, with
/// the blocks in `lesion` removed: the training-data counterpart of `evaluate_test`, so a
/// lesion's damage can be told apart from overfitting.
pub fn evaluate_train(trainer: &Trainer, lesion: &Lesion) -> (f64, Option<f64>) {
    // In chunks, so a large training split does not need every activation at once; the loss
    // is a mean over rows, so a row-weighted mean of the chunks' losses is the whole split's.
    const CHUNK: usize = 4096;
    // dfdx's forward normalises with the batch's statistics only; BatchNorm is scored with
    // its running estimates, which the engine's evaluation mode reads.
    if trainer.couples_rows() {
        return trainer.evaluate_train(lesion.clone());
    }
    let task = trainer.task();
    let act = trainer.experiment().model.activation;
    let switches = trainer.switches();
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let mut start = 0;
    while start < task.train.len {
        let end = (start + CHUNK).min(task.train.len);
        let Some((_, x, targets, labels)) = rows_of(trainer, start..end) else {
            break;
        };
        let pass = forward(
            trainer.params(),
            act,
            &switches,
            x,
            &targets,
            lesion.clone(),
        );
        loss += f64::from(pass.main_loss) * (end - start) as f64;
        correct += crate::model::trainer::correct_rows(&pass.logits.as_vec(), &labels, task.kind);
        start = end;
    }
    let rows = task.train.len.max(1) as f64;
    let accuracy =
        matches!(task.kind, TaskKind::Classification { .. }).then(|| correct as f64 / rows);
    (loss / rows, accuracy)
}

/// The final network on the whole training and test splits (not a batch, and not the last
/// periodic test, which may be up to `test_every` steps old).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalScores {
    /// Main loss on the whole training split (non-finite prints as `null`).
    pub train_loss: f64,
    /// Accuracy on the whole training split (null for regression).
    pub train_accuracy: Option<f64>,
    /// Main loss on the whole test split.
    pub test_loss: f64,
    /// Accuracy on the whole test split (null for regression).
    pub test_accuracy: Option<f64>,
}

/// One block removed, scored on the whole training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainLesion {
    /// The removed block, numbered from 1 at the input (L1).
    pub block: usize,
    /// Training loss without it.
    pub train_loss: f64,
    /// Training accuracy without it (null for regression).
    pub train_accuracy: Option<f64>,
}

/// The final scores of `trainer`'s network.
pub fn final_scores(trainer: &mut Trainer) -> FinalScores {
    let (train_loss, train_accuracy) = evaluate_train(trainer, &Lesion::default());
    let (test_loss, test_accuracy) = trainer.evaluate_test(Lesion::default());
    FinalScores {
        train_loss,
        train_accuracy,
        test_loss,
        test_accuracy,
    }
}

/// Scores the training split once per block with that block removed.
pub fn lesion_all_train(trainer: &Trainer) -> Vec<TrainLesion> {
    (0..trainer.params().layers.len())
        .map(|block| {
            let (train_loss, train_accuracy) = evaluate_train(trainer, &Lesion::block(block));
            TrainLesion {
                block: block + 1,
                train_loss,
                train_accuracy,
            }
        })
        .collect()
}

/// Block subsets each lesion size is averaged over.
pub const LESION_SUBSETS: usize = 8;

/// Seed of the block subsets: fixed, so every run of a sweep (every skip mode, learning rate
/// and seed) of the same depth loses the same blocks.
pub const LESION_SEED: u64 = 2016;

/// `k` blocks removed at once (Veit's second experiment), scored on both splits and averaged
/// over [`LESION_SUBSETS`] subsets of the blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizedLesion {
    /// Blocks removed at once.
    pub k: usize,
    /// The subsets removed, blocks numbered from 1 at the input (L1), each ascending.
    pub subsets: Vec<Vec<usize>>,
    /// Whole-training-split loss, mean over the subsets.
    pub train_loss: f64,
    /// Whole-training-split accuracy, mean over the subsets (null for regression).
    pub train_accuracy: Option<f64>,
    /// Test loss, mean over the subsets.
    pub test_loss: f64,
    /// Test accuracy, mean over the subsets (null for regression).
    pub test_accuracy: Option<f64>,
}

/// The [`LESION_SUBSETS`] subsets of `k` distinct blocks (0-based, ascending) out of `depth`,
/// drawn from [`LESION_SEED`] and `k` alone. Subsets are drawn independently, so with few
/// possible subsets (k close to 0 or to `depth`) one may repeat. Empty when `k > depth`.
pub fn lesion_subsets(depth: usize, k: usize) -> Vec<Vec<usize>> {
    use rand::SeedableRng;
    if k > depth {
        return Vec::new();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(LESION_SEED ^ ((k as u64) << 32));
    (0..LESION_SUBSETS)
        .map(|_| {
            let mut blocks = rand::seq::index::sample(&mut rng, depth, k).into_vec();
            blocks.sort_unstable();
            blocks
        })
        .collect()
}

/// Removes `k` blocks at once for each `k` in `sizes` (sizes above the depth are left out).
pub fn lesion_sizes(trainer: &mut Trainer, sizes: &[usize]) -> Vec<SizedLesion> {
    let depth = trainer.params().layers.len();
    sizes
        .iter()
        .filter(|&&k| k <= depth)
        .map(|&k| {
            let subsets = lesion_subsets(depth, k);
            let scores: Vec<[(f64, Option<f64>); 2]> = subsets
                .iter()
                .map(|blocks| {
                    let lesion = Lesion::blocks(blocks.iter().copied());
                    [
                        evaluate_train(trainer, &lesion),
                        trainer.evaluate_test(lesion),
                    ]
                })
                .collect();
            let n = scores.len().max(1) as f64;
            let loss = |split: usize| scores.iter().map(|s| s[split].0).sum::<f64>() / n;
            let accuracy = |split: usize| {
                let accs: Option<Vec<f64>> = scores.iter().map(|s| s[split].1).collect();
                accs.map(|a| a.iter().sum::<f64>() / n)
            };
            SizedLesion {
                k,
                subsets: subsets
                    .iter()
                    .map(|b| b.iter().map(|l| l + 1).collect())
                    .collect(),
                train_loss: loss(0),
                train_accuracy: accuracy(0),
                test_loss: loss(1),
                test_accuracy: accuracy(1),
            }
        })
        .collect()
}

/// Path statistics of the trainer's current network on the first `rows` training rows, for
/// the main loss under the live skip mode: Veit's profile (`samples` random paths per length,
/// drawn from `seed`) and the exact split. `None` for dense nets, where `paths::not_defined`
/// says so (normalisation, a branch factor) or for an empty training split.
pub fn path_stats(trainer: &Trainer, rows: usize, samples: usize, seed: u64) -> Option<PathStats> {
    let switches = trainer.switches();
    if matches!(switches.skip, SkipMode::Dense) {
        return None;
    }
    let (inputs, x, targets) = first_rows(trainer, rows)?;
    let act = trainer.experiment().model.activation;
    // Only the main loss: auxiliary heads would inject gradient between blocks, which a
    // decomposition of ∂L/∂h_last cannot attribute to paths.
    let main_only = Switches {
        aux_enabled: false,
        ..switches
    };
    let mut params = trainer.params().clone();
    let result = backprop(&mut params, act, &main_only, x, &targets);
    let upstream: Vec<f64> = result
        .hidden_grads
        .last()?
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    if crate::paths::not_defined(switches.norm, switches.skip, switches.branch_scale).is_some() {
        return None;
    }
    let net = PathNetwork::new(&params, act, switches.skip, &inputs)?
        .on_threads(trainer.threads_allowed());
    Some(net.stats(&upstream, samples, seed))
}

/// Where each layer's gradient comes from (main head, dense read-outs, auxiliary heads) on
/// the first `rows` training rows; None unless the net is dense or has auxiliary losses on.
pub fn layer_sources(trainer: &Trainer, rows: usize) -> Option<Vec<LayerSources>> {
    let switches = trainer.switches();
    if !(matches!(switches.skip, SkipMode::Dense) || switches.aux_enabled) {
        return None;
    }
    let (_, x, targets) = first_rows(trainer, rows)?;
    let act = trainer.experiment().model.activation;
    let sources = source_gradients(trainer.params(), act, &switches, &x, &targets)?;
    Some(summarise_sources(&sources))
}

/// The first `rows` training rows as raw inputs, an input tensor and targets.
fn first_rows(trainer: &Trainer, rows: usize) -> Option<(Vec<f32>, Matrix, BatchTargets)> {
    let rows = rows.min(trainer.task().train.len);
    rows_of(trainer, 0..rows).map(|(inputs, x, targets, _)| (inputs, x, targets))
}

/// Training rows `range` as raw inputs, an input tensor, targets and labels (empty for
/// regression); None for an empty range or a net without hidden layers.
fn rows_of(
    trainer: &Trainer,
    range: std::ops::Range<usize>,
) -> Option<(Vec<f32>, Matrix, BatchTargets, Vec<usize>)> {
    let task = trainer.task();
    let rows = range.len();
    if rows == 0 || range.end > task.train.len || trainer.params().layers.is_empty() {
        return None;
    }
    let outputs = match task.kind {
        TaskKind::Classification { classes } => classes,
        TaskKind::Regression { outputs } => outputs,
    };
    let indices: Vec<usize> = range.collect();
    let (mut inputs, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    task.train.gather(
        &indices,
        task.input_dims,
        outputs,
        &mut inputs,
        &mut labels,
        &mut values,
    );
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(inputs.clone(), (rows, task.input_dims));
    let targets = match task.kind {
        TaskKind::Classification { classes } => {
            let mut one_hot = vec![0.0f32; rows * classes];
            for (row, &label) in labels.iter().enumerate() {
                one_hot[row * classes + label] = 1.0;
            }
            BatchTargets::OneHot(dev.tensor_from_vec(one_hot, (rows, classes)))
        }
        TaskKind::Regression { outputs } => {
            BatchTargets::Values(dev.tensor_from_vec(values, (rows, outputs)))
        }
    };
    Some((inputs, x, targets, labels))
}

/// The `--json` object: the final snapshot's fields plus the analyses that were asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The final measurement, its fields inlined.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Veit's path-length profile and the exact split by path length of the final network.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub paths: Option<PathStats>,
    /// Mean-field numbers: the plain net at the preset's initialisation and the prediction for
    /// the architecture in effect from the current variances.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub theory: Option<TheoryReport>,
    /// Test results with each block removed in turn.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lesion: Option<Vec<LesionResult>>,
    /// Per layer, the gradient's share from each source (dense or auxiliary nets only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sources: Option<Vec<LayerSources>>,
    /// Singular values of ∂h_L/∂h_1 of the final net on the first training rows, their mean
    /// square and its mean-field prediction.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jacobian: Option<JacobianSpectrum>,
    /// Per-layer q_l and c_l of the final net, measured and mean-field, and ξ_c.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub forward: Option<ForwardSignal>,
    /// The final network on the whole training and test splits (MLPs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub final_scores: Option<FinalScores>,
    /// Training-split results with each block removed in turn (with `lesion`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lesion_train: Option<Vec<TrainLesion>>,
    /// Several blocks removed at once, one entry per size asked for (with `lesion_sizes`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lesion_sizes: Option<Vec<SizedLesion>>,
}

/// Which analyses to run after training, beside the final snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analyses {
    /// Path decomposition on (training rows, samples per length).
    pub paths: Option<(usize, usize)>,
    /// Single-block lesions on the test set.
    pub lesion: bool,
    /// Numbers of blocks to remove at once, each averaged over [`LESION_SUBSETS`] subsets
    /// (empty: none).
    pub lesion_sizes: Vec<usize>,
}

impl Analyses {
    /// What `gradlab run --json` computes by default: paths on, lesions as asked.
    pub fn standard(lesion: bool) -> Self {
        Self {
            paths: Some((DEFAULT_PATH_ROWS, DEFAULT_PATH_SAMPLES)),
            lesion,
            lesion_sizes: Vec::new(),
        }
    }
}

/// The report of a finished run: `gradlab run --json`, `compare` and `sweep` all build it
/// here, so a sweep job run by hand gives the same numbers as the sweep.
pub fn build_report(
    learner: &mut dyn Learner,
    snapshot: Snapshot,
    analyses: &Analyses,
) -> RunReport {
    let seed = learner.experiment().seed;
    // Paths and lesions are about the MLP's layers; a recurrent net has only its theory.
    let Some(mlp) = learner.as_mlp() else {
        return RunReport {
            theory: TheoryReport::for_rnn(&snapshot),
            snapshot,
            paths: None,
            lesion: None,
            sources: None,
            jacobian: None,
            forward: None,
            final_scores: None,
            lesion_train: None,
            lesion_sizes: None,
        };
    };
    let lesion = analyses.lesion.then(|| lesion_all(mlp));
    let lesion_train = analyses.lesion.then(|| lesion_all_train(mlp));
    let sized =
        (!analyses.lesion_sizes.is_empty()).then(|| lesion_sizes(mlp, &analyses.lesion_sizes));
    let (jacobian, forward) = analyse_trainer(mlp, ANALYSIS_ROWS)
        .map(|a| (a.jacobian, a.forward))
        .unzip();
    RunReport {
        jacobian,
        forward,
        final_scores: Some(final_scores(mlp)),
        lesion_train,
        lesion_sizes: sized,
        paths: analyses
            .paths
            .and_then(|(rows, samples)| path_stats(mlp, rows, samples, seed)),
        theory: Some(TheoryReport::for_snapshot(mlp.experiment(), &snapshot)),
        sources: layer_sources(
            mlp,
            analyses.paths.map_or(DEFAULT_PATH_ROWS, |(rows, _)| rows),
        ),
        lesion,
        snapshot,
    }
}
