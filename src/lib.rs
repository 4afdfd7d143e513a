//! gradlab: a terminal lab for watching vanishing and exploding gradients and fixing them live.

pub mod analysis;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod config;
pub mod learner;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod out;
pub mod parallel;
pub mod paths;
pub mod protocol;
pub mod recording;
pub mod report;
pub mod rnn;
pub mod simd;
pub mod sources;
pub mod sweep;
pub mod tasks;
pub mod theory;
pub mod trainer;
pub mod ui;
pub mod weights;
