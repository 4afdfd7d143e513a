//! What a run will cost in memory, estimated from the experiment alone, so a net that cannot
//! fit is refused before a single buffer is allocated instead of growing until the machine
//! swaps or the kernel kills it hours into an SSH session.

use super::{Experiment, ModelKind, OptimizerSpec, SkipMode, TaskSpec};
use anyhow::{Result, bail};
use std::path::Path;

/// Estimates above this are announced on stderr even when they fit: building such a net takes
/// seconds and a user over SSH should know why nothing moves yet.
const NOTEWORTHY_BYTES: u64 = 1_000_000_000;

/// Bytes of one stored number: every tensor is f32.
const F32: u64 = 4;

/// f32 buffers kept per hidden unit, per example, per layer for one MLP step: the
/// pre-activation, the activation, the highway gate's pre-activation and value, and the
/// gradients of the four, as the backward pass keeps them all until the update.
const MLP_BUFFERS_PER_UNIT: u64 = 8;

/// f32 buffers kept per hidden unit, per sequence, per time step for one recurrent step: the
/// LSTM's four gate activations and their four gradients, the state, the cell, tanh of the
/// cell, the reset-scaled state and the carried gradients (the largest cell, LSTM, counted).
const RNN_BUFFERS_PER_UNIT: u64 = 16;

/// Gate maps held by a recurrent net: one set per cell kind (vanilla 1, GRU 3, LSTM 4), since
/// the cell can be switched live and each cell keeps its own learning.
const RNN_GATE_MAPS: u64 = 1 + 3 + 4;

/// Inputs and outputs of the network the task implies; a CSV file's shape is unknown until it
/// is read, so one input and one output stand for it (its rows are counted from the file).
fn task_shape(task: &TaskSpec) -> (u64, u64) {
    let (inputs, outputs) = match *task {
        TaskSpec::Spirals { .. } | TaskSpec::Circles { .. } | TaskSpec::Checkerboard { .. } => {
            (2, 2)
        }
        TaskSpec::Blobs { classes, dims, .. } => (dims, classes),
        TaskSpec::Teacher { dims, .. } => (dims, 1),
        TaskSpec::Adding { .. } => (2, 1),
        TaskSpec::DelayedXor { .. } => (2, 2),
        TaskSpec::Copy { alphabet, .. } => (alphabet + 2, alphabet),
        TaskSpec::Digits => (64, 10),
        TaskSpec::Mnist1d => (40, 10),
        TaskSpec::Csv { .. } => (1, 1),
    };
    (inputs as u64, outputs as u64)
}

/// Time steps of a sequence task (1 for the others).
fn sequence_steps(task: &TaskSpec) -> u64 {
    let steps = match *task {
        TaskSpec::Adding { length, .. } | TaskSpec::DelayedXor { length, .. } => length,
        TaskSpec::Copy { symbols, delay, .. } => symbols + delay + 1 + symbols,
        _ => 1,
    };
    steps as u64
}

/// Bytes of the generated data set: every example's inputs and target as f32.
fn data_bytes(experiment: &Experiment) -> u64 {
    let (inputs, _) = task_shape(&experiment.task);
    let examples = match experiment.task {
        TaskSpec::Spirals { points, .. }
        | TaskSpec::Circles { points, .. }
        | TaskSpec::Checkerboard { points, .. }
        | TaskSpec::Blobs { points, .. }
        | TaskSpec::Teacher { points, .. } => points as u64,
        TaskSpec::Adding { test_points, .. }
        | TaskSpec::Copy { test_points, .. }
        | TaskSpec::DelayedXor { test_points, .. } => test_points as u64,
        TaskSpec::Digits => 1797,
        TaskSpec::Mnist1d => 5000,
        TaskSpec::Csv { .. } => 0,
    };
    let steps = sequence_steps(&experiment.task);
    examples
        .saturating_mul(steps)
        .saturating_mul(inputs + 1)
        .saturating_mul(F32)
}

