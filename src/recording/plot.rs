//! `gradlab plot`: a figure for papers and slides from a recording.
//!
//! One band of panels per run, top to bottom, titled with the run's number and preset (two
//! runs never share a step axis). In each band: loss with a vertical marker per
//! intervention; the heat map of log10 ‖∂L/∂h‖ over training steps, per hidden layer for MLPs
//! and per time step for recurrent nets (‖∂L/∂h_t‖, backprop through time); and, when the run
//! has live path statistics, Veit's profile C(n,k)·E‖g_path‖ at the last measurement;
//! when it has live gradient sources (dense read-out, auxiliary losses), the share of each
//! layer's gradient by the head it came from at the last measurement. Steps are averaged into
//! at most [`MAX_COLUMNS`] columns, so memory is bounded by the figure, not the recording.
//! Text uses the embedded DejaVu Sans Mono, so no system font library is needed.

use super::output::{check_output, write_whole_at};
use super::plot_style::{
    COLOUR_BAR_WIDTH, draw_colour_bar, integer_label, printable, register_font, value_label,
    viridis,
};
use super::runs::{self, Damage, RunInfo};
use crate::model::aux_head_layers;
use crate::protocol::Event;
use crate::sources::LayerSources;
use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Most step columns drawn; more steps are averaged together.
pub const MAX_COLUMNS: usize = 400;

/// Most runs drawn in one figure: each band is 800–1400 px tall, and a session with many
/// resets would make an image no viewer opens. `--run N` draws any one of the others.
pub const MAX_RUNS: usize = 16;

/// Most intervention markers drawn per run (a scripted run could issue thousands).
const MAX_MARKERS: usize = 200;

/// Height of each time panel (loss, heat map) and of each last-measurement panel.
const TIME_PANEL: u32 = 400;
const SNAPSHOT_PANEL: u32 = 300;

/// What one run's band shows, accumulated while streaming the run.
struct RunFigure {
    run: u32,
    preset: String,
    first_step: u64,
    last_step: u64,
    /// Mean finite training-batch loss per column, with the number of values summed.
    loss: Vec<(f64, u32)>,
    /// Mean test loss (as of the last evaluation) per column.
    test_loss: Vec<(f64, u32)>,
    /// Mean log10 gradient norm per column and heat-map row (layer or time step).
    heat: Vec<Vec<(f64, u32)>>,
    /// Heat-map rows: hidden layers, or time steps of a recurrent net.
    rows: usize,
    recurrent: bool,
    markers: Vec<(u64, String)>,
    /// (path length, Veit's profile) of the newest live path statistics.
    paths: Vec<(f64, f64)>,
    /// The last live gradient sources: their step and one entry per layer.
    sources: Option<(u64, Vec<LayerSources>)>,
    /// The layers the auxiliary heads read, for the legend.
    aux_layers: Vec<usize>,
}

impl RunFigure {
    fn column(&self, step: u64) -> usize {
        let span = (self.last_step - self.first_step).max(1) as f64;
        let at = (step.saturating_sub(self.first_step)) as f64 / span;
        ((at * (self.loss.len() - 1) as f64).round() as usize).min(self.loss.len() - 1)
    }

    fn column_step(&self, column: usize) -> f64 {
        let span = (self.last_step - self.first_step) as f64;
        self.first_step as f64 + span * column as f64 / (self.loss.len().max(2) - 1) as f64
    }

    /// Panels in the band: loss and heat map, then the optional path and sources panels.
    fn panels(&self) -> usize {
        2 + usize::from(!self.paths.is_empty()) + usize::from(self.sources.is_some())
    }

    fn height(&self) -> u32 {
        2 * TIME_PANEL + SNAPSHOT_PANEL * (self.panels() as u32 - 2)
    }
}

