//! `gradlab bench`: training throughput of the lab's networks, measured in one run.

pub mod overhead;
pub mod peers;

use crate::config::{CellKind, SkipMode, apply_overrides, load_preset};
use crate::learner::{Learner, build_learner};
use anyhow::Result;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One measured configuration (the `--json` contract of `gradlab bench`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// "plain", "residual", "highway", or a recurrent cell: "vanilla", "gru", "lstm".
    pub model: String,
    /// Hidden layers (MLPs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// Sequence length T (recurrent nets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// Units per hidden layer (hidden state size of a recurrent net).
    pub width: usize,
    /// Examples per step.
    pub batch: usize,
    /// Whether per-layer metrics were read every step.
    pub metrics: bool,
    /// Training steps per second.
    pub steps_per_sec: f64,
    /// Steps timed.
    pub steps: u64,
    /// PyTorch eager on the same configuration, when measured in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torch_steps_per_sec: Option<f64>,
    /// JAX jit on the same configuration, when measured in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jax_steps_per_sec: Option<f64>,
    /// gradlab's steps/s over PyTorch's (above 1: gradlab is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_torch: Option<f64>,
    /// gradlab's steps/s over JAX's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_jax: Option<f64>,
    /// CPU cores the configuration ran on.
    pub cores: usize,
    /// Matrix-product work of one step in GFLOP (2 per multiply-add; element-wise work is
    /// not counted).
    pub gflop_per_step: f64,
    /// The machine's f32 peak per core (GFLOP/s), measured in the same run (`peak_gflops`).
    pub peak_gflops: f64,
    /// Product throughput as a fraction of `peak_gflops × cores`.
    pub fraction_of_peak: f64,
}

impl BenchResult {
    /// A result with no peer figures attached yet.
    #[allow(clippy::too_many_arguments)]
    fn new(
        model: &str,
        depth: Option<usize>,
        length: Option<usize>,
        width: usize,
        batch: usize,
        metrics: bool,
        (steps_per_sec, steps): (f64, u64),
    ) -> Self {
        Self {
            model: model.into(),
            depth,
            length,
            width,
            batch,
            metrics,
            steps_per_sec,
            steps,
            torch_steps_per_sec: None,
            jax_steps_per_sec: None,
            ratio_torch: None,
            ratio_jax: None,
            cores: 1,
            gflop_per_step: 0.0,
            peak_gflops: 0.0,
            fraction_of_peak: 0.0,
        }
    }

    /// Notes the cores the configuration ran on.
    fn on_cores(mut self, cores: usize) -> Self {
        self.cores = cores.max(1);
        self
    }

    /// Sets the work per step and the fraction of `peak` (GFLOP/s per core) it reached.
    fn with_work(mut self, gflop_per_step: f64, peak: f64) -> Self {
        self.gflop_per_step = gflop_per_step;
        self.peak_gflops = peak;
        self.fraction_of_peak = if peak > 0.0 {
            gflop_per_step * self.steps_per_sec / (peak * self.cores as f64)
        } else {
            0.0
        };
        self
    }

    /// Attaches a peer's figure for the same model, depth or length, and metrics setting.
    pub fn attach(&mut self, peer: &peers::PeerResult) {
        let same_size = match (peer.depth, peer.length) {
            (Some(depth), None) => self.depth == Some(depth),
            (None, Some(length)) => self.length == Some(length),
            _ => false,
        };
        if !same_size || peer.arch != self.model || peer.gn != self.metrics {
            return;
        }
        let ratio = (peer.steps_per_s > 0.0).then(|| self.steps_per_sec / peer.steps_per_s);
        match peer.fw.as_str() {
            "torch" => {
                self.torch_steps_per_sec = Some(peer.steps_per_s);
                self.ratio_torch = ratio;
            }
            "jax" => {
                self.jax_steps_per_sec = Some(peer.steps_per_s);
                self.ratio_jax = ratio;
            }
            _ => {}
        }
    }
}

/// Which configurations to measure and for how long.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    /// Depths to measure.
    pub depths: Vec<usize>,
    /// Skip modes to measure.
    pub models: Vec<SkipMode>,
    /// Sequence lengths for the recurrent cells (empty: no recurrent benchmark).
    pub lengths: Vec<usize>,
    /// Depths of the deep vanishing row (plain tanh, σ_w² = 0.5, σ_b² = 0: the gradient falls
    /// ~3 dB a layer, far below f32's range at 256), where subnormal arithmetic once cost 100×.
    pub deep: Vec<usize>,
    /// Minimum wall time per configuration.
    pub min_time: Duration,
}

