//! What the dashboard knows of one run: its experiment, switches, state and the histories the
//! panels draw, built from that run's events alone. The single-run dashboard shows one of
//! these; the compare view shows 2–4.

use super::history::History;
use super::paced_prediction::{PacedPrediction, ShownPrediction};
use crate::analysis::{ForwardSignal, JacobianSpectrum};
use crate::config::{Experiment, ModelKind};
use crate::metrics::Snapshot;
use crate::paths::PathStats;
use crate::protocol::{Command, Event, LesionResult, RunState, Switches};
use crate::sources::LayerSources;
use crate::theory::{MeanField, mean_field};
use std::collections::VecDeque;
use std::rc::Rc;

/// Points kept at full resolution per series (about the width of a large terminal).
pub const RECENT_POINTS: usize = 240;
/// Cap of the decimated whole-run history per series.
pub const FULL_POINTS: usize = 256;
/// Command markers kept on the charts.
const MAX_MARKERS: usize = 64;

fn history() -> History {
    History::new(RECENT_POINTS, FULL_POINTS)
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
        Self {
            act_grad: history(),
            weight_grad: history(),
            act_rms: history(),
            update_ratio: history(),
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

/// The newest spectrum analysis of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SpectrumView {
    /// Updates applied before the measurement.
    pub step: u64,
    /// Singular values of ∂h_L/∂h_1.
    pub jacobian: JacobianSpectrum,
    /// Per-layer q_l and c_l.
    pub forward: ForwardSignal,
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

/// One run as the dashboard shows it.
#[derive(Clone, Debug)]
pub struct RunView {
    /// What the compare view calls it when not its preset's name: the `--preset` argument, or
    /// a twin's parent and flipped switch (see [`RunView::name`]).
    pub label: Option<String>,
    /// The step it was forked from its parent at (None for a run started as itself).
    pub forked_at: Option<u64>,
    /// The experiment the run trains (None until `Started`).
    pub experiment: Option<Experiment>,
    /// Plain-net mean-field numbers for the experiment's initial σ_w² and σ_b² (the line and
    /// the header show [`RunView::prediction`], for the architecture in effect).
    pub theory: Option<MeanField>,
    /// Run state.
    pub state: RunState,
    /// The step of the newest measurement shown: the header and the charts' right edge agree,
    /// so one `n` while paused moves both by one.
    pub step: u64,
    /// Switches in effect.
    pub switches: Switches,
    /// Newest snapshot, shown as text (may hold NaN/Inf).
    pub latest: Option<Snapshot>,
    /// The mean-field prediction drawn for `latest` (see [`RunView::prediction`]).
    prediction: PacedPrediction,
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
    /// Newest lesions.
    pub lesion: Option<LesionView>,
    /// A lesion was asked for and has not come back yet.
    pub lesion_pending: bool,
    /// Path panel shown in place of the heat map.
    pub show_paths: bool,
    /// The newest Jacobian spectrum and forward signal (MLP), with the step they were taken.
    pub spectrum: Option<SpectrumView>,
    /// Whether the spectrum / forward-signal view replaces the panels (toggled by a key).
    pub show_spectrum: bool,
    /// Commands applied, oldest first.
    pub markers: VecDeque<Marker>,
    /// Layer (or time step) under the cursor.
    pub cursor: usize,
    /// Last error the run reported.
    pub error: Option<String>,
    /// Steps per second of wall-clock time, measured over about a second.
    pub steps_per_sec: Option<f64>,
    /// Steps per second of the time this run's own steps took (what it would do alone).
    pub busy_steps_per_sec: Option<f64>,
    rate_sample: Option<(f64, u64)>,
    /// A restart was just asked for: the marker it gets at step 0 of the new run.
    pub(super) pending_restart: Option<Marker>,
    /// The run crashed or its driver went away: something may have written over the screen.
    pub needs_full_redraw: bool,
}

impl RunView {
    /// A run waiting for its `Started` event, called `label` if given, else by its preset.
    pub fn new(label: Option<String>) -> Self {
        Self {
            label,
            forked_at: None,
            experiment: None,
            theory: None,
            state: RunState::Running,
            step: 0,
            switches: Switches::default(),
            latest: None,
            prediction: PacedPrediction::default(),
            loss: history(),
            main_loss: history(),
            aux_losses: Vec::new(),
            test_loss: history(),
            first_grad: history(),
            last_grad: history(),
            ratio_db: history(),
            gate_mean: history(),
            layers: Vec::new(),
            timesteps: Vec::new(),
            gate_first: history(),
            gate_last: history(),
            paths: None,
            sources: None,
            lesion: None,
            lesion_pending: false,
            show_paths: false,
            spectrum: None,
            show_spectrum: false,
            markers: VecDeque::new(),
            cursor: 0,
            error: None,
            steps_per_sec: None,
            busy_steps_per_sec: None,
            rate_sample: None,
            pending_restart: None,
            needs_full_redraw: false,
        }
    }

    /// What the dashboard calls the run.
    pub fn name(&self) -> String {
        match (&self.label, &self.experiment) {
            (Some(label), _) => label.clone(),
            (None, Some(e)) => e.name.clone(),
            (None, None) => "starting…".into(),
        }
    }

    /// The mean-field prediction for the architecture of the newest snapshot, from the
    /// variances of the step it names (None for cells without one, and before the first
    /// snapshot). Computed only when drawn, so a replay seeking through thousands of steps does
    /// not pay for it, and while the run trains only as often as its cost allows (see
    /// [`PacedPrediction`]).
    pub fn prediction(&self) -> Option<Rc<ShownPrediction>> {
        self.prediction.get(
            self.latest.as_ref(),
            self.switches,
            self.state == RunState::Running,
        )
    }

    /// The kind of network (None before it started).
    pub fn kind(&self) -> Option<ModelKind> {
        self.experiment.as_ref().map(|e| e.model.kind)
    }

    /// Whether the experiment is a recurrent net (the RNN view is drawn).
    pub fn is_rnn(&self) -> bool {
        self.kind() == Some(ModelKind::Rnn)
    }

    /// Rows the cursor moves over: hidden layers of an MLP, time steps of a recurrent net.
    pub fn depth(&self) -> usize {
        if self.is_rnn() {
            return self.timesteps.len();
        }
        self.experiment.as_ref().map_or(0, |e| e.model.depth)
    }

    /// Whether the run can take commands that change training (not crashed, not gone).
    pub fn is_live(&self) -> bool {
        self.experiment.is_some() && matches!(self.state, RunState::Running | RunState::Paused)
    }

    /// This run's view for its twin at a fork: the history so far, none of its pending work.
    pub fn twin(&self, label: String, step: u64) -> RunView {
        let mut twin = self.clone();
        twin.label = Some(label);
        twin.forked_at = Some(step);
        twin.error = None;
        twin.lesion_pending = false;
        twin.steps_per_sec = None;
        twin.busy_steps_per_sec = None;
        twin.rate_sample = None;
        twin.pending_restart = None;
        twin
    }

    /// Moves the cursor one row.
    pub fn move_cursor(&mut self, up: bool) {
        let depth = self.depth();
        self.cursor = if up {
            self.cursor.saturating_sub(1)
        } else {
            (self.cursor + 1).min(depth.saturating_sub(1))
        };
    }

    /// Remembers the label for the marker a restart will get at step 0.
    pub fn expect_restart(&mut self, label: String) {
        self.pending_restart = Some(Marker { step: 0, label });
    }

    /// Takes in one event of this run.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Started { preset } => self.start(*preset),
            Event::Snapshot(snapshot) => {
                self.record(&snapshot);
                self.latest = Some(*snapshot);
            }
            Event::State { state, .. } => {
                if matches!(state, RunState::Crashed(_)) {
                    // The panic message went to stderr, on top of the dashboard.
                    self.needs_full_redraw = true;
                }
                self.state = state;
            }
            Event::Applied { step, command } => self.applied(step, command),
            Event::Error { message } => {
                self.lesion_pending = false;
                self.error = Some(message);
            }
            Event::Paths { step, stats } => self.paths = Some((step, *stats)),
            Event::Sources { step, layers } => self.sources = Some((step, layers)),
            Event::Spectrum {
                step,
                jacobian,
                forward,
            } => {
                self.spectrum = Some(SpectrumView {
                    step,
                    jacobian: *jacobian,
                    forward: *forward,
                })
            }
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
            Event::Throughput { steps_per_sec } => self.busy_steps_per_sec = Some(steps_per_sec),
            Event::Ended { .. }
            | Event::Forked { .. }
            | Event::WeightsSaved { .. }
            | Event::Unknown => {}
        }
    }

    fn start(&mut self, experiment: Experiment) {
        self.reset_history(&experiment);
        self.switches = Switches::of(&experiment);
        let init = &experiment.model.init;
        self.theory = Some(mean_field(
            experiment.model.activation,
            f64::from(init.weight_var),
            f64::from(init.bias_var),
        ));
        self.cursor = self.cursor.min(experiment.model.depth.saturating_sub(1));
        self.experiment = Some(experiment);
        self.error = None;
        // A new run runs until its driver (or recording) says otherwise.
        self.state = RunState::Running;
        if let Some(marker) = self.pending_restart.take() {
            self.push_marker(marker);
        }
    }

    fn applied(&mut self, step: u64, command: Command) {
        if self.switches.apply(&command) && command.rewires() {
            // The analyses belong to the old wiring; the panel waits for the next ones
            // rather than show them under the new switches.
            self.paths = None;
            self.sources = None;
            self.spectrum = None;
        }
        match &command {
            // A replayed restart had no key press to label it; live ones keep their label.
            Command::Reset | Command::LoadPreset(_) => {
                if self.pending_restart.is_none() {
                    let label = match &command {
                        Command::Reset => format!("reset (was step {step})"),
                        other => other.label(),
                    };
                    self.expect_restart(label);
                }
            }
            // Single steps would bury the chart in lines; the rest become markers.
            Command::Step(_) => {}
            _ => self.push_marker(Marker {
                step,
                label: command.label(),
            }),
        }
    }

    /// Measures steps per second over about a second of `now` (seconds since start).
    pub fn on_tick(&mut self, now: f64) {
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
        self.spectrum = None;
        self.lesion = None;
        self.lesion_pending = false;
        self.layers = (0..experiment.model.depth)
            .map(|_| LayerHistory::new())
            .collect();
        self.markers.clear();
        self.latest = None;
        self.prediction.reset();
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
            self.aux_losses.resize_with(s.aux_losses.len(), history);
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
            self.timesteps.resize_with(s.timesteps.len(), history);
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
}
