//! The `?` overlay: every key from the key table, and how to read the panels.

use super::app::App;
use super::panel_block;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
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
        " dense/aux: the path panel splits each layer's gradient by the head it came from",
        theme.dim(),
    ));
    lines.push(Line::styled(
        " RNN view: bars and heat map along time t; skip keys do not apply there",
        theme.dim(),
    ));
    let width = 62.min(area.width);
    // Long lines wrap: count the rows they take so the last ones are not cut off.
    let text_width = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(text_width).max(1))
        .sum();
    let height = (rows.min(usize::from(u16::MAX - 2)) as u16 + 2).min(area.height);
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel_block(theme, " keys (? or Esc closes) ")),
        popup,
    );
}
