//! Gradient flow: one bar per layer of ‖∂L/∂h_l‖ on a log scale, coloured by regime, with the
//! mean-field prediction drawn across the bars, and a layer × step heat map of the same
//! quantity over the whole run. Recurrent nets get the same panels along time: ‖∂L/∂h_t‖ per
//! time step and a time × step heat map.

use super::header::fmt_db;
use super::history::History;
use super::loss::{step_column, step_range};
use super::paced_prediction::ShownPrediction;
use super::run_view::RunView;
use super::theme::Theme;
use super::widgets::{fmt_value, log_tick, panel_block};
use crate::metrics::Snapshot;
use crate::theory::NetArch;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// A layer more than this many dB below/above the last layer counts as vanishing/exploding.
pub const REGIME_DB: f64 = 20.0;
/// Columns left of the bars for the y labels.
const BAR_GUTTER: u16 = 6;
/// Columns left of the heat map for the layer labels (wider for up to four-digit time steps).
const HEAT_GUTTER: u16 = 4;
/// See [`HEAT_GUTTER`]: recurrent nets.
const HEAT_GUTTER_RNN: u16 = 6;
/// Partial-cell glyphs for bar tops, in eighths.
const EIGHTHS: [&str; 8] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇"];

/// How a layer's gradient compares with the last layer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// More than [`REGIME_DB`] below the last layer.
    Vanishing,
    /// Within ±[`REGIME_DB`] of the last layer.
    Healthy,
    /// More than [`REGIME_DB`] above the last layer.
    Exploding,
    /// NaN or Inf.
    NonFinite,
}

/// Classifies `norm` relative to `last`.
pub fn regime(norm: f64, last: f64) -> Regime {
    if !norm.is_finite() || !last.is_finite() {
        return Regime::NonFinite;
    }
    let db = 20.0 * (norm / last).log10();
    if db.is_nan() {
        Regime::Healthy
    } else if db < -REGIME_DB {
        Regime::Vanishing
    } else if db > REGIME_DB {
        Regime::Exploding
    } else {
        Regime::Healthy
    }
}

fn regime_style(theme: &Theme, regime: Regime) -> Style {
    match regime {
        Regime::Vanishing => theme.vanishing(),
        Regime::Healthy => theme.healthy(),
        Regime::Exploding => theme.exploding(),
        Regime::NonFinite => theme.alarm(),
    }
}

/// Floor/ceil of log10 over the positive finite values, at least one decade apart.
fn decade_bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(f64::log10)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return None;
    }
    let (lo, hi) = (lo.floor(), hi.ceil());
    Some(if hi > lo { (lo, hi) } else { (lo, lo + 1.0) })
}

/// Which layer column `c` of `width` shows when there are `depth` layers.
fn layer_at(c: u16, width: u16, depth: usize) -> usize {
    (usize::from(c) * depth / usize::from(width.max(1))).min(depth.saturating_sub(1))
}

/// What one bar chart shows: per layer (MLP) or per time step (RNN).
struct BarsSpec<'a> {
    /// Panel title before the cursor readout.
    title: &'a str,
    /// Row prefix for the cursor readout, `L` or `t`.
    prefix: &'a str,
    /// Axis name under the bars.
    axis: &'a str,
    /// One norm per bar, input side (or t = 1) first.
    norms: Vec<f64>,
    /// Mean-field prediction per bar in dB relative to the last, for the theory line.
    predicted_db: Option<&'a [Option<f64>]>,
    /// What the bottom border says about the line (or why there is none), long and short.
    legend: Option<(String, String)>,
}

