//! The parameters of the deep MLP and how they are initialised.
//!
//! Every parameter any switch may need (highway gates, dense read-outs, auxiliary heads, norm
//! gains and shifts, residual-branch factors) is created at step 0, so toggling a switch never discards what the network has learned.

use crate::config::{InitSpec, ModelSpec, WeightDistribution};
use dfdx::prelude::{Cpu, Tensor, TensorFromVec};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

/// A runtime-sized weight matrix (rows = fan-in, columns = fan-out).
pub type Matrix = Tensor<(usize, usize), f32, Cpu>;
/// A runtime-sized bias vector.
pub type Vector = Tensor<(usize,), f32, Cpu>;

/// One hidden layer: its transform, its highway gate and its dense read-out.
#[derive(Clone, Debug)]
pub struct HiddenLayer {
    /// Transform weights W_l (width × width).
    pub weight: Matrix,
    /// Transform bias b_l.
    pub bias: Vector,
    /// Highway gate weights W_T (width × width).
    pub gate_weight: Matrix,
    /// Highway gate bias b_T, initialised to the preset's gate bias.
    pub gate_bias: Vector,
    /// Direct read-out of this layer by the output head in `Dense` mode (width × outputs).
    pub readout: Matrix,
    /// The norm's gain γ (init 1), whatever `model.norm` says at step 0.
    pub norm_gain: Vector,
    /// The norm's shift β (init 0).
    pub norm_shift: Vector,
    /// BatchNorm's running mean (init 0): state, not trained; evaluation reads it.
    pub running_mean: Vector,
    /// BatchNorm's running unbiased variance (init 1).
    pub running_var: Vector,
    /// The learnable residual-branch factor α (1 × 1, init 0: SkipInit/ReZero).
    pub branch_alpha: Matrix,
}

/// An auxiliary classifier reading hidden layer `after_layer`.
#[derive(Clone, Debug)]
pub struct AuxHead {
    /// Index of the hidden layer this head reads.
    pub after_layer: usize,
    /// Head weights (width × outputs).
    pub weight: Matrix,
    /// Head bias.
    pub bias: Vector,
}

/// All parameters of the network.
#[derive(Clone, Debug)]
pub struct MlpParams {
    /// Input projection (input dims × width), linear.
    pub input_weight: Matrix,
    /// Input projection bias.
    pub input_bias: Vector,
    /// The `depth` hidden layers.
    pub layers: Vec<HiddenLayer>,
    /// Output head (width × outputs).
    pub head_weight: Matrix,
    /// Output head bias.
    pub head_bias: Vector,
    /// Auxiliary heads, in layer order.
    pub aux_heads: Vec<AuxHead>,
}

/// Indices of the hidden layers that carry an auxiliary head: every `every`-th, never the last.
pub fn aux_head_layers(depth: usize, every: usize) -> Vec<usize> {
    (1..depth)
        .filter(|l| l % every == 0)
        .map(|l| l - 1)
        .collect()
}

/// Draws the initial parameters from `rng` (the order of draws is fixed, so a seed is a run).
pub fn init_params(
    dev: &Cpu,
    model: &ModelSpec,
    input_dims: usize,
    outputs: usize,
    gate_bias: f32,
    rng: &mut StdRng,
) -> MlpParams {
    let width = model.width;
    let init = &model.init;
    let input_weight = gaussian(dev, rng, input_dims, width, init.weight_var);
    let input_bias = bias(dev, rng, width, init.bias_var);
    let readout_var = 1.0 / model.depth as f32;
    let layers = (0..model.depth)
        .map(|_| HiddenLayer {
            weight: hidden_weight(dev, rng, width, init),
            bias: bias(dev, rng, width, init.bias_var),
            gate_weight: gaussian(dev, rng, width, width, 1.0),
            gate_bias: dev.tensor_from_vec(vec![gate_bias; width], (width,)),
            readout: gaussian(dev, rng, width, outputs, readout_var),
            // Constants, not draws: the stream of random numbers is what it was before
            // these parameters existed, so old seeds give the same weights.
            norm_gain: dev.tensor_from_vec(vec![1.0; width], (width,)),
            norm_shift: dev.tensor_from_vec(vec![0.0; width], (width,)),
            running_mean: dev.tensor_from_vec(vec![0.0; width], (width,)),
            running_var: dev.tensor_from_vec(vec![1.0; width], (width,)),
            branch_alpha: dev.tensor_from_vec(vec![0.0], (1, 1)),
        })
        .collect();
    let head_weight = gaussian(dev, rng, width, outputs, 1.0);
    let head_bias = dev.tensor_from_vec(vec![0.0; outputs], (outputs,));
    let aux_heads = aux_head_layers(model.depth, model.aux.every)
        .into_iter()
        .map(|after_layer| AuxHead {
            after_layer,
            weight: gaussian(dev, rng, width, outputs, 1.0),
            bias: dev.tensor_from_vec(vec![0.0; outputs], (outputs,)),
        })
        .collect();
    MlpParams {
        input_weight,
        input_bias,
        layers,
        head_weight,
        head_bias,
        aux_heads,
    }
}

