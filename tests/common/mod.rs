//! Shared test helpers: an independent f64 implementation of the network (the oracle for
//! finite differences) and small fixtures.
#![allow(dead_code)]

use dfdx::prelude::{Cpu, Gradients};
use gradlab::config::{
    Activation, AuxSpec, CellKind, InitSpec, ModelKind, ModelSpec, SkipMode, WeightDistribution,
};
use gradlab::model::params::ParamMut;
use gradlab::model::{BatchTargets, MlpParams, Switches, init_params};
use gradlab::theory::{phi, phi_prime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A small model spec for gradient checks.
pub fn small_model(
    depth: usize,
    width: usize,
    act: Activation,
    skip: SkipMode,
    aux_every: usize,
) -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Mlp,
        depth,
        width,
        activation: act,
        init: InitSpec {
            weight_var: 1.5,
            bias_var: 0.1,
            distribution: WeightDistribution::Gaussian,
        },
        skip,
        aux: AuxSpec {
            enabled: false,
            every: aux_every,
            weight: 0.3,
        },
        cell: Default::default(),
        gate_bias: -1.0,
        forget_bias: 1.0,
        carry_bias: Default::default(),
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    }
}

/// A one-layer recurrent model spec of `cell` with `width` hidden units, weights drawn with
/// variance `weight_var`.
pub fn rnn_model(cell: CellKind, width: usize, weight_var: f32) -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Rnn,
        depth: 1,
        width,
        activation: Activation::Tanh,
        init: InitSpec {
            weight_var,
            bias_var: 0.1,
            distribution: WeightDistribution::Gaussian,
        },
        skip: SkipMode::Plain,
        aux: Default::default(),
        cell,
        gate_bias: -1.0,
        forget_bias: 1.0,
        carry_bias: Default::default(),
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    }
}

/// The values of every parameter of a recurrent net, in `params_mut` order.
pub fn rnn_param_values(params: &mut gradlab::rnn::RnnParams) -> Vec<Vec<f32>> {
    params
        .params_mut()
        .into_iter()
        .map(|(_, p)| {
            let mut v = vec![0.0; p.len()];
            p.copy_into(&mut v);
            v
        })
        .collect()
}

/// ∂L/∂θ for each of `params` (as `params_mut` lists them), read from `grads`.
pub fn grads_by_param<R>(
    params: Vec<(R, ParamMut<'_>)>,
    grads: &mut Gradients<f32, Cpu>,
) -> Vec<Vec<f32>> {
    params
        .into_iter()
        .map(|(_, p)| p.grad(grads).to_vec())
        .collect()
}

/// Labels or real targets for the reference network.
#[derive(Clone, Debug)]
pub enum RefTargets {
    Labels(Vec<usize>),
    Values(Vec<f64>),
}

/// A batch in both representations.
pub struct Batch {
    pub x: Vec<f32>,
    pub rows: usize,
    pub dims: usize,
    pub outputs: usize,
    pub targets: RefTargets,
}

impl Batch {
    pub fn random(
        rows: usize,
        dims: usize,
        outputs: usize,
        classification: bool,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = (0..rows * dims)
            .map(|_| rng.gen_range(-1.5f32..1.5))
            .collect();
        let targets = if classification {
            RefTargets::Labels((0..rows).map(|_| rng.gen_range(0..outputs)).collect())
        } else {
            RefTargets::Values(
                (0..rows * outputs)
                    .map(|_| rng.gen_range(-1.0..1.0))
                    .collect(),
            )
        };
        Batch {
            x,
            rows,
            dims,
            outputs,
            targets,
        }
    }

    pub fn tensors(&self, dev: &dfdx::prelude::Cpu) -> (gradlab::model::Matrix, BatchTargets) {
        use dfdx::prelude::TensorFromVec;
        let x = dev.tensor_from_vec(self.x.clone(), (self.rows, self.dims));
        let targets = match &self.targets {
            RefTargets::Labels(labels) => {
                let mut one_hot = vec![0.0f32; self.rows * self.outputs];
                for (r, &l) in labels.iter().enumerate() {
                    one_hot[r * self.outputs + l] = 1.0;
                }
                BatchTargets::OneHot(dev.tensor_from_vec(one_hot, (self.rows, self.outputs)))
            }
            RefTargets::Values(v) => BatchTargets::Values(dev.tensor_from_vec(
                v.iter().map(|&a| a as f32).collect(),
                (self.rows, self.outputs),
            )),
        };
        (x, targets)
    }
}

/// Builds parameters for `model` with a fixed seed.
pub fn params_for(
    model: &ModelSpec,
    dims: usize,
    outputs: usize,
    gate_bias: f32,
    seed: u64,
) -> MlpParams {
    let dev = dfdx::prelude::Cpu::default();
    let mut rng = StdRng::seed_from_u64(seed);
    init_params(&dev, model, dims, outputs, gate_bias, &mut rng)
}

/// Every parameter as f64, in `params_mut` order.
pub fn param_values(params: &mut MlpParams) -> Vec<Vec<f64>> {
    params
        .values()
        .into_iter()
        .map(|v| v.into_iter().map(f64::from).collect())
        .collect()
}

/// An f64 re-implementation of the network, written from the maths, not from the dfdx code.
pub struct Reference {
    pub values: Vec<Vec<f64>>,
    pub dims: usize,
    pub width: usize,
    pub outputs: usize,
    pub depth: usize,
    pub act: Activation,
    pub aux_layers: Vec<usize>,
}

/// A perturbation of one hidden activation: (layer, flat index, delta).
pub type HiddenNudge = Option<(usize, usize, f64)>;

fn matmul(a: &[f64], rows: usize, inner: usize, w: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for k in 0..inner {
            let a_rk = a[r * inner + k];
            for c in 0..cols {
                out[r * cols + c] += a_rk * w[k * cols + c];
            }
        }
    }
    out
}

