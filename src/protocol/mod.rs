//! The messages every part of gradlab speaks: commands to the driver, events from it, and the
//! lines of a recording, which are those same events with the run they belong to.
//!
//! ```text
//!  dashboard ──LaneCommand──▶ driver (1–4 lanes) ──LaneEvent──▶ dashboard
//!                                                     └──────▶ recording: Line { run, event }
//! ```
//!
//! This module sits at the bottom of the module graph: it names data (experiments, snapshots,
//! path statistics) and never the code that produces or shows it. A new live switch is one
//! [`Command`] variant here; the recording format, replay and the trainer's report all follow
//! from it.

mod switches;

pub use switches::{LR_RANGE, Move, Switch, Switches};

use crate::analysis::{ForwardSignal, JacobianSpectrum};
use crate::config::{BranchScale, CellKind, Experiment, NormKind, NormPlace, SkipMode};
use crate::metrics::{Divergence, Snapshot};
use crate::paths::PathStats;
use crate::sources::LayerSources;
use serde::{Deserialize, Serialize};

/// Index of a run in the driver: 0 is the run the dashboard started with; each fork adds the
/// next one.
pub type LaneId = usize;

/// Most runs one driver holds: four columns still leave each about 30 columns at 120 wide.
pub const MAX_LANES: usize = 4;

/// What the caller can ask of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Switch the skip mode from the next step on.
    SetSkip(SkipMode),
    /// Turn auxiliary losses on or off.
    SetAux(bool),
    /// Change the learning rate.
    SetLearningRate(f32),
    /// Switch the recurrent cell (recurrent nets only; each cell keeps its own weights).
    SetCell(CellKind),
    /// Switch the normalisation of the hidden layers (MLPs; γ, β exist from step 0).
    SetNorm(NormKind),
    /// Move the norm inside the block (pre) or after the addition (post) (MLPs).
    SetNormPlace(NormPlace),
    /// Switch the residual-branch factor (MLPs; residual blocks only take it).
    SetBranchScale(BranchScale),
    /// Stop stepping until `Resume` or `Step` (every run of the driver: they share the clock).
    Pause,
    /// Continue stepping.
    Resume,
    /// While paused: run this many steps, then pause again.
    Step(u32),
    /// Start the same experiment again from step 0 with the same seed.
    Reset,
    /// Replace the experiment and start it from step 0 (a driver with one run only).
    LoadPreset(Box<Experiment>),
    /// MLP nets: evaluate the test set with each block removed in turn (answered by
    /// `Event::Lesion`); the network itself is not changed.
    Lesion,
    /// Write this run's weights to a fresh `<preset>-step<N>.safetensors` file in the
    /// dashboard's folder (never replacing a file); answered by `Event::WeightsSaved`.
    SaveWeights,
    /// Copy this run as it stands (weights, optimiser, step, data position) into a new run and
    /// apply `flip` to the copy only; answered by `Event::Forked` on the new run.
    Fork {
        /// The switch the twin differs in (None: an identical twin).
        flip: Option<Box<Command>>,
    },
    /// End the driver.
    Shutdown,
}

impl Command {
    /// A short label for charts and logs, e.g. `skip → residual`.
    pub fn label(&self) -> String {
        match self {
            Command::SetSkip(skip) => format!("skip → {}", skip.label()),
            Command::SetAux(on) => format!("aux {}", if *on { "on" } else { "off" }),
            Command::SetLearningRate(lr) => format!("lr → {lr:.3e}"),
            Command::SetCell(cell) => format!("cell → {}", cell.label()),
            Command::SetNorm(norm) => format!("norm → {}", norm.label()),
            Command::SetNormPlace(place) => format!("norm at → {}", place.label()),
            Command::SetBranchScale(scale) => format!("branch → {}", scale.label()),
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::Step(n) => format!("step {n}"),
            Command::Reset => "reset".into(),
            Command::LoadPreset(e) => format!("load {}", e.name),
            Command::Lesion => "lesion".into(),
            Command::SaveWeights => "save weights".into(),
            Command::Fork { flip: None } => "fork".into(),
            Command::Fork { flip: Some(flip) } => format!("fork: {}", flip.label()),
            Command::Shutdown => "shutdown".into(),
        }
    }

