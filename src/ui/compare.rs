//! The compare view's state: 2–4 runs, each with a dashboard state of its own, the focused
//! run (the one toggles go to) and the way they are drawn. Its changes are made here on behalf
//! of [`super::app::update`], which stays the only entry point.

use super::app::{Action, App, Msg, update};
use crate::protocol::{Event, LaneEvent};

/// One run of the compare view.
#[derive(Clone, Debug)]
pub struct CompareRun {
    /// What the view calls it: the preset, or the parent's label and the flipped switch.
    pub label: String,
    /// Its dashboard state: history, switches, run state, outbox.
    pub app: App,
    /// The step it was forked from its parent at (None for a run started as itself).
    pub forked_at: Option<u64>,
}

/// Several runs shown side by side or overlaid.
#[derive(Clone, Debug)]
pub struct CompareView {
    /// The runs, in the driver's order.
    pub runs: Vec<CompareRun>,
    /// Index of the run toggles apply to.
    pub focus: usize,
    /// One chart with every run's curve instead of one column per run.
    pub overlay: bool,
}

impl CompareView {
    /// A view of fresh runs, one per label, waiting for their `Started` events.
    pub fn new(labels: &[String], template: &App) -> Self {
        Self {
            runs: labels
                .iter()
                .map(|label| CompareRun {
                    label: label.clone(),
                    app: App::new(template.theme),
                    forked_at: None,
                })
                .collect(),
            focus: 0,
            overlay: false,
        }
    }

    /// The run toggles apply to.
    pub fn focused(&self) -> &CompareRun {
        &self.runs[self.focus.min(self.runs.len().saturating_sub(1))]
    }
}

/// A key in the compare view: frame keys act here, the rest on the focused run.
pub(super) fn on_key(app: &mut App, action: Action) {
    let Some(view) = app.compare.as_mut() else {
        return;
    };
    if view.runs.is_empty() {
        if action == Action::Quit {
            app.quit = true;
        }
        return;
    }
    let focus = view.focus.min(view.runs.len() - 1);
    match action {
        Action::Quit => app.quit = true,
        Action::ToggleHelp => {
            app.fork_menu = false;
            app.show_help = !app.show_help;
        }
        Action::Close => {
            app.show_help = false;
            app.fork_menu = false;
        }
        Action::OpenPicker | Action::Choose => {
            app.note = Some("the compare view keeps its runs: P works in a single run".into());
        }
        Action::OpenFork => app.open_fork_menu(),
        Action::ForkWith(flip) => {
            app.fork_menu = false;
            let run = &view.runs[focus];
            match super::fork::request(&run.app, &run.label, focus, flip) {
                Ok(request) => {
                    app.forks_pending.push_back(request.clone());
                    app.fork_request = Some(request);
                    app.note = Some("forking…".into());
                }
                Err(note) => app.note = Some(note),
            }
        }
        Action::ToggleOverlay => view.overlay = !view.overlay,
        Action::FocusNext => view.focus = (focus + 1) % view.runs.len(),
        Action::Focus(n) if n < view.runs.len() => view.focus = n,
        Action::Focus(n) => {
            app.note = Some(format!(
                "there is no run {}: {} runs shown",
                n + 1,
                view.runs.len()
            ));
        }
        _ => {
            let run = &mut view.runs[focus];
            update(&mut run.app, Msg::Key(action));
            app.note = run.app.note.take();
        }
    }
}

/// An event of one lane of the driver.
pub(super) fn on_lane(app: &mut App, lane_event: LaneEvent) {
    let LaneEvent { lane, event } = lane_event;
    match event {
        Event::Forked { from, step, .. } => {
            if app.compare.is_none() {
                enter(app);
            }
            let request = app.forks_pending.pop_front();
            let Some(view) = app.compare.as_mut() else {
                return;
            };
            let Some(parent) = view.runs.get(from) else {
                return;
            };
            let mut twin = parent.app.twin();
            if request.as_ref().is_none_or(|r| r.flip.is_none()) {
                // Nothing flipped: no `Applied` follows, so the branch gets its own marker.
                twin.markers.push_back(super::app::Marker {
                    step,
                    label: "fork".into(),
                });
            }
            let label = request.map_or_else(|| format!("{} +twin", parent.label), |r| r.label);
            view.runs.push(CompareRun {
                label,
                app: twin,
                forked_at: Some(step),
            });
            view.focus = lane.min(view.runs.len() - 1);
            app.note = None;
        }
        event => match app.compare.as_mut() {
            Some(view) => {
                if let Some(run) = view.runs.get_mut(lane) {
                    update(&mut run.app, Msg::Trainer(event));
                    // A crash report went to stderr over the screen: the frame repaints it.
                    app.needs_full_redraw |= std::mem::take(&mut run.app.needs_full_redraw);
                }
            }
            // The dashboard's own run, before its twin is announced.
            None if lane == 0 => update(app, Msg::Trainer(event)),
            None => {}
        },
    }
}

/// Turns the single-run dashboard into a compare view holding that run as run 1.
fn enter(app: &mut App) {
    let theme = app.theme;
    let mut run = std::mem::replace(app, App::new(theme));
    // What belongs to the frame stays with the frame.
    app.quit = run.quit;
    app.needs_full_redraw = run.needs_full_redraw;
    app.forks_pending = std::mem::take(&mut run.forks_pending);
    run.show_help = false;
    run.fork_menu = false;
    run.picker = None;
    run.note = None;
    let label = run
        .experiment
        .as_ref()
        .map_or_else(|| "run 1".to_string(), |e| e.name.clone());
    app.compare = Some(CompareView {
        runs: vec![CompareRun {
            label,
            app: run,
            forked_at: None,
        }],
        focus: 0,
        overlay: false,
    });
}
