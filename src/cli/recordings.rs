//! `gradlab reproduce`, `export` and `plot`: working with recordings after the run.

use crate::out::{say, tell};
use crate::recording::reproduce::{Report, Reproduction};
use crate::recording::runs::Damage;
use crate::recording::{export, plot, plot_sweep, reproduce};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `gradlab reproduce`.
#[derive(Debug, Args)]
#[command(after_help = "\
A recording holds one run per reset or loaded preset. Each run is re-run from the experiment \
it started with, its commands applied at their steps, and compared snapshot by snapshot; the \
report has a block per run and a total. Exit status: 0 when every run is identical, 1 when \
anything differs. Recordings of older gradlab builds need not reproduce bit-identically.")]
pub struct ReproduceArgs {
    /// The recording to re-run.
    file: PathBuf,
    /// Only this run (1 = the first); by default every run, each checked on its own.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    run: Option<u32>,
    /// Folder that relative CSV task paths in the recorded preset are resolved against.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
}

/// Arguments of `gradlab export`.
#[derive(Debug, Args)]
#[command(after_help = "\
One row per snapshot, led by its run number (a reset or a loaded preset starts the next run). \
Hidden layers are numbered from the input: layer1_act_grad_norm is the first hidden layer's \
‖∂L/∂h‖. Recurrent nets add cell and t1_hidden_grad_norm, t1_forget_gate_mean, \
t1_update_gate_mean, … per time step.")]
pub struct ExportArgs {
    /// The recording to export.
    file: PathBuf,
    /// Where to write the CSV (never the recording itself).
    #[arg(long, value_name = "OUT")]
    csv: PathBuf,
    /// Only this run (1 = the first); by default every run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    run: Option<u32>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Arguments of `gradlab plot`.
#[derive(Debug, Args)]
#[command(after_help = "\
From a recording: one band of panels per run, titled with its number and preset: training and \
test loss (log scale) with the interventions marked, the heat map of log10 ‖∂L/∂h‖ (per layer, \
or per time step for recurrent nets) with its colour bar, and path lengths and gradient sources \
where the run measured them.

From a sweep's results directory (the `out` of `gradlab sweep`): one quantity (--y, default \
tail_loss, the training loss over the last 10 % of steps) against a numeric axis (--x, default \
the first, e.g. model.depth), one line per combination of the other axes, mean over seeds with \
± one standard deviation.")]
pub struct PlotArgs {
    /// The recording to draw, or a sweep's results directory.
    file: PathBuf,
    /// The figure to write: .png or .svg (never the recording itself).
    #[arg(long, value_name = "OUT", value_parser = figure_path)]
    out: PathBuf,
    /// Only this run (1 = the first); by default every run, one band each (recordings only).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    run: Option<u32>,
    /// Sweeps: the axis on x, as named in the sweep file (default: the first numeric one).
    #[arg(long = "x", value_name = "AXIS")]
    x_axis: Option<String>,
    /// Sweeps: the results.csv column to plot.
    #[arg(long = "y", value_name = "COLUMN", default_value = plot_sweep::DEFAULT_METRIC)]
    metric: String,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Accepts only the figure formats `plot` writes, so a typo is a usage error (exit 2).
fn figure_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match path.extension().and_then(|e| e.to_str()) {
        Some("png" | "svg") => Ok(path),
        _ => Err("the figure must end in .png or .svg".into()),
    }
}

/// Says on stderr how many lines of the recording were skipped, if any.
fn report_damage(damage: &Damage) {
    if let Some(summary) = damage.summary() {
        tell!("gradlab: {summary}");
    }
}

/// Prints one report block (a run's or the total).
fn print_report(report: &Report) -> Result<()> {
    say!("  snapshots compared  {}", report.compared)?;
    if report.missing > 0 {
        say!("  not reproduced      {}", report.missing)?;
    }
    say!("  fields differing    {}", report.differing_fields)?;
    // Numbers in scientific notation; anything else (null for non-finite, labels) as JSON.
    let show =
        |v: Option<f64>, json: &str| v.map_or_else(|| json.to_string(), |v| format!("{v:e}"));
    match &report.largest {
        Some(d) => say!(
            "  largest deviation   {:.3e} (relative) at step {} in {}: recorded {}, reproduced {}",
            d.relative,
            d.step,
            d.field,
            show(d.recorded, &d.recorded_json),
            show(d.reproduced, &d.reproduced_json)
        )?,
        None => say!("  largest deviation   0")?,
    }
    Ok(())
}

/// Exit 0 when every run is reproduced exactly, 1 when something differs.
pub fn reproduce(args: &ReproduceArgs) -> Result<ExitCode> {
    let result = reproduce::reproduce(&args.file, args.run, args.base_dir.as_deref())?;
    print_reproduction(&result)?;
    report_damage(&result.damage);
    if result.identical() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

fn print_reproduction(result: &Reproduction) -> Result<()> {
    if let Some(note) = &result.older_build {
        say!("note: {note}")?;
    }
    let verdict = |identical: bool| if identical { "identical" } else { "differs" };
    for run in &result.runs {
        say!(
            "run {} ({}): {}",
            run.run,
            run.preset,
            verdict(run.report.identical())
        )?;
        print_report(&run.report)?;
    }
    let total = result.total();
    say!(
        "total: {} run{}, {}",
        result.runs.len(),
        if result.runs.len() == 1 { "" } else { "s" },
        verdict(result.identical())
    )?;
    print_report(&total)?;
    say!("{}", verdict(result.identical()))?;
    Ok(())
}

/// Writes the CSV and says how many rows it holds.
pub fn export(args: &ExportArgs) -> Result<ExitCode> {
    let exported = export::export_csv(&args.file, &args.csv, args.run, args.force)?;
    report_damage(&exported.damage);
    tell!(
        "{} snapshots of {} run{} written to {}",
        exported.rows,
        exported.runs,
        if exported.runs == 1 { "" } else { "s" },
        args.csv.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Draws the figure.
pub fn plot(args: &PlotArgs) -> Result<ExitCode> {
    if args.file.is_dir() {
        if args.run.is_some() {
            tell!(
                "gradlab: --run is for recordings; {} is a sweep's results directory",
                args.file.display()
            );
            return Ok(ExitCode::from(2));
        }
        plot_sweep::plot_sweep(
            &args.file,
            &args.out,
            args.x_axis.as_deref(),
            &args.metric,
            args.force,
        )?;
        tell!("figure written to {}", args.out.display());
        return Ok(ExitCode::SUCCESS);
    }
    if args.x_axis.is_some() || args.metric != plot_sweep::DEFAULT_METRIC {
        tell!(
            "gradlab: --x and --y are for a sweep's results directory; {} is a recording",
            args.file.display()
        );
        return Ok(ExitCode::from(2));
    }
    let damage = plot::plot(&args.file, &args.out, args.run, args.force)?;
    report_damage(&damage);
    tell!("figure written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
