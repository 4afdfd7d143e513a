//! Checkpoints: a weights file plus the optimiser's moments (`optim.m.*`, `optim.v.*`) and,
//! under the `checkpoint` metadata key, the rest of where the run stood (step, live switches,
//! learning rate, batch sampler position, generator position, last test result), so that a
//! resumed run takes exactly the steps the uninterrupted one would have taken.

use super::trainers::{load_mlp, load_rnn, mlp_weights, rnn_weights};
use super::{Tensor, Weights};
use crate::config::{BranchScale, CellKind, Experiment, NormKind, NormPlace, SkipMode};
use crate::model::{MlpPosition, Switches, Trainer};
use crate::optim::Optimizer;
use crate::rnn::RnnPosition;
use crate::rnn::RnnTrainer;
use crate::tasks::SamplerPosition;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The metadata key holding a checkpoint's state (JSON).
pub const CHECKPOINT_KEY: &str = "checkpoint";

/// Most differing settings one message lists.
const LISTED: usize = 4;

/// The state besides tensors, as JSON in the file's metadata.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// The experiment as the run loaded it (JSON of `Experiment`).
    experiment: Value,
    /// Updates applied.
    step: u64,
    /// Learning rate in effect (an f32, exact in an f64).
    learning_rate: f64,
    /// Updates each parameter has had (Adam's bias correction), by tensor name.
    updates: BTreeMap<String, u64>,
    /// The last test-set result, as f64 bit patterns (a NaN survives).
    last_test: Option<LastTest>,
    /// MLP runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mlp: Option<MlpState>,
    /// Recurrent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rnn: Option<RnnState>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LastTest {
    loss_bits: u64,
    accuracy_bits: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpState {
    skip: SkipMode,
    aux_enabled: bool,
    /// An f32, exact in an f64.
    aux_weight: f64,
    sampler: SamplerPosition,
    /// Absent in checkpoints written before normalisation existed: off.
    #[serde(default)]
    norm: NormKind,
    #[serde(default)]
    norm_place: NormPlace,
    #[serde(default)]
    branch_scale: BranchScale,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RnnState {
    cell: CellKind,
    /// The batch generator's word position, in decimal.
    batches_word_pos: String,
}

fn to_bits(test: Option<(f64, Option<f64>)>) -> Option<LastTest> {
    test.map(|(loss, accuracy)| LastTest {
        loss_bits: loss.to_bits(),
        accuracy_bits: accuracy.map(f64::to_bits),
    })
}

fn from_bits(test: Option<&LastTest>) -> Option<(f64, Option<f64>)> {
    test.map(|t| {
        (
            f64::from_bits(t.loss_bits),
            t.accuracy_bits.map(f64::from_bits),
        )
    })
}

/// The experiment as JSON, the way the file stores it (through text, so f32 fields compare
/// equal after the round trip).
fn experiment_json(experiment: &Experiment) -> Result<Value> {
    Ok(serde_json::from_str(&serde_json::to_string(experiment)?)?)
}

/// The optimiser's moments as tensors named after the parameters, and its update counts.
fn optimizer_tensors(
    weights: &Weights,
    optimizer: &Optimizer,
) -> (Vec<Tensor>, BTreeMap<String, u64>) {
    let mut tensors = Vec::new();
    let mut updates = BTreeMap::new();
    let moments = [
        ("optim.m.", optimizer.first_moments()),
        ("optim.v.", optimizer.second_moments()),
    ];
    for (i, param) in weights.tensors.iter().enumerate() {
        for (prefix, moment) in moments {
            if let Some(values) = moment.get(i) {
                tensors.push(Tensor {
                    name: format!("{prefix}{}", param.name),
                    shape: param.shape.clone(),
                    values: values.clone(),
                });
            }
        }
        let count = optimizer.update_counts().get(i).copied().unwrap_or(0);
        updates.insert(param.name.clone(), count);
    }
    (tensors, updates)
}

/// Reads the optimiser's state for the parameters `names` (with their shapes) from a file.
fn restore_optimizer(
    optimizer: &mut Optimizer,
    params: &[Tensor],
    file: &Weights,
    updates: &BTreeMap<String, u64>,
) -> Result<()> {
    let origin = file.origin();
    let moment = |prefix: &str| -> Result<Vec<Vec<f32>>> {
        params
            .iter()
            .map(|p| {
                let name = format!("{prefix}{}", p.name);
                // A checkpoint from before normalisation: those parameters were never
                // updated, so their moments are zero.
                if file.get(&name).is_none() && super::names::added_with_norm(&p.name) {
                    return Ok(vec![0.0; p.values.len()]);
                }
                let t = file
                    .get(&name)
                    .ok_or_else(|| anyhow!("{origin}: the checkpoint has no tensor `{name}`"))?;
                if t.shape != p.shape {
                    bail!(
                        "{origin}: tensor `{name}`: expected shape {:?}, found {:?}",
                        p.shape,
                        t.shape
                    );
                }
                Ok(t.values.clone())
            })
            .collect()
    };
    let first = moment("optim.m.")?;
    let second = if optimizer.has_second_moment() {
        moment("optim.v.")?
    } else {
        Vec::new()
    };
    let counts = params
        .iter()
        .map(|p| {
            let before_norm = super::names::added_with_norm(&p.name) && file.get(&p.name).is_none();
            updates
                .get(&p.name)
                .copied()
                .or(before_norm.then_some(0))
                .ok_or_else(|| {
                    anyhow!(
                        "{origin}: the checkpoint has no update count for `{}`",
                        p.name
                    )
                })
        })
        .collect::<Result<Vec<u64>>>()?;
    optimizer
        .restore(first, second, counts)
        .map_err(|e| anyhow!("{origin}: {e}"))
}

/// Adds the optimiser and `state` to `weights`, making it a checkpoint.
fn finish(mut weights: Weights, optimizer: &Optimizer, state: State) -> Result<Weights> {
    let (tensors, _) = optimizer_tensors(&weights, optimizer);
    weights.tensors.extend(tensors);
    weights
        .metadata
        .insert(CHECKPOINT_KEY.into(), serde_json::to_string(&state)?);
    Ok(weights)
}

/// A checkpoint of an MLP run; refused once the run has diverged (it could not go on).
pub fn mlp_checkpoint(trainer: &mut Trainer) -> Result<Weights> {
    if let Some(d) = trainer.divergence() {
        bail!(
            "the run diverged at step {} ({}): a checkpoint could not resume it",
            d.step,
            d.what
        );
    }
    let weights = mlp_weights(trainer);
    let position = trainer.position();
    let (_, updates) = optimizer_tensors(&weights, trainer.optimizer_mut());
    let state = State {
        experiment: experiment_json(trainer.experiment())?,
        step: position.step,
        learning_rate: f64::from(position.learning_rate),
        updates,
        last_test: to_bits(position.last_test),
        mlp: Some(MlpState {
            skip: position.switches.skip,
            aux_enabled: position.switches.aux_enabled,
            aux_weight: f64::from(position.switches.aux_weight),
            sampler: position.sampler,
            norm: position.switches.norm,
            norm_place: position.switches.norm_place,
            branch_scale: position.switches.branch_scale,
        }),
        rnn: None,
    };
    finish(weights, trainer.optimizer_mut(), state)
}

/// A checkpoint of a recurrent run; refused once the run has diverged.
pub fn rnn_checkpoint(trainer: &mut RnnTrainer) -> Result<Weights> {
    if let Some(d) = trainer.divergence() {
        bail!(
            "the run diverged at step {} ({}): a checkpoint could not resume it",
            d.step,
            d.what
        );
    }
    let weights = rnn_weights(trainer);
    let position = trainer.position();
    let (_, updates) = optimizer_tensors(&weights, trainer.optimizer_mut());
    let state = State {
        experiment: experiment_json(trainer.experiment())?,
        step: position.step,
        learning_rate: f64::from(position.learning_rate),
        updates,
        last_test: to_bits(position.last_test),
        mlp: None,
        rnn: Some(RnnState {
            cell: position.cell,
            batches_word_pos: position.batches_word_pos.to_string(),
        }),
    };
    finish(weights, trainer.optimizer_mut(), state)
}

/// The checkpoint state of `file`, checked against the experiment the run was built from.
fn read_state(file: &Weights, experiment: &Experiment) -> Result<State> {
    let origin = file.origin();
    let text = file.metadata.get(CHECKPOINT_KEY).ok_or_else(|| {
        anyhow!(
            "{origin} holds weights but no checkpoint (no optimiser state or data position): \
             start from it with --load-weights, or write one with --checkpoint"
        )
    })?;
    let state: State = serde_json::from_str(text)
        .with_context(|| format!("{origin}: the checkpoint state is damaged"))?;
    check_same_experiment(&state.experiment, experiment, origin)?;
    Ok(state)
}

/// Refuses a checkpoint of another experiment, naming what differs (the step budget aside:
/// `--steps` may go further).
fn check_same_experiment(stored: &Value, experiment: &Experiment, origin: &str) -> Result<()> {
    let mut then = stored.clone();
    let mut now = experiment_json(experiment)?;
    for v in [&mut then, &mut now] {
        if let Some(o) = v.as_object_mut() {
            o.remove("steps");
        }
    }
    if then == now {
        return Ok(());
    }
    let name = then.get("name").and_then(Value::as_str).unwrap_or("?");
    if name != experiment.name {
        bail!(
            "{origin} is a checkpoint of preset {name}, not {}: pass --preset {name} (with the \
             --set overrides it was run with)",
            experiment.name
        );
    }
    let mut differences = Vec::new();
    differ(&then, &now, "", &mut differences);
    let more = differences.len().saturating_sub(LISTED);
    differences.truncate(LISTED);
    let mut list = differences.join("; ");
    if more > 0 {
        list.push_str(&format!("; and {more} more"));
    }
    bail!(
        "{origin} is a checkpoint of preset {name} with other settings: {list}; resume it with \
         the --set overrides it was run with"
    )
}

/// Collects `path: <checkpoint> in the checkpoint, <now> now` for every leaf that differs.
fn differ(then: &Value, now: &Value, path: &str, out: &mut Vec<String>) {
    if let (Value::Object(a), Value::Object(b)) = (then, now) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let (x, y) = (
                a.get(key).unwrap_or(&Value::Null),
                b.get(key).unwrap_or(&Value::Null),
            );
            differ(x, y, &at, out);
        }
    } else if then != now {
        out.push(format!("{path} is {then} in the checkpoint, {now} now"));
    }
}

