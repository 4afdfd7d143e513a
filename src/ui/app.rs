//! Dashboard state and the one `update` function that changes it.
//!
//! Every change of state — a key, a trainer event, a clock tick — arrives as a [`Msg`], so the
//! whole dashboard can be driven by tests without a terminal. Commands for the trainer are not
//! sent from here: `update` queues them in [`App::outbox`] and the event loop forwards them.

use super::compare::{self, CompareView};
use super::fork::{Flip, ForkRequest};
use super::history::History;
use super::picker::Picker;
use super::replay::{ReplayAction, ReplayView};
use super::theme::Theme;
use crate::config::{CellKind, Experiment, ModelKind, SkipMode};
use crate::metrics::Snapshot;
use crate::paths::PathStats;
use crate::protocol::LesionResult;
use crate::protocol::{Command, Event, LaneEvent, RunState};
use crate::sources::LayerSources;
use crate::theory::{MeanField, mean_field};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::VecDeque;

/// Points kept at full resolution per series (about the width of a large terminal).
pub const RECENT_POINTS: usize = 240;
/// Cap of the decimated whole-run history per series.
pub const FULL_POINTS: usize = 256;
/// Command markers kept on the charts.
const MAX_MARKERS: usize = 64;
/// Learning rates the `[`/`]` keys stay within.
pub const LR_RANGE: (f32, f32) = (1e-6, 10.0);

/// What a key asks for. Kept separate from [`Msg`] so the key table can be a `const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Switch to plain layers.
    Plain,
    /// Switch to residual layers (scale 1).
    Residual,
    /// Switch to highway layers.
    Highway,
    /// Switch to dense read-out.
    Dense,
    /// Auxiliary losses on/off.
    ToggleAux,
    /// Recurrent nets: next cell (vanilla → GRU → LSTM).
    CycleCell,
    /// Show or hide the path-length panel (MLP).
    TogglePaths,
    /// Ask the trainer for single-block lesions (MLP) and show them.
    Lesion,
    /// Learning rate ÷2.
    LrDown,
    /// Learning rate ×2.
    LrUp,
    /// Pause or resume.
    TogglePause,
    /// One step while paused.
    StepOnce,
    /// Restart the run with the same seed.
    Reset,
    /// Layer cursor towards the input.
    CursorUp,
    /// Layer cursor towards the output.
    CursorDown,
    /// Open the preset picker.
    OpenPicker,
    /// Show or hide the help overlay.
    ToggleHelp,
    /// Close the overlay on top.
    Close,
    /// Load the preset under the picker's cursor.
    Choose,
    /// Open the fork menu: a twin of the run with one switch flipped, side by side.
    OpenFork,
    /// Fork menu: make the twin with this switch flipped.
    ForkWith(Flip),
    /// Compare view: side by side or overlaid.
    ToggleOverlay,
    /// Compare view: focus the next run (toggles go to the focused run).
    FocusNext,
    /// Compare view: focus run n (0-based).
    Focus(usize),
    /// Leave the dashboard.
    Quit,
}

/// One key binding: shown in the help overlay and used to map keys.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// The key.
    pub code: KeyCode,
    /// Whether Ctrl must be held.
    pub ctrl: bool,
    /// What it does.
    pub action: Action,
    /// The key as the help overlay spells it ("" to hide a duplicate).
    pub key_label: &'static str,
    /// What it does, in words ("" to hide a duplicate).
    pub help: &'static str,
}

const fn bind(
    code: KeyCode,
    action: Action,
    key_label: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        code,
        ctrl: false,
        action,
        key_label,
        help,
    }
}