/// Streams one run into its band's accumulators.
fn read_run(path: &Path, info: &RunInfo) -> Result<RunFigure> {
    let experiment = &info.experiment;
    let rows = if info.recurrent() {
        info.timesteps
    } else {
        info.layers
    };
    let columns = (info.snapshots as usize).clamp(2, MAX_COLUMNS);
    let mut figure = RunFigure {
        run: info.run,
        preset: experiment.name.clone(),
        first_step: info.first_step,
        last_step: info.last_step,
        loss: vec![(0.0, 0); columns],
        test_loss: vec![(0.0, 0); columns],
        heat: vec![vec![(0.0, 0); rows]; columns],
        rows,
        recurrent: info.recurrent(),
        markers: info
            .commands
            .iter()
            .take(MAX_MARKERS)
            .map(|(step, command)| (*step, command.label()))
            .collect(),
        paths: Vec::new(),
        sources: None,
        aux_layers: aux_head_layers(experiment.model.depth, experiment.model.aux.every),
    };
    for line in runs::run_lines(path, info)? {
        let s = match line?.event {
            Event::Snapshot(s) => s,
            // The newest live decomposition is the one drawn.
            Event::Paths { stats, .. } => {
                figure.paths = stats
                    .by_length
                    .iter()
                    .map(|l| (l.length as f64, l.contribution))
                    .collect();
                continue;
            }
            Event::Sources { step, layers } => {
                figure.sources = Some((step, layers));
                continue;
            }
            _ => continue,
        };
        let c = figure.column(s.step);
        if s.loss.is_finite() {
            figure.loss[c].0 += s.loss;
            figure.loss[c].1 += 1;
        }
        if let Some(test) = s.test_loss.filter(|v| v.is_finite()) {
            figure.test_loss[c].0 += test;
            figure.test_loss[c].1 += 1;
        }
        let norms: Vec<f64> = if figure.recurrent {
            s.timesteps.iter().map(|t| t.hidden_grad_norm).collect()
        } else {
            s.layers.iter().map(|l| l.act_grad_norm).collect()
        };
        for (row, norm) in norms.iter().enumerate().take(rows) {
            let v = norm.log10();
            if v.is_finite() {
                figure.heat[c][row].0 += v;
                figure.heat[c][row].1 += 1;
            }
        }
    }
    Ok(figure)
}

/// Draws the figure for the recording at `input` (every run, or only `run`) into `output`
/// (`.png` or `.svg`), which is written whole and replaces an existing file only with
/// `force`. Returns what reading skipped.
pub fn plot(input: &Path, output: &Path, run: Option<u32>, force: bool) -> Result<Damage> {
    let extension = output.extension().and_then(|e| e.to_str());
    if !matches!(extension, Some("png" | "svg")) {
        bail!("{}: the output must end in .png or .svg", output.display());
    }
    check_output(input, output, force)?;
    register_font()?;
    let index = runs::index(input)?;
    let selected = index.select(run)?;
    let with_snapshots: Vec<&RunInfo> = selected.into_iter().filter(|r| r.snapshots > 0).collect();
    if with_snapshots.is_empty() {
        bail!("{}: no snapshot to plot", input.display());
    }
    if with_snapshots.len() > MAX_RUNS {
        crate::out::tell!(
            "{}: {} runs with snapshots; drawing the first {MAX_RUNS} (--run N draws any one)",
            input.display(),
            with_snapshots.len()
        );
    }
    let figures = with_snapshots
        .iter()
        .take(MAX_RUNS)
        .map(|info| read_run(input, info))
        .collect::<Result<Vec<_>>>()?;
    let size = (1200, figures.iter().map(RunFigure::height).sum::<u32>());
    write_whole_at(output, force, |temporary| {
        let written = |e: &dyn std::fmt::Display| anyhow!("cannot write {}: {e}", output.display());
        if extension == Some("png") {
            let root = BitMapBackend::new(temporary, size).into_drawing_area();
            draw_all(&root, &figures)?;
            root.present().map_err(|e| written(&e))
        } else {
            let root = SVGBackend::new(temporary, size).into_drawing_area();
            draw_all(&root, &figures)?;
            root.present().map_err(|e| written(&e))
        }
    })
    .with_context(|| format!("cannot plot {}", input.display()))?;
    Ok(index.damage)
}

/// One band per run, top to bottom.
fn draw_all<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figures: &[RunFigure]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)
        .map_err(|e| anyhow!("drawing failed: {e}"))?;
    let mut rest = root.clone();
    for figure in figures {
        let (band, below) = rest.split_vertically(figure.height());
        draw(&band, figure)?;
        rest = below;
    }
    Ok(())
}

/// Per column, the mean of the values summed there: (step, mean) of every column that has one.
fn column_means(f: &RunFigure, sums: &[(f64, u32)]) -> Vec<(f64, f64)> {
    sums.iter()
        .enumerate()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(c, (sum, n))| (f.column_step(c), sum / f64::from(*n)))
        .collect()
}

fn draw<DB: DrawingBackend>(band: &DrawingArea<DB, Shift>, f: &RunFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (time_panels, snapshot_panels) = band.split_vertically(2 * TIME_PANEL);
    let mut areas = time_panels.split_evenly((2, 1));
    if f.panels() > 2 {
        areas.extend(snapshot_panels.split_evenly((f.panels() - 2, 1)));
    }
    draw_loss(&areas[0], f)?;
    draw_heat(&areas[1], f)?;
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e}");
    let mut next = 2;
    if !f.paths.is_empty() {
        draw_paths(&areas[2], f).map_err(err)?;
        next += 1;
    }
    if let (Some((step, layers)), Some(area)) = (&f.sources, areas.get(next)) {
        draw_sources(area, *step, layers, &f.aux_layers).map_err(err)?;
    }
    Ok(())
}

