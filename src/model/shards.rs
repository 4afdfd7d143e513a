//! One MLP training step with the batch cut into shards: each shard runs the forward and
//! backward passes on its own workspace, on its own thread when the run has two, and the
//! shards' gradients, losses and measurements are combined in shard order.
//!
//! The number of shards is decided in one place ([`shard_count`]) from the network and the
//! batch alone, never from the machine, so a seed gives the same bits on any core count and
//! with one thread or two. Cutting changes only the rounding of the batch sums (each shard's
//! products sum over its own rows), so a sharded step equals the unsharded one to rounding;
//! `tests/numerics/shards.rs` checks both claims.
//!
//! Each shard carries its backward signal at its own power-of-two scale (`scaled`). Every
//! parameter's gradient leaves its shard at true f32 scale, with parts below f32's normal
//! range (under 2^-126 per entry) flushed, and the shards' parts are added in order. The
//! measured ‖∂L/∂W_l‖ is combined from the shards' rescaled products at the larger of their
//! exponents, so it stays exact far below f32's range, as ‖∂L/∂h_l‖ does (combined in log
//! space from each shard's Σ(∂L/∂h)² and exponent).

use super::engine::{LayerStats, Net, Workspace, slot};
use super::loss::Targets;
use crate::parallel::run_shards;

/// Shards a training batch is cut into when its rows never meet.
pub const SHARDS: usize = 2;

/// Fewest rows worth a shard of their own.
const MIN_SHARD_ROWS: usize = 8;

/// How many shards a training batch of `rows` rows is cut into: the one place that decides.
///
/// Shards are free to split rows that every layer treats independently; BatchNorm couples the
/// rows through its batch statistics (a shard would normalise with its own rows' statistics),
/// so a net with it on is one shard.
pub fn shard_count(net: &Net, rows: usize) -> usize {
    if net.couples_rows() {
        return 1;
    }
    (rows / MIN_SHARD_ROWS).clamp(1, SHARDS)
}

/// One shard's rows and buffers.
#[derive(Clone, Debug, Default)]
struct Shard {
    start: usize,
    rows: usize,
    work: Workspace,
    /// This shard's parameter gradients (shard 0 writes into the caller's instead).
    grads: Vec<Vec<f32>>,
}

/// The training step's workspaces and what it measured, combined over the shards.
#[derive(Clone, Debug, Default)]
pub struct ShardedStep {
    shards: Vec<Shard>,
    /// Threads the shards may run on (results do not depend on it).
    threads: usize,
    /// Threads the last step ran on.
    used: usize,
    /// The network the shards' gradient buffers were last written for.
    seen: Option<Net>,
    rows: usize,
    logits: Vec<f32>,
    /// Per hidden layer, input side first (see `LayerStats`), over the whole batch.
    pub stats: Vec<LayerStats>,
    /// The main loss of the batch (mean over its rows).
    pub main_loss: f32,
    /// Each auxiliary loss (empty when they are off).
    pub aux_losses: Vec<f32>,
    /// Main loss plus the weighted auxiliary losses.
    pub total_loss: f32,
    /// Σ(∂L/∂θ)² of the f32 gradient over every parameter the switches use.
    pub grad_sumsq: f64,
    /// Each parameter's sums in the last combine.
    param_sums: Vec<ParamSums>,
}

