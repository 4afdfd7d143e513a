//! Experiment presets: the RON schema, its validation and `--set` overrides.
//!
//! A preset describes everything needed to start a run: the task, the network, the optimiser
//! and the metric cadence. Values outside their allowed range are rejected while the file is
//! parsed, so the error carries the file, line and column of the offending value.

use serde::{Deserialize, Serialize};

mod applies;
mod bounds;
pub mod limits;
pub mod load;
pub mod norm;
pub mod set;

pub use applies::{check_overrides_apply, check_task_fits_model};
pub use limits::{check_fits, estimate_bytes};
pub use load::{Preset, builtin_presets, load_preset, parse_preset};
pub use norm::{BranchScale, NormKind, NormPlace};
pub use set::apply_overrides;

/// One experiment: what to learn, with which network and optimiser, and how often to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short name shown in the header and used by `--preset`.
    pub name: String,
    /// One line saying what the preset demonstrates.
    pub description: String,
    /// Seed for initial weights and the data stream; the same seed gives the same run.
    pub seed: u64,
    /// The data the network learns from.
    pub task: TaskSpec,
    /// The network and its switchable skip connections.
    pub model: ModelSpec,
    /// How weights are updated.
    pub optimizer: OptimizerSpec,
    /// Examples per training step.
    #[serde(deserialize_with = "bounds::batch")]
    pub batch: usize,
    /// Per-layer metrics are measured every this many steps.
    #[serde(deserialize_with = "bounds::metrics_every")]
    pub metrics_every: usize,
    /// The test set is evaluated every this many steps.
    #[serde(
        default = "default_test_every",
        deserialize_with = "bounds::test_every"
    )]
    pub test_every: usize,
    /// Rescale the whole gradient to at most this norm before the update.
    #[serde(default, deserialize_with = "bounds::clip")]
    pub clip_grad_norm: Option<f32>,
    /// Default number of steps for a headless run when `--steps` is not given.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// MLP nets: path-length statistics are computed every this many steps (live, on a
    /// sub-batch); raise it to make them cheaper.
    #[serde(
        default = "default_path_every",
        deserialize_with = "bounds::path_every"
    )]
    pub path_every: usize,
}

fn default_test_every() -> usize {
    50
}

fn default_steps() -> usize {
    1000
}

/// Every 200 steps keeps the live path statistics under 10 % of training throughput on
/// `residual-deep` (measured; see the README) while still updating about once a second.
fn default_path_every() -> usize {
    200
}