/// Draws the gradient bars: per layer with the theory line, or per time step for an RNN.
pub fn render_bars(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let latest = run.latest.as_ref();
    let shown = run.prediction();
    let prediction = shown.as_deref().map(|s| &s.prediction);
    let variances = |s: &ShownPrediction, l: &Snapshot| {
        super::header::variances_of(s.step, l.step, "variances")
    };
    let dash = if theme.ascii { "-" } else { "─" };
    let legend = match (shown.as_deref(), latest) {
        // The RNN recursion treats U as drawn afresh at every step; a real RNN reuses it, and
        // at small widths the measurement can sit tens of dB away (see README).
        (Some(s), Some(l)) if s.prediction.arch == NetArch::Rnn => Some((
            format!(
                " {dash} mean-field, rnn (untied-U approximation, {}) ",
                variances(s, l)
            ),
            format!(" {dash} mean-field, rnn (untied U) "),
        )),
        (Some(s), Some(l)) => Some((
            format!(
                " {dash} mean-field, {} ({}) ",
                s.prediction.arch.name(),
                variances(s, l)
            ),
            format!(" {dash} mean-field, {} ", s.prediction.arch.name()),
        )),
        (None, Some(s)) => Some((
            format!(" {} ", super::header::no_prediction_note(s)),
            " no theory ".to_string(),
        )),
        // A prediction exists only for a snapshot.
        (_, None) => None,
    };
    let predicted_db = prediction.map(|p| p.per_layer_db.as_slice());
    let spec = if run.is_rnn() {
        BarsSpec {
            title: " ‖∂L/∂h_t‖ per time step (log) ",
            prefix: "t",
            axis: "time",
            norms: latest.map_or_else(Vec::new, |s| {
                s.timesteps.iter().map(|t| t.hidden_grad_norm).collect()
            }),
            predicted_db,
            legend,
        }
    } else {
        BarsSpec {
            title: " ‖∂L/∂h_l‖ per layer (log) ",
            prefix: "L",
            axis: "layer",
            norms: latest.map_or_else(Vec::new, |s| {
                s.layers.iter().map(|l| l.act_grad_norm).collect()
            }),
            predicted_db,
            legend,
        }
    };
    draw_bars(frame, area, run, theme, &spec);
}

/// What the bars measure, for the bottom border: the batch's Frobenius norm of the gradient of
/// the mean loss, which shrinks as 1/√B with the batch size B.
pub const NORM_NOTE: &str = " batch Frobenius norm, mean loss (∝1/√B) ";

/// Predicted ‖∂L/∂h_l‖ per bar, anchored at the measured last bar: `last` × 10^(dB/20); NaN
/// where the prediction does not cover the layer.
pub fn theory_norms(predicted_db: &[Option<f64>], last: f64) -> Vec<f64> {
    predicted_db
        .iter()
        .map(|db| db.map_or(f64::NAN, |db| last * 10f64.powf(db / 20.0)))
        .collect()
}

