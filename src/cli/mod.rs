//! The command line: `gradlab [tui]`, `run`, `replay`, `presets`, and the recording tools.

mod compare;
mod headless;
mod overhead;
mod recordings;
mod summary;
mod sweep;
mod tour;
mod tui;
mod weights;

use crate::config::{Experiment, builtin_presets, check_fits, check_overrides_apply, load_preset};
use crate::out::{self, EXIT_BROKEN_PIPE, EXIT_OUTPUT_FAILED, StdoutError, say, tell};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The exit statuses every subcommand shares (also in docs/src/reference/cli.md).
const EXIT_CODES: &str = "\
Exit status:
  0    finished (reproduce: identical)
  1    reproduce: something differs; sweep: a job failed or has no result
  2    refused: bad flag, preset, value, a request too big for the memory available,
       or a recording another gradlab process is writing
  3    the run diverged (NaN/Inf; the JSON says where)
  74   stdout could not be written (disk full, permission); one line on stderr says why
  128+N  stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP), recording closed
  141  stdout's reader went away (`gradlab … | head -1`); nothing more is printed";

/// A terminal lab for watching vanishing and exploding gradients and fixing them live.
///
/// Without a subcommand it opens the live dashboard (the same as `gradlab tui`).
#[derive(Debug, Parser)]
#[command(
    name = "gradlab",
    version,
    about,
    after_help = EXIT_CODES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    #[command(flatten)]
    dashboard: TuiArgs,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Open the live dashboard (the default when no subcommand is given).
    ///
    /// `f` forks the running experiment: the twin is a copy of the network at that moment
    /// (weights, optimiser state, step, position in the data stream) with one switch flipped,
    /// and both go on in lock-step in the compare view, so their curves branch at the fork.
    /// With --record, the original run keeps recording into the file across the fork; twins
    /// are not recorded.
    Tui(TuiArgs),
    /// Open the dashboard on a recording: play, pause, speed, seek, jump between interventions.
    Replay(ReplayArgs),
    /// Train headless and print a summary (or JSON with --json).
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List the built-in presets, or print one's RON with --show to start your own from.
    Presets(PresetsArgs),
    /// A guided tour: short lessons inside the live dashboard, each asking for one key and
    /// measuring what it did to the run (`--list` prints the lessons).
    Tour(tour::TourArgs),
    /// Train 2–4 presets side by side on the same data stream and compare them.
    ///
    /// On a terminal this opens the compare view: the runs trained in lock-step until you quit
    /// (no step budget), one column each (`o` overlays their loss and per-layer gradient
    /// curves), Tab or 1–4 focus the run that toggles (p r h d a g [ ] l L) apply to, space,
    /// n and R pause, step and reset every run together, and `f` forks the focused run (at most
    /// four runs). With --json, --headless, or stdout not a terminal, it trains --steps updates
    /// and prints a table (or the JSON list).
    #[command(after_help = EXIT_CODES)]
    Compare(compare::CompareArgs),
    /// Run a grid of experiments from a sweep file, in parallel, resumable.
    #[command(after_help = EXIT_CODES)]
    Sweep(sweep::SweepArgs),
    /// Measure training steps/s of plain, residual and highway nets at several depths and of the
    /// recurrent cells at several sequence lengths, against PyTorch and JAX when installed.
    Bench(BenchArgs),
    /// Re-run a recording's preset with its commands and compare every snapshot.
    Reproduce(recordings::ReproduceArgs),
    /// Export a recording's snapshots as CSV, one row per snapshot.
    Export(recordings::ExportArgs),
    /// Draw a recording's loss, gradient heat map and path lengths to a PNG or SVG file.
    Plot(recordings::PlotArgs),
}

