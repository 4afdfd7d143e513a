//! The `?` overlay: every key from the key table, and how to read the panels.

use super::app::App;
use super::panel_block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// Draws the help overlay centred on `area`.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut lines: Vec<Line> = super::replay::help_rows(app)
        .into_iter()
        .map(|(key_label, help)| {
            let key = if theme.ascii {
                key_label
                    .replace('↑', "Up")
                    .replace('↓', "Down")
                    .replace('←', "Left")
                    .replace('→', "Right")
            } else {
                key_label.to_string()
            };
            Line::from(vec![
                Span::styled(format!(" {key:>7}  "), theme.key()),
                Span::raw(help),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled(" bars ", theme.dim()),
        Span::styled("vanishing", theme.vanishing()),
        Span::styled(" / ", theme.dim()),
        Span::styled("healthy", theme.healthy()),
        Span::styled(" / ", theme.dim()),
        Span::styled("exploding", theme.exploding()),
        Span::styled(": ‖∂L/∂h_l‖ vs the last layer, ±20 dB", theme.dim()),
    ]));
    lines.push(Line::styled(
        " markers: a command took effect at that step",
        theme.dim(),
    ));
    lines.push(Line::styled(
        " paths (l): top log10 path count per length, bottom gradient share, green = 90 %",
        theme.dim(),
    ));
    lines.push(Line::styled(
        " RNN view: bars and heat map along time t; skip keys do not apply there",
        theme.dim(),
    ));
    let popup = super::popup_area(area, 62, &lines);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel_block(theme, " keys (? or Esc closes) ")),
        popup,
    );
}
