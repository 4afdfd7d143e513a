//! Mean-field prediction of the per-layer gradient norms of the network on screen (plain,
//! residual at any shortcut scale, highway, dense read-outs, vanilla RNN along time), from
//! each layer's *current* weight and bias variances.
//!
//! The quantity predicted is the one the lab measures: ‖∂L/∂h_l‖ over the batch (the
//! Frobenius norm of the batch's gradient of the mean loss), relative to the last layer's, in
//! dB. Its square is Σ_b ‖∂L/∂h_l^b‖² over the batch's inputs b, so the prediction runs the
//! recursion for each input's own second moment and averages the squared norms over inputs
//! (inputs near the origin of the spirals amplify more under a residual net; running the
//! recursion once for the average input falls several dB short of wide simulations). Each
//! input's gradient at the last layer is taken as equal in size (the loss's gradient at the
//! head does not depend on the input in the mean-field limit).
//!
//! Per layer l (input h = h_{l−1} with second moment p and mean m per unit; z = W h + b with
//! q = σ_w² p + σ_b²; f = φ(z); the gradient-energy factor a_l of ∂h_l/∂h_{l−1}):
//!
//! | mode      | h_l                 | a_l                                                   |
//! |-----------|---------------------|-------------------------------------------------------|
//! | plain     | f                   | σ_w² E[φ′²]                                            |
//! | residual  | s·h + f             | s² + σ_w² E[φ′²]  (Yang & Schoenholz 2017)              |
//! | highway   | T⊙f + (1−T)⊙h      | E[(1−T)²] + σ_w² E[T²] E[φ′²] + σ_T² E[T²(1−T)²] E[(f−h)²] |
//! | dense     | f (plain chain)     | σ_w² E[φ′²], plus σ_R² of the layer's own read-out      |
//! | RNN       | φ(x_t W + h U + b)  | σ_U² E[φ′²], plus the head's gradient at scored steps   |
//!
//! with T = σ(u), u ~ N(μ_T, σ_T² p + v_T) from the gate's current weights and bias (mean μ_T
//! and spread v_T over units), independent of z in the mean-field limit. σ² of a weight matrix
//! is fan_in times the mean of its squared entries; σ_b² is the mean squared bias. Once training
//! has correlated the weights this is an approximation, which the labels say.

use super::moments::{Moments, moments};
use crate::config::Activation;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The wiring a prediction is for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetArch {
    /// h_l = φ(W h + b).
    Plain,
    /// h_l = scale·h + φ(W h + b).
    Residual {
        /// The shortcut's scale.
        scale: f64,
    },
    /// h_l = T⊙φ(W h + b) + (1−T)⊙h.
    Highway,
    /// A plain chain whose every layer but the last is also read out by the head.
    Dense,
    /// A vanilla tanh RNN along time.
    Rnn,
}

impl NetArch {
    /// The name `--json` and the panels use: `plain`, `residual`, `highway`, `dense`, `rnn`.
    pub fn name(&self) -> &'static str {
        match self {
            NetArch::Plain => "plain",
            NetArch::Residual { .. } => "residual",
            NetArch::Highway => "highway",
            NetArch::Dense => "dense",
            NetArch::Rnn => "rnn",
        }
    }
}

/// A highway gate's current parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GateVariances {
    /// fan_in · mean(W_T²).
    pub weight_var: f64,
    /// Mean gate bias b_T over units.
    pub bias_mean: f64,
    /// Variance of the gate bias over units.
    pub bias_spread: f64,
}

/// One layer's current variances (for an RNN: the recurrent map, shared by every step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerVariances {
    /// σ_w² = fan_in · mean(W²) of the transform (the recurrent weights U for an RNN).
    pub weight_var: f64,
    /// σ_b² = mean(b²) of the transform's bias.
    pub bias_var: f64,
    /// The highway gate (highway nets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateVariances>,
    /// fan_in · mean(R²) of the layer's dense read-out (dense nets, every layer but the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout_var: Option<f64>,
    /// The factor α on the residual branch, h_l = scale·h + α·φ(W h + b) (residual nets with
    /// a branch factor: 1/√depth or ReZero's current α; absent means α = 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<f64>,
}

/// Everything the mean-field prediction needs, measured from the current parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetVariances {
    /// The wiring in effect.
    pub arch: NetArch,
    /// φ of the hidden layers (tanh for the vanilla RNN).
    pub activation: Activation,
    /// fan_in · mean(W²) of the input projection (MLP) or of the input weights (RNN).
    pub input_weight_var: f64,
    /// Mean squared bias of the input projection (MLP; 0 for an RNN, whose one bias is the
    /// layer's).
    pub input_bias_var: f64,
    /// MLP: mean ‖x‖²/d of the training rows in equal-count bins by ‖x‖ (each bin one input of
    /// the average).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_sq: Vec<f64>,
    /// RNN: for each of the batch's first [`RNN_ROWS`] sequences, ‖x_t‖²/d at every time step
    /// (to 4 significant digits). The recursion runs per sequence: a per-step mean over the
    /// batch would miss ~10 dB at T = 50 on the adding task, where the inputs vary by sequence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_sq_rows: Vec<Vec<f64>>,
    /// Per hidden layer, input side first (RNN: one entry).
    pub layers: Vec<LayerVariances>,
    /// Hidden layers (from 1) that also feed an auxiliary head, when auxiliary losses are on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aux_layers: Vec<usize>,
    /// RNN: time steps (from 1) the head scores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scored_steps: Vec<usize>,
    /// fan_in · mean(W²) of the output head.
    pub head_weight_var: f64,
}