/// Arguments of the dashboard: `gradlab [tui]`.
#[derive(Debug, Args, Clone)]
struct TuiArgs {
    #[command(flatten)]
    preset: PresetArgs,
    #[command(flatten)]
    ui: UiArgs,
    #[command(flatten)]
    dash: DashArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Print a JSON list instead of a table.
    #[arg(long)]
    json: bool,
    /// Depths to measure, comma separated (1 to 512).
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32, 64],
          value_parser = clap::value_parser!(u16).range(1..=512))]
    depths: Vec<u16>,
    /// Sequence lengths for the recurrent cells, comma separated (2 to 5000; 0 to skip them).
    #[arg(long, value_delimiter = ',', default_values_t = [50, 200],
          value_parser = bench_length)]
    lengths: Vec<usize>,
    /// Seconds to time each configuration (0.1 to 3600).
    #[arg(long, default_value_t = 2.0, value_parser = bench_seconds)]
    seconds: f64,
    /// Skip the PyTorch and JAX reference runs even when they are installed.
    #[arg(long)]
    no_peers: bool,
    /// Measure instead what the live dashboard costs training on these presets (comma
    /// separated): the real dashboard drawing into memory against a headless run, in
    /// alternating slices of --seconds each after a 2 s warm-up.
    #[arg(long, value_delimiter = ',', value_name = "PRESET,...")]
    dashboard: Vec<String>,
    /// Dashboard/headless slice pairs per preset with --dashboard (1 to 100).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pairs: u16,
}

/// `--lengths` values: 0 (skip the recurrent cells) or a sequence length a task accepts.
fn bench_length(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Ok(0),
        Ok(n) if (2..=5000).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a sequence length: expected 0 (skip) or 2 to 5000"
        )),
    }
}

/// `--seconds`: a finite time, long enough to time ten steps and short enough to finish today.
fn bench_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.1..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "`{text}` is not a time: expected seconds from 0.1 to 3600"
        )),
    }
}

/// Which experiment to start: a preset plus overrides.
#[derive(Debug, Args, Clone)]
pub struct PresetArgs {
    /// A built-in preset name or a path to a .ron file.
    #[arg(long = "preset", short = 'p', default_value = "plain-deep")]
    pub preset: String,
    /// Override a field, e.g. --set model.depth=64 --set model.skip=Residual(scale: 1.0)
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

impl PresetArgs {
    /// Loads the preset, applies the overrides, refuses a field the model does not use, and
    /// refuses a net too big for the memory available.
    pub fn load(&self) -> Result<Experiment> {
        let experiment = load_experiment(&self.preset, &self.overrides)?;
        check_fits(
            std::slice::from_ref(&experiment),
            self.base_dir().as_deref(),
        )?;
        Ok(experiment)
    }

