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
use super::runs::{self, Damage, RunInfo};
use crate::model::aux_head_layers;
use crate::protocol::Event;
use crate::sources::LayerSources;
use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

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

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

/// What one run's band shows, accumulated while streaming the run.
struct RunFigure {
    run: u32,
    preset: String,
    first_step: u64,
    last_step: u64,
    /// Mean finite loss per column, with the number of values summed.
    loss: Vec<(f64, u32)>,
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

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("the embedded font does not load")
    }
}

/// Maps 0..=1 to a blue → green → yellow → red ramp.
fn heat_colour(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let hue = (1.0 - t) * 240.0 / 360.0;
    let (r, g, b) = hsl_to_rgb(hue, 0.85, 0.5);
    RGBColor(r, g, b)
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let q = if l < 0.5 {
        l * (1.0 + s)
    } else {
        l + s - l * s
    };
    let p = 2.0 * l - q;
    let channel = |t: f64| {
        let t = t.rem_euclid(1.0);
        let v = if t < 1.0 / 6.0 {
            p + (q - p) * 6.0 * t
        } else if t < 0.5 {
            q
        } else if t < 2.0 / 3.0 {
            p + (q - p) * (2.0 / 3.0 - t) * 6.0
        } else {
            p
        };
        (v * 255.0).round() as u8
    };
    (channel(h + 1.0 / 3.0), channel(h), channel(h - 1.0 / 3.0))
}

fn draw<DB: DrawingBackend>(band: &DrawingArea<DB, Shift>, f: &RunFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e}");
    let (time_panels, snapshot_panels) = band.split_vertically(2 * TIME_PANEL);
    let mut areas = time_panels.split_evenly((2, 1));
    if f.panels() > 2 {
        areas.extend(snapshot_panels.split_evenly((f.panels() - 2, 1)));
    }
    let x_range = f.first_step as f64..(f.last_step.max(f.first_step + 1)) as f64;

    // Loss with intervention markers.
    let losses: Vec<(f64, f64)> = f
        .loss
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(c, (sum, n))| (f.column_step(c), sum / f64::from(*n)))
        .collect();
    let (lo, hi) = losses
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&areas[0])
        .caption(
            format!("run {} ({}): loss", f.run, f.preset),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(losses, BLUE.stroke_width(2)))
        .map_err(err)?;
    let marker = RGBColor(200, 30, 30);
    for (step, label) in &f.markers {
        let x = *step as f64;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, lo - pad), (x, hi + pad)],
                marker.stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (x, hi + pad * 0.2),
                ("sans-serif", 14).into_font().color(&marker),
            )))
            .map_err(err)?;
    }

    // Heat map of log10 ‖∂L/∂h‖, layer 1 (input side) or time step 1 at the bottom.
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
    let mut heat = ChartBuilder::on(&areas[1])
        .caption(
            format!(
                "{} (blue {vmin:.1} … red {vmax:.1})",
                if f.recurrent {
                    "log10 ‖∂L/∂h_t‖ per time step"
                } else {
                    "log10 ‖∂L/∂h_l‖ per layer"
                },
                vmin = if vmin.is_finite() { vmin } else { 0.0 },
                vmax = if vmax.is_finite() { vmax } else { 0.0 }
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        // Row r is centred on r + 1, so the axis reads layer (or time step) numbers 1..n.
        .build_cartesian_2d(x_range, 0.5..f.rows.max(1) as f64 + 0.5)
        .map_err(err)?;
    heat.configure_mesh()
        .disable_mesh()
        .x_desc("step")
        .y_desc(if f.recurrent {
            "time step t (1 = first input)"
        } else {
            "layer (1 = input side)"
        })
        .draw()
        .map_err(err)?;
    let half = (f.last_step - f.first_step) as f64 / (2 * (f.heat.len().max(2) - 1)) as f64;
    let span = (vmax - vmin).max(1e-12);
    heat.draw_series(cells.iter().map(|&(c, l, v)| {
        let x = f.column_step(c);
        Rectangle::new(
            [(x - half, l as f64 + 0.5), (x + half, l as f64 + 1.5)],
            heat_colour((v - vmin) / span).filled(),
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

    let mut next = 2;
    if !f.paths.is_empty() {
        next += 1;
        let max_len = f.paths.iter().map(|p| p.0).fold(0.0, f64::max);
        let max_c = f.paths.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-12);
        let mut chart = ChartBuilder::on(&areas[2])
            .caption(
                "Veit's profile C(n,k)·E‖path gradient‖ by path length (last measurement)",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..max_len + 0.5, 0.0..max_c * 1.05)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("path length (transform branches taken)")
            .y_desc("C(n,k)·E‖g_path‖, normalised")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(f.paths.iter().map(|&(k, c)| {
                Rectangle::new([(k - 0.4, 0.0), (k + 0.4, c)], BLUE.mix(0.7).filled())
            }))
            .map_err(err)?;
    }
    if let (Some((step, layers)), Some(area)) = (&f.sources, areas.get(next)) {
        draw_sources(area, *step, layers, &f.aux_layers).map_err(err)?;
    }
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
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5..layers.len() as f64 + 0.5, 0.0..1.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("layer (1 = input side)")
        .y_desc("share of the gradient")
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