/// Restores an MLP trainer built from the same experiment to the checkpoint `file`.
pub fn restore_mlp(trainer: &mut Trainer, file: &Weights) -> Result<()> {
    let origin = file.origin().to_string();
    let state = read_state(file, trainer.experiment())?;
    let mlp = state
        .mlp
        .as_ref()
        .ok_or_else(|| anyhow!("{origin} is a checkpoint of a recurrent net, not an MLP"))?;
    // Everything is checked before anything is written, so a refusal leaves the net intact.
    let params = mlp_weights(trainer).tensors;
    let what = super::trainers::describe(trainer.experiment());
    super::net::check_fits(&super::names::mlp_named(trainer.params_mut()), file, &what)?;
    let mut optimizer = trainer.optimizer_mut().clone();
    restore_optimizer(&mut optimizer, &params, file, &state.updates)?;
    let position = MlpPosition {
        step: state.step,
        learning_rate: state.learning_rate as f32,
        switches: Switches {
            skip: mlp.skip,
            aux_enabled: mlp.aux_enabled,
            aux_weight: mlp.aux_weight as f32,
            norm: mlp.norm,
            norm_place: mlp.norm_place,
            branch_scale: mlp.branch_scale,
        },
        sampler: mlp.sampler.clone(),
        last_test: from_bits(state.last_test.as_ref()),
    };
    trainer
        .restore_position(&position)
        .map_err(|e| anyhow!("{origin}: {e}"))?;
    load_mlp(trainer, file)?;
    *trainer.optimizer_mut() = optimizer;
    Ok(())
}

