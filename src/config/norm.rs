//! The normalisation and residual-branch switches of the MLP (all default to "off", so a
//! preset that names none of them builds the network it always did, bit for bit).

use serde::{Deserialize, Serialize};

/// Normalisation of the hidden layers (MLPs; switchable live).
///
/// Where it sits is `NormPlace`. Every layer owns a gain γ (init 1) and shift β (init 0)
/// from step 0 whatever this says, so switching it on never creates parameters mid-run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// No normalisation.
    #[default]
    None,
    /// Per example, over the layer's units: (v − mean)/√(var + ε)·γ + β (Ba et al. 2016).
    LayerNorm,
    /// Per unit, over the batch (Ioffe & Szegedy 2015): training uses the batch's statistics
    /// and folds them into running estimates (`BATCH_NORM_MOMENTUM`), which evaluation
    /// (test scores, lesions) uses instead.
    BatchNorm,
}

/// ε under the variance of both norms (PyTorch's default).
pub const NORM_EPS: f32 = 1e-5;

/// Weight of the newest batch in BatchNorm's running mean and variance: running ←
/// (1 − m)·running + m·batch, with the batch variance unbiased (×n/(n − 1)), as PyTorch does.
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;

impl NormKind {
    /// Every kind, in the order a switch cycles them.
    pub const ALL: [NormKind; 3] = [NormKind::None, NormKind::LayerNorm, NormKind::BatchNorm];

    /// Short lowercase name for headers and tables.
    pub fn label(&self) -> &'static str {
        match self {
            NormKind::None => "no norm",
            NormKind::LayerNorm => "layernorm",
            NormKind::BatchNorm => "batchnorm",
        }
    }
}

/// Where the norm sits in each block.
///
/// The one rule for every skip mode: `Pre` normalises what the block's transforms read,
/// `Post` normalises what the block writes.
/// - residual: Pre y = s·x + α·φ(N(x)W + b) (pre-activation ResNets, pre-LN Transformers);
///   Post y = N(s·x + α·φ(xW + b)) (post-LN Transformers: the norm after the addition);
/// - highway: Pre y = x + T⊙(f − x) with f = φ(N(x)W + b), T = σ(N(x)W_T + b_T), the carry
///   reading x itself; Post y = N(x + T⊙(f − x));
/// - plain and dense: Pre y = φ(N(x)W + b); Post y = N(φ(xW + b)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormPlace {
    /// Inside the block, on its input to the transforms (the shortcut carries x unnormalised).
    #[default]
    Pre,
    /// On the block's output, after the shortcut is added.
    Post,
}

impl NormPlace {
    /// Short lowercase name.
    pub fn label(&self) -> &'static str {
        match self {
            NormPlace::Pre => "pre",
            NormPlace::Post => "post",
        }
    }
}

/// The factor α on each residual branch: y = s·x + α·f (residual skip mode only; plain,
/// dense and highway blocks have no branch to scale and ignore it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BranchScale {
    /// α = 1.
    #[default]
    One,
    /// α = 1/√depth, fixed: the stream's variance grows by O(1) over the whole net instead of
    /// O(1) per block.
    InvSqrtDepth,
    /// α learnable per block, initialised at 0 (SkipInit, De & Smith 2020; ReZero, Bachlechner
    /// et al. 2020): at step 0 every block is the identity.
    ReZero,
}

impl BranchScale {
    /// Every choice, in the order a switch cycles them.
    pub const ALL: [BranchScale; 3] = [
        BranchScale::One,
        BranchScale::InvSqrtDepth,
        BranchScale::ReZero,
    ];

    /// Short lowercase name.
    pub fn label(&self) -> &'static str {
        match self {
            BranchScale::One => "α=1",
            BranchScale::InvSqrtDepth => "α=1/√L",
            BranchScale::ReZero => "rezero",
        }
    }
}
