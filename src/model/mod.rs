//! The deep MLP: parameters, forward pass on dfdx's tape, and gradient extraction.

pub mod forward;
pub mod fused;
pub mod kernels;
pub mod ops;
pub mod params;
pub mod trainer;
pub mod variances;

pub use forward::{BatchTargets, BlockOps, ForwardPass, Lesion, Switches, forward, forward_with};
pub use params::{AuxHead, HiddenLayer, Matrix, MlpParams, Vector, aux_head_layers, init_params};
pub mod backprop;
pub use backprop::{Backprop, backprop};
pub use trainer::{MlpPosition, Trainer};
pub mod engine;
pub mod eval;
pub mod loss;
pub mod norm;
pub mod passes;
pub mod scaled;
pub mod shards;
pub mod small_gemm;

/// Revision of the training step's arithmetic, noted in recordings: results are bit-identical
/// for a seed, build, CPU feature level and revision. 2: MLP batches cut into two shards.
/// 3: products of the lab's sizes on the AVX-512 small-matrix kernel, the test set scored in
/// two shards. 4: sums of squares (norms, gradient clipping) over four 8-lane partial sums.
/// 5: the weight variances behind the mean-field prediction summed over the same lanes.
/// 6: products of the lab's sizes on the small-matrix kernel on AVX2 CPUs too; a sharded
/// step's rescaled ‖∂L/∂W_l‖ summed over 32 fixed lanes.
pub const ENGINE_REVISION: u32 = 6;
