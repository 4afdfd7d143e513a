//! The current weight and bias variances of the MLP, for the mean-field prediction of the
//! network on screen (`theory::predict`).

use super::forward::Switches;
use super::params::MlpParams;
use crate::config::{Activation, BranchScale, SkipMode};
use crate::tasks::TaskData;
use crate::theory::{
    GateVariances, INPUT_BINS, LayerVariances, NetArch, NetVariances, input_bins, mean_spread,
    mean_sq, weight_var,
};

/// Training rows the input average is taken over (the first ones; the split is shuffled).
const INPUT_ROWS: usize = 4096;

/// The inputs' ‖x‖²/d in equal-count bins over the first training rows: fixed by the task, so
/// a trainer computes it once rather than at every measurement.
pub fn task_input_bins(task: &TaskData) -> Vec<f64> {
    let dims = task.input_dims;
    let rows = task.train.len.min(INPUT_ROWS);
    input_bins(&task.train.inputs[..rows * dims], dims, INPUT_BINS)
}

/// The variances of `params` under `switches`, with the input bins of [`task_input_bins`].
/// Gates and read-outs are measured only when the skip mode uses them.
pub fn net_variances(
    params: &MlpParams,
    act: Activation,
    switches: &Switches,
    input_dims: usize,
    input_sq: &[f64],
) -> NetVariances {
    let width = params.head_weight.shape().0;
    let arch = match switches.skip {
        SkipMode::Plain => NetArch::Plain,
        SkipMode::Residual { scale } => NetArch::Residual {
            scale: f64::from(scale),
        },
        SkipMode::Highway => NetArch::Highway,
        SkipMode::Dense => NetArch::Dense,
    };
    let depth = params.layers.len();
    let layers = params
        .layers
        .iter()
        .enumerate()
        .map(|(l, layer)| LayerVariances {
            weight_var: weight_var(&layer.weight.as_vec(), width),
            bias_var: mean_sq(&layer.bias.as_vec()),
            gate: (arch == NetArch::Highway).then(|| {
                let (bias_mean, bias_spread) = mean_spread(&layer.gate_bias.as_vec());
                GateVariances {
                    weight_var: weight_var(&layer.gate_weight.as_vec(), width),
                    bias_mean,
                    bias_spread,
                }
            }),
            readout_var: (arch == NetArch::Dense && l + 1 < depth)
                .then(|| weight_var(&layer.readout.as_vec(), width)),
            // The same α the forward pass multiplies the branch by (`forward::scale_branch`).
            branch: match (arch, switches.branch_scale) {
                (NetArch::Residual { .. }, BranchScale::InvSqrtDepth) => {
                    Some(1.0 / (depth.max(1) as f64).sqrt())
                }
                (NetArch::Residual { .. }, BranchScale::ReZero) => {
                    layer.branch_alpha.as_vec().first().map(|a| f64::from(*a))
                }
                _ => None,
            },
        })
        .collect();
    let dims = input_dims;
    let aux_layers = if switches.aux_enabled {
        params.aux_heads.iter().map(|h| h.after_layer + 1).collect()
    } else {
        Vec::new()
    };
    NetVariances {
        arch,
        activation: act,
        input_weight_var: weight_var(&params.input_weight.as_vec(), dims),
        input_bias_var: mean_sq(&params.input_bias.as_vec()),
        input_sq: input_sq.to_vec(),
        input_sq_rows: Vec::new(),
        layers,
        aux_layers,
        scored_steps: Vec::new(),
        head_weight_var: weight_var(&params.head_weight.as_vec(), width),
    }
}

use dfdx::prelude::HasShape;
