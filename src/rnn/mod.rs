//! The recurrent lab: vanilla, GRU and LSTM cells trained by backprop through time.

mod cells;
pub mod forward;
pub mod fused;
pub mod params;
pub mod scale;
mod simd;
mod trainer;
pub mod variances;
pub mod workspace;

pub use forward::{
    RnnBackprop, RnnOps, RnnPass, rnn_backprop, rnn_backprop_with, unroll, unroll_with,
};
pub use params::{CellParams, GateParams, RnnParams, init_rnn_params};
pub use trainer::{RnnPosition, RnnTrainer};
