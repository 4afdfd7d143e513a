//! Gradient sources, inside the path panel: how much of each layer's gradient comes from the
//! main head, the dense read-outs and each auxiliary head and, under dense read-out, how many
//! blocks the gradient reaching the first layer crossed (the dense net's analogue of path
//! length: read-out r reaches layer 1 through r blocks).
//!
//! Shares are of the sum of the parts' norms ([`LayerSources::shares`]).

use super::paths::{GUTTER, framed, item_at, measured_graph, vbar};
use super::run_view::RunView;
use super::theme::Theme;
use crate::config::SkipMode;
use crate::model::aux_head_layers;
use crate::paths::{effective_range, peak_length};
use crate::sources::LayerSources;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// Share of the gradient the effective range of blocks crossed must hold.
const RANGE_MASS: f64 = 0.9;
/// Below this many inner rows the dense view shows only the per-layer shares.
const MIN_ROWS_FOR_TWO_VIEWS: u16 = 10;

/// Whether the sources view belongs in the path panel under these switches.
pub fn applies(run: &RunView) -> bool {
    matches!(run.switches.skip, SkipMode::Dense) || run.switches.aux
}

/// One source of gradient, as drawn.
struct Category {
    label: String,
    style: Style,
    glyph: &'static str,
}

/// Distinct glyphs as well as colours, so the stacks read without colour (`NO_COLOR`, `--ascii`).
fn glyph(theme: &Theme, n: usize) -> &'static str {
    const UNICODE: [&str; 8] = ["█", "▓", "▒", "░", "▚", "▞", "▙", "▟"];
    const ASCII: [&str; 8] = ["#", "=", "+", ":", "%", "o", "x", "*"];
    if theme.ascii {
        ASCII[n % ASCII.len()]
    } else {
        UNICODE[n % UNICODE.len()]
    }
}

/// The categories of a stack: main head, the dense read-outs together, each auxiliary head.
fn categories(run: &RunView, theme: &Theme, layer: &LayerSources) -> Vec<Category> {
    let heads = run.experiment.as_ref().map_or_else(Vec::new, |e| {
        aux_head_layers(e.model.depth, e.model.aux.every)
    });
    let mut out = vec![Category {
        label: "main".into(),
        style: theme.series(0),
        glyph: glyph(theme, 0),
    }];
    if !layer.readouts.is_empty() {
        out.push(Category {
            label: "read-outs".into(),
            style: theme.series(4),
            glyph: glyph(theme, 1),
        });
    }
    for i in 0..layer.aux.len() {
        let n = out.len();
        out.push(Category {
            label: heads
                .get(i)
                .map_or_else(|| format!("aux {}", i + 1), |l| format!("aux@L{}", l + 1)),
            style: theme.series(2 + i),
            glyph: glyph(theme, n),
        });
    }
    out
}

/// Share of the first layer's gradient by the number of blocks it crossed in a net of `depth`
/// layers: read-out r and an auxiliary head after layer r reach layer 1 through r blocks, the
/// main head through depth − 1.
pub fn blocks_crossed(first: &LayerSources, aux_layers: &[usize], depth: usize) -> Vec<f64> {
    let mut by_blocks = vec![0.0; depth.max(1)];
    let parts = first
        .readouts
        .iter()
        .enumerate()
        .chain(aux_layers.iter().copied().zip(&first.aux))
        .chain([(depth.saturating_sub(1), &first.main)]);
    for (blocks, part) in parts {
        if let Some(slot) = by_blocks.get_mut(blocks) {
            *slot += part;
        }
    }
    let total: f64 = by_blocks.iter().sum();
    if total > 0.0 && total.is_finite() {
        by_blocks.iter_mut().for_each(|v| *v /= total);
    }
    by_blocks
}