    /// The setting a switch command makes, or None for the commands the driver handles
    /// itself. It lists every command, so a new one must say here whether it is a switch.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Command::SetSkip(skip) => Some(Setting::Skip(*skip)),
            Command::SetAux(on) => Some(Setting::Aux(*on)),
            Command::SetLearningRate(lr) => Some(Setting::LearningRate(*lr)),
            Command::SetCell(cell) => Some(Setting::Cell(*cell)),
            Command::SetNorm(norm) => Some(Setting::Norm(*norm)),
            Command::SetNormPlace(place) => Some(Setting::NormPlace(*place)),
            Command::SetBranchScale(scale) => Some(Setting::BranchScale(*scale)),
            Command::Pause
            | Command::Resume
            | Command::Step(_)
            | Command::Reset
            | Command::LoadPreset(_)
            | Command::Lesion
            | Command::SaveWeights
            | Command::Fork { .. }
            | Command::Shutdown => None,
        }
    }

    /// Whether this command changes the wiring that path statistics and gradient sources
    /// describe, so they must be measured again at once.
    pub fn rewires(&self) -> bool {
        matches!(
            self,
            Command::SetSkip(_)
                | Command::SetAux(_)
                | Command::SetNorm(_)
                | Command::SetNormPlace(_)
                | Command::SetBranchScale(_)
        )
    }
}

/// What a switch command sets: the network applies it, the dashboard shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setting {
    /// The skip mode.
    Skip(SkipMode),
    /// Auxiliary losses on or off.
    Aux(bool),
    /// The learning rate.
    LearningRate(f32),
    /// The recurrent cell.
    Cell(CellKind),
    /// The normalisation.
    Norm(NormKind),
    /// Where the norm sits.
    NormPlace(NormPlace),
    /// The residual-branch factor.
    BranchScale(BranchScale),
}

/// Whether a run is stepping, and if not, why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Steps are being taken.
    Running,
    /// Waiting for `Resume` or `Step`.
    Paused,
    /// NaN/Inf appeared; waiting for `Reset` or another preset.
    Diverged(Divergence),
    /// The trainer panicked; waiting for `Reset` or another preset.
    Crashed(String),
    /// A headless run reached its step budget.
    Finished,
}

/// The test-set result with one block removed (the `"lesion"` list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionResult {
    /// The removed block, numbered from 1 at the input (L1).
    pub block: usize,
    /// Test loss without it (non-finite prints as `null`).
    pub test_loss: f64,
    /// Test accuracy without it (null for regression).
    pub test_accuracy: Option<f64>,
}

