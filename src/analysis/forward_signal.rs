//! The forward signal: each layer's pre-activation second moment q_l and the correlation c_l
//! between pairs of inputs, measured and as the mean-field length and correlation maps
//! predict them from the input projection's output (Poole et al. 2016; Schoenholz et al.
//! 2017). When c_l → 1 every input reaches the last layer as the same vector, and no
//! read-out can tell them apart however well gradients flow.

use super::jacobian::{layer_vars, second_moment_of, theory_name};
use super::maps::{correlation_depth, correlation_map, length_map};
use super::stack::{BlockKind, Stack, Trace};
use serde::{Deserialize, Serialize};

/// One hidden layer's forward signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSignal {
    /// Hidden layer, numbered from 1 at the input.
    pub layer: usize,
    /// Measured (1/N)|z_l|², mean over the inputs.
    pub q: f64,
    /// The length map's q_l from each input's own h_0, mean over the inputs.
    pub q_theory: Option<f64>,
    /// Measured cosine between the pre-activations z_l of a pair, mean over the pairs.
    pub c: f64,
    /// The correlation map's c_l from each pair's own h_0, mean over the pairs.
    pub c_theory: Option<f64>,
}

/// Per-layer forward signal of the hidden stack on a few inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardSignal {
    /// Inputs (training rows) measured.
    pub inputs: usize,
    /// Pairs of inputs the correlations average over (rows 1–2, 3–4, …).
    pub pairs: usize,
    /// One entry per hidden layer, input side first.
    pub layers: Vec<LayerSignal>,
    /// Correlation depth scale ξ_c in layers at the layers' mean current σ_w², σ_b² (plain
    /// chains only; infinite at criticality prints as null, like no prediction).
    pub xi_c: Option<f64>,
    /// Which prediction the theory columns are, or why there is none.
    pub theory: String,
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (second_moment_of(a) * second_moment_of(b)).sqrt() / a.len() as f64
}

/// The forward signal on `traces`: pairs are consecutive traces (1–2, 3–4, …); the pairs'
/// maps run on up to `threads` threads (the result does not depend on it).
pub fn forward_signal(stack: &Stack, traces: &[Trace], threads: usize) -> Option<ForwardSignal> {
    if traces.is_empty() {
        return None;
    }
    let vars = layer_vars(stack);
    let depth = stack.depth();
    let n = traces.len() as f64;
    let pairs: Vec<(&Trace, &Trace)> = traces.chunks_exact(2).map(|p| (&p[0], &p[1])).collect();
    let q_theory: Option<Vec<f64>> = traces.iter().try_fold(vec![0.0; depth], |mut acc, t| {
        let q = length_map(stack.act, stack.kind, &vars, second_moment_of(&t.h0))?;
        acc.iter_mut().zip(q).for_each(|(a, q)| *a += q / n);
        Some(acc)
    });
    let c_theory: Option<Vec<f64>> = if pairs.is_empty() {
        None
    } else {
        // Each pair's map is a nested quadrature per layer, the costliest part of the
        // analysis: the pairs run on the run's threads, and add up in pair order.
        let maps = crate::parallel::map_in_order(&pairs, threads, |(a, b)| {
            let m12 = a.h0.iter().zip(&b.h0).map(|(x, y)| x * y).sum::<f64>() / a.h0.len() as f64;
            let start = (second_moment_of(&a.h0), second_moment_of(&b.h0), m12);
            correlation_map(stack.act, stack.kind, &vars, start)
        });
        maps.into_iter().try_fold(vec![0.0; depth], |mut acc, c| {
            acc.iter_mut()
                .zip(c?)
                .for_each(|(acc, c)| *acc += c / pairs.len() as f64);
            Some(acc)
        })
    };
    let layers = (0..depth)
        .map(|l| LayerSignal {
            layer: l + 1,
            q: traces
                .iter()
                .map(|t| second_moment_of(&t.pre[l]))
                .sum::<f64>()
                / n,
            q_theory: q_theory.as_ref().map(|q| q[l]),
            c: if pairs.is_empty() {
                f64::NAN
            } else {
                pairs
                    .iter()
                    .map(|(a, b)| cosine(&a.pre[l], &b.pre[l]))
                    .sum::<f64>()
                    / pairs.len() as f64
            },
            c_theory: c_theory.as_ref().map(|c| c[l]),
        })
        .collect();
    let xi_c = (stack.kind == BlockKind::Plain).then(|| {
        let w = vars.iter().map(|v| v.weight_var).sum::<f64>() / vars.len() as f64;
        let b = vars.iter().map(|v| v.bias_var).sum::<f64>() / vars.len() as f64;
        correlation_depth(stack.act, w, b)
    });
    Some(ForwardSignal {
        inputs: traces.len(),
        pairs: pairs.len(),
        layers,
        xi_c: xi_c.filter(|x| x.is_finite()),
        theory: theory_name(stack),
    })
}
