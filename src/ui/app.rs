//! Dashboard state and the one `update` function that changes it.
//!
//! Everything that happens — a key, a driver event, a clock tick, a signal, a preset read from
//! disk — arrives as a [`Msg`]; `update` changes the state and returns the [`Effect`]s it wants
//! done (commands for the driver, reading presets, seeking in a recording). It does no I/O, so
//! the whole dashboard can be driven by tests without a terminal, a driver or a clock.

use super::keymap::{self, Action, Context, Situation};
use super::picker::{Picker, PresetSource};
use super::replay::{ReplayRequest, ReplayView};
use super::run_view::{Marker, RunView};
use super::theme::Theme;
use crate::config::Experiment;
use crate::protocol::{Command, Event, LaneCommand, LaneEvent, LaneId, MAX_LANES, RunState};
use ratatui::crossterm::event::{KeyEvent, KeyEventKind};
use std::collections::VecDeque;

/// What the dashboard shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Screen {
    /// Runs trained now by the driver.
    Live,
    /// A recording, played back or followed.
    Replay(ReplayView),
}

/// The one overlay drawn on top, if any.
#[derive(Clone, Debug, PartialEq)]
pub enum Overlay {
    /// Nothing on top.
    None,
    /// The key list.
    Help,
    /// The preset picker.
    Picker(Picker),
    /// Which switch a twin gets flipped.
    ForkMenu,
    /// What the focused panel shows.
    Explain,
}

/// Everything that can change the dashboard's state.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// A key as the terminal reported it; the keymap in force maps it.
    Input(KeyEvent),
    /// An action, already mapped (tests and lessons send these directly).
    Key(Action),
    /// Something a run reported (a live driver lane, or a recording's run).
    Lane(LaneEvent),
    /// The clock, in seconds since the dashboard started: rates and replay speed.
    Tick(f64),
    /// The driver has gone away.
    DriverGone,
    /// The preset picker's entries were listed.
    Presets(Picker),
    /// The preset chosen in the picker was read (or why not).
    PresetLoaded(Result<Box<Experiment>, String>),
    /// Where a replay stands after reading.
    ReplayStatus(ReplayStatus),
    /// A note about the recording (a far seek, a skipped line, the run's end).
    ReplayNote(String),
    /// A signal asked the dashboard to stop (`SIGTERM`, `SIGHUP`, `SIGINT`) or suspend
    /// (`SIGTSTP`).
    Signal(&'static str),
    /// Writing the recording failed: shown at once, and again when the dashboard closes.
    RecordingStopped(String),
    /// The terminal changed size: the next frame is drawn for it.
    Resized {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// Where a replay stands: sent by the replay source after each read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayStatus {
    /// The run of the recording shown (0-based).
    pub run: usize,
    /// Runs in the recording.
    pub runs: usize,
    /// The last step of the run shown (follow: the newest seen).
    pub last_step: u64,
    /// Nothing more to read.
    pub at_end: bool,
}

/// What `update` asks the world to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a command to a lane of the driver.
    Send(LaneCommand),
    /// List the presets for the picker (answered by `Msg::Presets`).
    DiscoverPresets,
    /// Read a preset (answered by `Msg::PresetLoaded`).
    LoadPreset(PresetSource),
    /// Read or seek in the recording shown.
    Replay(ReplayRequest),
    /// Give the terminal back to the shell until the user resumes the dashboard.
    Suspend,
}

