//! Spectrum view (`J`): the singular values of the hidden stack's input–output Jacobian as a
//! log-scale histogram, and the forward signal (per-layer q_l and pair correlation c_l), each
//! beside its mean-field prediction. It takes the whole body of the dashboard:
//!
//! ```text
//! wide (120 columns and up)            compact
//! ┌ Jacobian spectrum ┬ forward signal ┐ ┌ Jacobian spectrum ─────────┐
//! │ mean σ², spread   │ ξ_c, collapse  │ │ …                          │
//! │ histogram         │ table by layer │ ├ forward signal ────────────┤
//! └───────────────────┴────────────────┘ └────────────────────────────┘
//! ```

use super::paths::{framed, vbar};
use super::run_view::{RunView, SpectrumView};
use super::theme::Theme;
use super::widgets::{fmt_value, log_tick};
use crate::analysis::forward_signal::ForwardSignal;
use crate::analysis::jacobian::JacobianSpectrum;
use crate::trainer::analyses::{LIVE_ANALYSIS_SHARE, LIVE_SPECTRUM_EVERY};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

/// At this width and up the two panels sit side by side; below it they are stacked.
const SIDE_BY_SIDE_WIDTH: u16 = 120;
/// Columns left of the histogram for the count scale.
const GUTTER: u16 = 5;
/// The forward signal counts as vanished when q_L falls below this fraction of q_1.
const VANISHED_FRACTION: f64 = 1e-3;
/// Inputs count as merged when their last-layer cosine exceeds this.
const MERGED_COSINE: f64 = 0.99;

/// Draws the spectrum view over `area` (the dashboard's body).
pub fn render(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    if run.is_rnn() {
        let title = Line::from(" Jacobian spectrum and forward signal ");
        if let Some(inner) = framed(frame, area, theme, title) {
            let text = "this view is for MLPs (it follows depth; this is a recurrent net)";
            frame.buffer_mut().set_stringn(
                inner.x,
                inner.y,
                text,
                usize::from(inner.width),
                theme.dim(),
            );
        }
        return;
    }
    let halves = [Constraint::Percentage(50), Constraint::Percentage(50)];
    let [top, bottom] = if area.width >= SIDE_BY_SIDE_WIDTH {
        Layout::horizontal(halves).areas(area)
    } else {
        Layout::vertical(halves).areas(area)
    };
    render_spectrum(frame, top, run, theme);
    render_forward(frame, bottom, run, theme);
}

/// The note written until the first analysis arrives.
fn waiting(buf: &mut Buffer, inner: Rect, theme: &Theme) {
    let text = format!(
        "waiting for the first measurement (at most every {LIVE_SPECTRUM_EVERY} steps, \
         in {share:.1} % of training time)",
        share = LIVE_ANALYSIS_SHARE * 100.0
    );
    buf.set_stringn(
        inner.x,
        inner.y,
        text,
        usize::from(inner.width),
        theme.dim(),
    );
}

fn render_spectrum(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let title = match &run.spectrum {
        Some(s) => format!(
            " σ of Jacobian ∂h_L{}/∂h_L{} · estimate from {} input{} ",
            s.jacobian.to_layer,
            s.jacobian.from_layer,
            s.jacobian.inputs,
            if s.jacobian.inputs == 1 { "" } else { "s" },
        ),
        None => " σ of Jacobian ∂h_last/∂h_first ".into(),
    };
    let Some(inner) = framed(frame, area, theme, Line::from(title)) else {
        return;
    };
    let Some(SpectrumView { jacobian, .. }) = &run.spectrum else {
        waiting(frame.buffer_mut(), inner, theme);
        return;
    };
    let step = run.spectrum.as_ref().map_or(0, |s| s.step);
    let lines = spectrum_lines(jacobian, step, theme);
    let text_rows = (lines.len() as u16).min(inner.height);
    for (row, line) in lines.into_iter().take(usize::from(text_rows)).enumerate() {
        frame
            .buffer_mut()
            .set_line(inner.x, inner.y + row as u16, &line, inner.width);
    }
    let hist = Rect {
        y: inner.y + text_rows,
        height: inner.height - text_rows,
        ..inner
    };
    histogram(frame.buffer_mut(), hist, jacobian, theme);
}