/// Copies of every parameter the optimiser keeps: the weights, their gradients, and the
/// momentum buffer (SGD) or the two moment estimates (Adam).
fn parameter_copies(optimizer: &OptimizerSpec) -> u64 {
    match optimizer {
        OptimizerSpec::Sgd { .. } => 3,
        OptimizerSpec::Adam { .. } => 4,
    }
}

/// Parameters of the network: for an MLP the input projection, `depth` hidden layers each with
/// its highway gate (the gates exist from step 0 in every mode), a head reading every hidden
/// layer in dense mode (one otherwise), and the auxiliary heads; for a recurrent net the gate
/// maps of all three cells and the head.
pub fn parameter_count(experiment: &Experiment) -> u64 {
    let model = &experiment.model;
    let (inputs, outputs) = task_shape(&experiment.task);
    let width = model.width as u64;
    match model.kind {
        ModelKind::Mlp => {
            let depth = model.depth as u64;
            let input = inputs * width + width;
            let hidden = depth.saturating_mul(2 * (width * width + width));
            let head_inputs = if model.skip == SkipMode::Dense {
                depth
            } else {
                1
            };
            let head = head_inputs * width * outputs + outputs;
            let aux_heads = depth / model.aux.every.max(1) as u64;
            let aux = aux_heads * (width * outputs + outputs);
            // γ, β, BatchNorm's running mean and variance, and α: every layer holds them from
            // step 0 whatever the switches say.
            let norms = depth.saturating_mul(4 * width + 1);
            input
                .saturating_add(hidden)
                .saturating_add(head)
                .saturating_add(aux)
                .saturating_add(norms)
        }
        ModelKind::Rnn => {
            let gate = inputs * width + width * width + width;
            RNN_GATE_MAPS * gate + width * outputs + outputs
        }
    }
}

/// Estimated peak bytes a run of `experiment` needs: the parameters with their gradients and
/// optimiser state, the activations one training batch keeps for the backward pass, and the
/// generated data set. A CSV file's own rows are not included (see [`csv_bytes`]).
pub fn estimate_bytes(experiment: &Experiment) -> u64 {
    let params = parameter_count(experiment)
        .saturating_mul(parameter_copies(&experiment.optimizer))
        .saturating_mul(F32);
    let model = &experiment.model;
    let per_example = match model.kind {
        ModelKind::Mlp => (model.depth as u64)
            .saturating_mul(model.width as u64)
            .saturating_mul(MLP_BUFFERS_PER_UNIT),
        ModelKind::Rnn => sequence_steps(&experiment.task)
            .saturating_mul(model.width as u64)
            .saturating_mul(RNN_BUFFERS_PER_UNIT),
    };
    let activations = (experiment.batch as u64)
        .saturating_mul(per_example)
        .saturating_mul(F32);
    params
        .saturating_add(activations)
        .saturating_add(data_bytes(experiment))
}

/// Bytes a CSV task file takes once read: its text, plus the parsed f32 table, which holds at
/// most one number per two bytes of text (a digit and a separator).
pub fn csv_bytes(file_len: u64) -> u64 {
    file_len.saturating_add(file_len / 2 * F32)
}

/// The memory the kernel says can be given to a new process without swapping
/// (`MemAvailable` in /proc/meminfo); `None` where that file does not exist or cannot be read.
pub fn memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// `MemAvailable:  123456 kB` → bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// `1.5 GB`, `12.0 MB`: sizes for a person (powers of 1000, like `free -h --si` and disks).
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Refuses `experiments` (runs that will train at the same time) when together their estimate
/// exceeds the memory available now, naming both figures; a CSV task's file size counts too,
/// resolved against `base_dir` like the trainer does.
pub fn check_fits(experiments: &[Experiment], base_dir: Option<&Path>) -> Result<()> {
    let Some(available) = memory_available() else {
        return Ok(());
    };
    check_fits_within(experiments, base_dir, available)
}

