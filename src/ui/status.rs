//! Status line: the keys, or what went wrong and how to get out of it.

use super::app::App;
use super::header::state_label;
use crate::protocol::RunState;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Key hints in the order a first-time user needs them.
const HINTS: &[(&str, &str)] = &[
    ("p r h d", "skip"),
    ("a", "aux"),
    ("l", "paths"),
    ("L", "lesion"),
    ("[ ]", "lr"),
    ("space", "pause"),
    ("n", "step"),
    ("R", "reset"),
    ("↑↓", "layer"),
    ("P", "presets"),
    ("f", "fork"),
    ("?", "help"),
    ("q", "quit"),
];

/// Key hints of the RNN view.
const RNN_HINTS: &[(&str, &str)] = &[
    ("g", "cell"),
    ("[ ]", "lr"),
    ("space", "pause"),
    ("n", "step"),
    ("R", "reset"),
    ("↑↓", "time step"),
    ("P", "presets"),
    ("?", "help"),
    ("q", "quit"),
];

/// Key hints of the compare view.
const COMPARE_HINTS: &[(&str, &str)] = &[
    ("Tab 1-4", "focus"),
    ("o", "overlay"),
    ("f", "fork"),
    ("p r h d", "skip"),
    ("a", "aux"),
    ("[ ]", "lr"),
    ("space", "pause all"),
    ("R", "reset all"),
    ("?", "help"),
    ("q", "quit"),
];

/// Draws the status line; in the compare view, for the focused run.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let run = app.compare.as_ref().map_or(app, |view| &view.focused().app);
    let line = match (&run.state, &run.error) {
        // A replay cannot reset or load: its own hints replace the live recovery keys.
        (_, None) if app.replay.is_some() => match &app.replay {
            Some(view) => Line::from(super::replay::status_spans(view, theme)),
            None => hints_line(app, usize::from(area.width)),
        },
        (RunState::Diverged(_) | RunState::Crashed(_), _) => Line::from(vec![
            Span::styled(format!(" {} ", state_label(&run.state)), theme.alarm()),
            Span::styled("— ", theme.dim()),
            Span::styled("R", theme.key()),
            Span::styled(" reset  ", theme.dim()),
            Span::styled("P", theme.key()),
            Span::styled(" other preset  ", theme.dim()),
            Span::styled("q", theme.key()),
            Span::styled(" quit", theme.dim()),
        ]),
        (_, Some(error)) => Line::from(vec![
            Span::styled(" error: ", theme.alarm()),
            Span::styled(error.clone(), theme.alarm()),
        ]),
        _ if app.note.is_some() => Line::from(vec![
            Span::styled(" ", theme.dim()),
            Span::styled(app.note.clone().unwrap_or_default(), theme.paused()),
            Span::styled("  (? lists the keys)", theme.dim()),
        ]),
        _ => hints_line(app, usize::from(area.width)),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The key hints, spaced out when they fit, packed when not, and trimmed from the middle so
/// `? help` and `q quit` always stay visible.
fn hints_line(app: &App, width: usize) -> Line<'static> {
    let theme = &app.theme;
    let table = if app.compare.is_some() {
        COMPARE_HINTS
    } else if app.is_rnn() {
        RNN_HINTS
    } else {
        HINTS
    };
    let hints: Vec<(&str, &str)> = table
        .iter()
        .map(|&(key, what)| match (theme.ascii, key) {
            (true, "↑↓") => ("j k", what),
            _ => (key, what),
        })
        .collect();
    let length = |hints: &[(&str, &str)], gap: usize| -> usize {
        1 + hints
            .iter()
            .map(|(k, w)| k.chars().count() + 1 + w.chars().count() + gap)
            .sum::<usize>()
    };
    let mut kept = hints.clone();
    let mut gap = 2;
    if length(&kept, gap) > width {
        gap = 1;
    }
    while length(&kept, gap) > width && kept.len() > 2 {
        kept.remove(kept.len() - 3);
    }
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in kept {
        spans.push(Span::styled(key.to_string(), theme.key()));
        spans.push(Span::styled(
            format!(" {what}{}", " ".repeat(gap)),
            theme.dim(),
        ));
    }
    Line::from(spans)
}
