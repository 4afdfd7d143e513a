//! Sparklines over the recent window: first/last-layer gradient norms, their ratio in dB, the
//! mean highway gate, and the cursor layer's weight gradient, activation RMS and update ratio.
//! Recurrent nets: the same along time, the gate (LSTM forget, GRU update) at the first and
//! last time step, and the loss.

use super::header::fmt_db;
use super::history::History;
use super::run_view::RunView;
use super::theme::Theme;
use super::widgets::fmt_value;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

/// Width of the label column when a sparkline shares its row with its label.
const INLINE_LABEL: u16 = 26;
/// Sparkline heights are scaled into SPARK_MIN..=SPARK_MAX so the minimum still shows a sliver.
const SPARK_MAX: u64 = 96;
/// One eighth of a cell: the lowest visible bar.
const SPARK_MIN: u64 = SPARK_MAX / 8;

/// Reads one metric of a layer.
type LayerField = fn(&crate::metrics::LayerMetrics) -> f64;

/// One sparkline to draw.
struct Series<'a> {
    label: String,
    /// Text for the newest value (NaN/Inf spelled out).
    value: String,
    value_finite: bool,
    history: Option<&'a History>,
    log: bool,
    style: Style,
}

impl<'a> Series<'a> {
    /// A series whose newest value is `v`.
    fn of(
        label: impl Into<String>,
        v: f64,
        history: Option<&'a History>,
        log: bool,
        style: Style,
    ) -> Self {
        Series {
            label: label.into(),
            value: fmt_value(v),
            value_finite: v.is_finite(),
            history,
            log,
            style,
        }
    }
}

/// Scales the newest `width` points into sparkline heights; non-finite points are already gone.
fn bars(history: &History, width: usize, log: bool) -> Vec<u64> {
    let points = history.recent();
    let start = points.len().saturating_sub(width);
    let values: Vec<f64> = points[start..]
        .iter()
        .filter(|p| !log || p.1 > 0.0)
        .map(|p| if log { p.1.log10() } else { p.1 })
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .map(|v| SPARK_MIN + ((v - lo) / span * (SPARK_MAX - SPARK_MIN) as f64).round() as u64)
        .collect()
}

/// The RNN view's series: gradient at t = 1 and t = T, their ratio, gates and loss.
fn rnn_series<'a>(run: &'a RunView, theme: &Theme) -> Vec<Series<'a>> {
    let latest = run.latest.as_ref();
    let steps = latest.map_or(&[][..], |s| &s.timesteps[..]);
    let value = |v: f64| (fmt_value(v), v.is_finite());
    let t_last = steps.len();
    let grad =
        |t: Option<&crate::metrics::TimestepMetrics>| t.map_or(f64::NAN, |t| t.hidden_grad_norm);
    let (first_value, first_finite) = value(grad(steps.first()));
    let (last_value, last_finite) = value(grad(steps.last()));
    let ratio = latest.map_or(f64::NAN, |s| s.grad_ratio_db);
    let gate_name = match run.switches.cell {
        crate::config::CellKind::Lstm => Some("forget f"),
        crate::config::CellKind::Gru => Some("update z"),
        crate::config::CellKind::Vanilla => None,
    };
    let gate_at = |t: Option<&crate::metrics::TimestepMetrics>| {
        t.and_then(|t| t.forget_gate_mean.or(t.update_gate_mean))
    };
    let mut series = vec![
        Series {
            label: "‖∂L/∂h_t‖ t=1".into(),
            value: first_value,
            value_finite: first_finite,
            history: Some(&run.first_grad),
            log: true,
            style: theme.vanishing(),
        },
        Series {
            label: format!("‖∂L/∂h_t‖ t={t_last}"),
            value: last_value,
            value_finite: last_finite,
            history: Some(&run.last_grad),
            log: true,
            style: theme.healthy(),
        },
        Series {
            label: "h_1/h_T dB".into(),
            value: fmt_db(ratio),
            value_finite: ratio.is_finite(),
            history: Some(&run.ratio_db),
            log: false,
            style: theme.series(0),
        },
    ];
    for (at, history, t, style) in [
        ("t=1", &run.gate_first, steps.first(), 1),
        ("t=T", &run.gate_last, steps.last(), 2),
    ] {
        series.push(match (gate_name, gate_at(t)) {
            (Some(name), Some(g)) => {
                let (value, value_finite) = value(g);
                Series {
                    label: format!("{name} {at}"),
                    value,
                    value_finite,
                    history: Some(history),
                    log: false,
                    style: theme.series(style),
                }
            }
            _ => Series {
                label: format!("gate {at}"),
                value: "n/a (vanilla cell)".into(),
                value_finite: true,
                history: None,
                log: false,
                style: theme.dim(),
            },
        });
    }
    let loss = latest.map_or(f64::NAN, |s| s.main_loss);
    let (loss_value, loss_finite) = value(loss);
    series.push(Series {
        label: "loss".into(),
        value: loss_value,
        value_finite: loss_finite,
        history: Some(&run.main_loss),
        log: true,
        style: theme.series(3),
    });
    series
}