/// The whole dashboard state.
#[derive(Clone, Debug)]
pub struct App {
    /// Colours and glyphs.
    pub theme: Theme,
    /// Live or a recording.
    pub screen: Screen,
    /// The overlay on top.
    pub overlay: Overlay,
    /// The runs shown: one, or 2–4 in the compare view (index = driver lane).
    pub runs: Vec<RunView>,
    /// The run switches apply to.
    pub focus: usize,
    /// Compare view: one chart per quantity with every run, instead of a column per run.
    pub overlaid: bool,
    /// A short note for the status line (e.g. a key that does not apply); cleared by the next key.
    pub note: Option<String>,
    /// The user (or a signal) asked to leave.
    pub quit: bool,
    /// The signal that ended the dashboard, if one did.
    pub ended_by: Option<&'static str>,
    /// The recording stopped: why.
    pub recording_failed: Option<String>,
    /// The driver went away.
    pub driver_gone: bool,
    /// Something may have written over the screen (a panic message): repaint every cell.
    pub needs_full_redraw: bool,
    /// The guided tour, when `gradlab tour` runs.
    pub tour: Option<super::tour::Tour>,
    /// The panel `i` explains.
    pub panel: super::explain::Panel,
    /// Labels of forks asked for and not yet made, oldest first.
    forks_pending: VecDeque<String>,
    /// The previous tick, for the replay clock.
    last_tick: Option<f64>,
}

impl App {
    /// A live dashboard waiting for its run's `Started` event.
    pub fn new(theme: Theme) -> Self {
        Self::with_runs(theme, vec![None])
    }

    /// A live dashboard of several runs (`gradlab compare`), named by `labels` when given.
    pub fn with_runs(theme: Theme, mut labels: Vec<Option<String>>) -> Self {
        // Every view shows a run, even one still starting.
        if labels.is_empty() {
            labels.push(None);
        }
        Self {
            theme,
            screen: Screen::Live,
            overlay: Overlay::None,
            runs: labels.into_iter().map(RunView::new).collect(),
            focus: 0,
            overlaid: false,
            note: None,
            quit: false,
            ended_by: None,
            recording_failed: None,
            driver_gone: false,
            needs_full_redraw: false,
            tour: None,
            panel: super::explain::Panel::default(),
            forks_pending: VecDeque::new(),
            last_tick: None,
        }
    }

    /// A dashboard showing a recording.
    pub fn replaying(theme: Theme, view: ReplayView) -> Self {
        let mut app = Self::new(theme);
        app.screen = Screen::Replay(view);
        app
    }

    /// The run switches apply to.
    pub fn run(&self) -> &RunView {
        &self.runs[self.focus.min(self.runs.len() - 1)]
    }

    fn run_mut(&mut self) -> &mut RunView {
        let focus = self.focus.min(self.runs.len() - 1);
        &mut self.runs[focus]
    }

    /// Whether several runs are shown.
    pub fn is_compare(&self) -> bool {
        self.runs.len() > 1
    }

    /// The recording shown, if any.
    pub fn replay(&self) -> Option<&ReplayView> {
        match &self.screen {
            Screen::Replay(view) => Some(view),
            Screen::Live => None,
        }
    }

    fn replay_mut(&mut self) -> Option<&mut ReplayView> {
        match &mut self.screen {
            Screen::Replay(view) => Some(view),
            Screen::Live => None,
        }
    }

    /// What is on screen, for the keymap.
    pub fn situation(&self) -> Situation {
        Situation {
            kind: self.run().kind(),
            replay: self.replay().is_some(),
            follow: self.replay().is_some_and(|v| v.follow),
            compare: self.is_compare(),
        }
    }

    /// The key tables in force, first match wins.
    pub fn contexts(&self) -> Vec<Context> {
        let overlay = match self.overlay {
            Overlay::ForkMenu => Some(Context::Fork),
            Overlay::Picker(_) => Some(Context::Picker),
            Overlay::Explain => Some(Context::Explain),
            Overlay::None | Overlay::Help => None,
        };
        keymap::tour_contexts(overlay, self.replay().is_some(), self.tour.is_some())
    }

