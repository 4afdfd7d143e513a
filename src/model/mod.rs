//! The deep MLP: parameters, forward pass on dfdx's tape, and gradient extraction.

pub mod forward;
pub mod ops;
pub mod params;

pub use forward::{BatchTargets, ForwardPass, Lesion, Switches, forward};
pub use params::{AuxHead, HiddenLayer, Matrix, MlpParams, Vector, aux_head_layers, init_params};
pub mod backprop;
pub use backprop::{Backprop, backprop};