/// Training-batch and test loss over steps, on a log scale when every value is positive, with
/// a marker per intervention; marker labels sit inside the panel, staggered, right-aligned in
/// its right half, so none is cut at an edge.
fn draw_loss<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, f: &RunFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e}");
    let train = column_means(f, &f.loss);
    let test = column_means(f, &f.test_loss);
    let (lo, hi) = train
        .iter()
        .chain(&test)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let x_range = f.first_step as f64..(f.last_step.max(f.first_step + 1)) as f64;
    let caption = printable(&format!("run {} ({}): loss", f.run, f.preset));
    let colour_test = RGBColor(230, 120, 20);
    let mut chart = ChartBuilder::on(area);
    chart
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .margin_right(COLOUR_BAR_WIDTH)
        .x_label_area_size(36)
        .y_label_area_size(95);
    // A loss spans decades as it trains; a log axis shows the late, small changes too.
    if lo > 0.0 {
        let (bottom, top) = (lo / 1.25, hi * 1.6);
        let mut chart = chart
            .build_cartesian_2d(
                x_range,
                (bottom..top)
                    .log_scale()
                    .with_key_points(log_ticks(bottom, top)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc("step")
            .y_desc("loss (log scale)")
            .x_label_formatter(&integer_label)
            .y_label_formatter(&value_label)
            .draw()
            .map_err(err)?;
        draw_loss_series(&mut chart, &train, &test, colour_test).map_err(err)?;
        draw_markers(&mut chart, f, bottom, top, true).map_err(err)?;
        legend(&mut chart).map_err(err)?;
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let (bottom, top) = (lo - pad, hi + 6.0 * pad);
        let mut chart = chart
            .build_cartesian_2d(x_range, bottom..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc("step")
            .y_desc("loss")
            .x_label_formatter(&integer_label)
            .y_label_formatter(&value_label)
            .draw()
            .map_err(err)?;
        draw_loss_series(&mut chart, &train, &test, colour_test).map_err(err)?;
        draw_markers(&mut chart, f, bottom, top, false).map_err(err)?;
        legend(&mut chart).map_err(err)?;
    }
    Ok(())
}

/// Ticks at 1, 2 and 5 times each power of ten inside `lo..hi`, so a log axis that spans less
/// than a decade still has labels.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    (first..=last)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .filter(|t| (lo..=hi).contains(t))
        .collect()
}

fn draw_loss_series<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    train: &[(f64, f64)],
    test: &[(f64, f64)],
    colour_test: RGBColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .draw_series(LineSeries::new(train.to_vec(), BLUE.stroke_width(2)))?
        .label("training batch")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    if !test.is_empty() {
        chart
            .draw_series(LineSeries::new(test.to_vec(), colour_test.stroke_width(2)))?
            .label("test set (last evaluation)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour_test.stroke_width(2))
            });
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
}

/// One vertical line per intervention, its label inside the plot: three staggered rows below
/// the top, anchored on the line's right in the left half and on its left in the right half.
fn draw_markers<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    f: &RunFigure,
    bottom: f64,
    top: f64,
    log: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let marker = RGBColor(200, 30, 30);
    let span = (f.last_step.max(f.first_step + 1) - f.first_step) as f64;
    // Rows of labels from the top, in data units of the y axis (log or linear).
    let row_y = |row: usize| {
        let fraction = 0.04 + 0.07 * row as f64;
        if log {
            (top.ln() - (top.ln() - bottom.ln()) * fraction).exp()
        } else {
            top - (top - bottom) * fraction
        }
    };
    for (i, (step, label)) in f.markers.iter().enumerate() {
        let x = *step as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, bottom), (x, top)],
            marker.stroke_width(1),
        )))?;
        let right_half = (x - f.first_step as f64) / span > 0.5;
        let anchor = Pos::new(if right_half { HPos::Right } else { HPos::Left }, VPos::Top);
        let font = ("sans-serif", 14).into_font().color(&marker).pos(anchor);
        chart.draw_series(std::iter::once(Text::new(
            format!(" {} ", printable(label)),
            (x, row_y(i % 3)),
            font,
        )))?;
    }
    Ok(())
}

