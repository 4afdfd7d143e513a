//! Whether an experiment's fields mean anything for its model: a recurrent net has no depth
//! or skip connections, an MLP has no recurrent cell, and each task needs one kind of model.
//! `--set` of a field the model ignores would otherwise be accepted and silently do nothing.

use super::{Experiment, ModelKind, TaskSpec};
use anyhow::{Result, bail};

/// Fields an MLP never reads, with the reason given to the user.
const MLP_IGNORES: &[(&str, &str)] = &[
    (
        "model.cell",
        "only recurrent nets (model.kind=Rnn) have a cell",
    ),
    (
        "model.forget_bias",
        "only an LSTM cell of a recurrent net (model.kind=Rnn) has a forget gate",
    ),
    (
        "model.carry_bias",
        "only the gated cells of a recurrent net (model.kind=Rnn) have carry gates",
    ),
];

/// Fields a recurrent net never reads, with the reason given to the user.
const RNN_IGNORES: &[(&str, &str)] = &[
    (
        "model.depth",
        "a recurrent net's depth is its sequence length (task.length or task.delay)",
    ),
    (
        "model.skip",
        "skip connections belong to MLPs (model.kind=Mlp)",
    ),
    (
        "model.aux",
        "auxiliary heads belong to MLPs (model.kind=Mlp)",
    ),
    (
        "model.gate_bias",
        "highway gates belong to MLPs (model.kind=Mlp); the LSTM's is model.forget_bias",
    ),
    (
        "model.activation",
        "recurrent cells use their own nonlinearities (tanh and σ)",
    ),
];

impl TaskSpec {
    /// The task's name as written in a preset, e.g. `Adding`.
    pub fn name(&self) -> &'static str {
        match self {
            TaskSpec::Spirals { .. } => "Spirals",
            TaskSpec::Circles { .. } => "Circles",
            TaskSpec::Checkerboard { .. } => "Checkerboard",
            TaskSpec::Blobs { .. } => "Blobs",
            TaskSpec::Teacher { .. } => "Teacher",
            TaskSpec::Adding { .. } => "Adding",
            TaskSpec::Copy { .. } => "Copy",
            TaskSpec::DelayedXor { .. } => "DelayedXor",
            TaskSpec::Digits => "Digits",
            TaskSpec::Mnist1d => "Mnist1d",
            TaskSpec::Csv { .. } => "Csv",
        }
    }
}

/// Refuses an override (`PATH=VALUE`) of a field `experiment`'s model does not use, naming the
/// flag as the user typed it and why.
pub fn check_overrides_apply(experiment: &Experiment, overrides: &[String]) -> Result<()> {
    let (ignored, model) = match experiment.model.kind {
        ModelKind::Mlp => (MLP_IGNORES, "an MLP"),
        ModelKind::Rnn => (RNN_IGNORES, "a recurrent net"),
    };
    for assignment in overrides {
        let path = assignment
            .split_once('=')
            .map_or(assignment.as_str(), |(p, _)| p);
        let path = path.trim();
        for (field, reason) in ignored {
            let inside = path
                .strip_prefix(field)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
            if inside {
                bail!("--set {assignment}: {model} does not use {field}: {reason}");
            }
        }
    }
    Ok(())
}

/// Refuses a task the model cannot learn: sequence tasks need a recurrent net, the others an
/// MLP; says which `--set` fixes it.
pub fn check_task_fits_model(experiment: &Experiment) -> Result<()> {
    let task = &experiment.task;
    match (experiment.model.kind, task.is_sequence()) {
        (ModelKind::Mlp, true) => bail!(
            "task {} is a sequence task: it needs a recurrent net (--set model.kind=Rnn)",
            task.name()
        ),
        (ModelKind::Rnn, false) => bail!(
            "task {} is not a sequence task: a recurrent net learns Adding, Copy or DelayedXor \
             (or --set model.kind=Mlp)",
            task.name()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_preset;

    #[test]
    fn a_field_the_model_ignores_is_refused_with_the_reason() {
        let mlp = load_preset("plain-deep").expect("built-in");
        let error = check_overrides_apply(&mlp, &["model.cell=Gru".into()])
            .expect_err("an MLP has no cell")
            .to_string();
        assert!(error.starts_with("--set model.cell=Gru: an MLP does not use model.cell"));
        let rnn = load_preset("rnn-lstm-adding").expect("built-in");
        let error = check_overrides_apply(&rnn, &["model.aux.every=2".into()])
            .expect_err("a recurrent net has no aux heads")
            .to_string();
        assert!(
            error.contains("a recurrent net does not use model.aux"),
            "{error}"
        );
        assert!(
            check_overrides_apply(&rnn, &["model.width=8".into(), "model.cell=Gru".into()]).is_ok()
        );
        // `model.depthx` is not `model.depth`; the parser reports it as an unknown field.
        assert!(check_overrides_apply(&rnn, &["model.depthx=1".into()]).is_ok());
    }

    #[test]
    fn a_task_for_the_other_model_is_refused_by_name() {
        let mut e = load_preset("plain-deep").expect("built-in");
        e.task = TaskSpec::Adding {
            length: 10,
            test_points: 512,
        };
        let error = check_task_fits_model(&e).expect_err("mismatch").to_string();
        assert!(
            error.starts_with("task Adding is a sequence task"),
            "{error}"
        );
        assert!(!error.contains('{'), "no Debug form: {error}");
    }
}