/// A task generated from the seed (or read from a CSV file), split into train and test sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum TaskSpec {
    /// Two interleaved spirals in the plane, two classes.
    Spirals {
        #[serde(deserialize_with = "bounds::points")]
        points: usize,
        #[serde(deserialize_with = "bounds::noise")]
        noise: f32,
    },
    /// An inner disc and an outer ring, two classes.
    Circles {
        #[serde(deserialize_with = "bounds::points")]
        points: usize,
        #[serde(deserialize_with = "bounds::noise")]
        noise: f32,
    },
    /// A checkerboard of `cells`×`cells` squares on [-1, 1]²; two cells is XOR.
    Checkerboard {
        #[serde(deserialize_with = "bounds::points")]
        points: usize,
        #[serde(deserialize_with = "bounds::cells")]
        cells: usize,
    },
    /// `classes` Gaussian blobs in `dims` dimensions.
    Blobs {
        #[serde(deserialize_with = "bounds::points")]
        points: usize,
        #[serde(deserialize_with = "bounds::classes")]
        classes: usize,
        #[serde(deserialize_with = "bounds::dims")]
        dims: usize,
        #[serde(deserialize_with = "bounds::spread")]
        spread: f32,
    },
    /// Regression onto the output of a fixed random tanh network (the teacher).
    Teacher {
        #[serde(deserialize_with = "bounds::points")]
        points: usize,
        #[serde(deserialize_with = "bounds::dims")]
        dims: usize,
        #[serde(deserialize_with = "bounds::teacher_depth")]
        depth: usize,
        #[serde(deserialize_with = "bounds::noise")]
        noise: f32,
    },
    /// Hochreiter's adding problem: a length-T sequence of (value, marker) pairs with two marked
    /// values; the target is their sum. Predicting the mean scores MSE 1/6 ≈ 0.167.
    Adding {
        #[serde(deserialize_with = "bounds::length")]
        length: usize,
        /// Size of the fixed test set (training batches are drawn fresh each step).
        #[serde(
            default = "default_test_points",
            deserialize_with = "bounds::test_points"
        )]
        test_points: usize,
    },
    /// The copy (memory) task: `symbols` random symbols, `delay` blanks, then a cue; the net must
    /// output the symbols in order. Guessing scores cross-entropy ln(alphabet).
    Copy {
        #[serde(deserialize_with = "bounds::symbols")]
        symbols: usize,
        #[serde(deserialize_with = "bounds::delay")]
        delay: usize,
        #[serde(deserialize_with = "bounds::alphabet")]
        alphabet: usize,
        #[serde(
            default = "default_test_points",
            deserialize_with = "bounds::test_points"
        )]
        test_points: usize,
    },
    /// Delayed XOR: a sequence of random bits, two of them marked; the target is their XOR.
    /// Guessing scores 50 % and cross-entropy ln 2.
    DelayedXor {
        #[serde(deserialize_with = "bounds::length")]
        length: usize,
        #[serde(
            default = "default_test_points",
            deserialize_with = "bounds::test_points"
        )]
        test_points: usize,
    },
    /// The UCI 8×8 handwritten digits (1 797 images, 10 classes, pixels scaled to [0, 1]),
    /// shipped in the binary with a fixed split: 1 437 training and 360 test images.
    Digits,
    /// MNIST-1D (Greydanus & Kobak 2020): 40-sample signals of 10 classes, the canonical set
    /// with the paper's 4 000 training and 1 000 test examples, shipped in the binary.
    Mnist1d,
    /// A user CSV file: numeric feature columns, the last column the label (or target).
    Csv {
        path: String,
        /// `true`: the last column is an integer class label; `false`: a real-valued target.
        #[serde(default = "default_true")]
        classification: bool,
    },
}

fn default_true() -> bool {
    true
}

fn default_test_points() -> usize {
    512
}

impl TaskSpec {
    /// Whether the task is a sequence task (learned by a recurrent net).
    pub fn is_sequence(&self) -> bool {
        matches!(
            self,
            TaskSpec::Adding { .. } | TaskSpec::Copy { .. } | TaskSpec::DelayedXor { .. }
        )
    }
}

/// The network: an input projection, `depth` hidden layers of `width`, and an output head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Which family of network this is.
    pub kind: ModelKind,
    /// Number of hidden layers (blocks); unused by recurrent nets.
    #[serde(default = "default_depth", deserialize_with = "bounds::depth")]
    pub depth: usize,
    /// Units in every hidden layer (the hidden state size of a recurrent net).
    #[serde(deserialize_with = "bounds::width")]
    pub width: usize,
    /// Nonlinearity of every hidden layer (vanilla RNN cells always use tanh).
    #[serde(default = "default_activation")]
    pub activation: Activation,
    /// How the weights are drawn at initialisation.
    pub init: InitSpec,
    /// Skip connections in effect at step 0 (switchable live).
    #[serde(default = "default_skip")]
    pub skip: SkipMode,
    /// Intermediate (auxiliary) losses (switchable live).
    #[serde(default)]
    pub aux: AuxSpec,
    /// Recurrent cell in effect at step 0 (switchable live; recurrent nets only).
    #[serde(default)]
    pub cell: CellKind,
    /// Initial bias b_T of every highway gate, whatever the skip mode at step 0, so that
    /// switching to highway later finds gates that start where the preset says (−2 carries
    /// about 88 % of the input through at the start). Trained like any bias from step 0.
    #[serde(default = "default_gate_bias", deserialize_with = "bounds::gate_bias")]
    pub gate_bias: f32,
    /// Initial bias of the LSTM forget gate (1.0 keeps memory open at the start).
    #[serde(
        default = "default_forget_bias",
        deserialize_with = "bounds::forget_bias"
    )]
    pub forget_bias: f32,
    /// How the gated cells' carry biases start (LSTM input and forget gates, GRU update gate);
    /// `Fixed` (the default) is `forget_bias` for the LSTM forget gate and 0 elsewhere.
    #[serde(default)]
    pub carry_bias: CarryBias,
    /// Normalisation of the hidden layers in effect at step 0 (MLPs; switchable live).
    #[serde(default)]
    pub norm: NormKind,
    /// Where the norm sits in each block (see `NormPlace`; switchable live).
    #[serde(default)]
    pub norm_place: NormPlace,
    /// The factor on each residual branch (residual skip mode; switchable live).
    #[serde(default)]
    pub branch_scale: BranchScale,
}

