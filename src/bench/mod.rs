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
    /// A row not yet timed, with no peer figures attached.
    fn new(
        model: &str,
        depth: Option<usize>,
        length: Option<usize>,
        width: usize,
        batch: usize,
        metrics: bool,
    ) -> Self {
        Self {
            model: model.into(),
            depth,
            length,
            width,
            batch,
            metrics,
            steps_per_sec: 0.0,
            steps: 0,
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

/// One configuration of a bench: its trainer, built and warmed up, and what it has timed.
struct Config {
    learner: Box<dyn Learner>,
    /// The row without its timing.
    row: BenchResult,
    /// Each timed window's steps/s.
    rates: Vec<f64>,
    steps: u64,
}

impl Config {
    /// Builds built-in preset `preset` with `overrides` and warms it up (first-touch page
    /// faults and allocator growth are not what we measure).
    fn build(preset: &str, overrides: &[String], row: BenchResult) -> Result<Self> {
        let experiment = apply_overrides(&load_preset(preset)?, overrides)?;
        let mut learner = build_learner(experiment, None)?;
        for _ in 0..10 {
            step(learner.as_mut());
        }
        Ok(Self {
            learner,
            row,
            rates: Vec::with_capacity(TIMED_WINDOWS as usize),
            steps: 0,
        })
    }

    /// Times one window of at least `window` (and 20 steps), after two untimed steps that
    /// bring this trainer's data back into the caches the previous configuration used.
    fn time_window(&mut self, window: Duration) {
        let learner = self.learner.as_mut();
        for _ in 0..2 {
            step(learner);
        }
        let start = Instant::now();
        let mut steps = 0u64;
        while start.elapsed() < window || steps < 20 {
            for _ in 0..10 {
                step(learner);
            }
            steps += 10;
        }
        self.rates
            .push(steps as f64 / start.elapsed().as_secs_f64());
        self.steps += steps;
    }

    /// The row: the median window's steps/s, the steps timed in all, the threads used.
    fn finish(self, peak: f64) -> BenchResult {
        let mut row = self.row;
        row.steps_per_sec = overhead::median(&self.rates);
        row.steps = self.steps;
        let work = row.gflop_per_step;
        row.on_cores(self.learner.threads_used())
            .with_work(work, peak)
    }
}

/// One training step as a run's trainer thread takes it, with the per-layer metrics on the
/// preset's cadence.
fn step(learner: &mut dyn Learner) {
    let every = (learner.experiment().metrics_every as u64).max(1);
    let measure = learner.step().is_multiple_of(every);
    learner.train_step(true, measure);
}

/// Timed windows per configuration; a row is their median, as the peers report the median of
/// their repetitions (a window in which the shared machine preempted a shard does not set it).
pub const TIMED_WINDOWS: u32 = 5;

/// Times `configs` in [`TIMED_WINDOWS`] rounds, each giving every configuration one window of
/// `min_time / TIMED_WINDOWS`, so a slow spell of a shared machine (minutes long, here) falls on
/// every row alike instead of on the few timed during it. No live analyses run (path
/// statistics and spectra are the dashboard's, on their own cadence) and the configurations
/// switch the test-set scoring off: the peers do neither.
fn time_round_robin(configs: &mut [Config], min_time: Duration) {
    let window = min_time / TIMED_WINDOWS;
    for _ in 0..TIMED_WINDOWS {
        for config in configs.iter_mut() {
            config.time_window(window);
        }
    }
}

/// Builds one MLP configuration: width 64, batch 128, SGD, on the spirals task.
fn mlp_config(skip: SkipMode, depth: usize, metrics: bool) -> Result<Config> {
    let skip_ron = ron::to_string(&skip)?;
    let overrides = [
        format!("model.depth={depth}"),
        format!("model.skip={skip_ron}"),
        "model.width=64".into(),
        "batch=128".into(),
        metrics_every(metrics),
        // Training throughput alone, as the peers time it: live path statistics have their
        // own cost figure, and the peers score no test set.
        "path_every=1000000".into(),
        "test_every=1000000".into(),
    ];
    let row = BenchResult::new(model_name(skip), Some(depth), None, 64, 128, metrics)
        .with_work(mlp_gflop(skip, depth, 64, 128), 0.0);
    Config::build("plain-deep", &overrides, row).map_err(|e| {
        anyhow::anyhow!(
            "bench cannot build a {} net of depth {depth}: {e:#}",
            model_name(skip)
        )
    })
}

/// Builds one recurrent configuration: hidden 64, batch 64, Adam, on the adding problem.
fn rnn_config(cell: CellKind, length: usize, metrics: bool) -> Result<Config> {
    let overrides = [
        format!("model.cell={}", ron::to_string(&cell)?),
        format!("task.length={length}"),
        "model.width=64".into(),
        "batch=64".into(),
        metrics_every(metrics),
        "test_every=1000000".into(),
    ];
    let row = BenchResult::new(cell.label(), None, Some(length), 64, 64, metrics)
        .with_work(rnn_gflop(cell, length, 64, 64), 0.0);
    Config::build("rnn-lstm-adding", &overrides, row).map_err(|e| {
        anyhow::anyhow!(
            "bench cannot build a {} net at T = {length}: {e:#}",
            cell.label()
        )
    })
}

/// Measures every configuration of `plan` (round-robin, [`time_round_robin`]) and then calls
/// `report` with each row in order; an error from `report` (stdout closed) stops the bench,
/// since nobody is reading the rest.
pub fn run(
    plan: &BenchPlan,
    mut report: impl FnMut(&BenchResult) -> Result<()>,
) -> Result<Vec<BenchResult>> {
    let peak = peak_gflops(plan.min_time.min(Duration::from_millis(500)));
    let mut rows: Vec<(SkipMode, usize)> = Vec::new();
    for &skip in &plan.models {
        rows.extend(plan.depths.iter().map(|&depth| (skip, depth)));
    }
    rows.extend(plan.deep.iter().map(|&depth| (SkipMode::Plain, depth)));
    let mut configs = Vec::new();
    for (skip, depth) in rows {
        for metrics in [true, false] {
            configs.push(mlp_config(skip, depth, metrics)?);
        }
    }
    for cell in CellKind::ALL {
        for &length in &plan.lengths {
            for metrics in [true, false] {
                configs.push(rnn_config(cell, length, metrics)?);
            }
        }
    }
    time_round_robin(&mut configs, plan.min_time);
    let mut results = Vec::with_capacity(configs.len());
    for config in configs {
        let result = config.finish(peak);
        report(&result)?;
        results.push(result);
    }
    Ok(results)
}