    /// Why the focused run cannot be forked now, if it cannot.
    pub fn fork_refusal(&self) -> Option<String> {
        if self.runs.len() >= MAX_LANES {
            return Some(format!(
                "the compare view already shows {MAX_LANES} runs, the most it holds"
            ));
        }
        let run = self.run();
        if run.experiment.is_none() || self.driver_gone {
            return Some("nothing to fork: the run has not started".into());
        }
        if run.is_live() {
            return None;
        }
        let reset = keymap::label_of(Context::Main, Action::Reset).unwrap_or_default();
        let fork = keymap::label_of(Context::Main, Action::OpenFork).unwrap_or_default();
        Some(format!(
            "this run has stopped: {reset} resets it, then {fork} forks it"
        ))
    }
}

/// Applies one message to the state and returns what it wants done. The only place the
/// dashboard's state changes.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    // The tour watches every message after the dashboard took it in.
    let seen = app.tour.is_some().then(|| msg.clone());
    let mut effects = apply_msg(app, msg);
    if let Some(msg) = seen {
        effects.extend(super::tour::observe(app, &msg));
    }
    effects
}

fn apply_msg(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Input(key) => {
            if key.kind == KeyEventKind::Release {
                return Vec::new();
            }
            match keymap::resolve(&app.contexts(), &app.situation(), &key) {
                Some(Ok(action)) => on_action(app, action),
                Some(Err(note)) => {
                    app.note = Some(note);
                    Vec::new()
                }
                None => Vec::new(),
            }
        }
        Msg::Key(action) => match keymap::check(&app.contexts(), &app.situation(), action) {
            Ok(()) => on_action(app, action),
            Err(note) => {
                app.note = Some(note);
                Vec::new()
            }
        },
        Msg::Lane(LaneEvent { lane, event }) => {
            on_lane_event(app, lane, event);
            Vec::new()
        }
        Msg::Tick(now) => on_tick(app, now),
        Msg::DriverGone => {
            app.driver_gone = true;
            for run in &mut app.runs {
                if !matches!(run.state, RunState::Crashed(_)) {
                    run.state = RunState::Crashed("the trainer thread ended".into());
                }
            }
            Vec::new()
        }
        Msg::Presets(picker) => {
            app.overlay = Overlay::Picker(picker);
            Vec::new()
        }
        Msg::PresetLoaded(Ok(experiment)) => {
            app.overlay = Overlay::None;
            let run = &mut app.runs[0];
            run.expect_restart(format!("load {}", experiment.name));
            run.error = None;
            vec![send(0, Command::LoadPreset(experiment))]
        }
        Msg::PresetLoaded(Err(error)) => {
            app.run_mut().error = Some(error);
            Vec::new()
        }
        Msg::ReplayStatus(status) => {
            if let Some(view) = app.replay_mut() {
                if view.run != status.run {
                    view.clock = f64::NAN;
                }
                view.run = status.run;
                view.runs = status.runs;
                view.last_step = status.last_step;
                view.at_end = status.at_end;
                if status.at_end && view.playing && !view.follow {
                    view.playing = false;
                }
            }
            Vec::new()
        }
        Msg::ReplayNote(note) => {
            if let Some(view) = app.replay_mut() {
                view.note = Some(note);
            }
            Vec::new()
        }
        Msg::Signal("SIGTSTP") => vec![Effect::Suspend],
        Msg::Signal(name) => {
            app.quit = true;
            app.ended_by = Some(name);
            Vec::new()
        }
        Msg::RecordingStopped(why) => {
            app.recording_failed = Some(why);
            Vec::new()
        }
        Msg::Resized { .. } => Vec::new(),
    }
}

fn send(lane: LaneId, command: Command) -> Effect {
    Effect::Send(LaneCommand { lane, command })
}