/// Heat map of log10 ‖∂L/∂h‖ over steps, layer 1 (input side) or time step 1 at the bottom, in
/// viridis with its colour bar on the right.
fn draw_heat<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, f: &RunFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e}");
    let cells: Vec<(usize, usize, f64)> = f
        .heat
        .iter()
        .enumerate()
        .flat_map(|(c, col)| {
            col.iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .map(move |(l, (sum, n))| (c, l, sum / f64::from(*n)))
        })
        .collect();
    let (vmin, vmax) = cells
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, _, v)| {
            (a.min(*v), b.max(*v))
        });
    let (vmin, vmax) = if vmin.is_finite() {
        (vmin, vmax)
    } else {
        (0.0, 1.0)
    };
    let (plot_area, bar_area) = area.split_horizontally(area.dim_in_pixel().0 - COLOUR_BAR_WIDTH);
    let quantity = if f.recurrent {
        "‖∂L/∂h_t‖ per time step"
    } else {
        "‖∂L/∂h_l‖ per layer"
    };
    let x_range = f.first_step as f64..(f.last_step.max(f.first_step + 1)) as f64;
    let mut heat = ChartBuilder::on(&plot_area)
        .caption(
            format!("log10 {quantity} (batch Frobenius norm)"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(95)
        // Row r is centred on r + 1, so the axis reads layer (or time step) numbers 1..n.
        .build_cartesian_2d(x_range, 0.5..f.rows.max(1) as f64 + 0.5)
        .map_err(err)?;
    heat.configure_mesh()
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .disable_mesh()
        .x_desc("step")
        .y_desc(if f.recurrent {
            "time step t (1 = first input)"
        } else {
            "layer (1 = input side)"
        })
        .x_label_formatter(&integer_label)
        .y_label_formatter(&integer_label)
        .y_labels(f.rows.clamp(2, 12))
        .draw()
        .map_err(err)?;
    let half = (f.last_step - f.first_step) as f64 / (2 * (f.heat.len().max(2) - 1)) as f64;
    let span = (vmax - vmin).max(1e-12);
    heat.draw_series(cells.iter().map(|&(c, l, v)| {
        let x = f.column_step(c);
        Rectangle::new(
            [(x - half, l as f64 + 0.5), (x + half, l as f64 + 1.5)],
            viridis((v - vmin) / span).filled(),
        )
    }))
    .map_err(err)?;
    for (step, _) in &f.markers {
        let x = *step as f64;
        heat.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.5), (x, f.rows as f64 + 0.5)],
            WHITE.stroke_width(1),
        )))
        .map_err(err)?;
    }
    draw_colour_bar(&bar_area, vmin, vmax, "log10 ‖∂L/∂h‖").map_err(err)?;
    Ok(())
}

/// The newest live path statistics: Veit's C(n,k)·E‖g_k‖ by path length.
fn draw_paths<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &RunFigure,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let max_len = f.paths.iter().map(|p| p.0).fold(0.0, f64::max);
    let max_c = f.paths.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-12);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Veit's profile C(n,k)·E‖path gradient‖ by path length k (last measurement)",
            ("sans-serif", 22),
        )
        .margin(12)
        .margin_right(COLOUR_BAR_WIDTH)
        .x_label_area_size(36)
        .y_label_area_size(95)
        .build_cartesian_2d(-0.5..max_len + 0.5, 0.0..max_c * 1.05)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .x_desc("path length k (transform branches taken)")
        .y_desc("C(n,k)·E‖g_path‖, normalised")
        .x_label_formatter(&integer_label)
        .y_label_formatter(&value_label)
        .draw()?;
    chart.draw_series(
        f.paths
            .iter()
            .map(|&(k, c)| Rectangle::new([(k - 0.4, 0.0), (k + 0.4, c)], BLUE.mix(0.7).filled())),
    )?;
    Ok(())
}

/// One 100 % stacked bar per layer: the share of its gradient from the main head, the dense
/// read-outs and each auxiliary head.
fn draw_sources<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    step: u64,
    layers: &[LayerSources],
    aux_layers: &[usize],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const COLOURS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(140, 86, 75),
    ];
    let Some(first) = layers.first() else {
        return Ok(());
    };
    let mut labels = vec!["main head".to_string()];
    if !first.readouts.is_empty() {
        labels.push("dense read-outs".into());
    }
    for i in 0..first.aux.len() {
        labels.push(aux_layers.get(i).map_or_else(
            || format!("aux head {}", i + 1),
            |l| format!("aux head after layer {}", l + 1),
        ));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("gradient sources per layer (step {step})"),
            ("sans-serif", 22),
        )
        .margin(12)
        .margin_right(COLOUR_BAR_WIDTH)
        .x_label_area_size(36)
        .y_label_area_size(95)
        .build_cartesian_2d(0.5..layers.len() as f64 + 0.5, 0.0..1.0)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .disable_x_mesh()
        .x_desc("layer (1 = input side)")
        .y_desc("share of the gradient")
        .x_label_formatter(&integer_label)
        .y_label_formatter(&value_label)
        .draw()?;
    for (i, label) in labels.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let bars = layers.iter().enumerate().map(move |(l, layer)| {
            let shares = layer.shares();
            let below: f64 = shares.iter().take(i).sum();
            let top = below + shares.get(i).copied().unwrap_or(0.0);
            let x = (l + 1) as f64;
            Rectangle::new([(x - 0.4, below), (x + 0.4, top)], colour.filled())
        });
        chart
            .draw_series(bars)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}