/// The summary above the histogram: mean σ² against its prediction, and the spread.
fn spectrum_lines(j: &JacobianSpectrum, step: u64, theme: &Theme) -> Vec<Line<'static>> {
    let intro = Line::styled(
        format!("singular values σ of each input's Jacobian, pooled; log scale; step {step}"),
        theme.dim(),
    );
    let mut first = vec![
        Span::styled("mean σ² ", theme.dim()),
        Span::styled(fmt_value(j.mean_sq), theme.text()),
    ];
    match j.predicted_mean_sq {
        Some(p) => first.extend([
            Span::styled("  mean-field ", theme.dim()),
            Span::styled(fmt_value(p), theme.theory()),
            Span::styled(
                format!(" ({})", j.theory.trim_start_matches("mean-field, ")),
                theme.dim(),
            ),
        ]),
        None => first.push(Span::styled(format!("  {}", j.theory), theme.dim())),
    }
    let spread = j.spread();
    let (sign, style) = if spread.resolved {
        ("", theme.text())
    } else {
        ("≥ ", theme.alarm())
    };
    let mut second = vec![
        Span::styled("spread ", theme.dim()),
        Span::styled(format!("{sign}{:.2} decades", spread.decades), style),
        Span::styled(" (log10 p95/p5)", theme.dim()),
    ];
    let unresolved = j.unresolved();
    if unresolved > 0 {
        second.push(Span::styled(
            format!("  {unresolved} σ below f64 resolution"),
            theme.alarm(),
        ));
    }
    second.push(Span::styled(
        format!(
            "  σ {} … {}",
            fmt_value(*j.singular_values.last().unwrap_or(&f64::NAN)),
            fmt_value(*j.singular_values.first().unwrap_or(&f64::NAN))
        ),
        theme.dim(),
    ));
    vec![intro, Line::from(first), Line::from(second)]
}

/// Histogram of log10 σ: one column per bin, counts up, decades along the axis row. Values
/// at or below the resolution fall in the first bin.
fn histogram(buf: &mut Buffer, area: Rect, j: &JacobianSpectrum, theme: &Theme) {
    if area.height < 2 || area.width <= GUTTER + 4 || j.singular_values.is_empty() {
        return;
    }
    let floor = j.resolution.max(f64::MIN_POSITIVE);
    let logs: Vec<f64> = j
        .singular_values
        .iter()
        .map(|&s| s.max(floor).log10())
        .collect();
    let (min, max) = logs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    // Whole decades at both ends, at least one decade wide, so ticks fall on columns.
    let (lo, mut hi) = (min.floor(), max.ceil());
    if hi - lo < 1.0 {
        hi = lo + 1.0;
    }
    let cols = area.width - GUTTER;
    let bins = usize::from(cols);
    let mut counts = vec![0usize; bins];
    for v in &logs {
        let b = ((v - lo) / (hi - lo) * bins as f64).floor() as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(1).max(1);
    let rows = area.height - 1;
    let bottom = area.y + rows - 1;
    for (c, &count) in counts.iter().enumerate() {
        if count > 0 {
            let level = count as f64 / peak as f64;
            let x = area.x + GUTTER + c as u16;
            vbar(buf, x, bottom, rows, level, theme.healthy(), theme.ascii);
        }
    }
    let gutter = usize::from(GUTTER - 1);
    buf.set_stringn(
        area.x,
        area.y,
        format!("{peak:>gutter$}"),
        gutter,
        theme.dim(),
    );
    buf.set_stringn(
        area.x,
        bottom,
        format!("{:>gutter$}", 0),
        gutter,
        theme.dim(),
    );
    // Axis: decade ticks where they fit, "σ" at the left.
    let axis_y = area.y + rows;
    buf.set_stringn(area.x, axis_y, "σ", gutter, theme.dim());
    let mut free_from = 0u16;
    let decades = (hi - lo) as i64;
    let step = (decades / i64::from((cols / 7).max(1))).max(1);
    let mut d = 0;
    while d <= decades {
        let v = lo + d as f64;
        let col = (((v - lo) / (hi - lo)) * f64::from(cols)).round() as u16;
        let label = log_tick(v);
        let x = col.min(cols.saturating_sub(label.chars().count() as u16));
        if x >= free_from {
            buf.set_stringn(
                area.x + GUTTER + x,
                axis_y,
                &label,
                usize::from(cols - x),
                theme.dim(),
            );
            free_from = x + label.chars().count() as u16 + 1;
        }
        d += step;
    }
}

fn render_forward(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let title = match &run.spectrum {
        Some(s) => format!(
            " Forward signal q_l, c_l · estimate from {} inputs, {} pairs ",
            s.forward.inputs, s.forward.pairs
        ),
        None => " Forward signal q_l, c_l ".into(),
    };
    let Some(inner) = framed(frame, area, theme, Line::from(title)) else {
        return;
    };
    let Some(SpectrumView { forward, .. }) = &run.spectrum else {
        waiting(frame.buffer_mut(), inner, theme);
        return;
    };
    let intro = Line::styled(
        "q_l = mean z_l² (pre-activation), c_l = cosine of a pair's z_l; m-f = mean-field map",
        theme.dim(),
    );
    let mut lines = vec![intro, summary(forward, theme), header(theme)];
    let room = usize::from(inner.height).saturating_sub(lines.len());
    lines.extend(
        shown_layers(forward.layers.len(), room)
            .into_iter()
            .map(|l| layer_line(forward, l, theme)),
    );
    for (row, line) in lines.iter().take(usize::from(inner.height)).enumerate() {
        frame
            .buffer_mut()
            .set_line(inner.x, inner.y + row as u16, line, inner.width);
    }
}

/// ξ_c and whether the signal reaching the last layer still tells inputs apart.
fn summary(f: &ForwardSignal, theme: &Theme) -> Line<'static> {
    let mut spans = match f.xi_c {
        Some(xi) => vec![
            Span::styled("ξ_c ", theme.dim()),
            Span::styled(format!("{} layers", fmt_value(xi)), theme.theory()),
        ],
        None if f.theory.starts_with("mean-field, plain") => {
            vec![Span::styled(
                "ξ_c ∞ (critical) or q* not finite",
                theme.dim(),
            )]
        }
        None => vec![Span::styled("ξ_c: plain chains only", theme.dim())],
    };
    let (Some(first), Some(last)) = (f.layers.first(), f.layers.last()) else {
        return Line::from(spans);
    };
    spans.push(Span::styled("  ", theme.dim()));
    if last.q < VANISHED_FRACTION * first.q {
        spans.push(Span::styled(
            format!(
                "collapsed: q_L{}/q_L1 = {} — every input reaches the top as ≈ 0",
                last.layer,
                fmt_value(last.q / first.q)
            ),
            theme.alarm(),
        ));
    } else if last.c > MERGED_COSINE {
        spans.push(Span::styled(
            format!(
                "collapsed: c_L{} = {:.4} — every input reaches the top as the same vector",
                last.layer, last.c
            ),
            theme.alarm(),
        ));
    } else {
        spans.push(Span::styled(
            format!(
                "inputs stay distinct at L{} (q ratio {}, c {:.3})",
                last.layer,
                fmt_value(last.q / first.q),
                last.c
            ),
            theme.healthy(),
        ));
    }
    Line::from(spans)
}

