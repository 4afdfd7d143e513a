//! The tour's lessons, in the order of the essay's argument: why depth, how the gradient
//! vanishes and explodes, the critical line, then each way around it (residual, effective
//! depth, highway, dense, auxiliary losses) and the same story along time in recurrent nets.
//!
//! A lesson is one entry of [`LESSONS`]: the preset it loads, a few lines of text, the one key
//! it asks for (an action of the keymap, so its label comes from there), how the tour sees
//! that it happened, what it measures from the run's snapshots, and the claim that measurement
//! must bear out. Adding a lesson is adding an entry.

use super::keymap::Action;
use crate::config::{CellKind, SkipMode};
use crate::protocol::{Command, Move};

/// How the tour sees that the user did what the lesson asked.
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    /// The run applied a command this accepts (reported by the driver's `Applied`).
    Applied(fn(&Command) -> bool),
    /// The run went from paused to running.
    Resumed,
    /// The path panel was opened.
    PathsShown,
}

/// What a lesson reads from each snapshot (or analysis) of its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// ‖∂L/∂h‖ of hidden layer 1 (MLP) or of time step 1 (recurrent nets).
    FirstGrad,
    /// 20·log10 of ‖∂L/∂h_first‖ / ‖∂L/∂h_last‖.
    FirstLastDb,
    /// The main head's training loss.
    MainLoss,
    /// Mean trained bias b_T of the highway gates.
    GateBias,
    /// Mean length (in blocks) of the paths the gradient takes, from the path analysis.
    PathMean,
}

/// What the measurement must show, and over which snapshots.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Claim {
    /// The measure (a norm) rises at least this many dB: the mean of log10 over the `count`
    /// samples from the action on against the `count` samples before it.
    RisesDb {
        /// Smallest rise that confirms the claim.
        db: f64,
        /// Samples on each side.
        count: usize,
    },
    /// The measure (a norm) falls at least this many dB (windows as [`Claim::RisesDb`]).
    FallsDb {
        /// Smallest fall that confirms the claim.
        db: f64,
        /// Samples on each side.
        count: usize,
    },
    /// The measure (in dB) averages above `db` over the `count` samples from the action on.
    AboveDb {
        /// The line it must average above.
        db: f64,
        /// Samples after the action.
        count: usize,
    },
    /// The measure (in dB) averages below `db` over the `count` samples from the action on.
    BelowDb {
        /// The line it must average below.
        db: f64,
        /// Samples after the action.
        count: usize,
    },
    /// The measure (in dB) averages within ±`db` over the `count` samples from the action on.
    LevelDb {
        /// Half-width of the band.
        db: f64,
        /// Samples after the action.
        count: usize,
    },
    /// The measure (a loss) averages over the last `count` of `span` samples from the action
    /// on at most `fraction` of its value at the action, and below chance when the task has one.
    FallsTo {
        /// Largest share of the starting loss that confirms the claim.
        fraction: f64,
        /// Samples averaged at the end of the span.
        count: usize,
        /// Samples from the action to the end of the measurement.
        span: usize,
    },
    /// The measure moves by at least `by` between the action and `span` samples later.
    Moves {
        /// Smallest change that confirms the claim.
        by: f64,
        /// Samples from the action to the second reading.
        span: usize,
    },
    /// The first analysis after the action finds the paths at most `fraction` of the blocks long.
    ShortPaths {
        /// Largest mean length, as a share of the blocks, that confirms the claim.
        fraction: f64,
    },
}

/// One lesson of the tour.
#[derive(Clone, Copy, Debug)]
pub struct Lesson {
    /// One line: what the lesson shows.
    pub title: &'static str,
    /// The built-in preset it loads.
    pub preset: &'static str,
    /// `--set` overrides applied to the preset.
    pub overrides: &'static [&'static str],
    /// A few lines of explanation, in the side panel.
    pub text: &'static [&'static str],
    /// The one key asked for.
    pub action: Action,
    /// What that key does here, after "press KEY".
    pub doing: &'static str,
    /// Load the lesson paused (the key asked for resumes it).
    pub start_paused: bool,
    /// How the tour sees the key took effect.
    pub trigger: Trigger,
    /// What is measured.
    pub measure: Measure,
    /// What the measurement must show.
    pub claim: Claim,
}

