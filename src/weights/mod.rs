//! Weights out and in: a network's parameters as a safetensors file that numpy, PyTorch and
//! JAX read, and checkpoints (the same file plus optimiser state and the run's position) that
//! resume a run bit for bit.
//!
//! ```text
//!  Learner::weights ──▶ Weights { tensors, metadata } ──encode──▶ FILE.safetensors
//!  Learner::load_weights ◀── Weights ◀──decode (dtype, shapes, names checked)── FILE
//! ```
//!
//! Tensors are named by layer, hidden layers numbered from 1 at the input as everywhere a
//! person reads them ([`names`]): `input.weight`, `layer1.weight`, `layer1.bias`,
//! `layer1.gate.weight`, `layer1.readout.weight`, `head.weight`, `aux3.weight` (the auxiliary
//! head reading layer 3); recurrent nets `lstm.forget.weight_ih`, `gru.update.weight_hh`,
//! `vanilla.candidate.bias`, `head.weight`. Every value is f32, little-endian, row-major, and a
//! weight W has shape (fan_in, fan_out) with y = x @ W + b ([`LAYOUT`]); torch.nn.Linear keeps
//! W.T. A checkpoint adds `optim.m.<name>` (SGD momentum or Adam's first moment) and
//! `optim.v.<name>` (Adam's second moment) and its state under the `checkpoint` metadata key.

pub mod checkpoint;
pub mod format;
pub mod names;
pub mod net;
pub mod save;
pub mod trainers;

use std::collections::BTreeMap;

/// The `format` metadata value of a file gradlab wrote.
pub const FORMAT: &str = "gradlab-weights";

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;

/// How a weight multiplies its input, said in every file's `layout` metadata.
pub const LAYOUT: &str = "y = x @ W + b; every weight W has shape (fan_in, fan_out), row-major \
                          f32 (torch.nn.Linear.weight is W.T)";

/// Prefix of the optimiser-state tensors a checkpoint adds (ignored by `--load-weights`).
pub const OPTIMIZER_PREFIX: &str = "optim.";

/// One named tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Its name, e.g. `layer3.weight`.
    pub name: String,
    /// Its shape, e.g. `[64, 64]`.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// The contents of a weights or checkpoint file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    /// The tensors, in the network's parameter order when gradlab made them.
    pub tensors: Vec<Tensor>,
    /// String metadata: preset, step, seed, skip mode, activation, format version, …
    pub metadata: BTreeMap<String, String>,
    /// Where the file came from, for messages (empty for weights made in memory).
    pub source: String,
}

impl Weights {
    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// What messages call the file: its path, or "the weights" for weights made in memory.
    pub fn origin(&self) -> &str {
        if self.source.is_empty() {
            "the weights"
        } else {
            &self.source
        }
    }
}
