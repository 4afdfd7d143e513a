//! Between a network's named parameters and [`Weights`]: reading them out, and writing them
//! back only after every tensor has been checked against the network's own shapes.

use super::names::shape_of;
use super::{OPTIMIZER_PREFIX, Tensor, Weights};
use crate::model::params::ParamMut;
use anyhow::{Result, bail};

/// Most mismatches one message lists before saying how many more there are.
const LISTED: usize = 4;

/// The values of every named parameter.
pub fn read_out(named: Vec<(String, ParamMut<'_>)>) -> Vec<Tensor> {
    named
        .into_iter()
        .map(|(name, param)| {
            let mut values = vec![0.0; param.len()];
            param.copy_into(&mut values);
            Tensor {
                shape: shape_of(&param),
                name,
                values,
            }
        })
        .collect()
}

/// Checks that `weights` holds exactly the tensors of `named` (optimiser state aside), each of
/// the network's shape; `what` says which network, e.g. "preset plain-deep (depth 20, width
/// 64)". Nothing is written unless everything fits.
pub fn check_fits(named: &[(String, ParamMut<'_>)], weights: &Weights, what: &str) -> Result<()> {
    let origin = weights.origin();
    let mut problems = Vec::new();
    for (name, param) in named {
        let expected = shape_of(param);
        match weights.get(name) {
            // Written before normalisation existed: the net keeps those at their step-0 values.
            None if super::names::added_with_norm(name) => {}
            None => problems.push(format!("no tensor `{name}` (expected shape {expected:?})")),
            Some(t) if t.shape != expected => problems.push(format!(
                "tensor `{name}`: expected shape {expected:?}, found {:?}",
                t.shape
            )),
            Some(_) => {}
        }
    }
    for t in &weights.tensors {
        let known = named.iter().any(|(name, _)| *name == t.name);
        if !known && !t.name.starts_with(OPTIMIZER_PREFIX) {
            problems.push(format!(
                "tensor `{}` (shape {:?}) is not a parameter of this net",
                t.name, t.shape
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let more = problems.len().saturating_sub(LISTED);
    problems.truncate(LISTED);
    let mut message = format!("{origin} does not fit {what}: {}", problems.join("; "));
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    if let Some(preset) = weights.metadata.get("preset") {
        message.push_str(&format!(" (the file was written by preset {preset})"));
    }
    bail!(message)
}

/// Overwrites every named parameter with the tensor of the same name, after [`check_fits`].
pub fn write_in(named: Vec<(String, ParamMut<'_>)>, weights: &Weights, what: &str) -> Result<()> {
    check_fits(&named, weights, what)?;
    for (name, mut param) in named {
        if let Some(t) = weights.get(&name) {
            param.copy_from(&t.values);
        }
    }
    Ok(())
}