/// Restores a recurrent trainer built from the same experiment to the checkpoint `file`.
pub fn restore_rnn(trainer: &mut RnnTrainer, file: &Weights) -> Result<()> {
    let origin = file.origin().to_string();
    let state = read_state(file, trainer.experiment())?;
    let rnn = state
        .rnn
        .as_ref()
        .ok_or_else(|| anyhow!("{origin} is a checkpoint of an MLP, not a recurrent net"))?;
    let word_pos: u128 = rnn.batches_word_pos.parse().map_err(|_| {
        anyhow!(
            "{origin}: `{}` is not a generator position",
            rnn.batches_word_pos
        )
    })?;
    let params = rnn_weights(trainer).tensors;
    let what = super::trainers::describe(trainer.experiment());
    super::net::check_fits(&super::names::rnn_named(trainer.params_mut()), file, &what)?;
    let mut optimizer = trainer.optimizer_mut().clone();
    restore_optimizer(&mut optimizer, &params, file, &state.updates)?;
    load_rnn(trainer, file)?;
    *trainer.optimizer_mut() = optimizer;
    trainer.restore_position(&RnnPosition {
        step: state.step,
        learning_rate: state.learning_rate as f32,
        cell: rnn.cell,
        batches_word_pos: word_pos,
        last_test: from_bits(state.last_test.as_ref()),
    });
    Ok(())
}
