//! The `?` overlay: every key from the key table, and how to read the panels.

use super::app::App;
use super::keymap;
use super::widgets::panel_block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// Width of the one-column overlay.
const ONE_COLUMN_WIDTH: u16 = 62;
/// Width of the two-column overlay used when one column does not fit the height.
const TWO_COLUMN_WIDTH: u16 = 80;

/// One key's row: the key right-aligned in 7 columns, then what it does; with a `column`
/// width, cut or padded to exactly that many columns.
fn key_spans(
    key: &str,
    help: &str,
    works: bool,
    column: Option<usize>,
    app: &App,
) -> Vec<Span<'static>> {
    let key = format!(" {key:>7}  ");
    let help = match column {
        None => help.to_string(),
        Some(width) => {
            let room = width.saturating_sub(key.chars().count());
            if help.chars().count() > room {
                let mut cut: String = help.chars().take(room.saturating_sub(1)).collect();
                cut.push('…');
                cut
            } else {
                format!("{help:<room$}")
            }
        }
    };
    // Keys that do nothing on this screen are listed dimmed, so every key stays discoverable.
    if works {
        vec![Span::styled(key, app.theme.key()), Span::raw(help)]
    } else {
        vec![
            Span::styled(key, app.theme.dim()),
            Span::styled(help, app.theme.dim()),
        ]
    }
}

/// How to read the panels, below the keys.
fn legend(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    vec![
        Line::from(vec![
            Span::styled(" bars ", theme.dim()),
            Span::styled("vanishing", theme.vanishing()),
            Span::styled(" / ", theme.dim()),
            Span::styled("healthy", theme.healthy()),
            Span::styled(" / ", theme.dim()),
            Span::styled("exploding", theme.exploding()),
            Span::styled(": ‖∂L/∂h_l‖ vs the last layer, ±20 dB", theme.dim()),
        ]),
        Line::styled(" markers: a command took effect at that step", theme.dim()),
        Line::styled(
            " paths (l): Veit C(n,k)·E‖g‖ (est., ░ ±1 SE) and the exact split ⟨g_k,g⟩/‖g‖²",
            theme.dim(),
        ),
        Line::styled(
            " dense/aux: the path panel splits each layer's gradient by the head it came from",
            theme.dim(),
        ),
        Line::styled(
            " RNN view: bars and heat map along time t; dimmed keys do not apply here",
            theme.dim(),
        ),
    ]
}

/// Rows `lines` take when wrapped to `width` columns.
fn wrapped_rows(lines: &[Line], width: u16) -> usize {
    let text_width = usize::from(width.saturating_sub(2)).max(1);
    lines
        .iter()
        .map(|l| l.width().div_ceil(text_width).max(1))
        .sum()
}

/// Draws the help overlay centred on `area`: one column of keys and the legend when that fits
/// the height, otherwise (e.g. 80×24) the keys in two columns and as much legend as fits.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let keys = keymap::help_rows(&app.contexts(), &app.situation(), app.theme.ascii);
    let width = ONE_COLUMN_WIDTH.min(area.width);
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(key, help, works)| Line::from(key_spans(key, help, *works, None, app)))
        .collect();
    lines.push(Line::raw(""));
    lines.extend(legend(app));
    let fits = wrapped_rows(&lines, width) + 2 <= usize::from(area.height);
    let (lines, width) = if fits {
        (lines, width)
    } else {
        let width = TWO_COLUMN_WIDTH.min(area.width);
        let column = usize::from(width.saturating_sub(2)) / 2;
        let half = keys.len().div_ceil(2);
        let mut lines: Vec<Line> = (0..half)
            .map(|row| {
                let mut spans = Vec::new();
                for (key, help, works) in
                    [keys.get(row), keys.get(row + half)].into_iter().flatten()
                {
                    spans.extend(key_spans(key, help, *works, Some(column), app));
                }
                Line::from(spans)
            })
            .collect();
        // The legend only where whole lines of it fit under the keys.
        let mut room = usize::from(area.height.saturating_sub(2)).saturating_sub(lines.len() + 1);
        let legend: Vec<Line> = legend(app)
            .into_iter()
            .take_while(|line| {
                let rows = wrapped_rows(std::slice::from_ref(line), width);
                let keep = rows <= room;
                room = room.saturating_sub(rows);
                keep
            })
            .collect();
        if !legend.is_empty() {
            lines.push(Line::raw(""));
            lines.extend(legend);
        }
        (lines, width)
    };
    let popup = super::widgets::popup_area(area, width, &lines);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel_block(&app.theme, " keys (? or Esc closes) ")),
        popup,
    );
}
