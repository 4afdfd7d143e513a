//! Parameters of the recurrent net: one set per cell kind, so switching cells keeps each
//! cell's learning, plus a shared output head.

use crate::config::{CarryBias, CellKind, ModelSpec, WeightDistribution};
use crate::model::params::{Matrix, ParamMut, Vector, random_orthogonal};
use dfdx::prelude::{Cpu, TensorFromVec};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

/// One affine map feeding a gate: x·W + h·U + b.
#[derive(Clone, Debug)]
pub struct GateParams {
    /// Input weights (input dims × hidden).
    pub input_weight: Matrix,
    /// Recurrent weights (hidden × hidden).
    pub recurrent_weight: Matrix,
    /// Bias.
    pub bias: Vector,
}

/// The gates of one cell kind: vanilla \[candidate\]; GRU \[reset, update, candidate\];
/// LSTM [input, forget, candidate, output].
#[derive(Clone, Debug)]
pub struct CellParams {
    /// Which cell these belong to.
    pub kind: CellKind,
    /// Gate maps in the order above.
    pub gates: Vec<GateParams>,
}

/// Every parameter of the recurrent net.
#[derive(Clone, Debug)]
pub struct RnnParams {
    /// Vanilla, GRU and LSTM parameters, in `CellKind::ALL` order.
    pub cells: Vec<CellParams>,
    /// Output head (hidden × outputs).
    pub head_weight: Matrix,
    /// Output head bias.
    pub head_bias: Vector,
}

impl RnnParams {
    /// The parameters of `kind`.
    pub fn cell(&self, kind: CellKind) -> &CellParams {
        &self.cells[kind as usize]
    }

    /// Every parameter with the cell it belongs to (None for the shared head), in a fixed order.
    pub fn params_mut(&mut self) -> Vec<(Option<CellKind>, ParamMut<'_>)> {
        let mut out = Vec::new();
        for cell in &mut self.cells {
            for gate in &mut cell.gates {
                out.push((Some(cell.kind), ParamMut::Matrix(&mut gate.input_weight)));
                out.push((
                    Some(cell.kind),
                    ParamMut::Matrix(&mut gate.recurrent_weight),
                ));
                out.push((Some(cell.kind), ParamMut::Vector(&mut gate.bias)));
            }
        }
        out.push((None, ParamMut::Matrix(&mut self.head_weight)));
        out.push((None, ParamMut::Vector(&mut self.head_bias)));
        out
    }
}

fn normal(rng: &mut StdRng) -> f32 {
    rng.sample::<f32, _>(StandardNormal)
}

fn gaussian(dev: &Cpu, rng: &mut StdRng, rows: usize, cols: usize, var: f32) -> Matrix {
    let std = (var / rows as f32).sqrt();
    let data = (0..rows * cols).map(|_| std * normal(rng)).collect();
    dev.tensor_from_vec(data, (rows, cols))
}

/// Draws all three cells' parameters (the draw order is fixed, so a seed is a run).
pub fn init_rnn_params(
    dev: &Cpu,
    model: &ModelSpec,
    input_dims: usize,
    outputs: usize,
    rng: &mut StdRng,
) -> RnnParams {
    let hidden = model.width;
    let init = &model.init;
    let gate = |rng: &mut StdRng, bias: f32| GateParams {
        input_weight: gaussian(dev, rng, input_dims, hidden, 1.0),
        recurrent_weight: match init.distribution {
            WeightDistribution::Gaussian => gaussian(dev, rng, hidden, hidden, init.weight_var),
            WeightDistribution::Orthogonal => {
                let mut q = random_orthogonal(rng, hidden);
                let gain = init.weight_var.sqrt();
                q.iter_mut().for_each(|v| *v *= gain);
                dev.tensor_from_vec(q, (hidden, hidden))
            }
        },
        bias: {
            let std = init.bias_var.sqrt();
            let data = (0..hidden).map(|_| bias + std * normal(rng)).collect();
            dev.tensor_from_vec(data, (hidden,))
        },
    };
    let cells = CellKind::ALL
        .iter()
        .map(|&kind| CellParams {
            kind,
            gates: match kind {
                CellKind::Vanilla => vec![gate(rng, 0.0)],
                CellKind::Gru => vec![gate(rng, 0.0), gate(rng, 0.0), gate(rng, 0.0)],
                CellKind::Lstm => vec![
                    gate(rng, 0.0),
                    gate(rng, model.forget_bias),
                    gate(rng, 0.0),
                    gate(rng, 0.0),
                ],
            },
        })
        .collect();
    let mut params = RnnParams {
        cells,
        head_weight: gaussian(dev, rng, hidden, outputs, 1.0),
        head_bias: dev.tensor_from_vec(vec![0.0; outputs], (outputs,)),
    };
    // After every draw above, so `Fixed` and `Chrono` runs of a seed share all their weights.
    if let CarryBias::Chrono { t_max } = model.carry_bias {
        apply_chrono(&mut params, hidden, t_max, rng);
    }
    params
}

/// Index of the GRU's update gate z in its gates [r z n].
pub const GRU_UPDATE: usize = 1;
/// Index of the LSTM's input gate in its gates [i f g o].
pub const LSTM_INPUT: usize = 0;
/// Index of the LSTM's forget gate in its gates [i f g o].
pub const LSTM_FORGET: usize = 1;

/// One chrono bias per unit: ln u with u ~ U[1, t_max − 1] (Tallec & Ollivier 2018, eq. 10).
fn chrono_biases(hidden: usize, t_max: f32, rng: &mut StdRng) -> Vec<f32> {
    let span = (t_max - 2.0).max(0.0);
    (0..hidden)
        .map(|_| (1.0 + span * rng.r#gen::<f32>()).ln())
        .collect()
}

/// Sets the carry biases: GRU b_z = ln u; LSTM b_f = ln u', b_i = −b_f (GRU drawn first).
fn apply_chrono(params: &mut RnnParams, hidden: usize, t_max: f32, rng: &mut StdRng) {
    let update = chrono_biases(hidden, t_max, rng);
    let forget = chrono_biases(hidden, t_max, rng);
    let input: Vec<f32> = forget.iter().map(|b| -b).collect();
    // Written into the drawn tensors, which keep their ids.
    let gates = &mut params.cells[CellKind::Gru as usize].gates;
    gates[GRU_UPDATE].bias.copy_from(&update);
    let gates = &mut params.cells[CellKind::Lstm as usize].gates;
    gates[LSTM_FORGET].bias.copy_from(&forget);
    gates[LSTM_INPUT].bias.copy_from(&input);
}