fn draw_bars(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme, spec: &BarsSpec) {
    let norms = &spec.norms;
    let last = norms.last().copied().unwrap_or(f64::NAN);
    let mut title = vec![Span::styled(spec.title, theme.title())];
    if let Some(&cursor_norm) = norms.get(run.cursor) {
        title.push(Span::styled(
            format!("{}{} ", spec.prefix, run.cursor + 1),
            theme.key(),
        ));
        title.push(Span::styled(
            fmt_value(cursor_norm),
            regime_style(theme, regime(cursor_norm, last)),
        ));
        title.push(Span::styled(
            format!(
                " {} dB vs last ",
                fmt_db(20.0 * (cursor_norm / last).log10())
            ),
            theme.dim(),
        ));
        // The norm is exact (carried rescaled), but the f32 update it implies may be zero.
        let below_f32 = !run.is_rnn()
            && run
                .latest
                .as_ref()
                .and_then(|s| s.layers.get(run.cursor))
                .is_some_and(|l| l.below_f32);
        if below_f32 {
            title.push(Span::styled(
                "below f32: this layer cannot learn ",
                theme.alarm(),
            ));
        }
    }
    let theory = spec
        .predicted_db
        .filter(|db| last.is_finite() && last > 0.0 && db.len() == norms.len())
        .map(|db| theory_norms(db, last));
    let block = panel_block(theme, Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.width <= BAR_GUTTER + 1 || inner.height < 3 || norms.is_empty() {
        return;
    }
    let graph = Rect {
        x: inner.x + BAR_GUTTER,
        y: inner.y,
        width: inner.width - BAR_GUTTER,
        height: inner.height - 1,
    };
    let Some((lo, hi)) = decade_bounds(norms.iter().copied()) else {
        frame.buffer_mut().set_stringn(
            graph.x,
            graph.y,
            "gradients are NaN/Inf",
            usize::from(graph.width),
            theme.alarm(),
        );
        return;
    };
    let depth = norms.len();
    let buf = frame.buffer_mut();
    let eighths_total = f64::from(graph.height) * 8.0;
    // Leave a gap between bars when there is room, so neighbouring layers read apart.
    let per_layer = graph.width / depth.min(usize::from(u16::MAX)) as u16;
    for c in 0..graph.width {
        let layer = layer_at(c, graph.width, depth);
        if per_layer >= 3 && (c + 1) % per_layer == 0 {
            continue;
        }
        let norm = norms[layer];
        let style = regime_style(theme, regime(norm, last));
        let style = if layer == run.cursor {
            style.patch(theme.cursor())
        } else {
            style
        };
        let x = graph.x + c;
        if !norm.is_finite() || norm <= 0.0 {
            let text = if norm == 0.0 { "0" } else { "!" };
            buf.set_string(x, graph.bottom() - 1, text, theme.alarm());
            continue;
        }
        let level = ((norm.log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
        // Every finite bar shows at least one eighth, so the smallest layer is still visible.
        let eighths = ((level * eighths_total).round() as u32).max(1);
        for row in 0..graph.height {
            let filled = eighths.saturating_sub(u32::from(row) * 8).min(8);
            if filled == 0 {
                break;
            }
            let glyph = match (filled, theme.ascii) {
                (8, _) => theme.block(),
                (_, true) => "#",
                (n, false) => EIGHTHS[n as usize],
            };
            buf.set_string(x, graph.bottom() - 1 - row, glyph, style);
        }
        if let Some(predicted) = theory.as_ref().and_then(|t| t.get(layer)) {
            // Off-scale predictions are left out rather than pinned to the edge, where they
            // would read as a measurement.
            let level = (predicted.log10() - lo) / (hi - lo);
            if predicted.is_finite() && *predicted > 0.0 && (0.0..=1.0).contains(&level) {
                let row =
                    ((level * f64::from(graph.height - 1)).round() as u16).min(graph.height - 1);
                let glyph = if theme.ascii { "-" } else { "─" };
                buf.set_string(x, graph.bottom() - 1 - row, glyph, theme.theory());
            }
        }
    }
    for (row, v) in [(graph.top(), hi), (graph.bottom() - 1, lo)] {
        buf.set_stringn(
            inner.x,
            row,
            log_tick(v),
            usize::from(BAR_GUTTER - 1),
            theme.dim(),
        );
    }
    let bottom = inner.bottom() - 1;
    buf.set_stringn(
        inner.x,
        bottom,
        spec.axis,
        usize::from(BAR_GUTTER),
        theme.dim(),
    );
    buf.set_stringn(graph.x, bottom, "1", 1, theme.dim());
    let out = format!("{depth}");
    let out_x = graph.right().saturating_sub(out.len() as u16).max(graph.x);
    buf.set_stringn(out_x, bottom, out, usize::from(graph.width), theme.dim());
    if let Some(c) = (0..graph.width).find(|&c| layer_at(c, graph.width, depth) == run.cursor) {
        let caret = if theme.ascii { "^" } else { "▲" };
        buf.set_string(graph.x + c, bottom, caret, theme.key());
    }
    // The legends go on the bottom border: the title is already full of cursor readout. The
    // theory's goes right; what the bars measure goes left when there is room for both.
    // The long legend when it fits, else the short one.
    let legend = spec.legend.as_ref().map(|(long, short)| {
        if long.chars().count() + 2 < usize::from(area.width) {
            long
        } else {
            short
        }
    });
    let legend_width = legend.map_or(0, |l| l.chars().count());
    if let Some(legend) = legend {
        let style = if theory.is_some() {
            theme.theory()
        } else {
            theme.dim()
        };
        bottom_legend(buf, area, legend.clone(), legend_width, style);
    }
    let note_width = NORM_NOTE.chars().count();
    if usize::from(area.width) >= note_width + legend_width + 4 {
        buf.set_string(area.x + 1, area.bottom() - 1, NORM_NOTE, theme.dim());
    }
}

/// Writes `legend`, taken as `width` columns wide, at the right end of `area`'s bottom border
/// when there is room for it.
fn bottom_legend(buf: &mut Buffer, area: Rect, legend: String, width: usize, style: Style) {
    let x = area.right().saturating_sub(width as u16 + 1);
    if x > area.x {
        buf.set_stringn(x, area.bottom() - 1, legend, usize::from(area.width), style);
    }
}

/// Draws the heat map: rows are layers (input at the top) or time steps (t = 1 at the top),
/// columns are steps over the whole run, colour is log10 of the gradient norm. Command markers
/// are ticks on the top border.
pub fn render_heat(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let rnn = run.is_rnn();
    let (what, note, prefix, gutter) = if rnn {
        (
            " ‖∂L/∂h_t‖: time × step ",
            "(t = 1 at top; colour = log norm) ",
            "t",
            HEAT_GUTTER_RNN,
        )
    } else {
        (
            " ‖∂L/∂h_l‖: layer × step ",
            "(input at top; colour = log norm) ",
            "L",
            HEAT_GUTTER,
        )
    };
    let histories: Vec<&History> = if rnn {
        run.timesteps.iter().collect()
    } else {
        run.layers.iter().map(|l| &l.act_grad).collect()
    };
    let block = panel_block(
        theme,
        Line::from(vec![
            Span::styled(what, theme.title()),
            Span::styled(note, theme.dim()),
        ]),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let depth = histories.len();
    if inner.width <= gutter + 1 || inner.height == 0 || depth == 0 {
        return;
    }
    let graph = Rect {
        x: inner.x + gutter,
        width: inner.width - gutter,
        ..inner
    };
    let (x0, x1) = step_range(run);
    // Half blocks give two layer rows per cell when colour can tell them apart.
    let half_blocks = theme.color && !theme.ascii;
    let virtual_rows = graph.height * if half_blocks { 2 } else { 1 };
    let rows: Vec<usize> = (0..virtual_rows)
        .map(|r| layer_at(r, virtual_rows, depth))
        .collect();
    let width = usize::from(graph.width);
    let mut grid: Vec<Vec<f64>> = Vec::with_capacity(rows.len());
    let mut all = Vec::new();
    for &layer in &rows {
        let points = histories[layer].whole_run();
        let mut sums = vec![(0.0, 0u32); width];
        for (x, y) in points {
            if y > 0.0
                && y.is_finite()
                && let Some(col) = step_column(graph, (x0, x1), x)
            {
                let slot = &mut sums[usize::from(col - graph.x)];
                slot.0 += y.log10();
                slot.1 += 1;
            }
        }
        // Columns between sparse points repeat the previous value rather than show a gap.
        let mut last = f64::NAN;
        let row: Vec<f64> = sums
            .iter()
            .map(|&(sum, n)| {
                if n > 0 {
                    last = sum / f64::from(n);
                }
                last
            })
            .collect();
        all.extend(row.iter().copied().filter(|v| v.is_finite()));
        grid.push(row);
    }
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let level = |v: f64| {
        if v.is_finite() {
            (v - lo) / span
        } else {
            f64::NAN
        }
    };
    let buf = frame.buffer_mut();
    for cell_row in 0..graph.height {
        let y = graph.y + cell_row;
        for c in 0..graph.width {
            let x = graph.x + c;
            let Some(cell) = buf.cell_mut((x, y)) else {
                continue;
            };
            if half_blocks {
                let top = grid[usize::from(cell_row) * 2][usize::from(c)];
                let bottom = grid[usize::from(cell_row) * 2 + 1][usize::from(c)];
                if !top.is_finite() && !bottom.is_finite() {
                    continue;
                }
                let (_, top_style) = theme.heat(level(top));
                let (_, bottom_style) = theme.heat(level(bottom));
                let mut style = top_style;
                if let Some(bg) = bottom_style.fg {
                    style = style.bg(bg);
                }
                cell.set_symbol("▀").set_style(style);
            } else {
                let v = grid[usize::from(cell_row)][usize::from(c)];
                if v.is_finite() {
                    let (glyph, style) = theme.heat(level(v));
                    cell.set_char(glyph).set_style(style);
                }
            }
        }
        let layer = rows[usize::from(cell_row) * if half_blocks { 2 } else { 1 }];
        let label_style = if layer == run.cursor {
            theme.key()
        } else {
            theme.dim()
        };
        buf.set_stringn(
            inner.x,
            y,
            format!("{prefix}{}", layer + 1),
            usize::from(gutter - 1),
            label_style,
        );
    }
    if lo.is_finite() {
        let legend = format!(" {} … {} ", log_tick(lo), log_tick(hi));
        let width = legend.len();
        bottom_legend(buf, area, legend, width, theme.dim());
    }
    for marker in &run.markers {
        if let Some(col) = step_column(graph, (x0, x1), marker.step as f64) {
            // Only over the border line, never over the title text.
            let on_border = buf
                .cell((col, area.y))
                .is_some_and(|cell| matches!(cell.symbol(), "─" | "-"));
            if on_border {
                let tick = if theme.ascii { "v" } else { "▼" };
                buf.set_string(col, area.y, tick, theme.marker());
            }
        }
    }
}
