//! Path panel (`l`): the path-length views of the live network, stacked over one length axis:
//!
//! ```text
//!  ╭ paths by length Veit peak 5 exact peak 3 of 12 (step 20) ╮
//!  │▆ Veit C(n,k)·E‖g_path‖, est. M=4 ░±1SE: mean … 90% in …   │  legend rows
//!  │▆ exact split ⟨g_k,g⟩/‖g‖² on rows 1–8, Σ=1, ▒<0: mean …   │
//!  │paths  log10 C(n,k): how many paths of each length exist   │  counts (tall panels)
//!  │Veit   Veit's profile, ░ ±1 standard error of the estimate │
//!  │exact  the exact split's shares, ▒ where negative          │
//!  │len k 0 ━━━2–7━━━                                        12│  axis, Veit's 90 % range
//!  ╰───────────────────────────────────────────────────────────╯
//! ```
//!
//! and, after `L`, the damage done by removing each block in turn. Under dense read-out or
//! auxiliary losses the panel also shows where each layer's gradient comes from (`sources`).

use super::run_view::RunView;
use super::sources;
use super::theme::Theme;
use super::widgets::{fmt_value, panel_block};
use crate::config::SkipMode;
use crate::paths::PathStats;
use crate::trainer::LIVE_ANALYSIS_SHARE;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// Columns left of the bars for the row labels.
pub(super) const GUTTER: u16 = 6;
/// Partial-cell glyphs for bar tops, in eighths.
const EIGHTHS: [&str; 8] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇"];
/// A lesion that raises the test loss by more than this factor is drawn as damage.
const DAMAGE_FACTOR: f64 = 1.5;

/// One view stacked in the path panel.
#[derive(Clone, Copy)]
enum View {
    Paths,
    Sources,
    Lesion,
}

/// Draws the path panel: the path-length decomposition (not under dense read-out, which
/// has no skip branches to decompose), the gradient sources (dense read-out or auxiliary
/// losses) and, once lesions were asked for, the lesion view, stacked top to bottom.
pub fn render(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let mut views = Vec::with_capacity(3);
    if !matches!(run.switches.skip, SkipMode::Dense) {
        views.push(View::Paths);
    }
    if sources::applies(run) {
        views.push(View::Sources);
    }
    if run.lesion.is_some() || run.lesion_pending {
        views.push(View::Lesion);
    }
    let areas = Layout::vertical(views.iter().map(|_| Constraint::Fill(1))).split(area);
    for (view, &area) in views.iter().zip(areas.iter()) {
        match view {
            View::Paths => render_paths(frame, area, run, theme),
            View::Sources => sources::render(frame, area, run, theme),
            View::Lesion => render_lesion(frame, area, run, theme),
        }
    }
}