/// [`check_fits`] against a given number of bytes instead of what the machine has now.
pub fn check_fits_within(
    experiments: &[Experiment],
    base_dir: Option<&Path>,
    available: u64,
) -> Result<()> {
    let mut total = 0u64;
    for experiment in experiments {
        total = total.saturating_add(estimate_bytes(experiment));
        if let TaskSpec::Csv { path, .. } = &experiment.task {
            let file = match base_dir {
                Some(dir) if Path::new(path).is_relative() => dir.join(path),
                _ => Path::new(path).to_path_buf(),
            };
            // A missing file is reported, with its path, by the CSV reader itself.
            if let Ok(meta) = std::fs::metadata(&file) {
                total = total.saturating_add(csv_bytes(meta.len()));
            }
        }
    }
    if total > NOTEWORTHY_BYTES && total <= available {
        // Big but possible: said up front, so a slow start is not taken for a hang.
        crate::out::tell!(
            "note: this needs about {} of the {} of memory available now",
            human_bytes(total),
            human_bytes(available)
        );
    }
    if total > available {
        let what = match experiments {
            [one] => match one.model.kind {
                ModelKind::Mlp => format!(
                    "an MLP of depth {} and width {}",
                    one.model.depth, one.model.width
                ),
                ModelKind::Rnn => format!(
                    "a recurrent net of width {} over {} time steps",
                    one.model.width,
                    sequence_steps(&one.task)
                ),
            },
            many => format!("{} runs at once", many.len()),
        };
        bail!(
            "{what} needs about {} (parameters, optimiser state, activations of one batch, data), \
             more than the {} of memory available now (MemAvailable in /proc/meminfo); \
             lower model.depth, model.width or batch",
            human_bytes(total),
            human_bytes(available)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_preset;

    #[test]
    fn an_mlp_estimate_matches_a_hand_count() {
        let mut e = load_preset("plain-deep").expect("built-in");
        // Spirals: 2 inputs, 2 classes; SGD; 4 layers of 10; batch 5; aux every 2; 100 points.
        e.task = TaskSpec::Spirals {
            points: 100,
            noise: 0.1,
        };
        e.model.depth = 4;
        e.model.width = 10;
        e.model.skip = SkipMode::Plain;
        e.model.aux.every = 2;
        e.batch = 5;
        e.optimizer = OptimizerSpec::Sgd {
            lr: 0.1,
            momentum: 0.9,
            warmup: 0,
        };
        // input 2·10+10 = 30; hidden 4·2·(100+10) = 880; head 10·2+2 = 22; aux 2·(20+2) = 44;
        // norms and branch factors 4·(4·10+1) = 164.
        assert_eq!(parameter_count(&e), 30 + 880 + 22 + 44 + 164);
        let params = 1140 * 3 * 4;
        let activations = 5 * 4 * 10 * 8 * 4;
        let data = 100 * 3 * 4;
        assert_eq!(estimate_bytes(&e), params + activations + data);
    }

    #[test]
    fn an_rnn_estimate_matches_a_hand_count() {
        let mut e = load_preset("rnn-lstm-adding").expect("built-in");
        e.task = TaskSpec::Adding {
            length: 10,
            test_points: 20,
        };
        e.model.width = 4;
        e.batch = 3;
        e.optimizer = OptimizerSpec::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup: 0,
        };
        // A gate map: 2·4 + 16 + 4 = 28; eight maps; head 4·1 + 1.
        assert_eq!(parameter_count(&e), 8 * 28 + 5);
        let params = 229 * 4 * 4;
        let activations = 3 * 10 * 4 * 16 * 4;
        let data = 20 * 10 * 3 * 4;
        assert_eq!(estimate_bytes(&e), params + activations + data);
    }

    #[test]
    fn a_net_too_big_is_refused_with_both_figures() {
        let mut e = load_preset("plain-deep").expect("built-in");
        e.model.depth = 512;
        e.model.width = 1024;
        let needed = human_bytes(estimate_bytes(&e));
        let error = check_fits_within(&[e], None, 4_000_000_000)
            .expect_err("too big")
            .to_string();
        assert!(error.contains("depth 512 and width 1024"), "{error}");
        assert!(error.contains("4.0 GB of memory available"), "{error}");
        assert!(error.contains(&format!("needs about {needed}")), "{error}");
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let text = "MemTotal:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_mem_available(text), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }
}
