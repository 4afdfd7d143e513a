//! What the driver needs of any trainable network, MLP or recurrent.

use crate::config::{Experiment, ModelKind};
use crate::metrics::{Divergence, Snapshot};
use crate::model::Trainer;
use crate::protocol::{Command, Setting};
use crate::rnn::RnnTrainer;
use crate::weights::{Weights, checkpoint, trainers};
use anyhow::Result;
use std::path::Path;

/// A network being trained: one step at a time, with live switches.
pub trait Learner: Send {
    /// The experiment as loaded.
    fn experiment(&self) -> &Experiment;
    /// Updates applied so far.
    fn step(&self) -> u64;
    /// The divergence, once NaN/Inf appeared.
    fn divergence(&self) -> Option<&Divergence>;
    /// Measures the next batch and, with `update`, applies the optimiser (see `Trainer`).
    fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot>;
    /// Applies a switch command; each impl matches every `Setting`, so a new switch cannot be
    /// forgotten here.
    fn apply(&mut self, command: &Command);
    /// Learning rate in effect.
    fn learning_rate(&self) -> f32;
    /// Lets the run use up to `threads` threads (`parallel::threads_per_run`); results do
    /// not depend on it.
    fn set_threads(&mut self, threads: usize);
    /// Threads the last step ran on.
    fn threads_used(&self) -> usize;
    /// The MLP trainer, when this is one (path statistics and lesions need its layers).
    fn as_mlp(&mut self) -> Option<&mut Trainer> {
        None
    }
    /// An independent copy at this moment: weights, optimiser state, switches, step and
    /// position in the data stream, so the copy takes exactly the steps the original would.
    fn fork(&self) -> Box<dyn Learner>;
    /// The parameters by name, with metadata (preset, step, seed, switches in effect).
    fn weights(&mut self) -> Weights;
    /// Overwrites the parameters with `weights`; every name and shape is checked first, and
    /// on a mismatch nothing changes and the error names the file, tensor and both shapes.
    fn load_weights(&mut self, weights: &Weights) -> Result<()>;
    /// Weights plus optimiser state, step, live switches and data position (refused once
    /// the run diverged).
    fn checkpoint(&mut self) -> Result<Weights>;
    /// Puts a network freshly built from the same experiment where `checkpoint` says its
    /// run stood, so it goes on bit-identically.
    fn restore(&mut self, checkpoint: &Weights) -> Result<()>;
}

/// Builds the trainer the experiment's model kind calls for.
pub fn build_learner(experiment: Experiment, base_dir: Option<&Path>) -> Result<Box<dyn Learner>> {
    Ok(match experiment.model.kind {
        ModelKind::Mlp => Box::new(Trainer::new(experiment, base_dir)?),
        ModelKind::Rnn => Box::new(RnnTrainer::new(experiment)?),
    })
}

impl Learner for Trainer {
    fn experiment(&self) -> &Experiment {
        Trainer::experiment(self)
    }
    fn step(&self) -> u64 {
        Trainer::step(self)
    }
    fn divergence(&self) -> Option<&Divergence> {
        Trainer::divergence(self)
    }
    fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot> {
        Trainer::train_step(self, update, measure)
    }
    fn apply(&mut self, command: &Command) {
        match command.setting() {
            Some(Setting::Skip(skip)) => self.set_skip(skip),
            Some(Setting::Aux(on)) => self.set_aux(on),
            Some(Setting::LearningRate(lr)) => self.set_learning_rate(lr),
            Some(Setting::Norm(norm)) => self.set_norm(norm),
            Some(Setting::NormPlace(place)) => self.set_norm_place(place),
            Some(Setting::BranchScale(scale)) => self.set_branch_scale(scale),
            // A recurrent switch does not exist on an MLP (the keymap never sends it here).
            Some(Setting::Cell(_)) | None => {}
        }
    }
    fn learning_rate(&self) -> f32 {
        Trainer::learning_rate(self)
    }
    fn set_threads(&mut self, threads: usize) {
        Trainer::set_threads(self, threads);
    }
    fn threads_used(&self) -> usize {
        Trainer::threads_used(self)
    }
    fn as_mlp(&mut self) -> Option<&mut Trainer> {
        Some(self)
    }
    fn fork(&self) -> Box<dyn Learner> {
        Box::new(self.clone())
    }
    fn weights(&mut self) -> Weights {
        trainers::mlp_weights(self)
    }
    fn load_weights(&mut self, weights: &Weights) -> Result<()> {
        trainers::load_mlp(self, weights)
    }
    fn checkpoint(&mut self) -> Result<Weights> {
        checkpoint::mlp_checkpoint(self)
    }
    fn restore(&mut self, file: &Weights) -> Result<()> {
        checkpoint::restore_mlp(self, file)
    }
}

impl Learner for RnnTrainer {
    fn experiment(&self) -> &Experiment {
        RnnTrainer::experiment(self)
    }
    fn step(&self) -> u64 {
        RnnTrainer::step(self)
    }
    fn divergence(&self) -> Option<&Divergence> {
        RnnTrainer::divergence(self)
    }
    fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot> {
        RnnTrainer::train_step(self, update, measure)
    }
    fn apply(&mut self, command: &Command) {
        match command.setting() {
            Some(Setting::Cell(cell)) => self.set_cell(cell),
            Some(Setting::LearningRate(lr)) => RnnTrainer::set_learning_rate(self, lr),
            // MLP switches do not exist on a recurrent net (the keymap never sends them here).
            Some(
                Setting::Skip(_)
                | Setting::Aux(_)
                | Setting::Norm(_)
                | Setting::NormPlace(_)
                | Setting::BranchScale(_),
            )
            | None => {}
        }
    }
    fn learning_rate(&self) -> f32 {
        RnnTrainer::learning_rate(self)
    }
    fn set_threads(&mut self, threads: usize) {
        RnnTrainer::set_threads(self, threads);
    }
    fn threads_used(&self) -> usize {
        RnnTrainer::threads_used(self)
    }
    fn fork(&self) -> Box<dyn Learner> {
        Box::new(self.clone())
    }
    fn weights(&mut self) -> Weights {
        trainers::rnn_weights(self)
    }
    fn load_weights(&mut self, weights: &Weights) -> Result<()> {
        trainers::load_rnn(self, weights)
    }
    fn checkpoint(&mut self) -> Result<Weights> {
        checkpoint::rnn_checkpoint(self)
    }
    fn restore(&mut self, file: &Weights) -> Result<()> {
        checkpoint::restore_rnn(self, file)
    }
}