/// The prediction for one network.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchPrediction {
    /// The wiring predicted.
    pub arch: NetArch,
    /// Per layer (time step), 20·log10 of the predicted ‖∂L/∂h_l‖ over the last layer's; None
    /// for layers the prediction does not cover (at or below an auxiliary head).
    pub per_layer_db: Vec<Option<f64>>,
}

impl ArchPrediction {
    /// Predicted first/last ratio in dB (None when the first layer is not covered).
    pub fn ratio_db(&self) -> Option<f64> {
        self.per_layer_db.first().copied().flatten()
    }

    /// The first layer (from 1) the prediction covers.
    pub fn first_covered(&self) -> Option<usize> {
        self.per_layer_db
            .iter()
            .position(Option::is_some)
            .map(|i| i + 1)
    }
}

/// One layer's forward step and gradient factor for one input.
struct Hop {
    /// Second moment of h_l.
    p: f64,
    /// Mean of h_l.
    m: f64,
    /// Gradient-energy factor of ∂h_l/∂h_{l−1}.
    factor: f64,
}

fn hop(arch: NetArch, act: Activation, layer: &LayerVariances, p: f64, m: f64, extra: f64) -> Hop {
    let q = layer.weight_var * p + layer.bias_var + extra;
    let Moments {
        mean,
        second,
        slope_sq,
    } = moments(act, q);
    let chi = layer.weight_var * slope_sq;
    match arch {
        NetArch::Plain | NetArch::Dense | NetArch::Rnn => Hop {
            p: second,
            m: mean,
            factor: chi,
        },
        NetArch::Residual { scale } => {
            let alpha = layer.branch.unwrap_or(1.0);
            Hop {
                p: scale * scale * p + alpha * alpha * second + 2.0 * scale * alpha * mean * m,
                m: scale * m + alpha * mean,
                factor: scale * scale + alpha * alpha * chi,
            }
        }
        NetArch::Highway => {
            let gate = layer.gate.unwrap_or_default();
            let g = gate_moments(gate.bias_mean, gate.weight_var * p + gate.bias_spread);
            let diff_sq = second - 2.0 * mean * m + p;
            Hop {
                p: g.t2 * second + g.c2 * p + 2.0 * g.tc * mean * m,
                m: g.t * mean + (1.0 - g.t) * m,
                factor: g.c2 + g.t2 * chi + gate.weight_var * g.t2c2 * diff_sq,
            }
        }
    }
}

/// Moments of a gate T = σ(u), u ~ N(μ, s²), with C = 1 − T.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateMoments {
    /// E[T].
    pub t: f64,
    /// E[T²].
    pub t2: f64,
    /// E[C²].
    pub c2: f64,
    /// E[T C].
    pub tc: f64,
    /// E[T² C²].
    pub t2c2: f64,
}

/// Gate moments by composite 16-point Gauss–Legendre panels over z ∈ [−10, 10] (the sigmoid
/// is smooth, so fixed panels of width 1/2 are accurate to ~1e-10 for s up to ~20).
pub fn gate_moments(mu: f64, s2: f64) -> GateMoments {
    static NODES: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    let nodes = NODES.get_or_init(|| {
        let rule = super::quadrature::gauss_legendre();
        let mut out = Vec::new();
        let width = 0.5;
        let mut a = -10.0;
        while a < 10.0 - 1e-9 {
            for &(t, w) in rule {
                let z: f64 = a + width * 0.5 * (t + 1.0);
                let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
                out.push((z, w * 0.5 * width * density));
            }
            a += width;
        }
        out
    });
    let s = s2.max(0.0).sqrt();
    let mut m = GateMoments {
        t: 0.0,
        t2: 0.0,
        c2: 0.0,
        tc: 0.0,
        t2c2: 0.0,
    };
    for &(z, w) in nodes {
        let u = mu + s * z;
        let t = if u >= 0.0 {
            1.0 / (1.0 + (-u).exp())
        } else {
            let e = u.exp();
            e / (1.0 + e)
        };
        let c = 1.0 - t;
        m.t += w * t;
        m.t2 += w * t * t;
        m.c2 += w * c * c;
        m.tc += w * t * c;
        m.t2c2 += w * t * t * c * c;
    }
    m
}

/// The mean-field prediction for `net` (see the module notes for the recursions).
pub fn predict(net: &NetVariances) -> ArchPrediction {
    match net.arch {
        NetArch::Rnn => predict_rnn(net),
        _ => predict_mlp(net),
    }
}

