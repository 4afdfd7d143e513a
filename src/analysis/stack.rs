//! The MLP's hidden stack copied to f64: its forward pass on one input, each block's
//! input–output Jacobian, and the current per-layer weight and bias variances.
//!
//! The training code runs in f32 on dfdx's tape; the spectrum needs products of many
//! Jacobians whose smallest singular values sit ten or more decades below the largest, so
//! the stack is rebuilt here in f64, off the training hot path. The Jacobians use the column
//! convention: `J[i][j] = ∂h_out_i / ∂h_in_j`.

use crate::config::{Activation, SkipMode};
use crate::model::MlpParams;
use crate::theory::{phi, phi_prime};
use dfdx::prelude::HasShape;

/// A dense row-major f64 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Entries, row after row.
    pub data: Vec<f64>,
}

impl Mat {
    /// The n × n identity.
    pub fn identity(n: usize) -> Self {
        let mut data = vec![0.0; n * n];
        (0..n).for_each(|i| data[i * n + i] = 1.0);
        Self {
            rows: n,
            cols: n,
            data,
        }
    }

    /// Entry (i, j).
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Row i.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// One hidden layer in f64 (weights row-major fan-in × fan-out, as in the model).
#[derive(Clone, Debug)]
struct Layer {
    weight: Vec<f64>,
    bias: Vec<f64>,
    gate_weight: Vec<f64>,
    gate_bias: Vec<f64>,
}

/// How a block combines its input with its transform (dense read-outs and auxiliary heads
/// leave the hidden stack a plain chain).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlockKind {
    /// h' = φ(hW + b).
    Plain,
    /// h' = φ(hW + b) + scale·h.
    Residual(f64),
    /// h' = h + T⊙(φ(hW + b) − h), T = σ(hW_T + b_T).
    Highway,
}

impl BlockKind {
    /// The hidden stack's block kind under a skip mode.
    pub fn of(skip: SkipMode) -> Self {
        match skip {
            SkipMode::Plain | SkipMode::Dense => BlockKind::Plain,
            SkipMode::Residual { scale } => BlockKind::Residual(f64::from(scale)),
            SkipMode::Highway => BlockKind::Highway,
        }
    }
}

/// The hidden stack of an MLP in f64.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Activation φ.
    pub act: Activation,
    /// How blocks combine input and transform.
    pub kind: BlockKind,
    /// Hidden width N.
    pub width: usize,
    /// Input features.
    pub input_dims: usize,
    input_weight: Vec<f64>,
    input_bias: Vec<f64>,
    layers: Vec<Layer>,
}

/// One input's forward pass: h_0 (the input projection's output), then per hidden layer its
/// pre-activation z_l, output h_l and (highway) gate T_l.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Output of the input projection, the input of block 1.
    pub h0: Vec<f64>,
    /// Pre-activations z_l = h_{l−1}W_l + b_l, layer 1 first.
    pub pre: Vec<Vec<f64>>,
    /// Block outputs h_l, layer 1 first.
    pub hidden: Vec<Vec<f64>>,
    /// Highway gates T_l (empty for other kinds).
    pub gates: Vec<Vec<f64>>,
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// h·W + b for a row vector h and row-major W (h.len() × b.len()).
fn affine(h: &[f64], weight: &[f64], bias: &[f64]) -> Vec<f64> {
    let cols = bias.len();
    let mut out = bias.to_vec();
    for (k, &h_k) in h.iter().enumerate() {
        if h_k == 0.0 {
            continue;
        }
        for (o, &w) in out.iter_mut().zip(&weight[k * cols..(k + 1) * cols]) {
            *o += h_k * w;
        }
    }
    out
}

/// Wᵀ·M for a square row-major W (n × n) and M (n × cols): row i is Σ_j W[j][i]·M[j].
fn transpose_times(weight: &[f64], m: &Mat) -> Mat {
    let (n, cols) = (m.rows, m.cols);
    let mut out = vec![0.0; n * cols];
    for j in 0..n {
        let m_row = m.row(j);
        for i in 0..n {
            let w = weight[j * n + i];
            if w == 0.0 {
                continue;
            }
            for (o, &v) in out[i * cols..(i + 1) * cols].iter_mut().zip(m_row) {
                *o += w * v;
            }
        }
    }
    Mat {
        rows: n,
        cols,
        data: out,
    }
}

impl Stack {
    /// Copies the hidden stack of `params` as the skip mode wires it. None without layers.
    pub fn new(params: &MlpParams, act: Activation, skip: SkipMode) -> Option<Self> {
        let (input_dims, width) = *params.input_weight.shape();
        if params.layers.is_empty() || width == 0 {
            return None;
        }
        let kind = BlockKind::of(skip);
        let layers = params
            .layers
            .iter()
            .map(|layer| Layer {
                weight: to_f64(&layer.weight.as_vec()),
                bias: to_f64(&layer.bias.as_vec()),
                // Only highway reads its gates; other kinds skip the copy.
                gate_weight: if kind == BlockKind::Highway {
                    to_f64(&layer.gate_weight.as_vec())
                } else {
                    Vec::new()
                },
                gate_bias: to_f64(&layer.gate_bias.as_vec()),
            })
            .collect();
        Some(Self {
            act,
            kind,
            width,
            input_dims,
            input_weight: to_f64(&params.input_weight.as_vec()),
            input_bias: to_f64(&params.input_bias.as_vec()),
            layers,
        })
    }