impl ShardedStep {
    /// A step running its shards on up to `threads` threads.
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            ..Self::default()
        }
    }

    /// Lets the shards run on up to `threads` threads (the numbers do not change).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Threads the shards may run on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Threads the last step ran on.
    pub fn threads_used(&self) -> usize {
        self.used.max(1)
    }

    /// Rows of the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The output logits of the last batch, rows × outputs.
    pub fn outputs(&self) -> &[f32] {
        &self.logits
    }

    /// Folds BatchNorm's batch statistics of the last step into the running estimates in
    /// `params`; that step ran as one shard whenever BatchNorm was on (`shard_count`).
    pub fn fold_batch_statistics(&self, net: &Net, params: &mut [Vec<f32>]) {
        if let Some(first) = self.shards.first() {
            first.work.fold_batch_statistics(net, params);
        }
    }

    /// Forward and backward over the batch `x` (rows × input) in its shards; writes every
    /// parameter gradient the switches use into `grads` (`params_mut` order).
    pub fn run(
        &mut self,
        net: &Net,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        x: &[f32],
        targets: Targets,
    ) {
        let rows = x.len() / net.input.max(1);
        let count = shard_count(net, rows);
        self.cut(rows, count, grads);
        self.rows = rows;
        if count == 1 {
            // The whole batch in one pass, straight into `grads`: the unsharded step.
            let work = &mut self.shards[0].work;
            work.forward(net, params, x, targets, &[]);
            work.backward(net, params, grads, x, targets);
            self.used = 1;
            self.take_whole(net);
            return;
        }
        if self.seen.as_ref() != Some(net) {
            // A switch changed which parameters the backward pass writes: zero the shards'
            // buffers so a parameter no longer used adds nothing to the sums.
            for g in self.shards.iter_mut().flat_map(|s| &mut s.grads) {
                g.iter_mut().for_each(|v| *v = 0.0);
            }
            self.seen = Some(net.clone());
        }
        let input = net.input;
        self.used = run_shards(&mut self.shards, self.threads, |shard| {
            let range = shard.start..shard.start + shard.rows;
            let x = &x[range.start * input..range.end * input];
            let targets = rows_of(targets, range, net.outputs);
            shard.work.forward(net, params, x, targets, &[]);
            shard
                .work
                .backward(net, params, &mut shard.grads, x, targets);
        });
        self.combine(net, grads);
    }

    /// Sizes the shards for `count` shards of `rows` rows (the first ones one row longer when
    /// it does not divide), keeping their buffers.
    fn cut(&mut self, rows: usize, count: usize, grads: &[Vec<f32>]) {
        self.shards.resize_with(count, Shard::default);
        let mut start = 0;
        for (i, shard) in self.shards.iter_mut().enumerate() {
            shard.start = start;
            shard.rows = rows / count + usize::from(i < rows % count);
            start += shard.rows;
            shard.work.batch_rows = if count > 1 { rows } else { 0 };
            shard.work.keep_rescaled = count > 1;
            if count > 1 && shard.grads.len() != grads.len() {
                shard.grads = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            }
        }
    }

    /// The measurements of an unsharded pass, as they are.
    fn take_whole(&mut self, net: &Net) {
        let whole = &self.shards[0].work;
        self.logits.clear();
        self.logits
            .extend_from_slice(&whole.outputs(net)[..self.rows * net.outputs]);
        self.stats.clone_from(&whole.stats);
        self.main_loss = whole.main_loss;
        self.aux_losses.clone_from(&whole.aux_losses);
        self.total_loss = whole.total_loss;
        self.grad_sumsq = whole.grad_sumsq;
    }

    /// Combines the shards' results into the batch's, in shard order, writing the batch's
    /// gradients into `grads`.
    fn combine(&mut self, net: &Net, grads: &mut [Vec<f32>]) {
        self.param_sums.resize(grads.len(), ParamSums::default());
        sum_all_into(net, grads, &self.shards, &mut self.param_sums, self.threads);
        let sums = &self.param_sums;
        let shards = &self.shards;
        let first = &shards[0].work;
        self.logits.clear();
        for shard in shards {
            let n = shard.rows * net.outputs;
            self.logits.extend_from_slice(&shard.work.outputs(net)[..n]);
        }
        let rows = self.rows.max(1) as f64;
        let mean = |value: &dyn Fn(&Workspace) -> f32| {
            let sum: f64 = shards
                .iter()
                .map(|s| f64::from(value(&s.work)) * s.rows as f64)
                .sum();
            (sum / rows) as f32
        };
        self.main_loss = mean(&|w| w.main_loss);
        self.aux_losses.clear();
        let mut total = self.main_loss;
        for i in 0..first.aux_losses.len() {
            let value = mean(&|w| w.aux_losses[i]);
            self.aux_losses.push(value);
            total += value * net.aux_weight;
        }
        self.total_loss = total;
        self.stats.clear();
        for l in 0..net.depth {
            let mut stats = LayerStats::default();
            for shard in shards {
                let s = &shard.work.stats[l];
                stats.act_sumsq += s.act_sumsq;
                stats.gate_sum += s.gate_sum;
            }
            (stats.grad_sumsq, stats.grad_exp) = combine_log(shards.iter().map(|s| {
                let s = &s.work.stats[l];
                (s.grad_sumsq, s.grad_exp)
            }));
            let w = &sums[slot::weight(l)];
            stats.weight_true_sumsq = w.true_sumsq;
            // Below (or above) f32's range, the norm combined from the rescaled products.
            (stats.weight_sumsq, stats.weight_exp) = w.rescaled.unwrap_or((w.true_sumsq, 0));
            self.stats.push(stats);
        }
        // In parameter order, as the sum always was.
        self.grad_sumsq = sums.iter().map(|p| p.true_sumsq).sum();
    }
}

/// What the combine measures of one parameter's batch gradient.
#[derive(Clone, Copy, Debug, Default)]
struct ParamSums {
    /// Σ(∂L/∂θ)² of the f32 gradient.
    true_sumsq: f64,
    /// For a hidden layer's weight that a shard computed at a nonzero exponent: Σ(∂L/∂W_l)²
    /// at the larger of the shards' exponents, from their rescaled products.
    rescaled: Option<(f64, i32)>,
}