fn on_lane_event(app: &mut App, lane: LaneId, event: Event) {
    if let Event::Forked { from, step, flip } = event {
        let Some(parent) = app.runs.get(from) else {
            return;
        };
        let label = app
            .forks_pending
            .pop_front()
            .unwrap_or_else(|| format!("{} +twin", parent.name()));
        let mut twin = parent.twin(label, step);
        if flip.is_none() {
            // Nothing flipped: no `Applied` follows, so the branch gets its own marker.
            twin.markers.push_back(Marker {
                step,
                label: "fork".into(),
            });
        }
        app.runs.push(twin);
        app.focus = lane.min(app.runs.len() - 1);
        app.note = None;
        return;
    }
    if let Event::WeightsSaved { step, path } = &event {
        app.note = Some(format!("weights at step {step} saved to {path}"));
    }
    if let Some(run) = app.runs.get_mut(lane) {
        run.on_event(event);
        // A crash report went to stderr over the screen: the frame repaints it.
        app.needs_full_redraw |= std::mem::take(&mut run.needs_full_redraw);
    }
}

fn on_tick(app: &mut App, now: f64) -> Vec<Effect> {
    let elapsed = app.last_tick.map_or(0.0, |then| (now - then).max(0.0));
    app.last_tick = Some(now);
    app.runs.iter_mut().for_each(|run| run.on_tick(now));
    let at = app.run().step;
    let Some(view) = app.replay_mut() else {
        return Vec::new();
    };
    if !view.playing {
        return Vec::new();
    }
    if view.follow {
        return vec![Effect::Replay(ReplayRequest::Poll { now })];
    }
    if view.clock.is_nan() {
        // After a seek or at a new run, play on from what is shown.
        view.clock = at as f64;
    }
    // A long stall (a huge seek) must not turn into a burst of simulated steps.
    view.clock += elapsed.min(0.5) * view.steps_per_sec();
    vec![Effect::Replay(ReplayRequest::PlayTo(view.clock as u64))]
}

