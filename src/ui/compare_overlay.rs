//! The compare view overlaid (`o`): every run's loss on one chart and every run's gradient
//! norm per layer on another, each run in its own colour and point glyph, with the steps runs
//! were forked at marked.
//!
//! ```text
//! ┌ title: runs, step, layout ───────────────────────────────────┐
//! │ ⣿ ▶1 plain-deep ● running skip plain … paths …               │  one line per run
//! │ • 2 plain-deep +residual …                                   │
//! ├ loss (log), all runs ──────────┬ ‖∂L/∂h_l‖ per layer, all runs ┤  side by side, or
//! │                                │                              │  stacked when narrow
//! └ status line ─────────────────────────────────────────────────┘
//! ```

use super::app::App;
use super::compare_header::overlay_line;
use super::loss::{Curve, LogChart, draw_log_chart, log_points, step_range};
use super::widgets::panel_block;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

/// Below this width the two charts are stacked instead of side by side.
const STACK_BELOW_WIDTH: u16 = 100;

/// Draws the run lines and the two overlaid charts into `area`.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let lines: Vec<Line> = app
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| overlay_line(theme, run, i, i == app.focus))
        .collect();
    let [legend, charts] =
        Layout::vertical([Constraint::Length(lines.len() as u16), Constraint::Fill(1)]).areas(area);
    frame.render_widget(Paragraph::new(lines), legend);
    let [loss_area, grads_area] = if charts.width < STACK_BELOW_WIDTH {
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts)
    } else {
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts)
    };
    render_losses(frame, loss_area, app);
    render_gradients(frame, grads_area, app);
}

/// Every run's main loss over the whole run; forks and commands as markers in the run's colour.
fn render_losses(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let block = panel_block(theme, " loss (log), every run ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut curves = Vec::new();
    let mut markers: Vec<(f64, String, ratatui::style::Style)> = Vec::new();
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (i, run) in app.runs.iter().enumerate() {
        let style = theme.run(i);
        curves.push(Curve {
            points: log_points(&run.main_loss.whole_run()),
            style,
            marker: theme.run_marker(i),
        });
        let (a, b) = step_range(run);
        (x0, x1) = (x0.min(a), x1.max(b));
        for marker in &run.markers {
            let step = marker.step as f64;
            // A twin inherits its parent's markers: draw each command once.
            if !markers
                .iter()
                .any(|(s, l, _)| *s == step && *l == marker.label)
            {
                markers.push((step, marker.label.clone(), style));
            }
        }
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    let chart = LogChart {
        curves,
        x: (x0, x1),
        x_unit: "step",
        baseline: None,
        markers,
    };
    draw_log_chart(frame, inner, theme, &chart);
}

/// Every run's newest ‖∂L/∂h_l‖ per layer (‖∂L/∂h_t‖ per time step for recurrent nets).
fn render_gradients(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let rnn = app.runs.iter().any(|r| r.is_rnn());
    let (title, unit) = if rnn {
        (" ‖∂L/∂h_t‖ per time step (log), newest ", "t")
    } else {
        (" ‖∂L/∂h_l‖ per layer (log), newest ", "layer")
    };
    let block = panel_block(theme, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut depth = 1usize;
    let curves = app
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let norms: Vec<f64> = run.latest.as_ref().map_or_else(Vec::new, |s| {
                if run.is_rnn() {
                    s.timesteps.iter().map(|t| t.hidden_grad_norm).collect()
                } else {
                    s.layers.iter().map(|l| l.act_grad_norm).collect()
                }
            });
            depth = depth.max(norms.len());
            let points: Vec<(f64, f64)> = norms
                .iter()
                .enumerate()
                .map(|(l, &norm)| ((l + 1) as f64, norm))
                .collect();
            Curve {
                points: log_points(&points),
                style: theme.run(i),
                marker: theme.run_marker(i),
            }
        })
        .collect();
    let chart = LogChart {
        curves,
        x: (1.0, (depth as f64).max(2.0)),
        x_unit: unit,
        baseline: None,
        markers: Vec::new(),
    };
    draw_log_chart(frame, inner, theme, &chart);
}
