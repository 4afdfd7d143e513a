//! `gradlab compare`: 2–4 presets trained side by side: the compare view on a terminal, else
//! a table or a JSON list.

use super::{UiArgs, base_dir_of, load_experiment};
use crate::compare::{CompareEntry, CompareRun, run_compare};
use crate::config::check_fits;
use crate::out::{say, tell};
use crate::report::{Analyses, RunReport};
use anyhow::{Result, bail};
use clap::Args;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Options of `gradlab compare` (what the compare view does is in the subcommand's help).
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A built-in preset name or a path to a .ron file; give it 2 to 4 times.
    #[arg(long = "preset", short = 'p', required = true)]
    presets: Vec<String>,
    /// Override a field of every run, e.g. --set model.depth=16
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
    #[command(flatten)]
    ui: UiArgs,
    /// Updates to apply to every run (default: the first preset's `steps`); table and JSON only.
    #[arg(long)]
    steps: Option<u64>,
    /// Print a JSON list, one `gradlab run --json` object per run plus label and throughput.
    #[arg(long)]
    json: bool,
    /// Print the table even on a terminal instead of opening the compare view.
    #[arg(long)]
    headless: bool,
    /// Threads to spread the runs over, at least 1 (default: the number of cores).
    #[arg(long, value_parser = super::sweep::thread_count)]
    threads: Option<usize>,
    /// Also evaluate the test set of each run with each block removed in turn.
    #[arg(long)]
    lesion: bool,
}

/// Runs the comparison and prints it.
pub fn run(args: &CompareArgs) -> Result<ExitCode> {
    if !(2..=4).contains(&args.presets.len()) {
        bail!(
            "compare takes 2 to 4 --preset options, got {}",
            args.presets.len()
        );
    }
    let entries = args
        .presets
        .iter()
        .map(|name| {
            Ok(CompareEntry {
                label: name.clone(),
                experiment: load_experiment(name, &args.overrides)
                    .map_err(|e| anyhow::anyhow!("--preset {name}: {e:#}"))?,
                base_dir: base_dir_of(name),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The runs train at the same time, so together they must fit.
    let experiments: Vec<_> = entries.iter().map(|e| e.experiment.clone()).collect();
    check_fits(&experiments, entries[0].base_dir.as_deref())?;
    let threads = args.threads.unwrap_or_else(super::sweep::cores);
    if !args.json && !args.headless && std::io::stdout().is_terminal() {
        return super::tui::compare(entries, &args.ui, threads);
    }
    let steps = args.steps.unwrap_or(entries[0].experiment.steps as u64);
    tell!(
        "comparing {} runs for {steps} steps on {} thread(s)",
        entries.len(),
        threads.min(entries.len())
    );
    let runs = super::headless::with_ticker("comparing", || {
        run_compare(&entries, steps, threads, &Analyses::standard(args.lesion))
    })?;
    if args.json {
        say!("{}", serde_json::to_string(&runs)?)?;
    } else {
        print_table(&runs)?;
    }
    let diverged = runs.iter().any(|r| r.report.snapshot.diverged);
    Ok(if diverged {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// The number of layers (time steps for an RNN) the first/last ratio spans.
pub(crate) fn profile_len(s: &crate::metrics::Snapshot) -> usize {
    if s.timesteps.is_empty() {
        s.layers.len()
    } else {
        s.timesteps.len()
    }
}

/// The end-to-end gain per layer in dB: dB first/last ÷ (n − 1).
pub(crate) fn gain_per_layer(s: &crate::metrics::Snapshot) -> f64 {
    crate::metrics::gain_per_layer_db(s.grad_ratio_db, profile_len(s))
}

/// The columns `compare` and `sweep` tables share, for one report: loss, train %, test %,
/// dB first/last, gain per layer in dB, χ₁ fitted over the middle layers, path range.
pub(crate) fn report_cells(report: &RunReport) -> [String; 7] {
    let s = &report.snapshot;
    let pct = |v: Option<f64>| v.map_or("n/a".into(), |a| format!("{:.1}", 100.0 * a));
    let range = report.paths.as_ref().map_or("n/a".into(), |p| {
        format!("{}–{}", p.effective_range[0], p.effective_range[1])
    });
    [
        if s.diverged {
            "diverged".into()
        } else {
            format!("{:.4}", s.loss)
        },
        pct(s.train_accuracy),
        pct(s.test_accuracy),
        format!("{:.1}", s.grad_ratio_db),
        format!("{:.2}", gain_per_layer(s)),
        format!("{:.3}", s.measured_chi1),
        range,
    ]
}

fn print_table(runs: &[CompareRun]) -> Result<()> {
    let width = runs.iter().map(|r| r.label.len()).max().unwrap_or(0).max(3);
    say!(
        "{:width$}  {:>9} {:>7} {:>7} {:>9} {:>8} {:>7} {:>7}  {:>8} {:>8}",
        "run",
        "loss",
        "train%",
        "test%",
        "dB",
        "dB/layer",
        "χ₁ mid",
        "paths",
        "steps/s",
        "busy/s"
    )?;
    for run in runs {
        let [loss, train, test, db, gain, chi1, range] = report_cells(&run.report);
        say!(
            "{:width$}  {loss:>9} {train:>7} {test:>7} {db:>9} {gain:>8} {chi1:>7} {range:>7}  {:>8.1} {:>8.1}",
            run.label,
            run.steps_per_sec,
            run.busy_steps_per_sec
        )?;
    }
    say!(
        "loss: last training batch · %: accuracy · dB: ‖∂L/∂h_first‖/‖∂L/∂h_last‖ (batch Frobenius norms \
         of the mean loss's gradient) · dB/layer: dB ÷ (layers − 1), the end-to-end gain per layer · \
         χ₁ mid: exp(−slope) of ln ‖∂L/∂h_l‖² over the middle half of the layers · \
         paths: the lengths holding 90 % of Veit's profile C(n,k)·E‖g_path‖ (a magnitude, not a share) · steps/s: over the wall clock, busy/s: over the run's own steps"
    )?;
    Ok(())
}
