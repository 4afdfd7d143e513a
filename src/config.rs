//! Experiment presets: the RON schema, its validation and `--set` overrides.
//!
//! A preset describes everything needed to start a run: the task, the network, the optimiser
//! and the metric cadence. Values outside their allowed range are rejected while the file is
//! parsed, so the error carries the file, line and column of the offending value.

use serde::{Deserialize, Serialize};

mod bounds;
pub mod load;
pub mod set;

pub use load::{Preset, builtin_presets, load_preset, parse_preset};
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
    #[serde(deserialize_with = "bounds::every")]
    pub metrics_every: usize,
    /// The test set is evaluated every this many steps.
    #[serde(default = "default_test_every", deserialize_with = "bounds::every")]
    pub test_every: usize,
    /// Rescale the whole gradient to at most this norm before the update.
    #[serde(default, deserialize_with = "bounds::clip")]
    pub clip_grad_norm: Option<f32>,
    /// Default number of steps for a headless run when `--steps` is not given.
    #[serde(default = "default_steps")]
    pub steps: usize,
}

fn default_test_every() -> usize {
    50
}

fn default_steps() -> usize {
    1000
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
        #[serde(deserialize_with = "bounds::noise")]
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

/// The network: an input projection, `depth` hidden layers of `width`, and an output head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Which family of network this is.
    pub kind: ModelKind,
    /// Number of hidden layers (blocks).
    #[serde(deserialize_with = "bounds::depth")]
    pub depth: usize,
    /// Units in every hidden layer.
    #[serde(deserialize_with = "bounds::width")]
    pub width: usize,
    /// Nonlinearity of every hidden layer.
    pub activation: Activation,
    /// How the weights are drawn at initialisation.
    pub init: InitSpec,
    /// Skip connections in effect at step 0 (switchable live).
    pub skip: SkipMode,
    /// Intermediate (auxiliary) losses (switchable live).
    pub aux: AuxSpec,
}

/// The family of network a preset builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    /// A deep multilayer perceptron with switchable skip connections.
    Mlp,
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
    #[serde(deserialize_with = "bounds::variance")]
    pub weight_var: f32,
    /// σ_b²: bias variance.
    #[serde(deserialize_with = "bounds::variance")]
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
    /// h' = T⊙f(h) + (1−T)⊙h with T = σ(W_T h + b_T); b_T starts at `gate_bias`.
    Highway {
        #[serde(deserialize_with = "bounds::gate_bias")]
        gate_bias: f32,
    },
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
            SkipMode::Highway { gate_bias } => format!("highway(b={gate_bias})"),
            SkipMode::Dense => "dense".into(),
        }
    }
}

/// Auxiliary heads: a linear classifier after every `every`-th hidden layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxSpec {
    /// Whether the auxiliary losses are added to the objective.
    pub enabled: bool,
    /// A head after hidden layers every, 2·every, … (not after the last layer).
    #[serde(deserialize_with = "bounds::every")]
    pub every: usize,
    /// Weight of each auxiliary loss in the total.
    #[serde(deserialize_with = "bounds::aux_weight")]
    pub weight: f32,
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
    },
    /// Adam with bias correction.
    Adam {
        #[serde(deserialize_with = "bounds::learning_rate")]
        lr: f32,
        #[serde(default = "default_beta1", deserialize_with = "bounds::momentum")]
        beta1: f32,
        #[serde(default = "default_beta2", deserialize_with = "bounds::momentum")]
        beta2: f32,
        #[serde(default = "default_eps", deserialize_with = "bounds::positive")]
        eps: f32,
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
}