fn on_action(app: &mut App, action: Action) -> Vec<Effect> {
    app.note = None;
    let focus = app.focus.min(app.runs.len() - 1);
    match action {
        Action::Quit => app.quit = true,
        Action::Suspend => return vec![Effect::Suspend],
        Action::ToggleHelp => {
            app.overlay = match app.overlay {
                Overlay::Help => Overlay::None,
                _ => Overlay::Help,
            }
        }
        Action::Close => app.overlay = Overlay::None,
        Action::Explain => {
            app.overlay = match app.overlay {
                Overlay::Explain => Overlay::None,
                _ => Overlay::Explain,
            }
        }
        Action::NextPanel | Action::PrevPanel => {
            let panels = super::explain::panels(app);
            app.panel = super::explain::step(&panels, app.panel, action == Action::NextPanel);
        }
        Action::NextLesson | Action::PrevLesson => {
            return super::tour::turn(app, action == Action::NextLesson);
        }
        Action::OpenPicker => return vec![Effect::DiscoverPresets],
        Action::Choose => {
            if let Overlay::Picker(picker) = &app.overlay
                && let Some(entry) = picker.entries.get(picker.selected)
            {
                return vec![Effect::LoadPreset(entry.clone())];
            }
        }
        Action::CursorUp | Action::CursorDown => {
            let up = action == Action::CursorUp;
            match &mut app.overlay {
                Overlay::Picker(picker) => picker.move_selection(up),
                _ => app.runs[focus].move_cursor(up),
            }
        }
        Action::OpenFork => match app.fork_refusal() {
            Some(reason) => app.note = Some(reason),
            None => app.overlay = Overlay::ForkMenu,
        },
        Action::ForkWith(mv) => {
            app.overlay = Overlay::None;
            let run = &app.runs[focus];
            let flip = match mv.map(|mv| run.switches.command_for(mv)).transpose() {
                Ok(flip) => flip,
                Err(note) => {
                    app.note = Some(note);
                    return Vec::new();
                }
            };
            let word = match (&flip, mv) {
                (Some(command), Some(mv)) => {
                    let mut after = run.switches;
                    after.apply(command);
                    after.value(mv.switch())
                }
                _ => "twin".into(),
            };
            let word = match mv.map(|mv| mv.switch()) {
                Some(crate::protocol::Switch::LearningRate) => format!("lr {word}"),
                Some(crate::protocol::Switch::Aux) => format!("aux {word}"),
                Some(crate::protocol::Switch::Norm) => format!("norm {word}"),
                Some(crate::protocol::Switch::NormPlace) => format!("norm {word}"),
                Some(crate::protocol::Switch::BranchScale) => format!("branch {word}"),
                _ => word,
            };
            app.forks_pending
                .push_back(format!("{} +{word}", run.name()));
            app.note = Some("forking…".into());
            return vec![send(
                focus,
                Command::Fork {
                    flip: flip.map(Box::new),
                },
            )];
        }
        Action::ToggleOverlay => app.overlaid = !app.overlaid,
        Action::FocusNext => app.focus = (focus + 1) % app.runs.len(),
        Action::Focus(n) if n < app.runs.len() => app.focus = n,
        Action::Focus(n) => {
            app.note = Some(format!(
                "there is no run {}: {} runs shown",
                n + 1,
                app.runs.len()
            ));
        }
        Action::Switch(mv) => {
            let run = &mut app.runs[focus];
            match run.switches.command_for(mv) {
                Ok(command) => {
                    run.switches.apply(&command);
                    return vec![send(focus, command)];
                }
                Err(note) => app.note = Some(note),
            }
        }
        Action::TogglePaths => app.runs[focus].show_paths = !app.runs[focus].show_paths,
        Action::ToggleSpectrum => {
            app.runs[focus].show_spectrum = !app.runs[focus].show_spectrum;
        }
        Action::Lesion => {
            let run = &mut app.runs[focus];
            run.show_paths = true;
            run.lesion_pending = true;
            return vec![send(focus, Command::Lesion)];
        }
        // The answer (path or error) comes back as an event for the status line.
        Action::SaveWeights => return vec![send(focus, Command::SaveWeights)],
        Action::TogglePause => {
            return match app.runs[focus].state {
                RunState::Running => vec![send(focus, Command::Pause)],
                RunState::Paused => vec![send(focus, Command::Resume)],
                _ => Vec::new(),
            };
        }
        Action::StepOnce => {
            if app.runs[focus].state == RunState::Paused {
                return vec![send(focus, Command::Step(1))];
            }
        }
        Action::Reset => {
            for run in &mut app.runs {
                run.expect_restart(format!("reset (was step {})", run.step));
            }
            return vec![send(focus, Command::Reset)];
        }
        Action::Play
        | Action::Faster
        | Action::Slower
        | Action::SeekBy(_)
        | Action::SeekStart
        | Action::SeekEnd
        | Action::NextMarker
        | Action::PrevMarker => return on_replay_action(app, action),
    }
    Vec::new()
}

fn on_replay_action(app: &mut App, action: Action) -> Vec<Effect> {
    let at = app.run().step;
    let Some(view) = app.replay_mut() else {
        return Vec::new();
    };
    view.note = None;
    let request = match action {
        Action::Play => {
            view.playing = !view.playing;
            // Play at the end starts over, as media players do.
            (view.playing && view.at_end && !view.follow).then_some(ReplayRequest::Start)
        }
        Action::Faster => {
            view.faster();
            None
        }
        Action::Slower => {
            view.slower();
            None
        }
        Action::SeekBy(steps) => Some(ReplayRequest::SeekBy { from: at, steps }),
        Action::SeekStart => Some(ReplayRequest::Start),
        Action::SeekEnd => Some(ReplayRequest::End),
        Action::NextMarker => Some(ReplayRequest::NextMarker { from: at }),
        Action::PrevMarker => Some(ReplayRequest::PrevMarker { from: at }),
        _ => None,
    };
    if request.is_some() {
        view.clock = f64::NAN;
    }
    request.map(Effect::Replay).into_iter().collect()
}
