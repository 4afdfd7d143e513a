//! The recurrent lab: vanilla, GRU and LSTM cells trained by backprop through time.

pub mod forward;
pub mod params;
mod trainer;

pub use forward::{RnnBackprop, RnnPass, rnn_backprop, unroll};
pub use params::{CellParams, GateParams, RnnParams, init_rnn_params};
pub use trainer::RnnTrainer;