/// Keys on the main screen (and under the help overlay).
pub const MAIN_KEYS: &[Binding] = &[
    bind(KeyCode::Char('p'), Action::Plain, "p", "skip mode: plain"),
    bind(
        KeyCode::Char('r'),
        Action::Residual,
        "r",
        "skip mode: residual (scale 1)",
    ),
    bind(
        KeyCode::Char('h'),
        Action::Highway,
        "h",
        "skip mode: highway",
    ),
    bind(
        KeyCode::Char('d'),
        Action::Dense,
        "d",
        "skip mode: dense read-out",
    ),
    bind(
        KeyCode::Char('a'),
        Action::ToggleAux,
        "a",
        "auxiliary losses on/off",
    ),
    bind(
        KeyCode::Char('g'),
        Action::CycleCell,
        "g",
        "RNN cell: vanilla → GRU → LSTM",
    ),
    bind(
        KeyCode::Char('l'),
        Action::TogglePaths,
        "l",
        "path lengths panel (MLP)",
    ),
    bind(
        KeyCode::Char('L'),
        Action::Lesion,
        "L",
        "lesion each block, show damage (MLP)",
    ),
    bind(KeyCode::Char('['), Action::LrDown, "[", "learning rate ÷2"),
    bind(KeyCode::Char(']'), Action::LrUp, "]", "learning rate ×2"),
    bind(
        KeyCode::Char(' '),
        Action::TogglePause,
        "space",
        "pause / resume",
    ),
    bind(
        KeyCode::Char('n'),
        Action::StepOnce,
        "n",
        "one step (while paused)",
    ),
    bind(
        KeyCode::Char('R'),
        Action::Reset,
        "R",
        "reset the run (same seed)",
    ),
    bind(
        KeyCode::Up,
        Action::CursorUp,
        "↑ k",
        "layer cursor towards the input",
    ),
    bind(KeyCode::Char('k'), Action::CursorUp, "", ""),
    bind(
        KeyCode::Down,
        Action::CursorDown,
        "↓ j",
        "layer cursor towards the output",
    ),
    bind(KeyCode::Char('j'), Action::CursorDown, "", ""),
    bind(KeyCode::Char('P'), Action::OpenPicker, "P", "preset picker"),
    bind(
        KeyCode::Char('f'),
        Action::OpenFork,
        "f",
        "fork: twin with one switch flipped, compared",
    ),
    bind(
        KeyCode::Char('o'),
        Action::ToggleOverlay,
        "o",
        "compare: side by side / overlaid",
    ),
    bind(
        KeyCode::Tab,
        Action::FocusNext,
        "Tab 1-4",
        "compare: focus a run (toggles apply to it)",
    ),
    bind(KeyCode::Char('1'), Action::Focus(0), "", ""),
    bind(KeyCode::Char('2'), Action::Focus(1), "", ""),
    bind(KeyCode::Char('3'), Action::Focus(2), "", ""),
    bind(KeyCode::Char('4'), Action::Focus(3), "", ""),
    bind(KeyCode::Char('?'), Action::ToggleHelp, "?", "this help"),
    bind(KeyCode::Esc, Action::Close, "Esc", "close an overlay"),
    bind(KeyCode::Char('q'), Action::Quit, "q", "quit"),
    Binding {
        code: KeyCode::Char('c'),
        ctrl: true,
        action: Action::Quit,
        key_label: "Ctrl-C",
        help: "quit",
    },
];

/// Keys while the fork menu is open: which switch the twin gets flipped.
pub const FORK_KEYS: &[Binding] = &[
    bind(
        KeyCode::Char('r'),
        Action::ForkWith(Flip::Residual),
        "r",
        "twin goes residual",
    ),
    bind(
        KeyCode::Char('h'),
        Action::ForkWith(Flip::Highway),
        "h",
        "twin goes highway",
    ),
    bind(
        KeyCode::Char('d'),
        Action::ForkWith(Flip::Dense),
        "d",
        "twin goes dense",
    ),
    bind(
        KeyCode::Char('p'),
        Action::ForkWith(Flip::Plain),
        "p",
        "twin goes plain",
    ),
    bind(
        KeyCode::Char('a'),
        Action::ForkWith(Flip::Aux),
        "a",
        "twin: auxiliary losses on/off",
    ),
    bind(
        KeyCode::Char('g'),
        Action::ForkWith(Flip::Cell),
        "g",
        "twin: next RNN cell",
    ),
    bind(
        KeyCode::Char(']'),
        Action::ForkWith(Flip::LrUp),
        "]",
        "twin: learning rate ×10",
    ),
    bind(
        KeyCode::Char('['),
        Action::ForkWith(Flip::LrDown),
        "[",
        "twin: learning rate ÷10",
    ),
    bind(
        KeyCode::Char('='),
        Action::ForkWith(Flip::Nothing),
        "=",
        "identical twin (nothing flipped)",
    ),
    bind(KeyCode::Esc, Action::Close, "Esc", "cancel"),
    bind(KeyCode::Char('f'), Action::Close, "", ""),
    bind(KeyCode::Char('q'), Action::Close, "", ""),
    Binding {
        code: KeyCode::Char('c'),
        ctrl: true,
        action: Action::Quit,
        key_label: "Ctrl-C",
        help: "quit",
    },
];

