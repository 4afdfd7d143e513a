//! `gradlab plot RESULTS-DIR`: a sweep's figure, read from the `results.csv` the sweep wrote:
//! one quantity (by default the final training loss) against one numeric axis (by default the
//! first, e.g. depth), one line per combination of the other axes (e.g. skip mode), each point
//! the mean over seeds with an error bar of ± one standard deviation across them.

use super::output::{check_output, write_whole_at};
use super::plot_style::{integer_label, printable, register_font, value_label};
use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The column plotted when none is asked for: the training loss over the last 10 % of steps.
pub const DEFAULT_METRIC: &str = "tail_loss";

/// The axis averaged over (error bars), never drawn as the x axis or a line.
const SEED_AXIS: &str = "seed";

/// One point of a line: x, the mean over seeds, their standard deviation, how many seeds.
pub type SweepPoint = (f64, f64, f64, usize);

/// What the figure shows, read from the CSV.
#[derive(Debug, PartialEq)]
pub struct SweepFigure {
    /// The x axis's column name.
    pub x_axis: String,
    /// The plotted column's name.
    pub metric: String,
    /// One line per combination of the other axes: its label and points (x, mean, std, n).
    pub lines: Vec<(String, Vec<SweepPoint>)>,
}

/// Reads `dir/results.csv` into the figure's lines.
pub fn read_results(dir: &Path, x_axis: Option<&str>, metric: &str) -> Result<SweepFigure> {
    let path = dir.join("results.csv");
    let mut reader = csv::Reader::from_path(&path).with_context(|| {
        format!(
            "{}: no results.csv (run `gradlab sweep FILE` first; it writes one into its out directory)",
            dir.display()
        )
    })?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    // The axes sit between the job id and the first result column.
    let first_result = header.iter().position(|h| h == "step").ok_or_else(|| {
        anyhow!(
            "{}: no `step` column: not a gradlab sweep's results.csv",
            path.display()
        )
    })?;
    let axes: Vec<String> = header[1..first_result].to_vec();
    let metric_column = header.iter().position(|h| h == metric).ok_or_else(|| {
        anyhow!(
            "{}: no column `{metric}`; the columns are {}",
            path.display(),
            header[first_result..].join(", ")
        )
    })?;
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: a line is not valid CSV", path.display()))?;
    let numeric = |column: usize| {
        records
            .iter()
            .all(|r| r.get(column).is_some_and(|v| v.parse::<f64>().is_ok()))
    };
    let x_column = match x_axis {
        Some(name) => {
            let column = axes.iter().position(|a| a == name).ok_or_else(|| {
                anyhow!(
                    "{}: no axis `{name}`; the axes are {}",
                    path.display(),
                    axes.join(", ")
                )
            })? + 1;
            if !numeric(column) {
                bail!(
                    "{}: axis `{name}` is not numeric, so it cannot be the x axis",
                    path.display()
                );
            }
            column
        }
        None => (1..first_result)
            .find(|&c| header[c] != SEED_AXIS && numeric(c))
            .ok_or_else(|| {
                anyhow!(
                    "{}: no numeric axis to put on x (axes: {}); name one with --x",
                    path.display(),
                    axes.join(", ")
                )
            })?,
    };
    let line_columns: Vec<usize> = (1..first_result)
        .filter(|&c| c != x_column && header[c] != SEED_AXIS)
        .collect();
    // line label → x (as bits, for ordering) → values over seeds
    let mut groups: BTreeMap<String, BTreeMap<i64, (f64, Vec<f64>)>> = BTreeMap::new();
    for record in &records {
        let Some(value) = record
            .get(metric_column)
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue; // a job without a result, or a non-finite one, is left out
        };
        if !value.is_finite() {
            continue;
        }
        let x: f64 = record
            .get(x_column)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let label = line_columns
            .iter()
            .map(|&c| format!("{}={}", header[c], record.get(c).unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        // Ordered by x: the key keeps the float's order for the finite values a grid holds.
        let key = (x * 1e6).round() as i64;
        groups
            .entry(label)
            .or_default()
            .entry(key)
            .or_insert_with(|| (x, Vec::new()))
            .1
            .push(value);
    }
    if groups.is_empty() {
        bail!("{}: no job has a finite `{metric}` yet", path.display());
    }
    let lines = groups
        .into_iter()
        .map(|(label, points)| {
            let points = points
                .into_values()
                .map(|(x, values)| {
                    let n = values.len();
                    let mean = values.iter().sum::<f64>() / n as f64;
                    let var = if n > 1 {
                        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
                    } else {
                        0.0
                    };
                    (x, mean, var.sqrt(), n)
                })
                .collect();
            (label, points)
        })
        .collect();
    Ok(SweepFigure {
        x_axis: header[x_column].clone(),
        metric: metric.to_string(),
        lines,
    })
}

/// Draws the sweep in `dir` into `output` (.png or .svg), written whole, replacing an
/// existing file only with `force`.
pub fn plot_sweep(
    dir: &Path,
    output: &Path,
    x_axis: Option<&str>,
    metric: &str,
    force: bool,
) -> Result<()> {
    let extension = output.extension().and_then(|e| e.to_str());
    if !matches!(extension, Some("png" | "svg")) {
        bail!("{}: the output must end in .png or .svg", output.display());
    }
    check_output(&dir.join("results.csv"), output, force)?;
    register_font()?;
    let figure = read_results(dir, x_axis, metric)?;
    let size = (1200, 700);
    write_whole_at(output, force, |temporary| {
        let written = |e: &dyn std::fmt::Display| anyhow!("cannot write {}: {e}", output.display());
        if extension == Some("png") {
            let root = BitMapBackend::new(temporary, size).into_drawing_area();
            draw(&root, &figure)?;
            root.present().map_err(|e| written(&e))
        } else {
            let root = SVGBackend::new(temporary, size).into_drawing_area();
            draw(&root, &figure)?;
            root.present().map_err(|e| written(&e))
        }
    })
    .with_context(|| format!("cannot plot {}", dir.display()))
}

/// Colours that stay apart in print and for most colour-blind readers (Okabe–Ito).
const LINE_COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &SweepFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e}");
    root.fill(&WHITE).map_err(err)?;
    let points = f.lines.iter().flat_map(|(_, p)| p);
    let (x_lo, x_hi, y_lo, y_hi) = points.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, m, s, _)| (a.min(x), b.max(x), c.min(m - s), d.max(m + s)),
    );
    let x_pad = ((x_hi - x_lo) * 0.05).max(0.5);
    let y_pad = ((y_hi - y_lo) * 0.08).max(1e-6);
    let integer_x = f
        .lines
        .iter()
        .flat_map(|(_, p)| p)
        .all(|(x, ..)| x.fract() == 0.0);
    let seeds = f
        .lines
        .iter()
        .flat_map(|(_, p)| p)
        .map(|p| p.3)
        .max()
        .unwrap_or(1);
    let caption = printable(&format!(
        "{} against {} (mean over seeds, bars ± 1 s.d.; up to {seeds} seed(s) a point)",
        f.metric, f.x_axis
    ));
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(95)
        .build_cartesian_2d(x_lo - x_pad..x_hi + x_pad, y_lo - y_pad..y_hi + y_pad)
        .map_err(err)?;
    let x_format = |x: &f64| {
        if integer_x {
            integer_label(x)
        } else {
            value_label(x)
        }
    };
    chart
        .configure_mesh()
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .x_desc(printable(&f.x_axis))
        .y_desc(printable(&f.metric))
        .x_label_formatter(&x_format)
        .y_label_formatter(&value_label)
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in f.lines.iter().enumerate() {
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()];
        let means: Vec<(f64, f64)> = points.iter().map(|&(x, m, ..)| (x, m)).collect();
        chart
            .draw_series(LineSeries::new(means.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(printable(if label.is_empty() { &f.metric } else { label }))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&(x, m, s, _)| {
                ErrorBar::new_vertical(x, m - s, m, m + s, colour.stroke_width(2), 10)
            }))
            .map_err(err)?;
        chart
            .draw_series(means.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::write(dir.path().join("results.csv"), text).expect("results.csv");
        dir
    }

    const CSV: &str = "id,model.depth,model.skip,seed,step,tail_loss\n\
        a,4,Plain,1,10,0.4\n\
        b,4,Plain,2,10,0.6\n\
        c,16,Plain,1,10,0.7\n\
        d,16,Plain,2,10,\n\
        e,4,\"Residual(scale: 1.0)\",1,10,0.2\n\
        f,16,\"Residual(scale: 1.0)\",1,10,0.1\n";

    #[test]
    fn points_are_means_over_seeds_with_their_spread_one_line_per_other_axis() {
        let dir = results(CSV);
        let figure = read_results(dir.path(), None, DEFAULT_METRIC).expect("reads");
        assert_eq!(figure.x_axis, "model.depth");
        let plain = &figure.lines[0];
        assert_eq!(plain.0, "model.skip=Plain");
        let (x, mean, sd, n) = plain.1[0];
        assert_eq!((x, n), (4.0, 2));
        assert!((mean - 0.5).abs() < 1e-12);
        // Sample standard deviation of 0.4 and 0.6.
        assert!((sd - 0.02f64.sqrt()).abs() < 1e-12, "{sd}");
        // The job without a result is left out, not read as zero.
        assert_eq!(plain.1[1], (16.0, 0.7, 0.0, 1));
        assert_eq!(figure.lines[1].0, "model.skip=Residual(scale: 1.0)");
    }

    #[test]
    fn a_non_numeric_x_axis_or_a_missing_column_is_refused_with_the_choices() {
        let dir = results(CSV);
        let err = read_results(dir.path(), Some("model.skip"), DEFAULT_METRIC).unwrap_err();
        assert!(err.to_string().contains("not numeric"), "{err}");
        let err = read_results(dir.path(), None, "test_loss").unwrap_err();
        assert!(err.to_string().contains("tail_loss"), "{err}");
    }
}