fn default_depth() -> usize {
    1
}
fn default_activation() -> Activation {
    Activation::Tanh
}
fn default_skip() -> SkipMode {
    SkipMode::Plain
}
fn default_gate_bias() -> f32 {
    -2.0
}
fn default_forget_bias() -> f32 {
    1.0
}

/// How the carry gates of the gated cells start: the LSTM's input and forget gates and the
/// GRU's update gate z (this GRU keeps the old state with weight z: h' = (1−z)⊙n + z⊙h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum CarryBias {
    /// The LSTM forget gate's bias is `model.forget_bias`, every other bias 0 (each plus the
    /// `init.bias_var` noise): a memory of a few steps at the start.
    #[default]
    Fixed,
    /// Chrono initialisation (Tallec & Ollivier 2018) for dependencies up to `t_max` steps:
    /// per unit u ~ U[1, t_max − 1] and b = ln u, so the gate keeps its state with
    /// σ(b) = u/(1+u) and forgets over 1 + u steps, spread from 2 to `t_max`. LSTM: forget
    /// bias b_f = ln u, input bias b_i = −b_f; GRU: update bias b_z = ln u. Replaces
    /// `forget_bias` and the bias noise on those gates; drawn after every other parameter, so
    /// the weights are those of `Fixed` with the same seed.
    Chrono {
        /// The longest dependency the gates start tuned for, in steps (e.g. the sequence length).
        #[serde(deserialize_with = "bounds::t_max")]
        t_max: f32,
    },
}

impl CarryBias {
    /// Short name for tables: `fixed` or `chrono(T)`.
    pub fn label(&self) -> String {
        match self {
            CarryBias::Fixed => "fixed".into(),
            CarryBias::Chrono { t_max } => format!("chrono({t_max})"),
        }
    }
}

/// The recurrent cell of a recurrent net.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CellKind {
    /// h' = tanh(xW + hU + b): the gradient crosses tanh′·U at every step back.
    #[default]
    Vanilla,
    /// Gated recurrent unit: an update gate z interpolates between the old state and a new one.
    Gru,
    /// Long short-term memory: a cell state written through input/forget gates, read through an
    /// output gate.
    Lstm,
}

impl CellKind {
    /// The cells in the order `g` cycles them.
    pub const ALL: [CellKind; 3] = [CellKind::Vanilla, CellKind::Gru, CellKind::Lstm];

    /// Short lowercase name.
    pub fn label(&self) -> &'static str {
        match self {
            CellKind::Vanilla => "vanilla",
            CellKind::Gru => "gru",
            CellKind::Lstm => "lstm",
        }
    }

    /// The next cell in the cycle vanilla → GRU → LSTM → vanilla.
    pub fn next(&self) -> CellKind {
        match self {
            CellKind::Vanilla => CellKind::Gru,
            CellKind::Gru => CellKind::Lstm,
            CellKind::Lstm => CellKind::Vanilla,
        }
    }
}

/// The family of network a preset builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    /// A deep multilayer perceptron with switchable skip connections.
    Mlp,
    /// A recurrent net unrolled in time (backprop through time); depth is time.
    Rnn,
}

/// Element-wise nonlinearity φ of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// φ(x) = x.
    Linear,
    /// φ(x) = tanh x.
    Tanh,
    /// φ(x) = max(0, x).
    Relu,
    /// φ(x) = 1 / (1 + e^-x).
    Sigmoid,
    /// φ(x) = x Φ(x), the exact (erf) GELU.
    Gelu,
}

impl Activation {
    /// Every activation, in the order the UI cycles them.
    pub const ALL: [Activation; 5] = [
        Activation::Linear,
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Gelu,
    ];
}

/// Initial weight distribution in mean-field terms: W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSpec {
    /// σ_w²: weight variance times fan-in.
    #[serde(deserialize_with = "bounds::weight_var")]
    pub weight_var: f32,
    /// σ_b²: bias variance.
    #[serde(deserialize_with = "bounds::bias_var")]
    pub bias_var: f32,
    /// Gaussian entries, or a random orthogonal matrix scaled by σ_w.
    #[serde(default)]
    pub distribution: WeightDistribution,
}

