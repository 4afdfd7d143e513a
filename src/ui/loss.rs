//! Loss panel: main loss, test loss and each auxiliary head on a log axis over the whole run,
//! with a labelled vertical line where each command took effect, and the task's trivial
//! baseline (the best input-blind prediction) as a labelled horizontal line where one exists.

use super::run_view::RunView;
use super::theme::Theme;
use super::widgets::{fmt_value, log_tick, panel_block};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType};

/// Columns left of the plot for the y labels.
const Y_GUTTER: u16 = 6;

/// Step range shown by the whole-run panels (loss chart and heat map), so markers line up.
pub fn step_range(run: &RunView) -> (f64, f64) {
    let first = run
        .main_loss
        .full()
        .first()
        .or(run.main_loss.recent().first());
    let x0 = first.map_or(0.0, |p| p.0).min(run.step as f64);
    let x1 = (run.step as f64).max(x0 + 1.0);
    (x0, x1)
}

/// Column of `step` inside `graph` for the step range `(x0, x1)`, if it falls inside.
pub fn step_column(graph: Rect, (x0, x1): (f64, f64), step: f64) -> Option<u16> {
    if graph.width == 0 || step < x0 || step > x1 {
        return None;
    }
    let offset = ((step - x0) / (x1 - x0) * f64::from(graph.width - 1)).round();
    Some(graph.x + offset as u16)
}

/// (step, log10 value) of the positive finite points: what a log axis can show.
pub fn log_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && *y > 0.0)
        .map(|&(x, y)| (x, y.log10()))
        .collect()
}