    /// Number of hidden layers L.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// σ_w² of hidden layer `l` (0-based) as it is now: fan-in × the mean squared weight, the
    /// mean-field convention W ~ N(0, σ_w²/N).
    pub fn weight_var(&self, l: usize) -> f64 {
        let w = &self.layers[l].weight;
        w.iter().map(|v| v * v).sum::<f64>() / self.width as f64
    }

    /// σ_b² of hidden layer `l` (0-based) as it is now: the mean squared bias, which is what
    /// enters E[z²] (a trained bias need not have mean zero).
    pub fn bias_var(&self, l: usize) -> f64 {
        let b = &self.layers[l].bias;
        b.iter().map(|v| v * v).sum::<f64>() / b.len() as f64
    }

    /// Block `l` (0-based) on input h: its pre-activation, output and (highway) gate.
    fn block(&self, l: usize, h: &[f64]) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
        let layer = &self.layers[l];
        let z = affine(h, &layer.weight, &layer.bias);
        let f = z.iter().map(|&v| phi(self.act, v));
        match self.kind {
            BlockKind::Plain => {
                let out = f.collect();
                (z, out, None)
            }
            BlockKind::Residual(scale) => {
                let out = f.zip(h).map(|(f, h)| f + scale * h).collect();
                (z, out, None)
            }
            BlockKind::Highway => {
                let gate: Vec<f64> = affine(h, &layer.gate_weight, &layer.gate_bias)
                    .into_iter()
                    .map(sigmoid)
                    .collect();
                let out = f
                    .zip(h)
                    .zip(&gate)
                    .map(|((f, h), t)| h + t * (f - h))
                    .collect();
                (z, out, Some(gate))
            }
        }
    }

    /// Runs one input (`input_dims` features) through the input projection and every block.
    pub fn run(&self, x: &[f32]) -> Trace {
        let h0 = affine(&to_f64(x), &self.input_weight, &self.input_bias);
        let depth = self.depth();
        let mut trace = Trace {
            h0,
            pre: Vec::with_capacity(depth),
            hidden: Vec::with_capacity(depth),
            gates: Vec::new(),
        };
        for l in 0..depth {
            let input = trace.hidden.last().unwrap_or(&trace.h0);
            let (z, out, gate) = self.block(l, input);
            trace.pre.push(z);
            trace.hidden.push(out);
            trace.gates.extend(gate);
        }
        trace
    }

    /// Block `l`'s (0-based) output on input `h`.
    pub fn block_output(&self, l: usize, h: &[f64]) -> Vec<f64> {
        self.block(l, h).1
    }

    /// h_L reached from `h` taken as the input of block `from` (0-based): the map whose
    /// derivative `jacobian` is, for finite-difference checks.
    pub fn propagate(&self, h: &[f64], from: usize) -> Vec<f64> {
        (from..self.depth()).fold(h.to_vec(), |h, l| self.block(l, &h).1)
    }

    /// J_l·M, where J_l = ∂h_l/∂h_{l−1} is block `l`'s (0-based) Jacobian on `trace`.
    pub fn block_times(&self, trace: &Trace, l: usize, m: &Mat) -> Mat {
        let layer = &self.layers[l];
        let slope: Vec<f64> = trace.pre[l]
            .iter()
            .map(|&z| phi_prime(self.act, z))
            .collect();
        let mut out = transpose_times(&layer.weight, m);
        let cols = m.cols;
        match self.kind {
            BlockKind::Plain => {
                for (i, row) in out.data.chunks_mut(cols).enumerate() {
                    row.iter_mut().for_each(|v| *v *= slope[i]);
                }
            }
            BlockKind::Residual(scale) => {
                for (i, row) in out.data.chunks_mut(cols).enumerate() {
                    for (v, &m_ij) in row.iter_mut().zip(m.row(i)) {
                        *v = slope[i] * *v + scale * m_ij;
                    }
                }
            }
            BlockKind::Highway => {
                let gate = &trace.gates[l];
                let input = if l == 0 {
                    &trace.h0
                } else {
                    &trace.hidden[l - 1]
                };
                let through_gate = transpose_times(&layer.gate_weight, m);
                for (i, row) in out.data.chunks_mut(cols).enumerate() {
                    let t = gate[i];
                    let f_minus_h = phi(self.act, trace.pre[l][i]) - input[i];
                    let (a, g) = (t * slope[i], f_minus_h * t * (1.0 - t));
                    for ((v, &m_ij), &gm) in row.iter_mut().zip(m.row(i)).zip(through_gate.row(i)) {
                        *v = a * *v + g * gm + (1.0 - t) * m_ij;
                    }
                }
            }
        }
        out
    }

    /// Block `l`'s (0-based) own Jacobian ∂h_l/∂h_{l−1} on `trace`.
    pub fn block_jacobian(&self, trace: &Trace, l: usize) -> Mat {
        self.block_times(trace, l, &Mat::identity(self.width))
    }

    /// ∂h_L/∂h_1 on `trace`: the product of blocks 2..L's Jacobians (the identity when L = 1),
    /// the map that carries a perturbation of the first hidden layer to the last.
    pub fn jacobian(&self, trace: &Trace) -> Mat {
        let mut m = Mat::identity(self.width);
        for l in 1..self.depth() {
            m = self.block_times(trace, l, &m);
        }
        m
    }
}
