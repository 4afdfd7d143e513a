//! Header: what is running, how fast, in which state, and the switches with their keys.

use super::app::App;
use super::fmt_value;
use crate::config::{OptimizerSpec, TaskSpec};
use crate::protocol::RunState;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// The task in a word or two.
pub fn task_label(task: &TaskSpec) -> String {
    match task {
        TaskSpec::Spirals { .. } => "spirals".into(),
        TaskSpec::Circles { .. } => "circles".into(),
        TaskSpec::Checkerboard { cells, .. } => format!("checkerboard {cells}×{cells}"),
        TaskSpec::Blobs { classes, dims, .. } => format!("blobs {classes}×{dims}d"),
        TaskSpec::Teacher { dims, .. } => format!("teacher {dims}d"),
        TaskSpec::Csv { path, .. } => format!("csv {path}"),
        TaskSpec::Adding { length, .. } => format!("adding T={length}"),
        TaskSpec::Copy { symbols, delay, .. } => format!("copy {symbols} over {delay}"),
        TaskSpec::DelayedXor { length, .. } => format!("delayed xor T={length}"),
    }
}

/// The run state in words, e.g. `diverged at step 812, layer 3`.
pub fn state_label(state: &RunState) -> String {
    match state {
        RunState::Running => "running".into(),
        RunState::Paused => "paused".into(),
        RunState::Finished => "finished".into(),
        RunState::Diverged(d) => match d.layer {
            Some(layer) => format!(
                "diverged at step {}, layer {}: {}",
                d.step,
                layer + 1,
                d.what
            ),
            None => format!("diverged at step {}: {}", d.step, d.what),
        },
        RunState::Crashed(message) => format!("crashed: {message}"),
    }
}

/// Draws the two header lines.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let bar = if theme.ascii { " | " } else { " │ " };
    let sep = || Span::styled(bar, theme.dim());
    let rate = match app.steps_per_sec {
        Some(rate) => format!("{rate:.1} steps/s"),
        None => "– steps/s".into(),
    };
    let state_style = match app.state {
        RunState::Running => theme.healthy(),
        RunState::Paused | RunState::Finished => theme.paused(),
        RunState::Diverged(_) | RunState::Crashed(_) => theme.alarm(),
    };
    let bullet = if theme.ascii { "* " } else { "● " };
    // The state comes first after the name: it is what must survive a narrow terminal.
    let mut first = vec![Span::styled(" gradlab", theme.title()), sep()];
    match &app.experiment {
        Some(e) => first.push(Span::styled(e.name.clone(), theme.active())),
        None => first.push(Span::styled("starting…", theme.dim())),
    }
    if let Some(view) = &app.replay {
        first.push(sep());
        first.extend(super::replay::header_spans(view, app.step, theme));
    }
    first.extend([
        sep(),
        Span::styled(format!("{bullet}{}", state_label(&app.state)), state_style),
        sep(),
        Span::raw(format!("step {}", app.step)),
        sep(),
        Span::styled(rate, theme.dim()),
    ]);
    if let Some(e) = &app.experiment {
        let optimizer = match e.optimizer {
            OptimizerSpec::Sgd { .. } => "SGD",
            OptimizerSpec::Adam { .. } => "Adam",
        };
        let activation = format!("{:?}", e.model.activation).to_lowercase();
        let model = if app.is_rnn() {
            format!(
                "RNN {} hidden {} {optimizer}",
                app.switches.cell.label(),
                e.model.width
            )
        } else {
            format!(
                "MLP {}×{} {activation} {optimizer}",
                e.model.depth, e.model.width
            )
        };
        first.extend([
            sep(),
            Span::raw(task_label(&e.task)),
            sep(),
            Span::raw(model),
        ]);
    }

    let s = &app.switches;
    if app.is_rnn() {
        let second = rnn_switches(app, &sep);
        frame.render_widget(
            Paragraph::new(vec![Line::from(first), Line::from(second)]),
            area,
        );
        return;
    }
    let mut second = vec![
        Span::styled(" p r h d", theme.key()),
        Span::styled(" skip ", theme.dim()),
        Span::styled(s.skip.label(), theme.active()),
        sep(),
        Span::styled("a", theme.key()),
        Span::styled(" aux ", theme.dim()),
        Span::styled(if s.aux { "on" } else { "off" }, theme.active()),
        sep(),
        Span::styled("[ ]", theme.key()),
        Span::styled(" lr ", theme.dim()),
        Span::styled(format!("{:.2e}", s.lr), theme.active()),
    ];
    // The measurement first: on an 80-column terminal the line is cut at the right edge.
    if let Some(latest) = &app.latest {
        second.extend([
            sep(),
            Span::styled("first/last ", theme.dim()),
            ratio_span(app, latest.grad_ratio_db),
        ]);
    }
    if let (Some(theory), Some(e)) = (&app.theory, &app.experiment) {
        let hops = e.model.depth.saturating_sub(1) as f64;
        second.extend([
            sep(),
            Span::styled("theory χ₁ ", theme.dim()),
            Span::raw(fmt_value(theory.chi1)),
            Span::styled(
                format!(
                    " (plain net: {} dB)",
                    fmt_db(theory.predicted_db_per_layer * hops)
                ),
                theme.dim(),
            ),
        ]);
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

/// A measured first/last ratio in dB, in the alarm colour when it is NaN/Inf.
fn ratio_span<'a>(app: &App, db: f64) -> Span<'a> {
    let style = if db.is_finite() {
        app.theme.text()
    } else {
        app.theme.alarm()
    };
    Span::styled(format!("{} dB", fmt_db(db)), style)
}

/// The second header line of the RNN view: cell, learning rate, baseline, measured ratio.
fn rnn_switches<'a>(app: &App, sep: &dyn Fn() -> Span<'a>) -> Vec<Span<'a>> {
    let theme = &app.theme;
    let mut spans = vec![
        Span::styled(" g", theme.key()),
        Span::styled(" cell ", theme.dim()),
        Span::styled(app.switches.cell.label(), theme.active()),
        sep(),
        Span::styled("[ ]", theme.key()),
        Span::styled(" lr ", theme.dim()),
        Span::styled(format!("{:.2e}", app.switches.lr), theme.active()),
    ];
    if let Some(latest) = &app.latest {
        if let Some(baseline) = latest.baseline_loss {
            spans.extend([
                sep(),
                Span::styled("baseline ", theme.dim()),
                Span::styled(fmt_value(baseline), theme.theory()),
            ]);
        }
        spans.extend([
            sep(),
            Span::styled("‖∂L/∂h_1‖/‖∂L/∂h_T‖ ", theme.dim()),
            ratio_span(app, latest.grad_ratio_db),
        ]);
    }
    spans
}

/// Decibels with one decimal, NaN/Inf spelled out.
pub fn fmt_db(db: f64) -> String {
    if db.is_finite() {
        format!("{db:+.1}")
    } else {
        fmt_value(db)
    }
}
