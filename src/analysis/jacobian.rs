//! The singular values of the input–output Jacobian ∂h_L/∂h_1 of the hidden stack, one
//! Jacobian per input, pooled: the spectrum whose spread decides whether a deep net is
//! dynamically isometric (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017).

use super::maps::{LayerVars, block_gain, length_map};
use super::stack::{Mat, Stack, Trace};
use super::svd::singular_values;
use serde::{Deserialize, Serialize};

/// The pooled singular values of ∂h_L/∂h_1 over a few inputs, with their mean square and its
/// mean-field prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JacobianSpectrum {
    /// Inputs (training rows) the Jacobians were taken at.
    pub inputs: usize,
    /// The Jacobian maps hidden layer `from_layer` to `to_layer` (numbered from 1).
    pub from_layer: usize,
    /// See `from_layer`.
    pub to_layer: usize,
    /// Every Jacobian's singular values pooled, largest first (inputs × width of them).
    pub singular_values: Vec<f64>,
    /// Mean squared singular value, (1/N)·tr(J Jᵀ) averaged over the inputs.
    pub mean_sq: f64,
    /// Mean-field prediction of `mean_sq` from the current weights (None: no theory).
    pub predicted_mean_sq: Option<f64>,
    /// Which prediction `predicted_mean_sq` is, or why there is none.
    pub theory: String,
    /// Singular values below this are at the f64 rounding floor of the product (N·ε·σ_max)
    /// and only bound the true value from above.
    pub resolution: f64,
}

/// A spread of singular values in decades, log10(p95/p5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// log10(p95 / max(p5, resolution)).
    pub decades: f64,
    /// Whether p5 is above the resolution (false: the spread is at least `decades`).
    pub resolved: bool,
}

impl JacobianSpectrum {
    /// The value below which a fraction `p` of the pooled singular values lie (nearest rank).
    pub fn percentile(&self, p: f64) -> f64 {
        let n = self.singular_values.len();
        if n == 0 {
            return f64::NAN;
        }
        // Stored largest first: rank from the small end.
        let rank = (p.clamp(0.0, 1.0) * (n - 1) as f64).round() as usize;
        self.singular_values[n - 1 - rank]
    }

    /// log10 of the 95th over the 5th percentile: 0 for an isometry, many decades for a
    /// spread spectrum.
    pub fn spread(&self) -> Spread {
        let (p95, p5) = (self.percentile(0.95), self.percentile(0.05));
        Spread {
            decades: (p95 / p5.max(self.resolution)).log10(),
            resolved: p5 > self.resolution,
        }
    }

    /// How many pooled singular values are below the resolution.
    pub fn unresolved(&self) -> usize {
        self.singular_values
            .iter()
            .filter(|&&s| s <= self.resolution)
            .count()
    }
}

/// The current σ_w², σ_b² of every hidden layer.
pub fn layer_vars(stack: &Stack) -> Vec<LayerVars> {
    (0..stack.depth())
        .map(|l| LayerVars {
            weight_var: stack.weight_var(l),
            bias_var: stack.bias_var(l),
        })
        .collect()
}

/// Second moment (1/N)|v|².
pub fn second_moment_of(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64
}

/// The mean-field (1/N)·tr(J Jᵀ) of ∂h_L/∂h_1 averaged over the traces' inputs; None for
/// stacks without a mean-field map (highway).
pub fn predicted_mean_sq(stack: &Stack, traces: &[Trace]) -> Option<f64> {
    let vars = layer_vars(stack);
    let total = traces.iter().try_fold(0.0, |acc, t| {
        Some(acc + predicted_for(stack, &vars, second_moment_of(&t.h0))?)
    })?;
    Some(total / traces.len() as f64)
}

/// (1/N)·‖J‖²_F = (1/N)·Σσ²: the mean squared singular value without the SVD.
pub fn frobenius_mean_sq(j: &Mat) -> f64 {
    j.data.iter().map(|v| v * v).sum::<f64>() / j.rows as f64
}

/// The mean-field (1/N)·tr(J Jᵀ) for one input whose h_0 has second moment `m0`: the product
/// of the block gains of layers 2..L along the input's predicted q_l.
fn predicted_for(stack: &Stack, vars: &[LayerVars], m0: f64) -> Option<f64> {
    let q = length_map(stack.act, stack.kind, vars, m0)?;
    (1..stack.depth()).try_fold(1.0, |acc, l| {
        Some(acc * block_gain(stack.act, stack.kind, vars[l], q[l])?)
    })
}

/// Name of the prediction for the stack on screen, or why there is none.
pub fn theory_name(stack: &Stack) -> String {
    use super::stack::BlockKind;
    match stack.kind {
        BlockKind::Plain => "mean-field, plain chain, from current σ_w², σ_b²".into(),
        BlockKind::Residual(s) => {
            format!("mean-field, residual (skip ×{s}), from current σ_w², σ_b²")
        }
        BlockKind::Highway => "no prediction: highway gates have no mean-field map".into(),
    }
}

/// The pooled spectrum of ∂h_L/∂h_1 on the given traces (one per input).
pub fn jacobian_spectrum(
    stack: &Stack,
    traces: &[Trace],
    threads: usize,
) -> Option<JacobianSpectrum> {
    if traces.is_empty() {
        return None;
    }
    let width = stack.width;
    let mut values = Vec::with_capacity(traces.len() * width);
    let mut resolution: f64 = 0.0;
    let mut mean_sq = 0.0;
    let spectra = crate::parallel::map_in_order(traces, threads, |trace| {
        singular_values(&stack.jacobian(trace))
    });
    for s in spectra {
        resolution = resolution.max(s[0] * width as f64 * f64::EPSILON);
        mean_sq += s.iter().map(|v| v * v).sum::<f64>() / width as f64;
        values.extend(s);
    }
    values.sort_by(|a, b| b.total_cmp(a));
    let n = traces.len() as f64;
    Some(JacobianSpectrum {
        inputs: traces.len(),
        from_layer: 1,
        to_layer: stack.depth(),
        singular_values: values,
        mean_sq: mean_sq / n,
        predicted_mean_sq: predicted_mean_sq(stack, traces),
        theory: theory_name(stack),
        resolution,
    })
}

/// The singular values of block `block`'s own Jacobian ∂h_block/∂h_{block−1} (numbered from
/// 1), pooled over the traces, largest first: the spectrum one layer contributes.
pub fn block_spectrum(stack: &Stack, traces: &[Trace], block: usize) -> Option<Vec<f64>> {
    if block == 0 || block > stack.depth() {
        return None;
    }
    let mut values: Vec<f64> = traces
        .iter()
        .flat_map(|t| singular_values(&stack.block_jacobian(t, block - 1)))
        .collect();
    values.sort_by(|a, b| b.total_cmp(a));
    Some(values)
}