fn add_bias(z: &mut [f64], b: &[f64]) {
    let cols = b.len();
    for (i, v) in z.iter_mut().enumerate() {
        *v += b[i % cols];
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Reference {
    pub fn new(params: &mut MlpParams, model: &ModelSpec, dims: usize, outputs: usize) -> Self {
        Reference {
            values: param_values(params),
            dims,
            width: model.width,
            outputs,
            depth: model.depth,
            act: model.activation,
            aux_layers: gradlab::model::aux_head_layers(model.depth, model.aux.every),
        }
    }

    fn layer(&self, l: usize) -> [&Vec<f64>; 5] {
        let base = 2 + 5 * l;
        [
            &self.values[base],
            &self.values[base + 1],
            &self.values[base + 2],
            &self.values[base + 3],
            &self.values[base + 4],
        ]
    }

    fn head(&self) -> (&Vec<f64>, &Vec<f64>) {
        let base = 2 + 5 * self.depth;
        (&self.values[base], &self.values[base + 1])
    }

    fn aux_head(&self, i: usize) -> (&Vec<f64>, &Vec<f64>) {
        let base = 4 + 5 * self.depth + 2 * i;
        (&self.values[base], &self.values[base + 1])
    }

    fn loss_of(&self, out: &[f64], rows: usize, targets: &RefTargets) -> f64 {
        match targets {
            RefTargets::Labels(labels) => {
                let mut total = 0.0;
                for r in 0..rows {
                    let row = &out[r * self.outputs..(r + 1) * self.outputs];
                    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                    total += lse - row[labels[r]];
                }
                total / rows as f64
            }
            RefTargets::Values(values) => {
                out.iter()
                    .zip(values)
                    .map(|(o, t)| (o - t).powi(2))
                    .sum::<f64>()
                    / out.len() as f64
            }
        }
    }

    /// The total objective, optionally with one hidden activation nudged.
    pub fn loss(&self, batch: &Batch, switches: &Switches, nudge: HiddenNudge) -> f64 {
        let rows = batch.rows;
        let x: Vec<f64> = batch.x.iter().map(|&v| f64::from(v)).collect();
        let mut h = matmul(&x, rows, self.dims, &self.values[0], self.width);
        add_bias(&mut h, &self.values[1]);
        let mut hidden = Vec::new();
        for l in 0..self.depth {
            let [w, b, gw, gb, _] = self.layer(l);
            let mut z = matmul(&h, rows, self.width, w, self.width);
            add_bias(&mut z, b);
            let f: Vec<f64> = z.iter().map(|&v| phi(self.act, v)).collect();
            h = match switches.skip {
                SkipMode::Plain | SkipMode::Dense => f,
                SkipMode::Residual { scale } => f
                    .iter()
                    .zip(&h)
                    .map(|(f, h)| f64::from(scale) * h + f)
                    .collect(),
                SkipMode::Highway => {
                    let mut g = matmul(&h, rows, self.width, gw, self.width);
                    add_bias(&mut g, gb);
                    g.iter()
                        .zip(f.iter().zip(&h))
                        .map(|(g, (f, h))| {
                            let t = sigmoid(*g);
                            t * f + (1.0 - t) * h
                        })
                        .collect()
                }
            };
            if let Some((layer, index, delta)) = nudge
                && layer == l
            {
                h[index] += delta;
            }
            hidden.push(h.clone());
        }
        let (hw, hb) = self.head();
        let mut out = matmul(&h, rows, self.width, hw, self.outputs);
        add_bias(&mut out, hb);
        if matches!(switches.skip, SkipMode::Dense) {
            for (l, h_l) in hidden.iter().enumerate().take(self.depth - 1) {
                let r = matmul(h_l, rows, self.width, self.layer(l)[4], self.outputs);
                out.iter_mut().zip(r).for_each(|(o, r)| *o += r);
            }
        }
        let mut total = self.loss_of(&out, rows, &batch.targets);
        if switches.aux_enabled {
            for (i, &l) in self.aux_layers.iter().enumerate() {
                let (aw, ab) = self.aux_head(i);
                let mut a = matmul(&hidden[l], rows, self.width, aw, self.outputs);
                add_bias(&mut a, ab);
                total += f64::from(switches.aux_weight) * self.loss_of(&a, rows, &batch.targets);
            }
        }
        total
    }
}

/// φ′ is re-exported so tests can build analytic expectations.
pub fn activation_slope(act: Activation, x: f64) -> f64 {
    phi_prime(act, x)
}
