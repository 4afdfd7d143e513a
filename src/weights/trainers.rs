//! The weights of a trainer, MLP or recurrent: its named parameters plus the metadata a
//! reader needs (preset, step, seed, switches in effect, layout), and loading them back.

use super::names::{mlp_named, rnn_named};
use super::net::{read_out, write_in};
use super::{FORMAT, FORMAT_VERSION, LAYOUT, Weights};
use crate::config::{Experiment, ModelKind};
use crate::model::Trainer;
use crate::rnn::RnnTrainer;
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// Metadata every file carries: what wrote it, the preset and where the run stood.
fn common_metadata(experiment: &Experiment, step: u64) -> BTreeMap<String, String> {
    let model = &experiment.model;
    let kind = match model.kind {
        ModelKind::Mlp => "mlp",
        ModelKind::Rnn => "rnn",
    };
    let mut m = BTreeMap::new();
    m.insert("format".into(), FORMAT.into());
    m.insert("format_version".into(), FORMAT_VERSION.to_string());
    m.insert("gradlab_version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert("preset".into(), experiment.name.clone());
    m.insert("step".into(), step.to_string());
    m.insert("seed".into(), experiment.seed.to_string());
    m.insert("kind".into(), kind.into());
    m.insert("width".into(), model.width.to_string());
    m.insert(
        "activation".into(),
        format!("{:?}", model.activation).to_lowercase(),
    );
    m.insert("layout".into(), LAYOUT.into());
    // The whole experiment, so a reader can rebuild the run (`--set` overrides included).
    if let Ok(json) = serde_json::to_string(experiment) {
        m.insert("experiment".into(), json);
    }
    m
}

/// The network a file must fit, for messages.
pub fn describe(experiment: &Experiment) -> String {
    let model = &experiment.model;
    match model.kind {
        ModelKind::Mlp => format!(
            "preset {} (MLP of depth {}, width {})",
            experiment.name, model.depth, model.width
        ),
        ModelKind::Rnn => format!(
            "preset {} (recurrent net of hidden size {})",
            experiment.name, model.width
        ),
    }
}

/// Refuses weights a file says belong to the other kind of network, before tensor names
/// would say it less plainly.
fn check_kind(weights: &Weights, experiment: &Experiment) -> Result<()> {
    let (ours, theirs) = match experiment.model.kind {
        ModelKind::Mlp => ("mlp", "a recurrent net"),
        ModelKind::Rnn => ("rnn", "an MLP"),
    };
    match weights.metadata.get("kind") {
        Some(kind) if kind != ours => bail!(
            "{} holds the weights of {theirs} (written by preset {}), and {} is not one",
            weights.origin(),
            weights.metadata.get("preset").map_or("?", String::as_str),
            describe(experiment)
        ),
        _ => Ok(()),
    }
}

/// The MLP's parameters and metadata (skip mode and auxiliary losses as in effect now).
pub fn mlp_weights(trainer: &mut Trainer) -> Weights {
    let mut metadata = common_metadata(trainer.experiment(), trainer.step());
    let switches = trainer.switches();
    metadata.insert("depth".into(), trainer.experiment().model.depth.to_string());
    metadata.insert("skip".into(), switches.skip.label());
    let aux = if switches.aux_enabled { "on" } else { "off" };
    metadata.insert("aux".into(), aux.into());
    // Named as the preset spells them, e.g. `BatchNorm`, `Post`, `ReZero`.
    metadata.insert("norm".into(), format!("{:?}", switches.norm));
    metadata.insert("norm_place".into(), format!("{:?}", switches.norm_place));
    metadata.insert(
        "branch_scale".into(),
        format!("{:?}", switches.branch_scale),
    );
    Weights {
        tensors: read_out(mlp_named(trainer.params_mut())),
        metadata,
        source: String::new(),
    }
}

/// Overwrites the MLP's parameters with `weights`, after checking every name and shape.
pub fn load_mlp(trainer: &mut Trainer, weights: &Weights) -> Result<()> {
    check_kind(weights, trainer.experiment())?;
    let what = describe(trainer.experiment());
    write_in(mlp_named(trainer.params_mut()), weights, &what)
}

/// The recurrent net's parameters (all three cells) and metadata (the cell in effect now).
pub fn rnn_weights(trainer: &mut RnnTrainer) -> Weights {
    let mut metadata = common_metadata(trainer.experiment(), trainer.step());
    metadata.insert("cell".into(), trainer.cell().label().into());
    Weights {
        tensors: read_out(rnn_named(trainer.params_mut())),
        metadata,
        source: String::new(),
    }
}

/// Overwrites the recurrent net's parameters with `weights`, after checking them.
pub fn load_rnn(trainer: &mut RnnTrainer, weights: &Weights) -> Result<()> {
    check_kind(weights, trainer.experiment())?;
    let what = describe(trainer.experiment());
    write_in(rnn_named(trainer.params_mut()), weights, &what)
}