    /// The folder relative CSV paths are resolved against: the preset file's own.
    pub fn base_dir(&self) -> Option<PathBuf> {
        base_dir_of(&self.preset)
    }
}

/// Loads `preset`, applies `overrides`, and refuses an override the model ignores.
fn load_experiment(preset: &str, overrides: &[String]) -> Result<Experiment> {
    let base = load_preset(preset)?;
    let experiment = crate::config::apply_overrides(&base, overrides)?;
    check_overrides_apply(&experiment, overrides)?;
    crate::config::check_task_fits_model(&experiment)?;
    Ok(experiment)
}

/// The folder relative CSV paths of the preset `name_or_path` are resolved against.
fn base_dir_of(name_or_path: &str) -> Option<PathBuf> {
    let path = Path::new(name_or_path);
    path.exists()
        .then(|| path.parent().map(Path::to_path_buf))
        .flatten()
}

/// Dashboard options.
#[derive(Debug, Args, Clone)]
pub struct UiArgs {
    /// Most redraws per second (lower it over slow links).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Draw with ASCII only, for terminals without Unicode block characters.
    #[arg(long)]
    pub ascii: bool,
}

/// Where a run is recorded, and what to do when that file exists.
#[derive(Debug, Args, Clone, Default)]
pub struct RecordArgs {
    /// Write a recording (JSON Lines) of the run to this file; an existing file is refused
    /// unless --force or --append says what to do with it.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Replace an existing output file (--record, --cast, --save-weights, --checkpoint).
    #[arg(long)]
    pub force: bool,
    /// Add this session to an existing --record file as its next run(s).
    #[arg(long, conflicts_with = "force", requires = "record")]
    pub append: bool,
}

impl RecordArgs {
    /// Opens the recording asked for, if any, under the no-overwrite rule.
    pub fn open(
        &self,
        header: &crate::recording::Header,
    ) -> Result<Option<crate::recording::Recorder>> {
        self.record
            .as_deref()
            .map(|path| {
                crate::recording::writer::open_for_record(path, self.force, self.append, header)
            })
            .transpose()
    }
}

/// Options of the live dashboard.
#[derive(Debug, Args, Clone, Default)]
pub struct DashArgs {
    #[command(flatten)]
    pub recording: RecordArgs,
    /// Write an asciicast v2 file of the terminal session (play it with `asciinema play`).
    #[arg(long, value_name = "FILE")]
    pub cast: Option<PathBuf>,
    /// Start from the weights in this safetensors file (names and shapes must fit the
    /// preset; a reset goes back to them). `w` saves the net as it stands to a fresh file.
    #[arg(long, value_name = "FILE")]
    pub load_weights: Option<PathBuf>,
}

/// Arguments of `gradlab presets`.
#[derive(Debug, Args)]
struct PresetsArgs {
    /// Print this preset's RON (a built-in name or a .ron file), e.g. to save and edit:
    /// `gradlab presets --show plain-deep > mine.ron`.
    #[arg(long, value_name = "NAME")]
    show: Option<String>,
}

/// Arguments of `gradlab replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// The recording to show.
    file: PathBuf,
    /// Watch a recording another process is still writing, like `tail -f`; q detaches.
    #[arg(long)]
    follow: bool,
    /// Write an asciicast v2 file of the replay session.
    #[arg(long, value_name = "FILE")]
    cast: Option<PathBuf>,
    #[command(flatten)]
    ui: UiArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    preset: PresetArgs,
    /// Updates to apply (0 measures the network at initialisation without updating).
    #[arg(long)]
    steps: Option<u64>,
    /// Print one JSON object with the final metrics on stdout.
    #[arg(long)]
    json: bool,
    /// Random paths per length for the path-length decomposition in --json (Veit's M).
    #[arg(long, default_value_t = crate::report::DEFAULT_PATH_SAMPLES as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    path_samples: u64,
    /// Training rows the path decomposition runs on.
    #[arg(long, default_value_t = crate::report::DEFAULT_PATH_ROWS as u64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    path_rows: u64,
    /// Leave the path decomposition out of --json.
    #[arg(long)]
    no_paths: bool,
    /// After training, evaluate the test set with each block removed in turn.
    #[arg(long)]
    lesion: bool,
    /// After training, remove K blocks at once for each K listed (e.g. 1,2,4,8), each averaged
    /// over 8 fixed block subsets, scored on the training and test splits (in --json).
    #[arg(long, value_name = "K,...", value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    lesion_sizes: Vec<u64>,
    #[command(flatten)]
    recording: RecordArgs,
    #[command(flatten)]
    weights: weights::WeightsArgs,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Commands::Compare(args)) => compare::run(args),
        Some(Commands::Sweep(args)) => sweep::run(args),
        Some(Commands::Presets(args)) => match &args.show {
            Some(name) => show_preset(name),
            None => list_presets(),
        },
        Some(Commands::Tour(args)) => tour::run(args),
        Some(Commands::Run(args)) => headless::run(
            &args.preset,
            args.steps,
            &headless::Output {
                json: args.json,
                // The value parsers bound both, so the conversions cannot truncate.
                paths: (!args.no_paths)
                    .then_some((args.path_rows as usize, args.path_samples as usize)),
                lesion: args.lesion,
                lesion_sizes: args.lesion_sizes.iter().map(|&k| k as usize).collect(),
            },
            &args.recording,
            &args.weights,
        ),
        Some(Commands::Reproduce(args)) => recordings::reproduce(args),
        Some(Commands::Export(args)) => recordings::export(args),
        Some(Commands::Plot(args)) => recordings::plot(args),
        Some(Commands::Bench(args)) => bench(args),
        Some(Commands::Replay(args)) => {
            tui::replay(&args.file, args.follow, &args.ui, args.cast.as_deref())
        }
        Some(Commands::Tui(args)) => tui::run(&args.preset, &args.ui, &args.dash),
        None => tui::run(
            &cli.dashboard.preset,
            &cli.dashboard.ui,
            &cli.dashboard.dash,
        ),
    };
    // A late stdout failure (a flush at exit) is reported like any other.
    let result = result.and_then(|code| out::flush().map(|()| code).map_err(Into::into));
    match result {
        Ok(code) => code,
        Err(error) => exit_for(&error),
    }
}

