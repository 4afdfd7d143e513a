//! What one measurement of the network reports: losses, accuracy and per-layer gradient flow.
//!
//! `Snapshot` serialises to the `--json` contract; non-finite numbers become `null`.

pub use crate::simd::sum_squares;
use serde::{Deserialize, Serialize};

/// Per-layer measurements at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    /// The hidden layer, numbered from 1 at the input (L1), as everywhere gradlab shows layers.
    pub layer: usize,
    /// ‖∂L/∂W_l‖ of the layer's transform weights.
    #[serde(deserialize_with = "null_as_nan")]
    pub weight_grad_norm: f64,
    /// ‖∂L/∂h_l‖ of the layer's output over the batch: the signal the lab is about. It is the
    /// Frobenius norm of the batch's gradient of the *mean* loss, so it scales as 1/√B with the
    /// batch size B.
    #[serde(deserialize_with = "null_as_nan")]
    pub act_grad_norm: f64,
    /// Root mean square of the layer's output h_l.
    #[serde(deserialize_with = "null_as_nan")]
    pub act_rms: f64,
    /// Mean highway gate T_l (null unless the skip mode is highway).
    pub gate_mean: Option<f64>,
    /// Mean highway gate bias b_T of the layer as trained so far (null unless the skip mode
    /// is highway): what the gate's bias really is, not what it was initialised to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_bias_mean: Option<f64>,
    /// ‖ΔW_l‖ / ‖W_l‖ of the update just applied (0 when no update was applied).
    #[serde(deserialize_with = "null_as_nan")]
    pub update_ratio: f64,
    /// ‖∂L/∂h_l‖ in dB (20·log10), exact far beyond f32's and f64's range (the backward
    /// signal is carried rescaled); null in recordings made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_grad_db: Option<f64>,
    /// ‖∂L/∂W_l‖ in dB, as exact as `act_grad_db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_grad_db: Option<f64>,
    /// The true ∂L/∂W_l is nonzero but every entry is below f32's range: the f32 update of
    /// this layer is zero, so the layer cannot learn (whatever its norm says).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub below_f32: bool,
}

/// Per-time-step measurements of a recurrent net (backprop through time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimestepMetrics {
    /// Time step, 1 = the first input.
    pub t: usize,
    /// ‖∂L/∂h_t‖ over the batch (Frobenius norm of the gradient of the mean loss, ∝ 1/√B):
    /// the signal that travels back through time.
    #[serde(deserialize_with = "null_as_nan")]
    pub hidden_grad_norm: f64,
    /// Mean LSTM forget gate f_t (null for other cells).
    pub forget_gate_mean: Option<f64>,
    /// Mean GRU update gate z_t, the share of the old state kept (null for other cells).
    pub update_gate_mean: Option<f64>,
}

/// Where and when a run first produced a non-finite number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The step whose forward or backward pass went non-finite.
    pub step: u64,
    /// The first hidden layer holding NaN/Inf, numbered from 1 at the input (null when only
    /// the loss or head did).
    pub layer: Option<usize>,
    /// What went non-finite, in words.
    pub what: String,
}

/// One measurement of the whole network, taken on a training batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Preset name.
    pub preset: String,
    /// Number of updates applied before this measurement.
    pub step: u64,
    /// Total objective (main loss plus weighted auxiliary losses).
    #[serde(deserialize_with = "null_as_nan")]
    pub loss: f64,
    /// The main head's loss alone.
    #[serde(deserialize_with = "null_as_nan")]
    pub main_loss: f64,
    /// Each auxiliary head's loss (empty when auxiliary losses are off).
    pub aux_losses: Vec<f64>,
    /// Accuracy on the training batch (null for regression tasks).
    pub train_accuracy: Option<f64>,
    /// Accuracy on the test split at its last evaluation (null before the first, or for regression).
    pub test_accuracy: Option<f64>,
    /// Loss on the test split at its last evaluation.
    pub test_loss: Option<f64>,
    /// Whether the run has produced NaN/Inf.
    pub diverged: bool,
    /// Details of the divergence, when it happened.
    pub divergence: Option<Divergence>,
    /// Learning rate in effect.
    #[serde(deserialize_with = "null_as_nan")]
    pub learning_rate: f64,
    /// Skip mode in effect, as a short label.
    pub skip: String,
    /// Whether auxiliary losses were on.
    pub aux_enabled: bool,
    /// Norm of the whole parameter gradient (before clipping).
    #[serde(deserialize_with = "null_as_nan")]
    pub grad_norm: f64,
    /// Per hidden layer, input side first.
    pub layers: Vec<LayerMetrics>,
    /// ‖∂L/∂h_first‖ / ‖∂L/∂h_last‖.
    #[serde(deserialize_with = "null_as_nan")]
    pub grad_ratio_first_last: f64,
    /// The same ratio in decibels, 20·log10.
    #[serde(deserialize_with = "null_as_nan")]
    pub grad_ratio_db: f64,
    /// The measured χ₁: exp(−slope) of the least-squares line through ln ‖∂L/∂h_l‖² against
    /// l over the middle layers (see [`middle_fit_chi1`]), so neither the transient toward q*
    /// at the input end nor the head's end enters. (Recordings before this fit held
    /// (first/last)^(2/(n−1)) here, now `gain_per_layer_db`'s figure.)
    #[serde(deserialize_with = "null_as_nan")]
    pub measured_chi1: f64,
    /// Recurrent nets: per time step (the ratios above are then along the time axis).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timesteps: Vec<TimestepMetrics>,
    /// Recurrent nets: the cell in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// MLPs: the normalisation in effect (`layernorm`, `batchnorm`); absent without one. A
    /// normalised net has no mean-field prediction, so `variances` is then absent too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<String>,
    /// Loss of the best input-blind predictor, where the task defines one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_loss: Option<f64>,
    /// The current weight and bias variances the mean-field prediction is computed from
    /// (`theory::predict`); absent for cells without a prediction and in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variances: Option<crate::theory::NetVariances>,
}