/// Keys while the preset picker is open.
pub const PICKER_KEYS: &[Binding] = &[
    bind(KeyCode::Up, Action::CursorUp, "↑ k", "previous preset"),
    bind(KeyCode::Char('k'), Action::CursorUp, "", ""),
    bind(KeyCode::Down, Action::CursorDown, "↓ j", "next preset"),
    bind(KeyCode::Char('j'), Action::CursorDown, "", ""),
    bind(
        KeyCode::Enter,
        Action::Choose,
        "Enter",
        "load it (restarts the run)",
    ),
    bind(KeyCode::Esc, Action::Close, "Esc", "cancel"),
    bind(KeyCode::Char('P'), Action::Close, "", ""),
    bind(KeyCode::Char('q'), Action::Close, "", ""),
    Binding {
        code: KeyCode::Char('c'),
        ctrl: true,
        action: Action::Quit,
        key_label: "Ctrl-C",
        help: "quit",
    },
];

/// Everything that can change the dashboard's state.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// A key action (already mapped from the key table).
    Key(Action),
    /// Something the trainer reported.
    Trainer(Event),
    /// The clock, in seconds since the dashboard started; drives the steps/s figure.
    Tick(f64),
    /// The trainer thread has gone away.
    TrainerGone,
    /// A replay control (play, speed, seek); only mapped from keys while replaying.
    Replay(ReplayAction),
    /// Something a lane of the driver reported, in the compare view (or its first fork).
    Lane(LaneEvent),
}

/// Histories of one hidden layer.
#[derive(Clone, Debug)]
pub struct LayerHistory {
    /// ‖∂L/∂h_l‖.
    pub act_grad: History,
    /// ‖∂L/∂W_l‖.
    pub weight_grad: History,
    /// RMS of h_l.
    pub act_rms: History,
    /// ‖ΔW_l‖/‖W_l‖.
    pub update_ratio: History,
}

impl LayerHistory {
    fn new() -> Self {
        let h = || History::new(RECENT_POINTS, FULL_POINTS);
        Self {
            act_grad: h(),
            weight_grad: h(),
            act_rms: h(),
            update_ratio: h(),
        }
    }
}

/// A command drawn on the charts as a labelled vertical line.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// The first step the command influenced.
    pub step: u64,
    /// What it was, e.g. `skip → residual`.
    pub label: String,
}

/// The newest answer to a lesion request.
#[derive(Clone, Debug, PartialEq)]
pub struct LesionView {
    /// Updates applied when the lesions were evaluated.
    pub step: u64,
    /// Test loss of the intact network at that step.
    pub intact_test_loss: f64,
    /// One result per block, input side first.
    pub results: Vec<LesionResult>,
}

/// The switches in effect, as the dashboard believes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwitchState {
    /// Skip mode.
    pub skip: SkipMode,
    /// Auxiliary losses on.
    pub aux: bool,
    /// Learning rate.
    pub lr: f32,
    /// Recurrent cell (recurrent nets only).
    pub cell: CellKind,
}