/// Shape of the initial weight matrices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightDistribution {
    /// Independent N(0, σ_w²/fan_in) entries.
    #[default]
    Gaussian,
    /// A random orthogonal matrix times σ_w (hidden layers; projections stay Gaussian).
    Orthogonal,
}

/// How each hidden layer combines its input h with its transform f(h).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum SkipMode {
    /// h' = f(h): no shortcut, gradients must cross every layer.
    Plain,
    /// h' = scale·h + f(h): the identity shortcut when scale is 1.
    Residual {
        #[serde(deserialize_with = "bounds::scale")]
        scale: f32,
    },
    /// h' = T⊙f(h) + (1−T)⊙h with T = σ(W_T h + b_T); b_T starts at `model.gate_bias`
    /// and is trained from there (the gates exist from step 0 in every mode).
    Highway,
    /// A plain chain whose every hidden layer is also read out by the output head.
    Dense,
}

impl SkipMode {
    /// Short lowercase name for headers and tables.
    pub fn label(&self) -> String {
        match self {
            SkipMode::Plain => "plain".into(),
            SkipMode::Residual { scale } if *scale == 1.0 => "residual".into(),
            SkipMode::Residual { scale } => format!("residual×{scale}"),
            SkipMode::Highway => "highway".into(),
            SkipMode::Dense => "dense".into(),
        }
    }
}

/// Auxiliary heads: a linear classifier after every `every`-th hidden layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub struct AuxSpec {
    /// Whether the auxiliary losses are added to the objective.
    pub enabled: bool,
    /// A head after hidden layers every, 2·every, … (not after the last layer).
    #[serde(deserialize_with = "bounds::aux_every")]
    pub every: usize,
    /// Weight of each auxiliary loss in the total.
    #[serde(deserialize_with = "bounds::aux_weight")]
    pub weight: f32,
}

impl Default for AuxSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            every: 8,
            weight: 0.3,
        }
    }
}

/// The optimiser and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum OptimizerSpec {
    /// Stochastic gradient descent with (heavy-ball) momentum.
    Sgd {
        #[serde(deserialize_with = "bounds::learning_rate")]
        lr: f32,
        #[serde(default, deserialize_with = "bounds::momentum")]
        momentum: f32,
        /// Steps of linear learning-rate warm-up (0: none); see `warmup_factor`.
        #[serde(default, deserialize_with = "bounds::warmup")]
        warmup: u32,
    },
    /// Adam with bias correction.
    Adam {
        #[serde(deserialize_with = "bounds::learning_rate")]
        lr: f32,
        #[serde(default = "default_beta1", deserialize_with = "bounds::beta1")]
        beta1: f32,
        #[serde(default = "default_beta2", deserialize_with = "bounds::beta2")]
        beta2: f32,
        #[serde(default = "default_eps", deserialize_with = "bounds::eps")]
        eps: f32,
        /// Steps of linear learning-rate warm-up (0: none); see `warmup_factor`.
        #[serde(default, deserialize_with = "bounds::warmup")]
        warmup: u32,
    },
}

fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}

impl OptimizerSpec {
    /// The learning rate the preset starts with.
    pub fn learning_rate(&self) -> f32 {
        match self {
            OptimizerSpec::Sgd { lr, .. } | OptimizerSpec::Adam { lr, .. } => *lr,
        }
    }

    /// Steps of learning-rate warm-up (0: none).
    pub fn warmup(&self) -> u32 {
        match self {
            OptimizerSpec::Sgd { warmup, .. } | OptimizerSpec::Adam { warmup, .. } => *warmup,
        }
    }

    /// The factor the live learning rate is multiplied by for the update that follows `step`
    /// updates: (step + 1)/N during an N-step warm-up, so the first update uses lr/N and update
    /// N (step N − 1) the full rate; exactly 1 afterwards and without warm-up, which leaves runs
    /// without warm-up bit-identical.
    pub fn warmup_factor(&self, step: u64) -> f32 {
        let n = u64::from(self.warmup());
        if step >= n {
            1.0
        } else {
            // Both fit f32 exactly: n ≤ the bound on `warmup`, far below 2^24.
            (step + 1) as f32 / n as f32
        }
    }
}