/// Every parameter's gradient summed over the shards into `grads` ([`sum_into`]), with its
/// sums in `sums`; the parameters are cut into two runs of about equal size, one per thread.
/// Each parameter is summed whole by one thread, so the bits do not depend on `threads`.
fn sum_all_into(
    net: &Net,
    grads: &mut [Vec<f32>],
    shards: &[Shard],
    sums: &mut [ParamSums],
    threads: usize,
) {
    let split = crate::parallel::balanced_split(grads.iter().map(Vec::len));
    let (grads_a, grads_b) = grads.split_at_mut(split);
    let (sums_a, sums_b) = sums.split_at_mut(split);
    let mut halves = [(0, grads_a, sums_a), (split, grads_b, sums_b)];
    run_shards(&mut halves, threads, |(start, grads, sums)| {
        for (k, (dst, sum)) in grads.iter_mut().zip(sums.iter_mut()).enumerate() {
            let index = *start + k;
            sum.true_sumsq = sum_into(dst, shards, index);
            // Read while the shards' parts are still in this core's cache.
            sum.rescaled = slot::weight_layer(index, net.depth)
                .filter(|&l| shards.iter().any(|s| s.work.stats[l].weight_exp != 0))
                .map(|l| rescaled_norm(shards, index, l));
        }
    });
}

/// dst ← the shards' parameter `index` added in shard order; returns Σ(dst)².
fn sum_into(dst: &mut [f32], shards: &[Shard], index: usize) -> f64 {
    let (first, rest) = match shards {
        [first, rest @ ..] => (first, rest),
        [] => return 0.0,
    };
    match rest {
        [second] => add_measured(dst, &first.grads[index], &second.grads[index]),
        _ => {
            dst.copy_from_slice(&first.grads[index]);
            let mut sumsq = crate::metrics::sum_squares(dst);
            for shard in rest {
                sumsq = add_measured_in_place(dst, &shard.grads[index]);
            }
            sumsq
        }
    }
}

/// The rows `range` of a batch's targets (`outputs` values per row for regression).
fn rows_of(targets: Targets<'_>, range: std::ops::Range<usize>, outputs: usize) -> Targets<'_> {
    match targets {
        Targets::Labels(labels) => Targets::Labels(&labels[range]),
        Targets::Values(values) => {
            Targets::Values(&values[range.start * outputs..range.end * outputs])
        }
    }
}

/// Σv² of vectors given as (Σv² at exponent e) parts, as one (Σv², e) at the largest exponent
/// among the nonzero parts; exact where the parts are far apart (the smaller ones vanish in
/// f64 only when they are below its precision anyway).
fn combine_log(parts: impl Iterator<Item = (f64, i32)> + Clone) -> (f64, i32) {
    let nonzero = parts.clone().filter(|&(sumsq, _)| sumsq != 0.0);
    let Some(top) = nonzero.clone().map(|(_, e)| e).max() else {
        return (parts.map(|(s, _)| s).sum(), 0);
    };
    let sum = nonzero
        .map(|(sumsq, e)| sumsq * f64::from(2 * (e - top).max(-1000)).exp2())
        .sum();
    (sum, top)
}

/// Σ(∂L/∂W_l)² of the batch (W_l is parameter `index`), at the largest of the shards'
/// exponents, from each shard's rescaled product (its f32 gradient where its exponent is 0).
fn rescaled_norm(shards: &[Shard], index: usize, l: usize) -> (f64, i32) {
    let exponent = |s: &Shard| s.work.stats[l].weight_exp;
    let Some(top) = shards.iter().map(exponent).max() else {
        return (0.0, 0);
    };
    // A shard's values and the factor bringing them to exponent `top`.
    fn part(s: &Shard, index: usize, l: usize, top: i32) -> (&[f32], f64) {
        let e = s.work.stats[l].weight_exp;
        let values = if e != 0 {
            s.work.rescaled_weight_grad(l)
        } else {
            &s.grads[index]
        };
        (values, f64::from((e - top).max(-1000)).exp2())
    }
    let part = |s| part(s, index, l, top);
    let len = shards.iter().map(|s| part(s).0.len()).min().unwrap_or(0);
    let mut sumsq = 0.0f64;
    match shards {
        [a, b] => {
            let ((a, fa), (b, fb)) = (part(a), part(b));
            sumsq = sum_squares_combined(&a[..len], fa, &b[..len], fb);
        }
        _ => {
            for i in 0..len {
                let value: f64 = shards
                    .iter()
                    .map(|s| {
                        let (values, factor) = part(s);
                        f64::from(values[i]) * factor
                    })
                    .sum();
                sumsq += value * value;
            }
        }
    }
    (sumsq, top)
}

crate::model::kernels::multiversion! {
/// Σ(a·fa + b·fb)² in f64 over 32 fixed lanes (lane j takes the elements at j mod 32, the
/// lanes are added in order, the tail last), as `metrics::sum_squares` sums: one chain of
/// dependent adds waited on the adder at every element, serially, after the step.
fn sum_squares_combined(a: &[f32], fa: f64, b: &[f32], fb: f64) -> f64 {
    const LANES: usize = 32;
    let term = |x: f32, y: f32| {
        let value = f64::from(x) * fa + f64::from(y) * fb;
        value * value
    };
    let mut lanes = [0.0f64; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += term(x, y);
        }
    }
    let mut sum = lanes.iter().sum::<f64>();
    for (&x, &y) in a_rest.iter().zip(b_rest) {
        sum += term(x, y);
    }
    sum
}
}