/// The whole dashboard state. In the compare view each run has an `App` of its own inside
/// [`App::compare`] (cloning one is how a twin inherits its parent's history).
#[derive(Clone, Debug)]
pub struct App {
    /// Colours and glyphs.
    pub theme: Theme,
    /// The experiment the trainer runs (None until `Started`).
    pub experiment: Option<Experiment>,
    /// Mean-field prediction for the experiment's initialisation.
    pub theory: Option<MeanField>,
    /// Trainer state.
    pub state: RunState,
    /// Updates applied so far (from the newest snapshot or state event).
    pub step: u64,
    /// Switches in effect.
    pub switches: SwitchState,
    /// Newest snapshot, shown as text (may hold NaN/Inf).
    pub latest: Option<Snapshot>,
    /// Total objective.
    pub loss: History,
    /// Main head's loss.
    pub main_loss: History,
    /// Each auxiliary head's loss.
    pub aux_losses: Vec<History>,
    /// Test loss at each evaluation.
    pub test_loss: History,
    /// ‖∂L/∂h‖ of the first hidden layer.
    pub first_grad: History,
    /// ‖∂L/∂h‖ of the last hidden layer.
    pub last_grad: History,
    /// First/last ratio in dB.
    pub ratio_db: History,
    /// Mean highway gate over layers.
    pub gate_mean: History,
    /// Per-layer histories, input side first.
    pub layers: Vec<LayerHistory>,
    /// Recurrent nets: ‖∂L/∂h_t‖ per time step, t = 1 first.
    pub timesteps: Vec<History>,
    /// Recurrent nets: mean gate (LSTM forget, GRU update) at the first time step.
    pub gate_first: History,
    /// Recurrent nets: mean gate at the last time step.
    pub gate_last: History,
    /// Newest path-length statistics and the step they were measured at.
    pub paths: Option<(u64, PathStats)>,
    /// Newest split of each layer's gradient by source (dense read-outs, auxiliary heads).
    pub sources: Option<(u64, Vec<LayerSources>)>,
    /// Newest lesions: the step, the intact net's test loss, and one result per block.
    pub lesion: Option<LesionView>,
    /// A lesion was asked for and has not come back yet.
    pub lesion_pending: bool,
    /// Path panel shown in place of the heat map.
    pub show_paths: bool,
    /// A short note for the status line (e.g. a key that does not apply); cleared by the next key.
    pub note: Option<String>,
    /// Commands applied, oldest first.
    pub markers: VecDeque<Marker>,
    /// Layer under the cursor.
    pub cursor: usize,
    /// Help overlay shown.
    pub show_help: bool,
    /// Preset picker, when open.
    pub picker: Option<Picker>,
    /// Last error to show in the status line.
    pub error: Option<String>,
    /// Steps per second, measured over about a second (None until measured).
    pub steps_per_sec: Option<f64>,
    /// Steps per second of the time this run's own steps took (what it would do alone).
    pub busy_steps_per_sec: Option<f64>,
    rate_sample: Option<(f64, u64)>,
    /// A restart was just requested: label for the marker at step 0 of the new run.
    pending_restart: Option<Marker>,
    /// Commands waiting to be sent to the trainer.
    pub outbox: Vec<Command>,
    /// The user asked to leave.
    pub quit: bool,
    /// The trainer thread ended.
    pub trainer_gone: bool,
    /// Something may have written over the screen (a panic message): repaint every cell.
    pub needs_full_redraw: bool,
    /// Set when the dashboard shows a recording instead of a live trainer.
    pub replay: Option<ReplayView>,
    /// The compare view, when 2–4 runs are shown (this `App` then only holds the frame).
    pub compare: Option<CompareView>,
    /// The fork menu is open.
    pub fork_menu: bool,
    /// A fork asked for and not yet carried out (taken by the event source).
    pub fork_request: Option<ForkRequest>,
    /// Forks sent and not yet confirmed, oldest first (they name the twins).
    pub forks_pending: VecDeque<ForkRequest>,
}