/// What a run reports. A recording line is one of these with its run number (see [`Line`]),
/// tagged by `type`: a snapshot line is the `--json` object with `"type":"snapshot"` added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new experiment was (re)started: consumers reset their history.
    Started {
        /// The experiment now running, `--set` overrides included.
        preset: Box<Experiment>,
    },
    /// A metrics snapshot.
    Snapshot(Box<Snapshot>),
    /// The run state changed at `step`.
    State {
        /// Updates applied when the state changed.
        step: u64,
        /// The new state.
        state: RunState,
    },
    /// A command took effect at `step` (the first step it influences).
    #[serde(rename = "command")]
    Applied {
        /// The step the command took effect at.
        step: u64,
        /// The command.
        command: Command,
    },
    /// Something failed without stopping the run (e.g. a preset that does not build).
    Error {
        /// The error in words.
        message: String,
    },
    /// MLP nets: path-length statistics of the network, every `path_every` steps.
    Paths {
        /// Updates applied before the measurement.
        step: u64,
        /// The decomposition on a sub-batch of training rows.
        stats: Box<PathStats>,
    },
    /// The answer to `Command::Lesion`: the test set with each block removed in turn.
    Lesion {
        /// Updates applied when the lesions were evaluated.
        step: u64,
        /// Test loss of the intact network, evaluated with the lesions.
        intact_test_loss: f64,
        /// One result per block, input side first.
        results: Vec<LesionResult>,
    },
    /// MLP nets with dense read-outs or auxiliary losses: where each layer's gradient comes
    /// from (main head, each read-out, each auxiliary head).
    Sources {
        /// Updates applied before the measurement.
        step: u64,
        /// One entry per hidden layer, input side first.
        layers: Vec<LayerSources>,
    },
    /// MLP nets: the Jacobian spectrum and forward signal of the hidden stack on the first
    /// training rows, every `SPECTRUM_EVERY` steps (see `trainer::analyses`).
    Spectrum {
        /// Updates applied before the measurement.
        step: u64,
        /// Singular values of ∂h_L/∂h_1, pooled over the inputs.
        jacobian: Box<JacobianSpectrum>,
        /// Per-layer q_l and c_l, measured and mean-field.
        forward: Box<ForwardSignal>,
    },
    /// This run was forked from run `from` after `step` updates; its own events follow.
    Forked {
        /// The parent run.
        from: LaneId,
        /// Updates both had applied at the fork.
        step: u64,
        /// The switch flipped on this run (None: an identical twin).
        flip: Option<Command>,
    },
    /// The answer to `Command::SaveWeights`: the weights after `step` updates are in `path`.
    WeightsSaved {
        /// Updates applied when the weights were written.
        step: u64,
        /// The file written.
        path: String,
    },
    /// Updates per second of the time this run's own steps took (what it would do alone).
    Throughput {
        /// Steps per busy second over the last report interval.
        steps_per_sec: f64,
    },
    /// The run ended in an orderly way: the last line of a run in a recording.
    Ended {
        /// Updates applied when it ended.
        step: u64,
        /// Why, in words: `quit`, `SIGTERM`, `finished`, `the trainer crashed`, …
        reason: String,
    },
    /// An event type from a newer writer of the same format version: skipped by readers.
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The step the event belongs to, where it names one.
    pub fn step(&self) -> Option<u64> {
        match self {
            Event::Snapshot(s) => Some(s.step),
            Event::State { step, .. }
            | Event::Applied { step, .. }
            | Event::Paths { step, .. }
            | Event::Lesion { step, .. }
            | Event::Sources { step, .. }
            | Event::Spectrum { step, .. }
            | Event::Forked { step, .. }
            | Event::WeightsSaved { step, .. }
            | Event::Ended { step, .. } => Some(*step),
            Event::Started { .. } | Event::Error { .. } | Event::Throughput { .. } => None,
            Event::Unknown => None,
        }
    }

    /// An error event.
    pub fn error(message: impl Into<String>) -> Self {
        Event::Error {
            message: message.into(),
        }
    }

    /// Whether nothing of this run follows it (a finished headless run, or an orderly end).
    pub fn ends_run(&self) -> bool {
        matches!(
            self,
            Event::Ended { .. }
                | Event::State {
                    state: RunState::Finished,
                    ..
                }
        )
    }
}

/// A command for one run of the driver.
#[derive(Clone, Debug, PartialEq)]
pub struct LaneCommand {
    /// The run it is for (Pause, Resume, Step and Shutdown act on every run).
    pub lane: LaneId,
    /// The command.
    pub command: Command,
}

/// An event of one run of the driver.
#[derive(Clone, Debug, PartialEq)]
pub struct LaneEvent {
    /// The run it came from.
    pub lane: LaneId,
    /// The event.
    pub event: Event,
}

/// One line of a recording after the header: an event and the run of the file it belongs to.
/// Runs are numbered from 1; a reset or a loaded preset starts the next one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The run, 1 for the first.
    pub run: u32,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}