/// Column widths of the table: layer, q, q mean-field, c, c mean-field.
const COLUMNS: [usize; 5] = [6, 10, 10, 9, 9];

fn header(theme: &Theme) -> Line<'static> {
    let names = ["layer", "q", "q m-f", "c", "c m-f"];
    let text: String = names
        .iter()
        .zip(COLUMNS)
        .map(|(n, w)| format!("{n:>w$}"))
        .collect();
    Line::styled(text, theme.dim())
}

/// Which layers (0-based) fit in `rows` rows: all of them, or evenly spaced ones with the
/// first and the last always shown.
fn shown_layers(depth: usize, rows: usize) -> Vec<usize> {
    if rows == 0 || depth == 0 {
        return Vec::new();
    }
    if depth <= rows {
        return (0..depth).collect();
    }
    if rows == 1 {
        return vec![depth - 1];
    }
    let mut out: Vec<usize> = (0..rows)
        .map(|i| (i * (depth - 1) + (rows - 1) / 2) / (rows - 1))
        .collect();
    out.dedup();
    out
}

fn layer_line(f: &ForwardSignal, l: usize, theme: &Theme) -> Line<'static> {
    let s = &f.layers[l];
    let first_q = f.layers[0].q;
    let theory = |v: Option<String>, w: usize| match v {
        Some(v) => Span::styled(format!("{v:>w$}"), theme.theory()),
        None => Span::styled(format!("{:>w$}", "—"), theme.dim()),
    };
    let q_style = if s.q < VANISHED_FRACTION * first_q {
        theme.vanishing()
    } else {
        theme.text()
    };
    let c_style = if s.c > MERGED_COSINE {
        theme.alarm()
    } else {
        theme.text()
    };
    let [wl, wq, wqt, wc, wct] = COLUMNS;
    Line::from(vec![
        Span::styled(format!("{:>wl$}", format!("L{}", s.layer)), theme.dim()),
        Span::styled(format!("{:>wq$}", fmt_value(s.q)), q_style),
        theory(s.q_theory.map(fmt_value), wqt),
        Span::styled(format!("{:>wc$.4}", s.c), c_style),
        theory(s.c_theory.map(|c| format!("{c:.4}")), wct),
    ])
}

#[cfg(test)]
mod tests {
    use super::shown_layers;

    #[test]
    fn shown_layers_keep_both_ends() {
        assert_eq!(shown_layers(4, 10), vec![0, 1, 2, 3]);
        let picked = shown_layers(54, 6);
        assert_eq!((picked[0], *picked.last().unwrap()), (0, 53));
        assert_eq!(picked.len(), 6);
        assert_eq!(shown_layers(54, 1), vec![53]);
        assert!(shown_layers(5, 0).is_empty());
    }
}
