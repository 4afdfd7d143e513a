//! The current weight and bias variances of the MLP, for the mean-field prediction of the
//! network on screen (`theory::predict`).

use super::engine::{Net, slot};
use super::forward::Switches;
use crate::config::{BranchScale, SkipMode};
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

/// The variances of the weights in `values` (the engine's buffers, `slot` order) of the net
/// `net`, with the input bins of [`task_input_bins`]. Gates and read-outs are measured only when
/// the skip mode uses them. Read straight from the buffers: this runs at every measured step.
pub fn net_variances(
    values: &[Vec<f32>],
    net: &Net,
    switches: &Switches,
    input_sq: &[f64],
) -> NetVariances {
    let (width, depth) = (net.width, net.depth);
    let arch = match switches.skip {
        SkipMode::Plain => NetArch::Plain,
        SkipMode::Residual { scale } => NetArch::Residual {
            scale: f64::from(scale),
        },
        SkipMode::Highway => NetArch::Highway,
        SkipMode::Dense => NetArch::Dense,
    };
    let layers = (0..depth)
        .map(|l| LayerVariances {
            weight_var: weight_var(&values[slot::weight(l)], width),
            bias_var: mean_sq(&values[slot::bias(l)]),
            gate: (arch == NetArch::Highway).then(|| {
                let (bias_mean, bias_spread) = mean_spread(&values[slot::gate_bias(l)]);
                GateVariances {
                    weight_var: weight_var(&values[slot::gate_weight(l)], width),
                    bias_mean,
                    bias_spread,
                }
            }),
            readout_var: (arch == NetArch::Dense && l + 1 < depth)
                .then(|| weight_var(&values[slot::readout(l)], width)),
            // The same α the forward pass multiplies the branch by (`forward::scale_branch`).
            branch: match (arch, switches.branch_scale) {
                (NetArch::Residual { .. }, BranchScale::InvSqrtDepth) => {
                    Some(1.0 / (depth.max(1) as f64).sqrt())
                }
                (NetArch::Residual { .. }, BranchScale::ReZero) => values
                    [slot::branch_alpha(depth, net.aux_layers.len(), l)]
                .first()
                .map(|a| f64::from(*a)),
                _ => None,
            },
        })
        .collect();
    let aux_layers = if switches.aux_enabled {
        net.aux_layers.iter().map(|&l| l + 1).collect()
    } else {
        Vec::new()
    };
    NetVariances {
        arch,
        activation: net.act,
        input_weight_var: weight_var(&values[slot::INPUT_WEIGHT], net.input),
        input_bias_var: mean_sq(&values[slot::INPUT_BIAS]),
        input_sq: input_sq.to_vec(),
        input_sq_rows: Vec::new(),
        layers,
        aux_layers,
        scored_steps: Vec::new(),
        head_weight_var: weight_var(&values[slot::head_weight(depth)], width),
    }
}