fn normal(rng: &mut StdRng) -> f32 {
    rng.sample::<f32, _>(StandardNormal)
}

/// Entries N(0, var / fan_in), the mean-field convention σ_w²/N.
fn gaussian(dev: &Cpu, rng: &mut StdRng, fan_in: usize, fan_out: usize, var: f32) -> Matrix {
    let std = (var / fan_in as f32).sqrt();
    let data = (0..fan_in * fan_out).map(|_| std * normal(rng)).collect();
    dev.tensor_from_vec(data, (fan_in, fan_out))
}

fn bias(dev: &Cpu, rng: &mut StdRng, len: usize, var: f32) -> Vector {
    let std = var.sqrt();
    let data = (0..len).map(|_| std * normal(rng)).collect();
    dev.tensor_from_vec(data, (len,))
}

fn hidden_weight(dev: &Cpu, rng: &mut StdRng, width: usize, init: &InitSpec) -> Matrix {
    match init.distribution {
        WeightDistribution::Gaussian => gaussian(dev, rng, width, width, init.weight_var),
        WeightDistribution::Orthogonal => {
            let mut q = random_orthogonal(rng, width);
            let gain = init.weight_var.sqrt();
            q.iter_mut().for_each(|v| *v *= gain);
            dev.tensor_from_vec(q, (width, width))
        }
    }
}

/// A Haar-random orthogonal matrix (row-major): Gram–Schmidt on Gaussian columns, done twice
/// per column because one pass loses orthogonality in f32 at large widths.
pub fn random_orthogonal(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(n);
    while columns.len() < n {
        let mut v: Vec<f64> = (0..n).map(|_| f64::from(normal(rng))).collect();
        for _ in 0..2 {
            for c in &columns {
                let dot: f64 = c.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(c).for_each(|(x, ci)| *x -= dot * ci);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        // A nearly dependent draw is thrown away rather than normalised into noise.
        if norm > 1e-6 {
            v.iter_mut().for_each(|x| *x /= norm);
            columns.push(v);
        }
    }
    let mut out = vec![0.0f32; n * n];
    for (j, c) in columns.iter().enumerate() {
        for (i, x) in c.iter().enumerate() {
            out[i * n + j] = *x as f32;
        }
    }
    out
}

/// Which part of the network a parameter belongs to; decides when it takes part in a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// Input projection weight or bias.
    Input,
    /// Transform weight W_l of hidden layer l.
    LayerWeight(usize),
    /// Transform bias b_l of hidden layer l.
    LayerBias(usize),
    /// Highway gate weight or bias of layer l.
    Gate(usize),
    /// Dense read-out of layer l.
    Readout(usize),
    /// Output head weight or bias.
    Head,
    /// Auxiliary head number i (weight or bias).
    Aux(usize),
    /// The norm's gain γ of layer l.
    NormGain(usize),
    /// The norm's shift β of layer l.
    NormShift(usize),
    /// BatchNorm's running mean of layer l (state the trainer writes, never the optimiser).
    RunningMean(usize),
    /// BatchNorm's running variance of layer l (as `RunningMean`).
    RunningVar(usize),
    /// The residual-branch factor α of layer l (trained under `BranchScale::ReZero`).
    BranchAlpha(usize),
}

impl ParamRole {
    /// Whether the optimiser may ever update it (BatchNorm's running estimates are state).
    pub fn is_trainable(&self) -> bool {
        !matches!(self, ParamRole::RunningMean(_) | ParamRole::RunningVar(_))
    }
}

/// A mutable view of one parameter tensor, whatever its rank.
pub enum ParamMut<'a> {
    /// A weight matrix.
    Matrix(&'a mut Matrix),
    /// A bias vector.
    Vector(&'a mut Vector),
}

impl ParamMut<'_> {
    /// Overwrites the parameter's values.
    pub fn copy_from(&mut self, values: &[f32]) {
        match self {
            ParamMut::Matrix(t) => t.copy_from(values),
            ParamMut::Vector(t) => t.copy_from(values),
        }
    }

    /// Copies the parameter's values into `out` (same length).
    pub fn copy_into(&self, out: &mut [f32]) {
        match self {
            ParamMut::Matrix(t) => t.copy_into(out),
            ParamMut::Vector(t) => t.copy_into(out),
        }
    }

    /// Number of scalars.
    pub fn len(&self) -> usize {
        match self {
            ParamMut::Matrix(t) => t.shape().0 * t.shape().1,
            ParamMut::Vector(t) => t.shape().0,
        }
    }

    /// Whether the parameter holds no scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The gradient of the last backward pass (zeros if the parameter took no part).
    pub fn grad<'g>(&self, grads: &'g mut dfdx::prelude::Gradients<f32, Cpu>) -> &'g [f32] {
        let buffer = match self {
            ParamMut::Matrix(t) => grads.get_or_alloc_mut(*t),
            ParamMut::Vector(t) => grads.get_or_alloc_mut(*t),
        };
        // Allocation only fails on the GPU; on the CPU an absent gradient is all zeros.
        match buffer {
            Ok(buffer) => buffer.as_slice(),
            Err(_) => &[],
        }
    }
}

