//! The compare view side by side: one column per run, each drawn by the single-run panels
//! (loss chart, gradient-flow bars or, after `l`, the path panel) from the run's own state.
//!
//! ```text
//! ┌ title: runs, step, layout ──────────────────────────────┐
//! │ ▶1 plain-deep ● running     │  2 plain-deep +residual    │  run name, state, steps/s
//! │ skip plain aux off lr …     │ skip residual aux off lr … │  switches
//! │ loss chart                  │ loss chart                 │  half of the rest
//! │ gradient bars per layer     │ gradient bars per layer    │  the other half
//! │ first/last dB, paths        │ first/last dB, paths       │  peak, mean, 90 % range
//! └ status line ────────────────────────────────────────────┘
//! ```

use super::app::App;
use super::compare_header::{name_spans, path_spans, ratio_spans, state_spans, switch_spans};
use super::{gradient_flow, loss, paths};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

/// Lines above each column's charts: name and state, switches.
const RUN_HEADER_ROWS: u16 = 2;
/// Lines below each column's charts: gradient ratio and path statistics.
const RUN_FOOTER_ROWS: u16 = 1;

/// Draws one column per run into `area`.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let columns = Layout::horizontal(vec![Constraint::Fill(1); app.runs.len()]).split(area);
    for (index, (run, &column)) in app.runs.iter().zip(columns.iter()).enumerate() {
        let focused = index == app.focus;
        let theme = &app.theme;
        let [header, loss_area, bars, footer] = Layout::vertical([
            Constraint::Length(RUN_HEADER_ROWS),
            Constraint::Fill(1),
            Constraint::Fill(1),
            Constraint::Length(RUN_FOOTER_ROWS),
        ])
        .areas(column);
        let mut first = name_spans(theme, run, index, focused);
        first.extend(state_spans(theme, run));
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(first),
                Line::from(switch_spans(theme, run)),
            ]),
            header,
        );
        loss::render(frame, loss_area, run, theme);
        if run.show_paths && !run.is_rnn() {
            paths::render(frame, bars, run, theme);
        } else {
            gradient_flow::render_bars(frame, bars, run, theme);
        }
        let mut numbers = ratio_spans(theme, run);
        numbers.extend(path_spans(theme, run));
        frame.render_widget(Paragraph::new(Line::from(numbers)), footer);
    }
}