impl Default for BenchPlan {
    fn default() -> Self {
        Self {
            depths: vec![8, 32, 64],
            models: vec![
                SkipMode::Plain,
                SkipMode::Residual { scale: 1.0 },
                SkipMode::Highway,
            ],
            lengths: vec![50, 200],
            deep: vec![DEEP_DEPTH],
            min_time: Duration::from_secs(2),
        }
    }
}

/// Depth of the deep vanishing row.
pub const DEEP_DEPTH: usize = 256;

/// The machine's f32 peak on one core, in GFLOP/s: the best throughput of a large
/// (512 × 512 × 512) product through the same `gemm` the networks use, over `time`.
pub fn peak_gflops(time: Duration) -> f64 {
    use crate::model::kernels::{Operand, matmul};
    let n = 512;
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 5) as f32 - 2.0) * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let flop = 2.0 * (n * n * n) as f64;
    let start = Instant::now();
    let mut best = 0.0f64;
    while start.elapsed() < time || best == 0.0 {
        let t = Instant::now();
        matmul(
            &mut c,
            n,
            n,
            n,
            Operand::plain(&a, n),
            Operand::plain(&b, n),
            false,
        );
        let seconds = t.elapsed().as_secs_f64();
        if seconds > 0.0 {
            best = best.max(flop / seconds / 1e9);
        }
    }
    std::hint::black_box(&c);
    best
}

/// Product work of one MLP step (batch × width × width products: forward, ∂L/∂h, ∂L/∂W).
pub fn mlp_gflop(skip: SkipMode, depth: usize, width: usize, batch: usize) -> f64 {
    let products_per_layer = if matches!(skip, SkipMode::Highway) {
        2.0
    } else {
        1.0
    };
    3.0 * products_per_layer * 2.0 * (batch * width * width * depth) as f64 / 1e9
}

/// Product work of one recurrent step: per time step, the recurrent product of every gate,
/// forward and both backward products.
pub fn rnn_gflop(cell: CellKind, length: usize, width: usize, batch: usize) -> f64 {
    let gates = match cell {
        CellKind::Vanilla => 1.0,
        CellKind::Gru => 3.0,
        CellKind::Lstm => 4.0,
    };
    3.0 * gates * 2.0 * (batch * width * width * length) as f64 / 1e9
}

fn model_name(skip: SkipMode) -> &'static str {
    match skip {
        SkipMode::Plain => "plain",
        SkipMode::Residual { .. } => "residual",
        SkipMode::Highway => "highway",
        SkipMode::Dense => "dense",
    }
}

/// The `metrics_every` override: every step, or (off) never within a benchmark.
fn metrics_every(metrics: bool) -> String {
    let every = if metrics { 1 } else { 1_000_000 };
    format!("metrics_every={every}")
}

/// Builds built-in preset `preset` with `overrides` and times its training steps.
/// Returns steps/s, steps timed and the threads the steps ran on.
fn time_preset(
    preset: &str,
    overrides: &[String],
    min_time: Duration,
) -> Result<((f64, u64), usize)> {
    let experiment = apply_overrides(&load_preset(preset)?, overrides)?;
    let mut trainer = build_learner(experiment, None)?;
    let timing = time_steps(trainer.as_mut(), min_time);
    Ok((timing, trainer.threads_used()))
}

/// Timed windows per configuration; a row is their median, as the peers report the median of
/// their repetitions (a window in which the shared machine preempted a shard does not set it).
pub const TIMED_WINDOWS: u32 = 5;

