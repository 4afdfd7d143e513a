//! Reading presets: the built-in ones embedded in the binary and `.ron` files on disk.

use super::Experiment;
use anyhow::{Context, Result, anyhow};
use std::path::Path;

/// A built-in preset: its name and RON source as shipped in `presets/`.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The name `--preset` accepts.
    pub name: &'static str,
    /// The RON text of `presets/<name>.ron`.
    pub source: &'static str,
}

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(Preset { name: $name, source: include_str!(concat!("../../presets/", $name, ".ron")) }),*]
    };
}

const BUILTIN: &[Preset] = embedded![
    "plain-deep",
    "residual-deep",
    "highway-deep",
    "dense-deep",
    "aux-deep",
    "relu-critical",
    "exploding",
    "plain-shallow",
    "isometry-orthogonal",
    "isometry-gaussian",
    "digits-mlp",
    "mnist1d-mlp",
    "rnn-vanilla-adding",
    "rnn-gru-adding",
    "rnn-lstm-adding",
    "rnn-copy",
    "rnn-xor",
    "postnorm-nowarmup",
    "postnorm-warmup",
];

/// The presets shipped inside the binary, the default (`plain-deep`) first.
pub fn builtin_presets() -> &'static [Preset] {
    BUILTIN
}

/// Parses RON text; `origin` names the text (a file path) in error messages.
pub fn parse_preset(source: &str, origin: &str) -> Result<Experiment> {
    ron::Options::default()
        .from_str::<Experiment>(source)
        .map_err(|e| {
            anyhow!(
                "{origin}:{}:{}: {}",
                e.span.start.line,
                e.span.start.col,
                e.code
            )
        })
}

/// Loads a preset by built-in name, or from a `.ron` file when `name_or_path` is a path.
pub fn load_preset(name_or_path: &str) -> Result<Experiment> {
    if let Some(preset) = BUILTIN.iter().find(|p| p.name == name_or_path) {
        return parse_preset(preset.source, &format!("presets/{}.ron", preset.name));
    }
    let path = Path::new(name_or_path);
    if path.extension().is_some_and(|e| e == "ron") || path.exists() {
        let source = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read preset file {}", path.display()))?;
        return parse_preset(&source, &path.display().to_string());
    }
    let names: Vec<&str> = BUILTIN.iter().map(|p| p.name).collect();
    Err(anyhow!(
        "no preset named `{name_or_path}`: expected one of {} or a path to a .ron file",
        names.join(", ")
    ))
}