impl App {
    /// An empty dashboard waiting for the trainer's `Started` event.
    pub fn new(theme: Theme) -> Self {
        let h = || History::new(RECENT_POINTS, FULL_POINTS);
        Self {
            theme,
            experiment: None,
            theory: None,
            state: RunState::Running,
            step: 0,
            switches: SwitchState {
                skip: SkipMode::Plain,
                aux: false,
                lr: 0.0,
                cell: CellKind::Vanilla,
            },
            latest: None,
            loss: h(),
            main_loss: h(),
            aux_losses: Vec::new(),
            test_loss: h(),
            first_grad: h(),
            last_grad: h(),
            ratio_db: h(),
            gate_mean: h(),
            layers: Vec::new(),
            timesteps: Vec::new(),
            gate_first: h(),
            gate_last: h(),
            paths: None,
            sources: None,
            lesion: None,
            lesion_pending: false,
            show_paths: false,
            note: None,
            markers: VecDeque::new(),
            cursor: 0,
            show_help: false,
            picker: None,
            error: None,
            steps_per_sec: None,
            busy_steps_per_sec: None,
            rate_sample: None,
            pending_restart: None,
            outbox: Vec::new(),
            quit: false,
            trainer_gone: false,
            needs_full_redraw: false,
            replay: None,
            compare: None,
            fork_menu: false,
            fork_request: None,
            forks_pending: VecDeque::new(),
        }
    }

    /// Rows the cursor moves over: hidden layers of an MLP, time steps of a recurrent net.
    pub fn depth(&self) -> usize {
        if self.is_rnn() {
            return self.timesteps.len();
        }
        self.experiment.as_ref().map_or(0, |e| e.model.depth)
    }

    /// Whether the experiment is a recurrent net (the RNN view is drawn).
    pub fn is_rnn(&self) -> bool {
        self.experiment
            .as_ref()
            .is_some_and(|e| e.model.kind == ModelKind::Rnn)
    }

