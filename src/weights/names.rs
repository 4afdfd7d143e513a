//! The name of every parameter, in the project's one layer numbering (hidden layers count
//! from 1 at the input), built from the stable parameter lists (`params_mut`).

use crate::config::CellKind;
use crate::model::MlpParams;
use crate::model::params::{ParamMut, ParamRole};
use crate::rnn::RnnParams;
use dfdx::prelude::HasShape;

/// The shape of a parameter as a file states it: (rows, columns) or (length,).
pub fn shape_of(param: &ParamMut<'_>) -> Vec<usize> {
    match param {
        ParamMut::Matrix(t) => {
            let (rows, columns) = *t.shape();
            vec![rows, columns]
        }
        ParamMut::Vector(t) => vec![t.shape().0],
    }
}

/// Whether `name` is one of the tensors added with normalisation and branch scaling: a file
/// written before them lacks them, and the net keeps their step-0 values (γ 1, β 0, running
/// mean 0 and variance 1, α 0), which leave a net without those switches unchanged.
pub fn added_with_norm(name: &str) -> bool {
    name.contains(".norm.") || name.ends_with(".branch.alpha")
}

/// Every MLP parameter with its name, in `params_mut` order.
pub fn mlp_named(params: &mut MlpParams) -> Vec<(String, ParamMut<'_>)> {
    // An auxiliary head is named by the layer it reads, as the dashboard and JSON place it.
    let aux_layers: Vec<usize> = params.aux_heads.iter().map(|h| h.after_layer).collect();
    params
        .params_mut()
        .into_iter()
        .map(|(role, param)| {
            let part = match param {
                ParamMut::Matrix(_) => "weight",
                ParamMut::Vector(_) => "bias",
            };
            let name = match role {
                ParamRole::Input => format!("input.{part}"),
                ParamRole::LayerWeight(l) | ParamRole::LayerBias(l) => {
                    format!("layer{}.{part}", l + 1)
                }
                ParamRole::Gate(l) => format!("layer{}.gate.{part}", l + 1),
                ParamRole::Readout(l) => format!("layer{}.readout.{part}", l + 1),
                ParamRole::Head => format!("head.{part}"),
                ParamRole::Aux(i) => match aux_layers.get(i) {
                    Some(layer) => format!("aux{}.{part}", layer + 1),
                    None => format!("aux_head{}.{part}", i + 1),
                },
                ParamRole::NormGain(l) => format!("layer{}.norm.gain", l + 1),
                ParamRole::NormShift(l) => format!("layer{}.norm.shift", l + 1),
                ParamRole::RunningMean(l) => format!("layer{}.norm.running_mean", l + 1),
                ParamRole::RunningVar(l) => format!("layer{}.norm.running_var", l + 1),
                ParamRole::BranchAlpha(l) => format!("layer{}.branch.alpha", l + 1),
            };
            (name, param)
        })
        .collect()
}

/// The gates of a cell in parameter order (see `CellParams`).
pub fn gate_names(kind: CellKind) -> &'static [&'static str] {
    match kind {
        CellKind::Vanilla => &["candidate"],
        CellKind::Gru => &["reset", "update", "candidate"],
        CellKind::Lstm => &["input", "forget", "candidate", "output"],
    }
}

/// Every recurrent-net parameter with its name, in `params_mut` order: per gate
/// `weight_ih` (input × hidden), `weight_hh` (hidden × hidden) and `bias`, as PyTorch names
/// the same maps (transposed, see [`super::LAYOUT`]).
pub fn rnn_named(params: &mut RnnParams) -> Vec<(String, ParamMut<'_>)> {
    const PARTS: [&str; 3] = ["weight_ih", "weight_hh", "bias"];
    let mut seen = [0usize; CellKind::ALL.len()];
    params
        .params_mut()
        .into_iter()
        .map(|(owner, param)| {
            let name = match owner {
                Some(cell) => {
                    let index = seen[cell as usize];
                    seen[cell as usize] += 1;
                    let gate = gate_names(cell).get(index / PARTS.len()).map_or_else(
                        || format!("gate{}", index / PARTS.len() + 1),
                        |g| g.to_string(),
                    );
                    format!("{}.{gate}.{}", cell.label(), PARTS[index % PARTS.len()])
                }
                None => match param {
                    ParamMut::Matrix(_) => "head.weight".to_string(),
                    ParamMut::Vector(_) => "head.bias".to_string(),
                },
            };
            (name, param)
        })
        .collect()
}
