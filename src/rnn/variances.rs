//! The vanilla cell's current weight and bias variances and the batch's input moments, for the
//! mean-field prediction along time (`theory::predict`). GRU and LSTM have none.

use super::params::RnnParams;
use crate::config::{Activation, CellKind};
use crate::tasks::sequence::{SeqBatch, SeqTargets};
use crate::theory::{LayerVariances, NetArch, NetVariances, RNN_ROWS, mean_sq, round4, weight_var};
use dfdx::prelude::HasShape;

/// The variances of the vanilla cell on `batch`; None for the gated cells.
pub fn net_variances(params: &RnnParams, cell: CellKind, batch: &SeqBatch) -> Option<NetVariances> {
    if cell != CellKind::Vanilla {
        return None;
    }
    let gate = params.cell(cell).gates.first()?;
    let hidden = gate.recurrent_weight.shape().0;
    let dims = batch.input_dims;
    let rows = batch.rows.min(RNN_ROWS);
    let input_sq_rows = (0..rows)
        .map(|r| {
            (0..batch.steps)
                .map(|t| round4(mean_sq(&batch.step_inputs(t)[r * dims..(r + 1) * dims])))
                .collect()
        })
        .collect();
    let scored = match &batch.targets {
        SeqTargets::FinalValue(_) | SeqTargets::FinalClass(_) => 1,
        SeqTargets::TailClasses { steps, .. } => *steps,
    };
    Some(NetVariances {
        arch: NetArch::Rnn,
        activation: Activation::Tanh,
        input_weight_var: weight_var(&gate.input_weight.as_vec(), dims),
        input_bias_var: 0.0,
        input_sq: Vec::new(),
        input_sq_rows,
        layers: vec![LayerVariances {
            weight_var: weight_var(&gate.recurrent_weight.as_vec(), hidden),
            bias_var: mean_sq(&gate.bias.as_vec()),
            gate: None,
            readout_var: None,
            branch: None,
        }],
        aux_layers: Vec::new(),
        scored_steps: (batch.steps.saturating_sub(scored) + 1..=batch.steps).collect(),
        head_weight_var: weight_var(&params.head_weight.as_vec(), hidden),
    })
}