/// Times `trainer` in [`TIMED_WINDOWS`] windows that together last at least `min_time` (each
/// at least 20 steps) after a short warm-up, stepping it as a run's trainer thread does with
/// the per-layer metrics on the preset's cadence. Returns the median window's steps/s and the
/// steps timed in all. No live analyses run (path statistics and spectra are the dashboard's,
/// on their own cadence) and the callers switch the test-set scoring off: the peers do neither.
fn time_steps(trainer: &mut dyn Learner, min_time: Duration) -> (f64, u64) {
    let every = (trainer.experiment().metrics_every as u64).max(1);
    let step = |trainer: &mut dyn Learner| {
        let measure = trainer.step().is_multiple_of(every);
        trainer.train_step(true, measure);
    };
    // Warm-up: first-touch page faults and allocator growth are not what we measure.
    for _ in 0..10 {
        step(trainer);
    }
    let window = min_time / TIMED_WINDOWS;
    let mut rates = Vec::with_capacity(TIMED_WINDOWS as usize);
    let mut total = 0u64;
    for _ in 0..TIMED_WINDOWS {
        let start = Instant::now();
        let mut steps = 0u64;
        while start.elapsed() < window || steps < 20 {
            for _ in 0..10 {
                step(trainer);
            }
            steps += 10;
        }
        rates.push(steps as f64 / start.elapsed().as_secs_f64());
        total += steps;
    }
    (overhead::median(&rates), total)
}

/// Measures one MLP configuration: width 64, batch 128, SGD, on the spirals task.
pub fn measure(
    skip: SkipMode,
    depth: usize,
    metrics: bool,
    min_time: Duration,
) -> Result<BenchResult> {
    let skip_ron = ron::to_string(&skip)?;
    let timing = time_preset(
        "plain-deep",
        &[
            format!("model.depth={depth}"),
            format!("model.skip={skip_ron}"),
            "model.width=64".into(),
            "batch=128".into(),
            metrics_every(metrics),
            // Training throughput alone, as the peers time it: live path statistics have their
            // own cost figure, and the peers score no test set.
            "path_every=1000000".into(),
            "test_every=1000000".into(),
        ],
        min_time,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "bench cannot build a {} net of depth {depth}: {e:#}",
            model_name(skip)
        )
    })?;
    let (timing, cores) = timing;
    let name = model_name(skip);
    Ok(
        BenchResult::new(name, Some(depth), None, 64, 128, metrics, timing)
            .on_cores(cores)
            .with_work(mlp_gflop(skip, depth, 64, 128), 0.0),
    )
}

/// Measures one recurrent configuration: hidden 64, batch 64, Adam, on the adding problem.
pub fn measure_rnn(
    cell: CellKind,
    length: usize,
    metrics: bool,
    min_time: Duration,
) -> Result<BenchResult> {
    let timing = time_preset(
        "rnn-lstm-adding",
        &[
            format!("model.cell={}", ron::to_string(&cell)?),
            format!("task.length={length}"),
            "model.width=64".into(),
            "batch=64".into(),
            metrics_every(metrics),
            "test_every=1000000".into(),
        ],
        min_time,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "bench cannot build a {} net at T = {length}: {e:#}",
            cell.label()
        )
    })?;
    let (timing, cores) = timing;
    Ok(
        BenchResult::new(cell.label(), None, Some(length), 64, 64, metrics, timing)
            .on_cores(cores)
            .with_work(rnn_gflop(cell, length, 64, 64), 0.0),
    )
}

/// Runs every configuration of `plan`, calling `report` after each; an error from `report`
/// (stdout closed) stops the bench, since nobody is reading the rest.
pub fn run(
    plan: &BenchPlan,
    mut report: impl FnMut(&BenchResult) -> Result<()>,
) -> Result<Vec<BenchResult>> {
    let mut results = Vec::new();
    let peak = peak_gflops(plan.min_time.min(Duration::from_millis(500)));
    let mut rows: Vec<(SkipMode, usize)> = Vec::new();
    for &skip in &plan.models {
        rows.extend(plan.depths.iter().map(|&depth| (skip, depth)));
    }
    rows.extend(plan.deep.iter().map(|&depth| (SkipMode::Plain, depth)));
    for (skip, depth) in rows {
        for metrics in [true, false] {
            let result = measure(skip, depth, metrics, plan.min_time)?;
            let work = result.gflop_per_step;
            let result = result.with_work(work, peak);
            report(&result)?;
            results.push(result);
        }
    }
    for cell in CellKind::ALL {
        for &length in &plan.lengths {
            for metrics in [true, false] {
                let result = measure_rnn(cell, length, metrics, plan.min_time)?;
                let work = result.gflop_per_step;
                let result = result.with_work(work, peak);
                report(&result)?;
                results.push(result);
            }
        }
    }
    Ok(results)
}