/// Draws the loss chart.
pub fn render(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let latest = run.latest.as_ref();
    let mut title = vec![Span::styled(" loss (log) ", theme.title())];
    if let Some(s) = latest {
        title.extend(super::widgets::value_spans(
            theme,
            "main ",
            s.main_loss,
            theme.series(0),
        ));
        if let Some(test) = s.test_loss {
            title.extend(super::widgets::value_spans(
                theme,
                "  test ",
                test,
                theme.series(1),
            ));
        }
        if let Some(acc) = s.test_accuracy {
            title.push(Span::styled(
                format!(" acc {:.1}%", 100.0 * acc),
                theme.series(1),
            ));
        }
        if !s.aux_losses.is_empty() {
            title.push(Span::styled(
                format!("  aux×{}", s.aux_losses.len()),
                theme.series(2),
            ));
        }
        title.push(Span::raw(" "));
    }
    let block = panel_block(theme, Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut curves = vec![
        Curve::new(
            log_points(&run.main_loss.whole_run()),
            theme.series(0),
            theme,
        ),
        Curve::new(
            log_points(&run.test_loss.whole_run()),
            theme.series(1),
            theme,
        ),
    ];
    for (i, aux) in run.aux_losses.iter().enumerate() {
        curves.push(Curve::new(
            log_points(&aux.whole_run()),
            theme.series(2 + i),
            theme,
        ));
    }
    let baseline = latest
        .and_then(|s| s.baseline_loss)
        .filter(|b| b.is_finite() && *b > 0.0)
        .map(f64::log10);
    let chart = LogChart {
        curves,
        x: step_range(run),
        x_unit: "step",
        baseline,
        markers: run
            .markers
            .iter()
            .map(|m| (m.step as f64, m.label.clone(), theme.marker()))
            .collect(),
    };
    let Some(graph) = draw_log_chart(frame, inner, theme, &chart) else {
        return;
    };
    let buf = frame.buffer_mut();
    if latest.is_some_and(|s| !s.main_loss.is_finite()) {
        let note = format!(
            "loss is {}",
            fmt_value(latest.map_or(f64::NAN, |s| s.main_loss))
        );
        buf.set_stringn(
            graph.x + 1,
            graph.y + graph.height / 2,
            note,
            usize::from(graph.width),
            theme.alarm(),
        );
    }
}

/// One line of a [`LogChart`].
pub struct Curve {
    /// (x, log10 value) points, finite only (see [`log_points`]).
    pub points: Vec<(f64, f64)>,
    /// Its colour.
    pub style: Style,
    /// Its point glyph.
    pub marker: Marker,
}

impl Curve {
    /// A curve in `style` with the theme's usual point glyph.
    pub fn new(points: Vec<(f64, f64)>, style: Style, theme: &Theme) -> Self {
        Self {
            points,
            style,
            marker: theme.chart_marker(),
        }
    }
}

/// A line chart on a log y axis with labelled vertical markers: the loss panel, and the
/// compare view's overlays.
pub struct LogChart {
    /// The lines, drawn in order (later ones on top).
    pub curves: Vec<Curve>,
    /// The x range shown.
    pub x: (f64, f64),
    /// What x counts, for the label at the right end (`step`, `layer`).
    pub x_unit: &'static str,
    /// log10 of a horizontal reference line, labelled `baseline`.
    pub baseline: Option<f64>,
    /// Vertical lines: x, label, style.
    pub markers: Vec<(f64, String, Style)>,
}

/// Draws `chart` inside `inner` (a panel's inside, y labels in its gutter); returns the plot
/// area, or None when `inner` is too small to plot in.
pub fn draw_log_chart(
    frame: &mut Frame,
    inner: Rect,
    theme: &Theme,
    chart: &LogChart,
) -> Option<Rect> {
    if inner.width <= Y_GUTTER + 2 || inner.height < 3 {
        return None;
    }
    let graph = Rect {
        x: inner.x + Y_GUTTER,
        y: inner.y,
        width: inner.width - Y_GUTTER,
        height: inner.height - 1,
    };

    let (x0, x1) = chart.x;
    let baseline = chart.baseline;
    let baseline_line = baseline.map(|b| Curve::new(vec![(x0, b), (x1, b)], theme.theory(), theme));
    let series: Vec<&Curve> = chart.curves.iter().chain(baseline_line.as_ref()).collect();
    let (mut lo, mut hi) = series
        .iter()
        .flat_map(|curve| curve.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (-1.0, 0.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.05);
    (lo, hi) = (lo - pad, hi + pad);

    let datasets: Vec<Dataset> = series
        .iter()
        .map(|curve| {
            Dataset::default()
                .marker(curve.marker)
                .graph_type(GraphType::Line)
                .style(curve.style)
                .data(&curve.points)
        })
        .collect();
    let widget = Chart::new(datasets)
        .x_axis(Axis::default().bounds([x0, x1]))
        .y_axis(Axis::default().bounds([lo, hi]))
        .legend_position(None);
    frame.render_widget(widget, graph);

    let buf = frame.buffer_mut();
    // y labels: top, middle, bottom of the log axis.
    for (row, v) in [
        (graph.top(), hi),
        (graph.y + graph.height / 2, (lo + hi) / 2.0),
        (graph.bottom().saturating_sub(1), lo),
    ] {
        buf.set_stringn(
            inner.x,
            row,
            log_tick(v),
            usize::from(Y_GUTTER - 1),
            theme.dim(),
        );
    }
    // x labels along the bottom row.
    let bottom = inner.bottom() - 1;
    buf.set_stringn(graph.x, bottom, format!("{x0:.0}"), 10, theme.dim());
    let right = format!("{} {x1:.0}", chart.x_unit);
    let right_x = graph
        .right()
        .saturating_sub(right.len() as u16)
        .max(graph.x);
    buf.set_stringn(
        right_x,
        bottom,
        right,
        usize::from(graph.width),
        theme.dim(),
    );

    if let Some(b) = baseline {
        let label = format!("baseline {}", fmt_value(10f64.powf(b)));
        let level = ((b - lo) / (hi - lo)).clamp(0.0, 1.0);
        let row = graph.bottom() - 1 - (level * f64::from(graph.height - 1)).round() as u16;
        // Above the line when there is room, so the line itself stays visible.
        let row = if row > graph.top() { row - 1 } else { row + 1 };
        let x = graph
            .right()
            .saturating_sub(label.chars().count() as u16)
            .max(graph.x);
        if row < graph.bottom() {
            buf.set_stringn(x, row, label, usize::from(graph.width), theme.theory());
        }
    }
    for (step, label, style) in &chart.markers {
        let Some(col) = step_column(graph, (x0, x1), *step) else {
            continue;
        };
        for row in graph.top()..graph.bottom() {
            if let Some(cell) = buf.cell_mut((col, row))
                && cell.symbol() == " "
            {
                cell.set_symbol(theme.vline()).set_style(*style);
            }
        }
        // Labels go right of the line unless that would run off the panel.
        let room = usize::from(graph.right().saturating_sub(col + 1));
        let width = label.chars().count();
        let x = if width <= room || col < graph.x + width as u16 + 1 {
            col + 1
        } else {
            col - width as u16
        };
        let max = usize::from(graph.right().saturating_sub(x));
        buf.set_stringn(x, graph.top(), label, max, *style);
    }
    Some(graph)
}