/// Draws the sparkline panel.
pub fn render(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    if run.is_rnn() {
        let title = Line::from(Span::styled(" recent (time axis) ", theme.title()));
        draw_panel(frame, area, theme, title, &rnn_series(run, theme));
        return;
    }
    let latest = run.latest.as_ref();
    let layer_value = |i: Option<usize>, f: LayerField| {
        latest
            .and_then(|s| i.and_then(|i| s.layers.get(i)))
            .map_or(f64::NAN, f)
    };
    let depth = latest.map_or(0, |s| s.layers.len());
    let first = (depth > 0).then_some(0);
    let last = depth.checked_sub(1);
    let cursor = (run.cursor < depth).then_some(run.cursor);
    let c = run.cursor + 1;
    let cursor_layer = run.layers.get(run.cursor);
    let gate = latest.and_then(|s| {
        let gates: Vec<f64> = s.layers.iter().filter_map(|l| l.gate_mean).collect();
        (!gates.is_empty()).then(|| gates.iter().sum::<f64>() / gates.len() as f64)
    });
    let ratio = latest.map_or(f64::NAN, |s| s.grad_ratio_db);
    let mut series = vec![
        Series::of(
            "‖∂L/∂h‖ first",
            layer_value(first, |l| l.act_grad_norm),
            Some(&run.first_grad),
            true,
            theme.vanishing(),
        ),
        Series::of(
            "‖∂L/∂h‖ last",
            layer_value(last, |l| l.act_grad_norm),
            Some(&run.last_grad),
            true,
            theme.healthy(),
        ),
        Series {
            label: "first/last dB".into(),
            value: fmt_db(ratio),
            value_finite: ratio.is_finite(),
            history: Some(&run.ratio_db),
            log: false,
            style: theme.series(0),
        },
        match gate {
            Some(g) => Series::of(
                "gate mean T",
                g,
                Some(&run.gate_mean),
                false,
                theme.series(1),
            ),
            None => Series {
                label: "gate T".into(),
                value: "n/a (no highway)".into(),
                value_finite: true,
                history: None,
                log: false,
                style: theme.dim(),
            },
        },
    ];
    let per_layer: [(&str, LayerField, usize); 3] = [
        ("‖∂L/∂W‖", |l| l.weight_grad_norm, 0),
        ("act RMS", |l| l.act_rms, 1),
        ("‖ΔW‖/‖W‖", |l| l.update_ratio, 2),
    ];
    for (name, f, i) in per_layer {
        let history = cursor_layer.map(|h| match i {
            0 => &h.weight_grad,
            1 => &h.act_rms,
            _ => &h.update_ratio,
        });
        series.push(Series::of(
            format!("L{c} {name}"),
            layer_value(cursor, f),
            history,
            true,
            theme.series(2 + i),
        ));
    }

    let title = Line::from(vec![
        Span::styled(" recent ", theme.title()),
        Span::styled(format!("(cursor: layer {c}, ↑↓ moves) "), theme.dim()),
    ]);
    draw_panel(frame, area, theme, title, &series);
}

/// The bordered panel with `series` laid out in one or two columns.
fn draw_panel(frame: &mut Frame, area: Rect, theme: &Theme, title: Line, series: &[Series]) {
    let Some(inner) = super::paths::framed(frame, area, theme, title) else {
        return;
    };
    // One column when every series gets a row of its own, else two side by side.
    let columns: Vec<Rect> = if usize::from(inner.height) >= series.len() {
        vec![inner]
    } else {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .spacing(1)
            .split(inner)
            .to_vec()
    };
    let per_column = series.len().div_ceil(columns.len());
    for (column, chunk) in columns.iter().zip(series.chunks(per_column)) {
        let rows = (column.height / per_column as u16).max(1);
        for (i, s) in chunk.iter().enumerate() {
            let y = column.y + rows * i as u16;
            if y >= column.bottom() {
                break;
            }
            let height = rows.min(column.bottom() - y);
            let row = Rect {
                y,
                height,
                ..*column
            };
            draw_series(frame, row, theme, s);
        }
    }
}

fn draw_series(frame: &mut Frame, row: Rect, theme: &Theme, s: &Series) {
    let label = Line::from(vec![
        Span::styled(format!("{} ", s.label), theme.dim()),
        Span::styled(
            s.value.clone(),
            if s.value_finite {
                theme.text()
            } else {
                theme.alarm()
            },
        ),
    ]);
    let (label_area, spark_area) = if row.height >= 2 {
        let [label_area, spark_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(row);
        (label_area, spark_area)
    } else {
        let label_width = INLINE_LABEL.min(row.width);
        let [label_area, spark_area] =
            Layout::horizontal([Constraint::Length(label_width), Constraint::Fill(1)]).areas(row);
        (label_area, spark_area)
    };
    frame.render_widget(Paragraph::new(label), label_area);
    if let Some(history) = s.history
        && spark_area.width > 0
        && spark_area.height > 0
    {
        let data = bars(history, usize::from(spark_area.width), s.log);
        frame.render_widget(
            Sparkline::default()
                .data(data)
                .max(SPARK_MAX)
                .bar_set(theme.bar_set())
                .style(s.style),
            spark_area,
        );
    }
}