    /// The keys in force: the fork menu's or the picker's while open, else the main screen's.
    pub fn keys(&self) -> &'static [Binding] {
        if self.fork_menu {
            FORK_KEYS
        } else if self.picker.is_some() {
            PICKER_KEYS
        } else {
            MAIN_KEYS
        }
    }

    /// Maps a terminal key to a message using the key table in force.
    pub fn key_to_msg(&self, key: KeyEvent) -> Option<Msg> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if self.replay.is_some() {
            return super::replay::key_to_msg(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        self.keys()
            .iter()
            .find(|b| b.code == key.code && b.ctrl == ctrl)
            .map(|b| Msg::Key(b.action))
    }

    fn reset_history(&mut self, experiment: &Experiment) {
        for series in [
            &mut self.loss,
            &mut self.main_loss,
            &mut self.test_loss,
            &mut self.first_grad,
            &mut self.last_grad,
            &mut self.ratio_db,
            &mut self.gate_mean,
            &mut self.gate_first,
            &mut self.gate_last,
        ] {
            series.clear();
        }
        self.aux_losses.clear();
        self.timesteps.clear();
        self.paths = None;
        self.sources = None;
        self.lesion = None;
        self.lesion_pending = false;
        self.layers = (0..experiment.model.depth)
            .map(|_| LayerHistory::new())
            .collect();
        self.markers.clear();
        self.latest = None;
        self.step = 0;
        self.rate_sample = None;
        self.steps_per_sec = None;
    }

    fn record(&mut self, s: &Snapshot) {
        let x = s.step as f64;
        self.step = s.step;
        self.loss.push(x, s.loss);
        self.main_loss.push(x, s.main_loss);
        if self.aux_losses.len() < s.aux_losses.len() {
            self.aux_losses.resize_with(s.aux_losses.len(), || {
                History::new(RECENT_POINTS, FULL_POINTS)
            });
        }
        for (history, &value) in self.aux_losses.iter_mut().zip(&s.aux_losses) {
            history.push(x, value);
        }
        if let Some(test) = s.test_loss {
            // The snapshot repeats the last evaluation; one point per evaluation is enough.
            let previous = self.latest.as_ref().and_then(|l| l.test_loss);
            if previous != Some(test) || self.test_loss.is_empty() {
                self.test_loss.push(x, test);
            }
        }
        if let (Some(first), Some(last)) = (s.layers.first(), s.layers.last()) {
            self.first_grad.push(x, first.act_grad_norm);
            self.last_grad.push(x, last.act_grad_norm);
        }
        if let (Some(first), Some(last)) = (s.timesteps.first(), s.timesteps.last()) {
            self.first_grad.push(x, first.hidden_grad_norm);
            self.last_grad.push(x, last.hidden_grad_norm);
            let gate =
                |t: &crate::metrics::TimestepMetrics| t.forget_gate_mean.or(t.update_gate_mean);
            // Vanilla cells have no gate: the series pauses rather than dropping to zero.
            if let (Some(g0), Some(g1)) = (gate(first), gate(last)) {
                self.gate_first.push(x, g0);
                self.gate_last.push(x, g1);
            }
        }
        if self.timesteps.len() < s.timesteps.len() {
            self.timesteps.resize_with(s.timesteps.len(), || {
                History::new(RECENT_POINTS, FULL_POINTS)
            });
        }
        for (history, t) in self.timesteps.iter_mut().zip(&s.timesteps) {
            history.push(x, t.hidden_grad_norm);
        }
        self.ratio_db.push(x, s.grad_ratio_db);
        let gates: Vec<f64> = s.layers.iter().filter_map(|l| l.gate_mean).collect();
        if !gates.is_empty() {
            self.gate_mean
                .push(x, gates.iter().sum::<f64>() / gates.len() as f64);
        }
        if self.layers.len() < s.layers.len() {
            self.layers.resize_with(s.layers.len(), LayerHistory::new);
        }
        for (history, layer) in self.layers.iter_mut().zip(&s.layers) {
            history.act_grad.push(x, layer.act_grad_norm);
            history.weight_grad.push(x, layer.weight_grad_norm);
            history.act_rms.push(x, layer.act_rms);
            history.update_ratio.push(x, layer.update_ratio);
        }
    }

    fn push_marker(&mut self, marker: Marker) {
        if self.markers.len() == MAX_MARKERS {
            self.markers.pop_front();
        }
        self.markers.push_back(marker);
    }

    fn send(&mut self, command: Command) {
        self.outbox.push(command);
    }

    fn set_skip(&mut self, skip: SkipMode) {
        self.switches.skip = skip;
        self.send(Command::SetSkip(skip));
    }

    fn scale_lr(&mut self, factor: f32) {
        let lr = (self.switches.lr * factor).clamp(LR_RANGE.0, LR_RANGE.1);
        self.switches.lr = lr;
        self.send(Command::SetLearningRate(lr));
    }

    fn move_cursor(&mut self, up: bool) {
        if let Some(picker) = self.picker.as_mut() {
            picker.move_selection(up);
            return;
        }
        let depth = self.depth();
        self.cursor = if up {
            self.cursor.saturating_sub(1)
        } else {
            (self.cursor + 1).min(depth.saturating_sub(1))
        };
    }

    /// Whether `action` applies to the current model kind; if not, says so in the status line.
    fn applies(&mut self, action: Action) -> bool {
        let mlp_only = matches!(
            action,
            Action::Plain
                | Action::Residual
                | Action::Highway
                | Action::Dense
                | Action::ToggleAux
                | Action::TogglePaths
                | Action::Lesion
        );
        let rnn = self.is_rnn();
        if rnn && mlp_only {
            self.note = Some("an MLP key: this is a recurrent net (g switches the cell)".into());
            false
        } else if !rnn && action == Action::CycleCell {
            self.note = Some("g switches RNN cells: this is an MLP (p r h d switch skips)".into());
            false
        } else {
            true
        }
    }

    pub(super) fn on_key(&mut self, action: Action) {
        self.note = None;
        if self.compare.is_some() {
            compare::on_key(self, action);
            return;
        }
        if !self.applies(action) {
            return;
        }
        match action {
            Action::OpenFork => self.open_fork_menu(),
            Action::ForkWith(flip) => {
                self.fork_menu = false;
                let parent = self
                    .experiment
                    .as_ref()
                    .map_or_else(String::new, |e| e.name.clone());
                match super::fork::request(self, &parent, 0, flip) {
                    Ok(request) => {
                        self.forks_pending = VecDeque::from([request.clone()]);
                        self.fork_request = Some(request);
                        self.note = Some("forking…".into());
                    }
                    Err(note) => self.note = Some(note),
                }
            }
            Action::ToggleOverlay | Action::FocusNext | Action::Focus(_) => {
                self.note = Some("a compare-view key: f forks this run into a comparison".into());
            }
            Action::CycleCell => {
                self.switches.cell = self.switches.cell.next();
                self.send(Command::SetCell(self.switches.cell));
            }
            Action::TogglePaths => self.show_paths = !self.show_paths,
            Action::Lesion => {
                self.show_paths = true;
                self.lesion_pending = true;
                self.send(Command::Lesion);
            }
            Action::Plain => self.set_skip(SkipMode::Plain),
            Action::Residual => self.set_skip(SkipMode::Residual { scale: 1.0 }),
            Action::Highway => self.set_skip(SkipMode::Highway),
            Action::Dense => self.set_skip(SkipMode::Dense),
            Action::ToggleAux => {
                self.switches.aux = !self.switches.aux;
                self.send(Command::SetAux(self.switches.aux));
            }
            Action::LrDown => self.scale_lr(0.5),
            Action::LrUp => self.scale_lr(2.0),
            Action::TogglePause => match self.state {
                RunState::Running => self.send(Command::Pause),
                RunState::Paused => self.send(Command::Resume),
                _ => {}
            },
            Action::StepOnce => {
                if self.state == RunState::Paused {
                    self.send(Command::Step(1));
                }
            }
            Action::Reset => {
                self.pending_restart = Some(Marker {
                    step: 0,
                    label: format!("reset (was step {})", self.step),
                });
                self.send(Command::Reset);
            }
            Action::CursorUp => self.move_cursor(true),
            Action::CursorDown => self.move_cursor(false),
            Action::OpenPicker => {
                self.show_help = false;
                self.picker = Some(Picker::discover(std::path::Path::new("presets")));
            }
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::Close => {
                self.show_help = false;
                self.picker = None;
                self.fork_menu = false;
            }
            Action::Choose => {
                let Some(picker) = self.picker.take() else {
                    return;
                };
                match picker.load_selected() {
                    Ok(experiment) => {
                        self.pending_restart = Some(Marker {
                            step: 0,
                            label: format!("load {}", experiment.name),
                        });
                        self.error = None;
                        self.send(Command::LoadPreset(Box::new(experiment)));
                    }
                    Err(error) => {
                        self.error = Some(format!("{error:#}"));
                        self.picker = Some(picker);
                    }
                }
            }
            Action::Quit => self.quit = true,
        }
    }

    /// This run's view for its twin at a fork: the history so far, none of its pending work.
    pub fn twin(&self) -> App {
        let mut twin = self.clone();
        twin.outbox.clear();
        twin.note = None;
        twin.error = None;
        twin.lesion_pending = false;
        twin.steps_per_sec = None;
        twin.rate_sample = None;
        twin.pending_restart = None;
        twin
    }

    /// Opens the fork menu, unless the run cannot be forked (not running, or already four).
    pub(super) fn open_fork_menu(&mut self) {
        if let Some(reason) = super::fork::refusal(self) {
            self.note = Some(reason);
            return;
        }
        self.show_help = false;
        self.picker = None;
        self.fork_menu = true;
    }

    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Started { preset: experiment } => {
                self.reset_history(&experiment);
                self.switches = SwitchState {
                    skip: experiment.model.skip,
                    aux: experiment.model.aux.enabled,
                    lr: experiment.optimizer.learning_rate(),
                    cell: experiment.model.cell,
                };
                let init = &experiment.model.init;
                self.theory = Some(mean_field(
                    experiment.model.activation,
                    f64::from(init.weight_var),
                    f64::from(init.bias_var),
                ));
                self.cursor = self.cursor.min(experiment.model.depth.saturating_sub(1));
                self.experiment = Some(*experiment);
                if let Some(marker) = self.pending_restart.take() {
                    self.push_marker(marker);
                }
            }
            Event::Snapshot(snapshot) => {
                self.record(&snapshot);
                self.latest = Some(*snapshot);
            }
            Event::State { step, state } => {
                self.step = self.step.max(step);
                if matches!(state, RunState::Crashed(_)) {
                    // The panic message went to stderr, on top of the dashboard.
                    self.needs_full_redraw = true;
                }
                self.state = state;
            }
            Event::Applied { step, command } => {
                match &command {
                    Command::SetSkip(skip) => {
                        self.switches.skip = *skip;
                        // The decomposition belongs to the old wiring; the panel waits for the
                        // next one rather than show it under the new skip mode.
                        self.paths = None;
                        self.sources = None;
                    }
                    Command::SetAux(on) => {
                        self.switches.aux = *on;
                        self.sources = None;
                    }
                    Command::SetLearningRate(lr) => self.switches.lr = *lr,
                    Command::SetCell(cell) => self.switches.cell = *cell,
                    _ => {}
                }
                // A replayed restart had no key press to label it; live ones keep their label.
                if matches!(command, Command::Reset | Command::LoadPreset(_))
                    && self.pending_restart.is_none()
                {
                    self.pending_restart = Some(Marker {
                        step: 0,
                        label: match &command {
                            Command::Reset => format!("reset (was step {step})"),
                            other => other.label(),
                        },
                    });
                }
                // Restarts get their marker at step 0 of the new run (see `Started`); single
                // steps would bury the chart in lines.
                if !matches!(
                    command,
                    Command::Reset | Command::LoadPreset(_) | Command::Step(_)
                ) {
                    self.push_marker(Marker {
                        step,
                        label: command.label(),
                    });
                }
            }
            Event::Error { message } => {
                self.lesion_pending = false;
                self.error = Some(message);
            }
            Event::Ended { .. } | Event::Forked { .. } | Event::Unknown => {}
            Event::Throughput { steps_per_sec } => self.busy_steps_per_sec = Some(steps_per_sec),
            Event::Paths { step, stats } => self.paths = Some((step, *stats)),
            Event::Sources { step, layers } => self.sources = Some((step, layers)),
            Event::Lesion {
                step,
                intact_test_loss,
                results,
            } => {
                self.lesion_pending = false;
                self.lesion = Some(LesionView {
                    step,
                    intact_test_loss,
                    results,
                });
            }
        }
    }

    pub(super) fn on_tick(&mut self, now: f64) {
        match self.rate_sample {
            None => self.rate_sample = Some((now, self.step)),
            Some((then, step)) if now - then >= 1.0 => {
                let rate = self.step.saturating_sub(step) as f64 / (now - then);
                // Stale while paused or stopped: say nothing rather than a misleading 0.
                self.steps_per_sec = (self.state == RunState::Running).then_some(rate);
                self.rate_sample = Some((now, self.step));
            }
            Some(_) => {}
        }
    }
}

/// Applies one message to the state. The only place the dashboard's state changes.
pub fn update(app: &mut App, msg: Msg) {
    match msg {
        Msg::Key(action) => app.on_key(action),
        Msg::Trainer(event) => app.on_event(event),
        Msg::Tick(now) => {
            app.on_tick(now);
            if let Some(view) = app.compare.as_mut() {
                view.runs.iter_mut().for_each(|run| run.app.on_tick(now));
            }
        }
        Msg::Replay(action) => super::replay::on_action(app, action),
        Msg::Lane(event) => compare::on_lane(app, event),
        Msg::TrainerGone => {
            if let Some(view) = app.compare.as_mut() {
                view.runs
                    .iter_mut()
                    .for_each(|run| update(&mut run.app, Msg::TrainerGone));
            }
            app.trainer_gone = true;
            if !matches!(app.state, RunState::Crashed(_)) {
                app.state = RunState::Crashed("the trainer thread ended".into());
            }
        }
    }
}
