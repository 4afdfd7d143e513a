//! Status line: the keys in force (from the keymap), or what went wrong and how to get out.

use super::app::App;
use super::header::state_label;
use super::keymap::{self, Action, Context};
use crate::protocol::RunState;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Draws the status line; in the compare view, for the focused run.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let run = app.run();
    let key = |action| keymap::label_of(Context::Main, action).unwrap_or_default();
    let help = key(Action::ToggleHelp);
    let line = if let Some(why) = &app.recording_failed {
        Line::from(vec![
            Span::styled(" recording stopped: ", theme.alarm()),
            Span::styled(why.clone(), theme.alarm()),
            Span::styled(" — training goes on, unrecorded", theme.dim()),
        ])
    } else if let Some(note) = app
        .replay()
        .and_then(|v| v.note.clone())
        .or(app.note.clone())
    {
        Line::from(vec![
            Span::styled(format!(" {note}"), theme.paused()),
            Span::styled(format!("  ({help} lists the keys)"), theme.dim()),
        ])
    } else if app.replay().is_none()
        && matches!(run.state, RunState::Diverged(_) | RunState::Crashed(_))
    {
        let mut spans = vec![
            Span::styled(format!(" {} ", state_label(&run.state)), theme.alarm()),
            Span::styled("— ", theme.dim()),
            Span::styled(key(Action::Reset), theme.key()),
            Span::styled(" reset  ", theme.dim()),
        ];
        if !app.is_compare() {
            spans.extend([
                Span::styled(key(Action::OpenPicker), theme.key()),
                Span::styled(" other preset  ", theme.dim()),
            ]);
        }
        spans.extend([
            Span::styled(key(Action::Quit), theme.key()),
            Span::styled(" quit", theme.dim()),
        ]);
        Line::from(spans)
    } else if let Some(error) = &run.error {
        Line::from(vec![
            Span::styled(" error: ", theme.alarm()),
            Span::styled(error.clone(), theme.alarm()),
        ])
    } else {
        hints_line(app, usize::from(area.width))
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The key hints, spaced out when they fit, packed when not, and trimmed from the middle so
/// help and quit always stay visible.
fn hints_line(app: &App, width: usize) -> Line<'static> {
    let theme = &app.theme;
    let hints = keymap::hints(&app.contexts(), &app.situation(), theme.ascii);
    let length = |hints: &[(String, &str)], gap: usize| -> usize {
        1 + hints
            .iter()
            .map(|(k, w)| k.chars().count() + 1 + w.chars().count() + gap)
            .sum::<usize>()
    };
    let mut kept = hints;
    let mut gap = 2;
    if length(&kept, gap) > width {
        gap = 1;
    }
    while length(&kept, gap) > width && kept.len() > 2 {
        kept.remove(kept.len() - 3);
    }
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in kept {
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::styled(
            format!(" {what}{}", " ".repeat(gap)),
            theme.dim(),
        ));
    }
    Line::from(spans)
}