/// Squared-norm profiles G_l (last layer first filled) averaged over inputs, as dB vs the last.
fn to_db(sums: &[f64], covered_from: usize) -> Vec<Option<f64>> {
    let last = sums.last().copied().unwrap_or(f64::NAN);
    sums.iter()
        .enumerate()
        .map(|(l, &g)| {
            let db = 10.0 * (g / last).log10();
            (l >= covered_from && db.is_finite()).then_some(db)
        })
        .collect()
}

fn predict_mlp(net: &NetVariances) -> ArchPrediction {
    let depth = net.layers.len();
    let mut sums = vec![0.0; depth];
    let inputs: &[f64] = if net.input_sq.is_empty() {
        &[1.0]
    } else {
        &net.input_sq
    };
    let mut factors = vec![0.0; depth];
    for &x_sq in inputs {
        let (mut p, mut m) = (net.input_weight_var * x_sq + net.input_bias_var, 0.0);
        for (layer, factor) in net.layers.iter().zip(factors.iter_mut()) {
            let h = hop(net.arch, net.activation, layer, p, m, 0.0);
            (p, m, *factor) = (h.p, h.m, h.factor);
        }
        // Backwards from the last layer, in units of the last layer's gradient energy from
        // the main head (σ_head² ‖δ‖²), so a read-out adds σ_R²/σ_head².
        let mut g = 1.0;
        sums[depth - 1] += g;
        for l in (0..depth.saturating_sub(1)).rev() {
            g *= factors[l + 1];
            if net.arch == NetArch::Dense {
                g += net.layers[l].readout_var.unwrap_or(0.0) / net.head_weight_var;
            }
            sums[l] += g;
        }
    }
    // Below an auxiliary head the gradient also holds the aux loss's, whose size depends on
    // that head's logits: those layers are not covered.
    let covered_from = net.aux_layers.iter().max().copied().unwrap_or(0);
    ArchPrediction {
        arch: net.arch,
        per_layer_db: if depth == 0 {
            Vec::new()
        } else {
            to_db(&sums, covered_from)
        },
    }
}

fn predict_rnn(net: &NetVariances) -> ArchPrediction {
    let steps = net.input_sq_rows.first().map_or(0, Vec::len);
    let Some(layer) = net.layers.first() else {
        return ArchPrediction {
            arch: net.arch,
            per_layer_db: vec![None; steps],
        };
    };
    let scored = |t: usize| t + 1 == steps || net.scored_steps.contains(&(t + 1));
    let mut sums = vec![0.0; steps];
    let mut factors = vec![0.0; steps];
    for row in net.input_sq_rows.iter().filter(|r| r.len() == steps) {
        let (mut p, mut m) = (0.0, 0.0);
        for (&x_sq, factor) in row.iter().zip(factors.iter_mut()) {
            let extra = net.input_weight_var * x_sq;
            let h = hop(NetArch::Rnn, net.activation, layer, p, m, extra);
            (p, m, *factor) = (h.p, h.m, h.factor);
        }
        let mut g = 0.0;
        for t in (0..steps).rev() {
            if t + 1 < steps {
                g *= factors[t + 1];
            }
            // Each scored step's loss puts the same expected energy on h_t through the one
            // head.
            if scored(t) {
                g += 1.0;
            }
            sums[t] += g;
        }
    }
    ArchPrediction {
        arch: net.arch,
        per_layer_db: to_db(&sums, 0),
    }
}

/// Sequences of the batch whose inputs the RNN prediction averages over.
pub const RNN_ROWS: usize = 16;

/// `x` to 4 significant digits: enough for a prediction in dB, and short in a recording.
pub fn round4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// fan_in · mean of the squared entries of a weight matrix with `fan_in` rows.
pub fn weight_var(values: &[f32], fan_in: usize) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    fan_in as f64 * mean_sq(values)
}

/// Mean of the squared values (σ_b² of a bias); vectorised, as it runs at every measured
/// step on every weight matrix.
pub fn mean_sq(values: &[f32]) -> f64 {
    crate::simd::sum_squares(values) / values.len().max(1) as f64
}

/// Mean and variance of the values (a gate bias over units).
pub fn mean_spread(values: &[f32]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let spread = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, spread)
}

/// Bins over which the MLP's input average is taken.
pub const INPUT_BINS: usize = 16;

/// Rows of `inputs` (row-major, `dims` wide) sorted by ‖x‖²/d and cut into `bins` groups of
/// (nearly) equal count; the mean ‖x‖²/d of each group. Every row counts once, so the average
/// over bins is the average over rows up to the spread within a bin.
pub fn input_bins(inputs: &[f32], dims: usize, bins: usize) -> Vec<f64> {
    if dims == 0 || bins == 0 {
        return Vec::new();
    }
    let mut sq: Vec<f64> = inputs.chunks_exact(dims).map(mean_sq).collect();
    sq.sort_by(f64::total_cmp);
    let n = sq.len();
    let bins = bins.min(n);
    (0..bins)
        .map(|b| {
            let (lo, hi) = (b * n / bins, (b + 1) * n / bins);
            sq[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
        })
        .collect()
}