/// Reads back what serialising wrote: serde_json writes NaN and ±Inf as `null`, and a snapshot
/// of a diverged run (or of a one-layer net, whose χ₁ is undefined) must still load.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// First/last ratio, its value in dB and the measured χ₁ (the middle-layer fit) from
/// per-layer gradient norms.
pub fn gradient_ratios(act_grad_norms: &[f64]) -> (f64, f64, f64) {
    let (Some(first), Some(last)) = (act_grad_norms.first(), act_grad_norms.last()) else {
        return (f64::NAN, f64::NAN, f64::NAN);
    };
    let ratio = first / last;
    let db = 20.0 * ratio.log10();
    (ratio, db, middle_fit_chi1(act_grad_norms))
}

/// The end-to-end gain per layer in dB: 20·log10(first/last) / (n − 1), what tables used to
/// call χ₁ (it equals 10·log10 χ₁ only for a plain net at its fixed point). NaN for n < 2.
pub fn gain_per_layer_db(grad_ratio_db: f64, layers: usize) -> f64 {
    if layers < 2 {
        f64::NAN
    } else {
        grad_ratio_db / (layers - 1) as f64
    }
}

/// The layers (0-based, half-open) the χ₁ fit uses: the first and last quarter of the n layers
/// (⌊n/4⌋ each) are left out, and at least two layers stay.
pub fn chi1_fit_window(layers: usize) -> std::ops::Range<usize> {
    let skip = layers / 4;
    skip..layers - skip
}

/// χ₁ measured over the middle layers: exp(−slope) of the least-squares line through
/// ln ‖∂L/∂h_l‖² against l in [`chi1_fit_window`] (gradient energy multiplies by χ₁ per layer
/// going back toward the input). NaN with fewer than two layers or a non-finite or zero norm
/// in the window.
pub fn middle_fit_chi1(act_grad_norms: &[f64]) -> f64 {
    let window = chi1_fit_window(act_grad_norms.len());
    let points: Vec<(f64, f64)> = act_grad_norms[window.clone()]
        .iter()
        .zip(window)
        .map(|(&norm, l)| (l as f64, 2.0 * norm.ln()))
        .collect();
    if points.len() < 2 || points.iter().any(|p| !p.1.is_finite()) {
        return f64::NAN;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), &(x, y)| {
        (
            sxy + (x - mean_x) * (y - mean_y),
            sxx + (x - mean_x).powi(2),
        )
    });
    (-sxy / sxx).exp()
}

/// Euclidean norm in f64 (gradients can be tiny enough for f32 sums to lose them).
pub fn l2_norm(values: &[f32]) -> f64 {
    sum_squares(values).sqrt()
}

/// Root mean square in f64.
pub fn rms(values: &[f32]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    (sum_squares(values) / values.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_squares_matches_the_plain_sum_at_every_length() {
        for n in 0..40 {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 - 3.0) * 1e-7).collect();
            let plain: f64 = values.iter().map(|&v| f64::from(v).powi(2)).sum();
            assert!(
                (sum_squares(&values) - plain).abs() <= 1e-12 * plain.max(1e-300),
                "n = {n}"
            );
        }
    }

    #[test]
    fn measured_chi1_fits_the_middle_layers() {
        // A clean geometric profile with χ₁ = 0.8 in the middle, distorted at both ends.
        let mut norms: Vec<f64> = (0..12).map(|l| 0.8f64.powf(-(l as f64) / 2.0)).collect();
        norms[0] *= 50.0;
        norms[1] *= 0.1;
        norms[11] *= 7.0;
        let (ratio, db, chi1) = gradient_ratios(&norms);
        assert_eq!(ratio, norms[0] / norms[11]);
        assert!((db - 20.0 * ratio.log10()).abs() < 1e-12);
        assert!((chi1 - 0.8).abs() < 1e-12, "χ₁ = {chi1}");
        assert_eq!(chi1_fit_window(12), 3..9);
        assert_eq!(chi1_fit_window(3), 0..3);
        assert!(middle_fit_chi1(&[1.0]).is_nan());
        // Two layers: the fit is the one hop, (first/last)².
        assert!((middle_fit_chi1(&[4.0, 1.0]) - 16.0).abs() < 1e-12);
        assert!(middle_fit_chi1(&[1.0, 0.0, 1.0]).is_nan());
        assert!((gain_per_layer_db(-30.0, 4) + 10.0).abs() < 1e-12);
        assert!(gain_per_layer_db(3.0, 1).is_nan());
    }
}
