//! `--set PATH=VALUE` overrides: change any field of a loaded preset from the command line.
//!
//! A value is written in RON, as in a preset file (`--set model.skip=Residual(scale: 1.0)`);
//! plain words are accepted for strings. Fields inside an enum variant can be reached too
//! (`--set optimizer.lr=0.1`, `--set task.points=2000`). After each override the whole
//! experiment goes through the preset parser again, so range checks apply as for a file.

use super::{
    Activation, AuxSpec, BranchScale, CarryBias, CellKind, Experiment, InitSpec, ModelKind,
    ModelSpec, NormKind, NormPlace, OptimizerSpec, SkipMode, TaskSpec, WeightDistribution,
    parse_preset,
};
use anyhow::{Result, anyhow};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Applies `PATH=VALUE` overrides in order and returns the validated experiment.
pub fn apply_overrides(experiment: &Experiment, overrides: &[String]) -> Result<Experiment> {
    let mut current = experiment.clone();
    for assignment in overrides {
        let (path, value) = assignment
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {assignment}: expected PATH=VALUE"))?;
        let segments: Vec<&str> = path.trim().split('.').collect();
        current
            .set_path(&segments, value.trim())
            .map_err(|e| anyhow!("--set {assignment}: {e}"))?;
        let text = ron::to_string(&current)?;
        current = parse_preset(&text, "--set").map_err(|e| {
            let message = e.to_string();
            // The position refers to the re-serialised text, not to anything the user wrote.
            let reason = message.splitn(4, ':').nth(3).unwrap_or(&message).trim();
            anyhow!("--set {assignment}: {reason}")
        })?;
    }
    Ok(current)
}

/// Something whose fields can be replaced by a dotted path and a RON value.
trait Settable {
    fn set_path(&mut self, path: &[&str], value: &str) -> Result<(), String>;
}

fn parse_value<T: DeserializeOwned>(value: &str) -> Result<T, String> {
    ron::from_str(value).map_err(|e| format!("cannot read `{value}`: {}", e.code))
}

/// Reads a leaf value, saying what was expected in the user's words when it cannot.
fn parse_leaf<T: DeserializeOwned>(value: &str, expected: &str) -> Result<T, String> {
    ron::from_str(value).map_err(|e| format!("cannot read `{value}` as {expected}: {}", e.code))
}

// Each leaf carries the words its errors use for it: a user typed `model.depth`, not a `usize`.
macro_rules! leaf {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl Settable for $ty {
            fn set_path(&mut self, path: &[&str], value: &str) -> Result<(), String> {
                match path {
                    [] => { *self = parse_leaf(value, $expected)?; Ok(()) }
                    [field, ..] => Err(format!("`{field}` is not a field: this value is {}", $expected)),
                }
            }
        }
    )*};
}

leaf!(
    usize => "a whole number",
    u64 => "a whole number",
    f32 => "a number",
    bool => "true or false",
    ModelKind => "Mlp or Rnn",
    Activation => "Linear, Tanh, Relu, Sigmoid or Gelu",
    WeightDistribution => "Gaussian or Orthogonal",
    CellKind => "Vanilla, Gru or Lstm",
    NormKind => "None, LayerNorm or BatchNorm",
    NormPlace => "Pre or Post",
    BranchScale => "One, InvSqrtDepth or ReZero",
);

/// An optional number (`clip_grad_norm`): a bare number, `Some(x)` or `None`.
impl Settable for Option<f32> {
    fn set_path(&mut self, path: &[&str], value: &str) -> Result<(), String> {
        if let [field, ..] = path {
            return Err(format!(
                "`{field}` is not a field: this value is a number or None"
            ));
        }
        // A bare number is what people type; RON alone would insist on `Some(…)`.
        *self = match ron::from_str::<f32>(value) {
            Ok(number) => Some(number),
            Err(_) => parse_leaf(value, "a number or None")?,
        };
        Ok(())
    }
}

impl Settable for String {
    fn set_path(&mut self, path: &[&str], value: &str) -> Result<(), String> {
        if let [field, ..] = path {
            return Err(format!("`{field}` is not a field of a string"));
        }
        *self = ron::from_str(value).unwrap_or_else(|_| value.to_string());
        Ok(())
    }
}

macro_rules! record {
    ($ty:ty { $($field:ident),* }) => {
        impl Settable for $ty {
            fn set_path(&mut self, path: &[&str], value: &str) -> Result<(), String> {
                match path {
                    [] => { *self = parse_value(value)?; Ok(()) }
                    $([stringify!($field), rest @ ..] => self.$field.set_path(rest, value),)*
                    [field, ..] => Err(format!(
                        "unknown field `{field}`, expected one of {}",
                        [$(stringify!($field)),*].join(", ")
                    )),
                }
            }
        }
    };
}

record!(Experiment {
    name,
    description,
    seed,
    task,
    model,
    optimizer,
    batch,
    metrics_every,
    test_every,
    clip_grad_norm,
    steps,
    path_every
});
record!(ModelSpec {
    kind,
    depth,
    width,
    activation,
    init,
    skip,
    aux,
    cell,
    gate_bias,
    forget_bias,
    carry_bias,
    norm,
    norm_place,
    branch_scale
});
record!(InitSpec {
    weight_var,
    bias_var,
    distribution
});
record!(AuxSpec {
    enabled,
    every,
    weight
});

/// Enums whose variants carry named fields: a field of the current variant can be set alone.
macro_rules! variant_fields {
    ($($ty:ty),*) => {$(
        impl Settable for $ty {
            fn set_path(&mut self, path: &[&str], value: &str) -> Result<(), String> {
                match path {
                    [] => { *self = parse_value(value)?; Ok(()) }
                    [field] => { *self = set_variant_field(self, field, value)?; Ok(()) }
                    [field, deeper, ..] => Err(format!("`{field}` has no field `{deeper}`")),
                }
            }
        }
    )*};
}

variant_fields!(TaskSpec, SkipMode, OptimizerSpec, CarryBias);

fn set_variant_field<T: Serialize + DeserializeOwned>(
    current: &T,
    field: &str,
    value: &str,
) -> Result<T, String> {
    let mut tree = serde_json::to_value(current).map_err(|e| e.to_string())?;
    // A variant without fields (`Plain`) serialises as its bare name.
    if let Some(name) = tree.as_str() {
        return Err(format!("{name} has no field `{field}`"));
    }
    let (variant, fields) = match tree.as_object_mut().and_then(|o| o.iter_mut().next()) {
        Some((variant, serde_json::Value::Object(fields))) => (variant.clone(), fields),
        Some((variant, _)) => return Err(format!("{variant} has no field `{field}`")),
        None => return Err(format!("this value has no field `{field}`")),
    };
    if !fields.contains_key(field) {
        let known: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(format!(
            "{variant} has no field `{field}`, expected one of {}",
            known.join(", ")
        ));
    }
    let parsed: serde_json::Value = serde_json::from_str(value)
        .or_else(|_| ron::from_str::<String>(value).map(serde_json::Value::String))
        .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    fields.insert(field.to_string(), parsed);
    serde_json::from_value(tree).map_err(|e| {
        // serde names Rust types in its "expected" part; say what a preset writer would.
        let reason = e
            .to_string()
            .replace("expected usize", "expected a whole number")
            .replace("expected u64", "expected a whole number")
            .replace("expected f32", "expected a number");
        format!("cannot set {variant}.{field}: {reason}")
    })
}