/// Draws the sources view: under dense read-out the blocks-crossed profile over the per-layer
/// shares, otherwise the per-layer shares alone.
pub fn render(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let switches = &run.switches;
    // The split walks the same chain of blocks as the path analysis.
    if let Some(why) =
        crate::paths::not_defined(switches.norm, switches.skip, switches.branch_scale)
    {
        let title = Line::from(Span::styled(" gradient sources ", theme.title()));
        if let Some(inner) = super::paths::framed(frame, area, theme, title) {
            let buf = frame.buffer_mut();
            buf.set_stringn(inner.x, inner.y, why, usize::from(inner.width), theme.dim());
        }
        return;
    }
    let dense = matches!(run.switches.skip, SkipMode::Dense);
    if dense && area.height >= MIN_ROWS_FOR_TWO_VIEWS {
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(area);
        render_blocks_crossed(frame, top, run, theme);
        render_layer_shares(frame, bottom, run, theme);
    } else {
        render_layer_shares(frame, area, run, theme);
    }
}

fn render_layer_shares(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let mut title = vec![Span::styled(" gradient sources ", theme.title())];
    let measured = run.sources.as_ref().filter(|(_, l)| !l.is_empty());
    if let Some((step, layers)) = measured {
        let cats = categories(run, theme, &layers[0]);
        for cat in &cats {
            title.push(Span::styled(cat.glyph, cat.style));
            title.push(Span::styled(format!("{} ", cat.label), theme.dim()));
        }
        // The first layer is the one the sources exist for: say who feeds it.
        let first = layers[0].shares();
        if let Some((i, share)) = first
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .filter(|(_, s)| **s > 0.0)
        {
            title.extend([
                Span::styled("L1 ← ", theme.dim()),
                Span::styled(
                    format!("{} {:.0}% ", cats[i].label, 100.0 * share),
                    cats[i].style,
                ),
            ]);
        }
        title.push(Span::styled(format!("(step {step}) "), theme.dim()));
    }
    let Some(inner) = framed(frame, area, theme, Line::from(title)) else {
        return;
    };
    let buf = frame.buffer_mut();
    let Some(((_, layers), graph)) = measured_graph(buf, inner, run, theme, measured) else {
        return;
    };
    let cats = categories(run, theme, &layers[0]);
    let per_layer: Vec<Vec<f64>> = layers.iter().map(LayerSources::shares).collect();
    for c in 0..graph.width {
        let Some(layer) = per_layer.get(item_at(c, graph.width, per_layer.len())) else {
            continue;
        };
        stack(buf, graph, c, layer, &cats);
    }
    let label = usize::from(GUTTER - 1);
    buf.set_stringn(inner.x, graph.y, "100%", label, theme.dim());
    if graph.height > 1 {
        buf.set_stringn(inner.x, graph.bottom() - 1, "0%", label, theme.dim());
    }
    axis(
        buf,
        inner,
        graph,
        "layer",
        "1",
        &format!("{}", layers.len()),
        theme,
    );
}

/// One 100 % stacked column: the first category at the bottom.
fn stack(buf: &mut Buffer, graph: Rect, c: u16, layer: &[f64], cats: &[Category]) {
    let rows = f64::from(graph.height);
    let mut bounds = Vec::with_capacity(layer.len());
    let mut sum = 0.0;
    for share in layer {
        sum += share;
        bounds.push(sum);
    }
    if sum <= 0.0 || !sum.is_finite() {
        return;
    }
    for row in 0..graph.height {
        // The category covering the middle of this row.
        let level = (f64::from(row) + 0.5) / rows * sum;
        let Some(i) = bounds.iter().position(|&b| level <= b) else {
            continue;
        };
        if let Some(cat) = cats.get(i) {
            buf.set_string(graph.x + c, graph.bottom() - 1 - row, cat.glyph, cat.style);
        }
    }
}

/// The bottom row: a name, then the first and last item under the graph.
fn axis(
    buf: &mut Buffer,
    inner: Rect,
    graph: Rect,
    name: &str,
    first: &str,
    last: &str,
    theme: &Theme,
) {
    let row = inner.bottom() - 1;
    buf.set_stringn(inner.x, row, name, usize::from(GUTTER - 1), theme.dim());
    buf.set_stringn(graph.x, row, first, usize::from(graph.width), theme.dim());
    let x = graph.right().saturating_sub(last.len() as u16).max(graph.x);
    buf.set_stringn(x, row, last, last.len(), theme.dim());
}