/// The exit status and stderr line for a command that failed.
fn exit_for(error: &anyhow::Error) -> ExitCode {
    match error.downcast_ref::<StdoutError>() {
        // The reader has all it wanted; saying so would only clutter the terminal.
        Some(e) if e.is_broken_pipe() => ExitCode::from(EXIT_BROKEN_PIPE),
        Some(e) => {
            tell!("gradlab: {e}");
            ExitCode::from(EXIT_OUTPUT_FAILED)
        }
        None => {
            tell!("gradlab: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn list_presets() -> Result<ExitCode> {
    let width = builtin_presets()
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    for preset in builtin_presets() {
        let experiment = crate::config::parse_preset(preset.source, preset.name)?;
        say!("{:width$}  {}", preset.name, experiment.description)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a preset's RON as written (built-in or file), after checking it parses.
fn show_preset(name: &str) -> Result<ExitCode> {
    let source = match builtin_presets().iter().find(|p| p.name == name) {
        Some(preset) => preset.source.to_string(),
        None => {
            // Reports a missing file or an unknown name with the list of built-ins.
            load_preset(name)?;
            std::fs::read_to_string(name)
                .map_err(|e| anyhow::anyhow!("cannot read preset file {name}: {e}"))?
        }
    };
    crate::config::parse_preset(&source, name)?;
    say!("{}", source.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &BenchArgs) -> Result<ExitCode> {
    if !args.dashboard.is_empty() {
        return overhead::dashboard_overhead(
            &args.dashboard,
            std::time::Duration::from_secs_f64(args.seconds),
            usize::from(args.pairs),
            args.json,
        );
    }
    let plan = crate::bench::BenchPlan {
        depths: args.depths.iter().map(|&d| usize::from(d)).collect(),
        lengths: args.lengths.iter().copied().filter(|&l| l > 0).collect(),
        min_time: std::time::Duration::from_secs_f64(args.seconds),
        ..Default::default()
    };
    // The deep vanishing row comes with the default depths (a chosen list is measured alone).
    let mut plan = plan;
    if plan.depths != crate::bench::BenchPlan::default().depths {
        plan.deep.clear();
    }
    // Every configuration is timed with metrics on and off.
    let configurations = 2
        * (plan.models.len() * plan.depths.len()
            + plan.deep.len()
            + crate::config::CellKind::ALL.len() * plan.lengths.len());
    tell!(
        "bench: {configurations} configurations of at least {} s each, about {:.0} s",
        args.seconds,
        configurations as f64 * args.seconds
    );
    if !args.json {
        say!(
            "{:<10} {:>12} {:>5} {:>5} {:>8} {:>12} {:>5} {:>7}",
            "model",
            "depth/length",
            "width",
            "batch",
            "metrics",
            "steps/s",
            "cores",
            "%peak"
        )?;
    }
    let mut measured = 0;
    let results = crate::bench::run(&plan, |r| {
        measured += 1;
        if args.json {
            // The JSON comes at the end; until then stderr shows the bench is alive.
            tell!(
                "[{measured}/{configurations}] {} {} metrics {}: {:.1} steps/s",
                r.model,
                size_label(r),
                if r.metrics { "on" } else { "off" },
                r.steps_per_sec
            );
        } else {
            say!(
                "{:<10} {:>12} {:>5} {:>5} {:>8} {:>12.1} {:>5} {:>6.1}%",
                r.model,
                size_label(r),
                r.width,
                r.batch,
                if r.metrics { "on" } else { "off" },
                r.steps_per_sec,
                r.cores,
                100.0 * r.fraction_of_peak
            )?;
        }
        Ok(())
    })?;
    let mut results = results;
    if let (false, Some(first)) = (args.json, results.first()) {
        say!(
            "f32 peak: {:.1} GFLOP/s per core (best 512³ product); %peak = the rows' products over peak × cores",
            first.peak_gflops
        )?;
    }
    if !args.no_peers {
        run_peers(&plan, &mut results, args.json)?;
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&results)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// "depth 8" or "T 50": the size column of the bench tables.
fn size_label(r: &crate::bench::BenchResult) -> String {
    r.depth
        .map(|d| format!("depth {d}"))
        .or(r.length.map(|t| format!("T {t}")))
        .unwrap_or_default()
}

/// Runs the PyTorch and JAX references that are installed and prints gradlab against them.
fn run_peers(
    plan: &crate::bench::BenchPlan,
    results: &mut [crate::bench::BenchResult],
    quiet: bool,
) -> Result<()> {
    use crate::bench::peers::{PEER_SCRIPTS, has_python_module, peers_dir, run_peer};
    let Some(dir) = peers_dir() else {
        tell!("note: benches/peers not found; no PyTorch/JAX comparison");
        return Ok(());
    };
    let mut any = false;
    for script in PEER_SCRIPTS {
        let sizes = if script.recurrent {
            &plan.lengths
        } else {
            &plan.depths
        };
        if sizes.is_empty() {
            continue;
        }
        if !has_python_module(script.module) {
            tell!(
                "note: python3 cannot import {0}; `pip install {0}` to compare",
                script.module
            );
            continue;
        }
        match run_peer(&dir, script, sizes, plan.min_time.as_secs_f64()) {
            Ok(peers) => {
                any = true;
                for peer in &peers {
                    results.iter_mut().for_each(|r| r.attach(peer));
                }
            }
            Err(error) => tell!("note: {error:#}"),
        }
    }
    if !plan.deep.is_empty() && has_python_module("jax") {
        match crate::bench::peers::run_deep_peer(&dir, &plan.deep) {
            Ok(peers) => {
                any = true;
                for peer in &peers {
                    results.iter_mut().for_each(|r| r.attach(peer));
                }
            }
            Err(error) => tell!("note: {error:#}"),
        }
    }
    if !any || quiet {
        return Ok(());
    }
    say!()?;
    say!(
        "{:<10} {:>12} {:>8} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "model",
        "depth/length",
        "metrics",
        "gradlab",
        "pytorch",
        "jax",
        "×pytorch",
        "×jax"
    )?;
    let cell =
        |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
    for r in results
        .iter()
        .filter(|r| r.torch_steps_per_sec.or(r.jax_steps_per_sec).is_some())
    {
        say!(
            "{:<10} {:>12} {:>8} {:>10.1} {:>10} {:>10} {:>9} {:>9}",
            r.model,
            size_label(r),
            if r.metrics { "on" } else { "off" },
            r.steps_per_sec,
            cell(r.torch_steps_per_sec, 1),
            cell(r.jax_steps_per_sec, 1),
            cell(r.ratio_torch, 2),
            cell(r.ratio_jax, 2),
        )?;
    }
    Ok(())
}