crate::model::kernels::multiversion! {
/// dst ← a + b; returns Σ(dst)² in f64.
fn add_measured(dst: &mut [f32], a: &[f32], b: &[f32]) -> f64 {
    dst.iter_mut().zip(a.iter().zip(b)).for_each(|(d, (&a, &b))| *d = a + b);
    crate::metrics::sum_squares(dst)
}
}

crate::model::kernels::multiversion! {
/// dst ← dst + part; returns Σ(dst)² in f64.
fn add_measured_in_place(dst: &mut [f32], part: &[f32]) -> f64 {
    dst.iter_mut().zip(part).for_each(|(d, &p)| *d += p);
    crate::metrics::sum_squares(dst)
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_combine_at_the_larger_exponent() {
        let (sum, e) = combine_log([(4.0, -10), (1.0, -11)].into_iter());
        assert_eq!(e, -10);
        assert_eq!(sum, 4.0 + 0.25);
        let (sum, e) = combine_log([(0.0, -500), (9.0, 3)].into_iter());
        assert_eq!((sum, e), (9.0, 3));
        assert_eq!(combine_log([(0.0, 7), (0.0, -2)].into_iter()), (0.0, 0));
    }

    #[test]
    fn the_combined_sum_of_squares_agrees_with_the_plain_sum() {
        for len in [0usize, 1, 31, 32, 33, 4096, 4100] {
            let a: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.91).cos()).collect();
            let (fa, fb) = (0.25, 2f64.powi(-30));
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| (f64::from(x) * fa + f64::from(y) * fb).powi(2))
                .sum();
            let lanes = sum_squares_combined(&a, fa, &b, fb);
            assert!(
                (lanes - plain).abs() <= 1e-12 * plain.max(1e-300),
                "len {len}"
            );
        }
    }

    #[test]
    fn weight_slots_map_back_to_their_layers() {
        for depth in [1, 3, 8] {
            for l in 0..depth {
                assert_eq!(slot::weight_layer(slot::weight(l), depth), Some(l));
                assert_eq!(slot::weight_layer(slot::bias(l), depth), None);
                assert_eq!(slot::weight_layer(slot::gate_weight(l), depth), None);
            }
            assert_eq!(slot::weight_layer(slot::head_weight(depth), depth), None);
            assert_eq!(slot::weight_layer(slot::INPUT_WEIGHT, depth), None);
            assert_eq!(slot::weight_layer(slot::INPUT_BIAS, depth), None);
        }
    }

    #[test]
    fn a_batch_is_cut_into_two_shards_unless_it_is_tiny() {
        let net = Net {
            act: crate::config::Activation::Tanh,
            skip: crate::config::SkipMode::Plain,
            aux_enabled: false,
            aux_weight: 0.0,
            aux_layers: Vec::new(),
            input: 2,
            width: 4,
            outputs: 2,
            depth: 1,
            norm: crate::config::NormKind::None,
            norm_place: crate::config::NormPlace::Pre,
            branch_scale: crate::config::BranchScale::One,
        };
        assert_eq!(shard_count(&net, 128), SHARDS);
        let batch_norm = Net {
            norm: crate::config::NormKind::BatchNorm,
            ..net.clone()
        };
        assert_eq!(
            shard_count(&batch_norm, 128),
            1,
            "BatchNorm couples the rows"
        );
        let layer_norm = Net {
            norm: crate::config::NormKind::LayerNorm,
            ..net.clone()
        };
        assert_eq!(shard_count(&layer_norm, 128), SHARDS);
        assert_eq!(shard_count(&net, 16), 2);
        assert_eq!(shard_count(&net, 15), 1);
        assert_eq!(shard_count(&net, 0), 1);
    }
}
