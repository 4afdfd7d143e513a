//! `gradlab reproduce`, `export` and `plot`: working with recordings after the run.

use crate::recording::{export, plot, reproduce};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `gradlab reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The recording to re-run.
    file: PathBuf,
    /// Folder that relative CSV task paths in the recorded preset are resolved against.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
}

/// Arguments of `gradlab export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording to export.
    file: PathBuf,
    /// Where to write the CSV.
    #[arg(long, value_name = "OUT")]
    csv: PathBuf,
}

/// Arguments of `gradlab plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The recording to draw.
    file: PathBuf,
    /// The figure to write: .png or .svg.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
}

/// Exit 0 when every snapshot is reproduced exactly, 1 when something differs.
pub fn reproduce(args: &ReproduceArgs) -> Result<ExitCode> {
    let report = reproduce::reproduce(&args.file, args.base_dir.as_deref())?;
    println!("snapshots compared  {}", report.compared);
    if report.missing > 0 {
        println!("not reproduced      {}", report.missing);
    }
    println!("fields differing    {}", report.differing_fields);
    let show = |v: Option<f64>| v.map_or("null/non-number".to_string(), |v| format!("{v:e}"));
    match &report.largest {
        Some(d) => println!(
            "largest deviation   {:.3e} (relative) at step {} in {}: recorded {}, reproduced {}",
            d.relative,
            d.step,
            d.field,
            show(d.recorded),
            show(d.reproduced)
        ),
        None => println!("largest deviation   0"),
    }
    if report.identical() {
        println!("identical");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("differs");
        Ok(ExitCode::from(1))
    }
}

/// Writes the CSV and says how many rows it holds.
pub fn export(args: &ExportArgs) -> Result<ExitCode> {
    let rows = export::export_csv(&args.file, &args.csv)?;
    eprintln!("{rows} snapshots written to {}", args.csv.display());
    Ok(ExitCode::SUCCESS)
}

/// Draws the figure.
pub fn plot(args: &PlotArgs) -> Result<ExitCode> {
    plot::plot(&args.file, &args.out)?;
    eprintln!("figure written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