const RESIDUAL: SkipMode = SkipMode::Residual { scale: 1.0 };

fn to_plain(c: &Command) -> bool {
    *c == Command::SetSkip(SkipMode::Plain)
}
fn to_residual(c: &Command) -> bool {
    matches!(c, Command::SetSkip(SkipMode::Residual { .. }))
}
fn to_highway(c: &Command) -> bool {
    *c == Command::SetSkip(SkipMode::Highway)
}
fn to_dense(c: &Command) -> bool {
    *c == Command::SetSkip(SkipMode::Dense)
}
fn aux_on(c: &Command) -> bool {
    *c == Command::SetAux(true)
}
fn to_gated(c: &Command) -> bool {
    matches!(c, Command::SetCell(CellKind::Gru | CellKind::Lstm))
}

/// Every lesson, in order.
pub const LESSONS: &[Lesson] = &[
    Lesson {
        title: "Depth is needed",
        preset: "plain-shallow",
        overrides: &["task=Circles(points: 1000, noise: 0.05)"],
        text: &[
            "Many data sets are built of parts of parts; stacking layers composes simple bends into a curved boundary a single straight cut cannot draw.",
            "This 4-layer tanh net waits, paused, on an inner disc inside a ring.",
        ],
        action: Action::TogglePause,
        doing: "to start training",
        start_paused: true,
        trigger: Trigger::Resumed,
        measure: Measure::MainLoss,
        claim: Claim::FallsTo {
            fraction: 0.5,
            count: 20,
            span: 150,
        },
    },
    Lesson {
        title: "Gradients vanish through a deep tanh net",
        preset: "residual-deep",
        overrides: &[],
        text: &[
            "32 tanh layers at σw² = 0.5, running with identity skips. Backprop multiplies the error by each layer's Jacobian; here each shrinks it (χ₁ < 1).",
            "Take the skips away and the only path back to layer 1 crosses all 32 layers.",
        ],
        action: Action::Switch(Move::SkipTo(SkipMode::Plain)),
        doing: "to remove the skips",
        start_paused: false,
        trigger: Trigger::Applied(to_plain),
        measure: Measure::FirstGrad,
        claim: Claim::FallsDb { db: 40.0, count: 5 },
    },
    Lesson {
        title: "…and explode with large weights",
        preset: "exploding",
        overrides: &["model.skip=Highway", "model.gate_bias=-2.0"],
        text: &[
            "Weights with σw² = 4: each layer's Jacobian now grows the error (χ₁ > 1), so it grows toward the input.",
            "Highway gates carry most of the signal past each layer for now; take them away.",
        ],
        action: Action::Switch(Move::SkipTo(SkipMode::Plain)),
        doing: "to remove the gates",
        start_paused: false,
        trigger: Trigger::Applied(to_plain),
        measure: Measure::FirstLastDb,
        claim: Claim::AboveDb { db: 20.0, count: 5 },
    },
    Lesson {
        title: "The critical line: neither vanish nor explode",
        preset: "relu-critical",
        overrides: &[],
        text: &[
            "Mean-field theory: when χ₁ = 1 each layer passes the error on at its size. For ReLU that is He init, σw² = 2 (the header shows theory χ₁).",
            "32 plain ReLU layers wait, paused, at that init.",
        ],
        action: Action::TogglePause,
        doing: "to start training",
        start_paused: true,
        trigger: Trigger::Resumed,
        measure: Measure::FirstLastDb,
        claim: Claim::LevelDb {
            db: 20.0,
            count: 20,
        },
    },
    Lesson {
        title: "Residual skips give the gradient a short path",
        preset: "plain-deep",
        overrides: &[],
        text: &[
            "The vanishing net again: layer 1's bar sits far below the last.",
            "A residual block adds its input to its output, h + f(h): the error gets an identity route around every layer. Watch layer 1 come back.",
        ],
        action: Action::Switch(Move::SkipTo(RESIDUAL)),
        doing: "to add identity skips",
        start_paused: false,
        trigger: Trigger::Applied(to_residual),
        measure: Measure::FirstGrad,
        claim: Claim::RisesDb { db: 40.0, count: 5 },
    },
    Lesson {
        title: "Effective depth is short",
        preset: "residual-deep",
        overrides: &["path_every=50"],
        text: &[
            "With skips, the gradient from the loss to layer 1 can take 2³² paths, each crossing some blocks and skipping the rest (Veit et al.).",
            "The path panel splits the gradient by path length: most of it travels paths far shorter than the 32 blocks.",
        ],
        action: Action::TogglePaths,
        doing: "to open the path panel",
        start_paused: false,
        trigger: Trigger::PathsShown,
        measure: Measure::PathMean,
        claim: Claim::ShortPaths { fraction: 0.5 },
    },
    Lesson {
        title: "Highway gates learn how much skip to use",
        preset: "highway-deep",
        overrides: &["model.skip=Plain"],
        text: &[
            "A highway layer mixes T·f(h) + (1 − T)·h with a learned gate T = σ(W_T h + b_T). The net can choose, layer by layer, between transforming and carrying.",
            "This one starts plain, its gate biases at b_T = −2 (mostly carry).",
        ],
        action: Action::Switch(Move::SkipTo(SkipMode::Highway)),
        doing: "to switch the gates on",
        start_paused: false,
        trigger: Trigger::Applied(to_highway),
        measure: Measure::GateBias,
        claim: Claim::Moves {
            by: 0.005,
            span: 100,
        },
    },
    Lesson {
        title: "Dense links: every layer one hop from the output",
        preset: "plain-deep",
        overrides: &[],
        text: &[
            "Make the short path explicit: connect every layer straight to the output head.",
            "Layer 1's error then arrives directly, not through 31 shrinking Jacobians.",
        ],
        action: Action::Switch(Move::SkipTo(SkipMode::Dense)),
        doing: "to read every layer out",
        start_paused: false,
        trigger: Trigger::Applied(to_dense),
        measure: Measure::FirstGrad,
        claim: Claim::RisesDb { db: 40.0, count: 5 },
    },
    Lesson {
        title: "Intermediate losses anchor the lower layers",
        preset: "aux-deep",
        overrides: &["model.aux.enabled=false"],
        text: &[
            "A plain 32-layer net with classifier heads after layers 8, 16 and 24, switched off.",
            "Switched on, each head's loss sends an error into the layers below it from close by: the lower layers get a signal of their own (press l for the gradient sources).",
        ],
        action: Action::Switch(Move::ToggleAux),
        doing: "to switch the auxiliary losses on",
        start_paused: false,
        trigger: Trigger::Applied(aux_on),
        measure: Measure::FirstGrad,
        claim: Claim::RisesDb { db: 40.0, count: 5 },
    },
    Lesson {
        title: "The same story along time: a recurrent net",
        preset: "rnn-vanilla-adding",
        overrides: &[],
        text: &[
            "A recurrent net applies one cell at every time step, so backprop through time multiplies by the same Jacobian again and again: depth along time.",
            "A vanilla tanh cell on the adding problem (T = 50) waits, paused.",
        ],
        action: Action::TogglePause,
        doing: "to start training",
        start_paused: true,
        trigger: Trigger::Resumed,
        measure: Measure::FirstLastDb,
        claim: Claim::BelowDb {
            db: -20.0,
            count: 10,
        },
    },
    Lesson {
        title: "LSTM and GRU gates protect the signal",
        preset: "rnn-vanilla-adding",
        overrides: &[],
        text: &[
            "No skip helps here: every step shares the weights. Gated cells instead keep a state the error can cross unmultiplied, and learn when to write and read it.",
            "This vanilla cell's gradient at t = 1 has faded. Switch to a GRU.",
        ],
        action: Action::Switch(Move::NextCell),
        doing: "to switch to the GRU cell",
        start_paused: false,
        trigger: Trigger::Applied(to_gated),
        measure: Measure::FirstGrad,
        claim: Claim::RisesDb { db: 20.0, count: 5 },
    },
];
