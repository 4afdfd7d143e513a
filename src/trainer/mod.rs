//! The trainer: owns the network and the device, runs steps, applies live switches and
//! measures gradient flow. `session` drives it from commands; `sink` receives what it reports.

pub mod learner;
pub mod lockstep;
pub mod session;
pub mod sink;
mod step;

pub use learner::{Learner, build_learner};
pub use session::{
    Command, Event, HeadlessProgress, LIVE_PATH_ROWS, LIVE_PATH_SAMPLES, RunState, TrainerHandle,
    advance_headless, analyses_now, live_analyses, run_headless, run_headless_until, spawn_trainer,
};
pub use sink::{ChannelSink, LastSnapshot, MetricsSink, VecSink};
pub use step::Trainer;
