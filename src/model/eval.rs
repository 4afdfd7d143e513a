//! Scoring a whole split (the test set every few steps, lesions, the training split) in fixed
//! shards of rows run side by side, as the training step's batch is.
//!
//! Rows never meet in evaluation (BatchNorm reads its running estimates there), so a shard's
//! loss and correct count depend on its rows alone; the shards are fixed by the split's size,
//! never by the machine, and added in shard order, so a seed gives the same bits on one thread
//! or two.

use super::engine::{Net, Workspace};
use super::loss::Targets;
use super::trainer::correct_rows;
use crate::parallel::run_shards;
use crate::tasks::{Split, TaskKind};

/// Shards a split is scored in.
const SHARDS: usize = 2;

/// Most rows a shard runs at once, so a large split does not hold every activation at once.
const CHUNK: usize = 4096;

/// One shard's rows, workspace and result.
#[derive(Clone, Debug, Default)]
struct EvalShard {
    start: usize,
    rows: usize,
    work: Workspace,
    /// Σ over the shard's rows of the main loss.
    loss_sum: f64,
    correct: usize,
}

/// Workspaces kept between evaluations, so scoring the test set allocates nothing once warm.
#[derive(Clone, Debug, Default)]
pub struct ShardedEval {
    shards: Vec<EvalShard>,
}

/// A split's mean main loss and its accuracy (None for regression).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Mean main loss over the split's rows.
    pub loss: f64,
    /// Fraction of rows whose arg-max logit is the label (classification only).
    pub accuracy: Option<f64>,
}

impl ShardedEval {
    /// Scores `split` with the network `net` at `values`, the blocks in `lesion` removed,
    /// running its shards on up to `threads` threads (the numbers do not depend on it).
    #[allow(clippy::too_many_arguments)]
    pub fn score(
        &mut self,
        net: &Net,
        values: &[Vec<f32>],
        split: &Split,
        dims: usize,
        kind: TaskKind,
        lesion: &[usize],
        threads: usize,
    ) -> Score {
        let count = if split.len >= 16 { SHARDS } else { 1 };
        self.shards.resize_with(count, EvalShard::default);
        let mut start = 0;
        for (i, shard) in self.shards.iter_mut().enumerate() {
            shard.start = start;
            shard.rows = split.len / count + usize::from(i < split.len % count);
            start += shard.rows;
        }
        let outputs = net.outputs;
        run_shards(&mut self.shards, threads, |shard| {
            shard.loss_sum = 0.0;
            shard.correct = 0;
            let end = shard.start + shard.rows;
            let mut from = shard.start;
            while from < end {
                let to = (from + CHUNK).min(end);
                let labels = split.labels.get(from..to).unwrap_or(&[]);
                let values_rows = split
                    .targets
                    .get(from * outputs..to * outputs)
                    .unwrap_or(&[]);
                let targets = match kind {
                    TaskKind::Classification { .. } => Targets::Labels(labels),
                    TaskKind::Regression { .. } => Targets::Values(values_rows),
                };
                let inputs = &split.inputs[from * dims..to * dims];
                shard
                    .work
                    .forward_eval(net, values, inputs, targets, lesion);
                shard.loss_sum += f64::from(shard.work.main_loss) * (to - from) as f64;
                shard.correct += correct_rows(shard.work.outputs(net), labels, kind);
                from = to;
            }
        });
        let rows = split.len.max(1) as f64;
        let loss = self.shards.iter().map(|s| s.loss_sum).sum::<f64>() / rows;
        let correct: usize = self.shards.iter().map(|s| s.correct).sum();
        Score {
            loss,
            accuracy: matches!(kind, TaskKind::Classification { .. })
                .then(|| correct as f64 / rows),
        }
    }
}