fn render_blocks_crossed(frame: &mut Frame, area: Rect, run: &RunView, theme: &Theme) {
    let heads = run.experiment.as_ref().map_or_else(Vec::new, |e| {
        if run.switches.aux {
            aux_head_layers(e.model.depth, e.model.aux.every)
        } else {
            Vec::new()
        }
    });
    let profile = run
        .sources
        .as_ref()
        .and_then(|(step, layers)| {
            layers
                .first()
                .map(|l| (*step, blocks_crossed(l, &heads, layers.len())))
        })
        .filter(|(_, p)| p.iter().sum::<f64>() > 0.0);
    let mut title = vec![Span::styled(" L1 grad by blocks crossed ", theme.title())];
    let range = profile
        .as_ref()
        .map(|(_, p)| effective_range(p, RANGE_MASS));
    if let (Some((step, p)), Some((lo, hi))) = (&profile, range) {
        let mean: f64 = p.iter().enumerate().map(|(k, s)| k as f64 * s).sum();
        title.extend([
            Span::styled("peak ", theme.dim()),
            Span::styled(format!("{} ", peak_length(p)), theme.active()),
            Span::styled("mean ", theme.dim()),
            Span::styled(format!("{mean:.1} "), theme.active()),
            Span::styled("90% in ", theme.dim()),
            Span::styled(format!("{lo}–{hi} "), theme.healthy()),
            Span::styled(format!("(step {step}) "), theme.dim()),
        ]);
    }
    let Some(inner) = framed(frame, area, theme, Line::from(title)) else {
        return;
    };
    let buf = frame.buffer_mut();
    let measured = profile.zip(range);
    let Some((((_, profile), (lo, hi)), graph)) = measured_graph(buf, inner, run, theme, measured)
    else {
        return;
    };
    let top = profile.iter().copied().fold(0.0f64, f64::max).max(1e-12);
    for c in 0..graph.width {
        let k = item_at(c, graph.width, profile.len());
        let Some(&share) = profile.get(k) else {
            continue;
        };
        if share <= 0.0 {
            continue;
        }
        let style = if (lo..=hi).contains(&k) {
            theme.healthy()
        } else {
            theme.vanishing()
        };
        vbar(
            buf,
            graph.x + c,
            graph.bottom() - 1,
            graph.height,
            share / top,
            style,
            theme.ascii,
        );
    }
    let label = usize::from(GUTTER - 1);
    buf.set_stringn(inner.x, graph.y, "share", label, theme.dim());
    let last = format!("{}", profile.len() - 1);
    axis(buf, inner, graph, "blks", "0", &last, theme);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(main: f64, readouts: Vec<f64>, aux: Vec<f64>) -> LayerSources {
        LayerSources {
            layer: 1,
            total: 0.0,
            main,
            readouts,
            aux,
        }
    }

    #[test]
    fn blocks_crossed_puts_each_head_at_its_distance() {
        // Depth 4: read-outs after layers 1..3, one auxiliary head after layer 2 (index 1),
        // the main head after layer 4, three blocks above layer 1.
        let first = layer(5.0, vec![1.0, 2.0, 3.0], vec![4.0]);
        let profile = blocks_crossed(&first, &[1], 4);
        let expected = [1.0, 6.0, 3.0, 5.0].map(|v| v / 15.0);
        assert_eq!(profile.len(), expected.len());
        for (got, want) in profile.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{profile:?}");
        }
    }

    #[test]
    fn blocks_crossed_without_readouts_has_aux_and_main_only() {
        let first = layer(1.0, Vec::new(), vec![1.0, 2.0]);
        let profile = blocks_crossed(&first, &[3, 7], 12);
        assert_eq!(profile.len(), 12);
        assert!((profile[3] - 0.25).abs() < 1e-12 && (profile[7] - 0.5).abs() < 1e-12);
        assert!((profile[11] - 0.25).abs() < 1e-12);
        assert_eq!(profile.iter().filter(|&&v| v > 0.0).count(), 3);
    }

    #[test]
    fn shares_sum_to_one_and_zero_stays_zero() {
        let s = layer(1.0, vec![1.0, 2.0], vec![4.0]).shares();
        assert_eq!(s, vec![0.125, 0.375, 0.5]);
        assert_eq!(layer(0.0, vec![], vec![0.0]).shares(), vec![0.0, 0.0]);
    }
}
