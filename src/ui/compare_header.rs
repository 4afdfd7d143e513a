//! The compare view's text: its title line, and each run's name, state, switches, gradient
//! ratio, path statistics and throughput, shared by the side-by-side and overlay layouts.

use super::app::App;
use super::header::{fmt_db, state_label};
use super::keymap::{self, Action, Context};
use super::run_view::RunView;
use super::theme::Theme;
use crate::protocol::{RunState, Switch};
use ratatui::text::{Line, Span};

/// The first line: how many runs, the lock-step's step, the layout and its keys.
pub fn title_line<'a>(app: &App) -> Line<'a> {
    let theme = &app.theme;
    let sep = || Span::styled(if theme.ascii { " | " } else { " │ " }, theme.dim());
    let step = app.runs.iter().map(|r| r.step).max().unwrap_or(0);
    let layout = if app.overlaid {
        "overlaid"
    } else {
        "side by side"
    };
    let key = |action| keymap::label_of(Context::Main, action).unwrap_or_default();
    let hints = keymap::hints(&app.contexts(), &app.situation(), theme.ascii);
    let focus = hints
        .iter()
        .find(|(_, word)| *word == "focus")
        .map_or_else(|| key(Action::FocusNext), |(keys, _)| keys.clone());
    Line::from(vec![
        Span::styled(" gradlab compare", theme.title()),
        sep(),
        Span::raw(format!("{} runs in lock-step", app.runs.len())),
        sep(),
        Span::raw(format!("step {step}")),
        sep(),
        Span::styled(layout, theme.active()),
        Span::styled(format!(" ({})", key(Action::ToggleOverlay)), theme.key()),
        sep(),
        Span::styled(focus, theme.key()),
        Span::styled(" focus ", theme.dim()),
        Span::styled(key(Action::OpenFork), theme.key()),
        Span::styled(" fork", theme.dim()),
    ])
}

/// `▶1 label` for the focused run, ` 2 label` otherwise; the focused one reversed.
pub fn name_spans<'a>(theme: &Theme, run: &RunView, index: usize, focused: bool) -> Vec<Span<'a>> {
    let pointer = match (focused, theme.ascii) {
        (false, _) => " ",
        (true, false) => "▶",
        (true, true) => ">",
    };
    let style = if focused {
        theme.active().patch(theme.cursor())
    } else {
        theme.active()
    };
    vec![
        Span::styled(format!("{pointer}{} ", index + 1), theme.key()),
        Span::styled(run.name(), style),
    ]
}

/// The run's state and throughput: wall steps/s and, from the driver, steps/s alone.
pub fn state_spans<'a>(theme: &Theme, run: &RunView) -> Vec<Span<'a>> {
    let app = run;
    let state_style = match app.state {
        RunState::Running => theme.healthy(),
        RunState::Paused | RunState::Finished => theme.paused(),
        RunState::Diverged(_) | RunState::Crashed(_) => theme.alarm(),
    };
    let bullet = if theme.ascii { "* " } else { "● " };
    let wall = app
        .steps_per_sec
        .map_or_else(|| "–".into(), |r| format!("{r:.1}"));
    let alone = run
        .busy_steps_per_sec
        .map_or_else(|| "–".into(), |r| format!("{r:.0}"));
    vec![
        Span::styled(format!(" {bullet}{}", state_label(&app.state)), state_style),
        Span::styled(format!("  {wall}/s (alone {alone}/s)"), theme.dim()),
    ]
}

/// The run's switches, each that applies to its kind of net and acts on it (as in the
/// single-run header: no norm placement without a norm, no branch factor at α = 1).
pub fn switch_spans<'a>(theme: &Theme, run: &RunView) -> Vec<Span<'a>> {
    let Some(kind) = run.kind() else {
        return Vec::new();
    };
    Switch::ALL
        .iter()
        .filter(|switch| switch.applies_to(kind) && run.switches.in_effect(**switch))
        .flat_map(|&switch| {
            [
                Span::styled(format!(" {} ", switch.name()), theme.dim()),
                Span::styled(run.switches.value(switch), theme.text()),
            ]
        })
        .collect()
}

/// The run's measured first/last gradient ratio in dB.
pub fn ratio_spans<'a>(theme: &Theme, app: &RunView) -> Vec<Span<'a>> {
    let mut spans = Vec::new();
    if let Some(latest) = &app.latest {
        let db = latest.grad_ratio_db;
        let style = if db.is_finite() {
            theme.text()
        } else {
            theme.alarm()
        };
        spans.extend([
            Span::styled(" first/last ", theme.dim()),
            Span::styled(format!("{} dB", fmt_db(db)), style),
        ]);
    }
    spans
}

/// The newest path-length statistics: the peak, mean and 90 % range of Veit's profile.
pub fn path_spans<'a>(theme: &Theme, app: &RunView) -> Vec<Span<'a>> {
    let text = match (&app.paths, app.is_rnn()) {
        (_, true) => return Vec::new(),
        (Some((_, p)), false) => format!(
            " paths peak {} mean {:.1} 90% {}–{}",
            p.peak_length, p.mean_length, p.effective_range[0], p.effective_range[1]
        ),
        (None, false) if app.switches.skip == crate::config::SkipMode::Dense => {
            " paths: none when dense".into()
        }
        (None, false) => " paths: –".into(),
    };
    vec![Span::styled(text, theme.dim())]
}

/// One compact line per run for the overlay: glyph in the run's colour, then everything above.
pub fn overlay_line<'a>(theme: &Theme, run: &RunView, index: usize, focused: bool) -> Line<'a> {
    let glyph = Span::styled(format!("{} ", theme.run_glyph(index)), theme.run(index));
    let mut spans = vec![glyph];
    spans.extend(name_spans(theme, run, index, focused));
    spans.extend(state_spans(theme, run));
    spans.extend(ratio_spans(theme, run));
    spans.extend(path_spans(theme, run));
    spans.extend(switch_spans(theme, run));
    Line::from(spans)
}