/// Draws a panel's border titled `title` over `area`; the area inside it, or None when that
/// is too small to draw in.
pub(super) fn framed(frame: &mut Frame, area: Rect, theme: &Theme, title: Line) -> Option<Rect> {
    let block = panel_block(theme, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    (inner.width >= 4 && inner.height > 0).then_some(inner)
}

/// The graph area inside a panel's `inner` area once `measured` has arrived; until then, a
/// note that it is awaited.
pub(super) fn measured_graph<T>(
    buf: &mut Buffer,
    inner: Rect,
    run: &RunView,
    theme: &Theme,
    measured: Option<T>,
) -> Option<(T, Rect)> {
    let Some(measured) = measured else {
        show_waiting(buf, inner, run, theme);
        return None;
    };
    Some((measured, graph_area(inner, 2)?))
}

/// Writes, on the panel's first row, that no measurement under the current switches has
/// arrived yet.
pub(super) fn show_waiting(buf: &mut Buffer, inner: Rect, run: &RunView, theme: &Theme) {
    let every = run.experiment.as_ref().map_or(0, |e| e.path_every);
    let text = format!(
        "waiting for the first measurement (at most every {every} steps, \
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

/// The bars' area inside a panel: right of the label gutter, above the axis row; None when
/// the panel is narrower than the gutter or lower than `min_height` rows.
pub(super) fn graph_area(inner: Rect, min_height: u16) -> Option<Rect> {
    (inner.width > GUTTER + 1 && inner.height >= min_height).then(|| Rect {
        x: inner.x + GUTTER,
        width: inner.width - GUTTER,
        height: inner.height - 1,
        ..inner
    })
}

/// The item of `count` under column `c` of `width`.
pub(super) fn item_at(c: u16, width: u16, count: usize) -> usize {
    (usize::from(c) * count / usize::from(width.max(1))).min(count.saturating_sub(1))
}

/// One vertical bar of `level` (0..=1) in column `x`, growing up from `bottom` over `rows` rows.
pub(super) fn vbar(
    buf: &mut Buffer,
    x: u16,
    bottom: u16,
    rows: u16,
    level: f64,
    style: Style,
    ascii: bool,
) {
    if !level.is_finite() || rows == 0 {
        return;
    }
    let eighths = ((level.clamp(0.0, 1.0) * f64::from(rows) * 8.0).round() as u32).max(1);
    for row in 0..rows {
        let filled = eighths.saturating_sub(u32::from(row) * 8).min(8);
        if filled == 0 {
            break;
        }
        let glyph = match (filled, ascii) {
            (_, true) => "#",
            (8, false) => "█",
            (n, false) => EIGHTHS[n as usize],
        };
        buf.set_string(x, bottom - row, glyph, style);
    }
}

/// Whether `stats` is the single path of a plain net.
fn single_path(stats: &PathStats) -> bool {
    stats.by_length.len() == 1
}

/// Rows of the path view given to each part, top to bottom (the axis row is below them).
struct PathRows {
    legend: u16,
    counts: u16,
    veit: u16,
    exact: u16,
}

impl PathRows {
    /// Splits `height` rows: the two bar charts first, then the legend, then the path counts.
    fn split(height: u16, has_exact: bool) -> Self {
        let legend = match (height >= 7, has_exact) {
            (false, _) => 0,
            (true, true) => 2,
            (true, false) => 1,
        };
        let bars = height - legend;
        let counts = if bars >= 8 { bars / 4 } else { 0 };
        let rest = bars - counts;
        let exact = if has_exact { rest / 2 } else { 0 };
        Self {
            legend,
            counts,
            veit: rest - exact,
            exact,
        }
    }
}

/// How Veit's profile was estimated, for its legend: M random paths per length and the
/// glyph of its ±1 standard-error band, or every path when all lengths were enumerated.
fn estimate_note(stats: &PathStats) -> String {
    let se: Option<Vec<f64>> = stats.by_length.iter().map(|l| l.grad_per_path_se).collect();
    match se {
        Some(se) if se.iter().all(|&v| v == 0.0) => "every path".into(),
        Some(_) => format!("est. M={} ░±1SE", stats.samples_per_length),
        None => format!("est. M={}", stats.samples_per_length),
    }
}

fn render_paths(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let mut title = vec![Span::styled(" paths by length ", theme.title())];
    let switches = &run.switches;
    if let Some(why) =
        crate::paths::not_defined(switches.norm, switches.skip, switches.branch_scale)
    {
        if let Some(inner) = framed(frame, area, theme, Line::from(title)) {
            let buf = frame.buffer_mut();
            buf.set_stringn(inner.x, inner.y, why, usize::from(inner.width), theme.dim());
        }
        return;
    }
    if let Some((step, stats)) = &run.paths {
        if single_path(stats) {
            title.push(Span::styled(format!("(step {step}) "), theme.dim()));
        } else {
            title.extend([
                Span::styled("Veit peak ", theme.dim()),
                Span::styled(format!("{} ", stats.peak_length), theme.healthy()),
            ]);
            if let Some(peak) = stats.exact_peak_length {
                title.extend([
                    Span::styled("exact peak ", theme.dim()),
                    Span::styled(format!("{peak} "), theme.series(0)),
                ]);
            }
            title.push(Span::styled(
                format!("of {} (step {step}) ", stats.blocks),
                theme.dim(),
            ));
        }
    }
    let Some(inner) = framed(frame, area, theme, Line::from(title)) else {
        return;
    };
    let buf = frame.buffer_mut();
    let width = usize::from(inner.width);
    let Some((_, stats)) = &run.paths else {
        show_waiting(buf, inner, run, theme);
        return;
    };
    if single_path(stats) {
        let n = stats.blocks;
        let g = stats
            .by_length
            .first()
            .map_or(f64::NAN, |l| l.grad_per_path);
        buf.set_stringn(
            inner.x,
            inner.y,
            format!("plain net: one path of length {n}"),
            width,
            theme.text(),
        );
        if inner.height > 1 {
            buf.set_stringn(
                inner.x,
                inner.y + 1,
                format!(
                    "all gradient crosses every layer (‖path grad‖ {})",
                    fmt_value(g)
                ),
                width,
                theme.dim(),
            );
        }
        if inner.height > 2 {
            buf.set_stringn(
                inner.x,
                inner.y + 2,
                "r or h adds skips: paths of every length appear",
                width,
                theme.dim(),
            );
        }
        return;
    }
    let Some(graph) = graph_area(inner, 3) else {
        return;
    };
    let exact = &stats.exact_by_length;
    let rows = PathRows::split(graph.height, !exact.is_empty());
    let [lo, hi] = stats.effective_range;
    let mut y = graph.y;
    if rows.legend > 0 {
        let bar = if theme.ascii { "# " } else { "▆ " };
        let veit = Line::from(vec![
            Span::styled(bar, theme.healthy()),
            Span::styled(
                format!("Veit C(n,k)·E‖g_path‖, {}: ", estimate_note(stats)),
                theme.dim(),
            ),
            Span::styled(
                format!("mean {} ", fmt_value(stats.mean_length)),
                theme.active(),
            ),
            Span::styled("90% in ", theme.dim()),
            Span::styled(format!("{lo}–{hi}"), theme.healthy()),
        ]);
        buf.set_line(inner.x, y, &veit, inner.width);
        y += 1;
        if rows.legend > 1 {
            let negative = exact.iter().any(|l| l.share < 0.0);
            let note = match (negative, theme.ascii) {
                (false, _) => "",
                (true, false) => ", ▒<0",
                (true, true) => ", -<0",
            };
            let mean = stats.exact_mean_length.map_or(f64::NAN, |m| m);
            // Exact for the rows it ran on, which the legend names (training rows from 1).
            let rows = stats
                .rows
                .map_or(String::new(), |r| format!(" on rows 1–{r}"));
            let line = Line::from(vec![
                Span::styled(bar, theme.series(0)),
                Span::styled(
                    format!("exact split ⟨g_k,g⟩/‖g‖²{rows}, Σ=1{note}: "),
                    theme.dim(),
                ),
                Span::styled(format!("mean {}", fmt_value(mean)), theme.active()),
            ]);
            buf.set_line(inner.x, y, &line, inner.width);
            y += 1;
        }
    }
    let lengths = &stats.by_length;
    let max_count = lengths
        .iter()
        .map(|l| l.paths_log10)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let band = |l: &crate::paths::LengthStats| l.contribution_se.unwrap_or(0.0);
    let max_veit = lengths
        .iter()
        .map(|l| l.contribution + band(l))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let max_exact = exact
        .iter()
        .map(|l| l.share.abs())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let label = usize::from(GUTTER - 1);
    let counts_top = y;
    let veit_top = counts_top + rows.counts;
    let exact_top = veit_top + rows.veit;
    for c in 0..graph.width {
        let x = graph.x + c;
        if let Some(entry) = lengths.get(item_at(c, graph.width, lengths.len())) {
            if rows.counts > 0 {
                vbar(
                    buf,
                    x,
                    veit_top - 1,
                    rows.counts,
                    entry.paths_log10 / max_count,
                    theme.series(5),
                    theme.ascii,
                );
            }
            let style = if (lo..=hi).contains(&entry.length) {
                theme.healthy()
            } else {
                theme.vanishing()
            };
            if entry.contribution.is_finite() && entry.contribution > 0.0 && rows.veit > 0 {
                let spread = band(entry);
                let bottom = exact_top - 1;
                vbar(
                    buf,
                    x,
                    bottom,
                    rows.veit,
                    (entry.contribution - spread) / max_veit,
                    style,
                    theme.ascii,
                );
                let shade = if theme.ascii { ":" } else { "░" };
                let (from, to) = (
                    (entry.contribution - spread) / max_veit,
                    (entry.contribution + spread) / max_veit,
                );
                for row in band_rows(from, to, rows.veit) {
                    buf.set_string(x, bottom - row, shade, style);
                }
            }
        }
        if let Some(entry) = exact.get(item_at(c, graph.width, exact.len()))
            && rows.exact > 0
            && entry.share.is_finite()
            && entry.share != 0.0
        {
            let bottom = exact_top + rows.exact - 1;
            let level = entry.share.abs() / max_exact;
            if entry.share > 0.0 {
                vbar(
                    buf,
                    x,
                    bottom,
                    rows.exact,
                    level,
                    theme.series(0),
                    theme.ascii,
                );
            } else {
                let glyph = if theme.ascii { "-" } else { "▒" };
                let cells = ((level * f64::from(rows.exact)).ceil() as u16).clamp(1, rows.exact);
                for row in 0..cells {
                    buf.set_string(x, bottom - row, glyph, theme.exploding());
                }
            }
        }
    }
    let labels = [
        (counts_top, rows.counts, ["paths", "log10"]),
        (veit_top, rows.veit, ["Veit", "est."]),
        (exact_top, rows.exact, ["exact", "share"]),
    ];
    for (top, height, names) in labels {
        for (row, name) in (0..height).zip(names) {
            buf.set_stringn(inner.x, top + row, name, label, theme.dim());
        }
    }
    let axis = inner.bottom() - 1;
    buf.set_stringn(inner.x, axis, "len k", label, theme.dim());
    buf.set_stringn(graph.x, axis, "0", 1, theme.dim());
    let n = format!("{}", stats.blocks);
    let n_x = graph.right().saturating_sub(n.len() as u16).max(graph.x);
    buf.set_stringn(n_x, axis, &n, n.len(), theme.dim());
    // Veit's effective range as a bracket on the axis row.
    let columns: Vec<u16> = (0..graph.width)
        .filter(|&c| {
            let k = item_at(c, graph.width, lengths.len());
            lengths
                .get(k)
                .is_some_and(|l| (lo..=hi).contains(&l.length))
        })
        .collect();
    if let (Some(&first), Some(&last)) = (columns.first(), columns.last()) {
        let dash = if theme.ascii { "=" } else { "━" };
        for c in first..=last {
            buf.set_string(graph.x + c, axis, dash, theme.healthy());
        }
        let text = format!("{lo}–{hi}");
        let mid = graph.x + (first + last) / 2;
        let x = mid
            .saturating_sub(text.chars().count() as u16 / 2)
            .max(graph.x);
        buf.set_stringn(
            x,
            axis,
            text,
            usize::from(graph.right().saturating_sub(x)),
            theme.healthy(),
        );
    }
}

/// The rows (counted up from the bottom, 0-based) of a `rows`-tall bar that lie in the band
/// `from..to` (levels 0..=1) above a solid bar drawn to `from`: the solid bar's partly filled
/// top cell is left to it.
fn band_rows(from: f64, to: f64, rows: u16) -> std::ops::Range<u16> {
    if !(from.is_finite() && to.is_finite()) || to <= from {
        return 0..0;
    }
    let scale = f64::from(rows);
    let first = (from.max(0.0) * scale).ceil().min(scale) as u16;
    let last = (to.min(1.0) * scale).ceil().min(scale) as u16;
    first..last
}

fn render_lesion(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let intact = run
        .lesion
        .as_ref()
        .map(|l| l.intact_test_loss)
        .filter(|v| v.is_finite());
    let mut title = vec![Span::styled(
        " lesion: test loss without block ",
        theme.title(),
    )];
    if let Some(intact) = intact {
        title.extend([
            Span::styled("intact ", theme.dim()),
            Span::styled(format!("{} ", fmt_value(intact)), theme.theory()),
        ]);
    }
    let results = run.lesion.as_ref().map_or(&[][..], |l| &l.results[..]);
    let worst = results
        .iter()
        .filter(|r| r.test_loss.is_finite())
        .max_by(|a, b| a.test_loss.total_cmp(&b.test_loss));
    if let Some(worst) = worst {
        title.extend([
            Span::styled("worst ", theme.dim()),
            Span::styled(
                format!("L{} {} ", worst.block, fmt_value(worst.test_loss)),
                theme.exploding(),
            ),
        ]);
    }
    if let Some(lesion) = &run.lesion {
        title.push(Span::styled(
            format!("(step {}) ", lesion.step),
            theme.dim(),
        ));
    }
    let Some(inner) = framed(frame, area, theme, Line::from(title)) else {
        return;
    };
    let buf = frame.buffer_mut();
    if run.lesion_pending {
        buf.set_stringn(
            inner.x,
            inner.y,
            "evaluating the test set once per removed block…",
            usize::from(inner.width),
            theme.dim(),
        );
        return;
    }
    let Some(graph) = graph_area(inner, 2).filter(|_| !results.is_empty()) else {
        return;
    };
    let finite: Vec<f64> = results
        .iter()
        .map(|r| r.test_loss)
        .chain(intact)
        .filter(|v| v.is_finite())
        .collect();
    let top = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let least = finite.iter().copied().fold(f64::INFINITY, f64::min);
    if !top.is_finite() || !least.is_finite() {
        return;
    }
    // The axis starts a little below the smallest loss: damage is the difference between
    // bars, which a zero-based axis would flatten when the losses are all similar.
    let floor = (least - 0.25 * (top - least).max(0.05 * least.abs())).max(0.0);
    let span = (top - floor).max(1e-12);
    let per_block = graph.width / results.len().min(usize::from(u16::MAX)).max(1) as u16;
    for c in 0..graph.width {
        if per_block >= 3 && (c + 1) % per_block == 0 {
            continue;
        }
        let Some(result) = results.get(item_at(c, graph.width, results.len())) else {
            continue;
        };
        let x = graph.x + c;
        if !result.test_loss.is_finite() {
            buf.set_string(x, graph.bottom() - 1, "!", theme.alarm());
            continue;
        }
        let damaged = intact.is_some_and(|i| result.test_loss > DAMAGE_FACTOR * i);
        let style = if damaged {
            theme.exploding()
        } else {
            theme.healthy()
        };
        vbar(
            buf,
            x,
            graph.bottom() - 1,
            graph.height,
            (result.test_loss - floor) / span,
            style,
            theme.ascii,
        );
        if let Some(intact) = intact {
            let level = ((intact - floor) / span).clamp(0.0, 1.0);
            let row = (level * f64::from(graph.height - 1)).round() as u16;
            let row = row.min(graph.height - 1);
            let glyph = if theme.ascii { "-" } else { "─" };
            buf.set_string(x, graph.bottom() - 1 - row, glyph, theme.theory());
        }
    }
    let label = usize::from(GUTTER - 1);
    buf.set_stringn(inner.x, graph.y, fmt_value(top), label, theme.dim());
    if graph.height > 2 {
        buf.set_stringn(
            inner.x,
            graph.bottom() - 1,
            fmt_value(floor),
            label,
            theme.dim(),
        );
    }
    let axis = inner.bottom() - 1;
    buf.set_stringn(inner.x, axis, "block", label, theme.dim());
    buf.set_stringn(graph.x, axis, "1", 1, theme.dim());
    let n = format!("{}", results.len());
    let n_x = graph.right().saturating_sub(n.len() as u16).max(graph.x);
    buf.set_stringn(n_x, axis, &n, n.len(), theme.dim());
}