use dfdx::prelude::HasShape;

impl MlpParams {
    /// A copy of every parameter's values, in `params_mut` order (for comparisons and tests).
    pub fn values(&mut self) -> Vec<Vec<f32>> {
        self.params_mut()
            .into_iter()
            .map(|(_, p)| {
                let mut values = vec![0.0; p.len()];
                p.copy_into(&mut values);
                values
            })
            .collect()
    }

    /// Every parameter with its role, in a fixed order (the optimiser's state follows it).
    pub fn params_mut(&mut self) -> Vec<(ParamRole, ParamMut<'_>)> {
        let mut out = vec![
            (ParamRole::Input, ParamMut::Matrix(&mut self.input_weight)),
            (ParamRole::Input, ParamMut::Vector(&mut self.input_bias)),
        ];
        // Last, so every slot that existed before normalisation keeps its index.
        let mut last = Vec::with_capacity(5 * self.layers.len());
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let HiddenLayer {
                weight,
                bias,
                gate_weight,
                gate_bias,
                readout,
                norm_gain,
                norm_shift,
                running_mean,
                running_var,
                branch_alpha,
            } = layer;
            out.push((ParamRole::LayerWeight(l), ParamMut::Matrix(weight)));
            out.push((ParamRole::LayerBias(l), ParamMut::Vector(bias)));
            out.push((ParamRole::Gate(l), ParamMut::Matrix(gate_weight)));
            out.push((ParamRole::Gate(l), ParamMut::Vector(gate_bias)));
            out.push((ParamRole::Readout(l), ParamMut::Matrix(readout)));
            last.push((ParamRole::NormGain(l), ParamMut::Vector(norm_gain)));
            last.push((ParamRole::NormShift(l), ParamMut::Vector(norm_shift)));
            last.push((ParamRole::RunningMean(l), ParamMut::Vector(running_mean)));
            last.push((ParamRole::RunningVar(l), ParamMut::Vector(running_var)));
            last.push((ParamRole::BranchAlpha(l), ParamMut::Matrix(branch_alpha)));
        }
        out.push((ParamRole::Head, ParamMut::Matrix(&mut self.head_weight)));
        out.push((ParamRole::Head, ParamMut::Vector(&mut self.head_bias)));
        for (i, head) in self.aux_heads.iter_mut().enumerate() {
            out.push((ParamRole::Aux(i), ParamMut::Matrix(&mut head.weight)));
            out.push((ParamRole::Aux(i), ParamMut::Vector(&mut head.bias)));
        }
        out.extend(last);
        out
    }
}
