//! Sweeps: a grid over preset fields, expanded into independent jobs (`gradlab sweep`).
//!
//! A sweep file names a base experiment, overrides for all runs, a grid of `--set` values and
//! a step budget:
//!
//! ```ron
//! Sweep(
//!     base: Preset("plain-deep"),          // or Inline(Experiment(...))
//!     set: ["task.points=600"],            // applied to every run, before the grid
//!     grid: {
//!         "model.depth": ["10", "50"],
//!         "model.skip": ["Plain", "Highway"],
//!     },
//!     steps: 300,
//!     out: "results/highway",             // relative to the working directory
//!     select: BestOver("optimizer.lr"),    // optional: see [`select`]
//!     lesion: true,                        // optional: single-block lesions
//!     lesion_sizes: [1, 2, 4, 8],          // optional: k blocks removed at once
//! )
//! ```
//!
//! With `select: BestOver(PATH)` the table shows, per combination of the other axes, only
//! the value of PATH whose runs reach the lowest training loss averaged over seeds.
//!
//! The grid expands to the cartesian product in file order, the first axis varying slowest.
//! A job's id is made of its values alone, so it stays the same when axes gain values and a
//! resumed sweep finds the results it already has.

pub mod run;
pub mod select;

use crate::config::{
    Experiment, apply_overrides, builtin_presets, check_overrides_apply, check_task_fits_model,
    estimate_bytes, load_preset,
};
use anyhow::{Context, Result, anyhow, bail};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};

pub use select::Select;

/// Where a sweep's base experiment comes from.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub enum BaseSpec {
    /// A built-in preset name or a `.ron` path (relative to the sweep file's folder).
    Preset(String),
    /// The experiment written out in the sweep file.
    Inline(Box<Experiment>),
}

/// One axis of the grid: a dotted preset path and the RON values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The `--set` path, e.g. `model.depth`.
    pub path: String,
    /// The values, as RON text, e.g. `"Residual(scale: 1.0)"`.
    pub values: Vec<String>,
}

/// The grid in file order (a map would sort the axes and change the job order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grid(pub Vec<Axis>);

impl<'de> Deserialize<'de> for Grid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GridVisitor;
        impl<'de> Visitor<'de> for GridVisitor {
            type Value = Grid;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a map from field paths to lists of values, e.g. {"model.depth": ["10", "20"]}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Grid, A::Error> {
                let mut axes: Vec<Axis> = Vec::new();
                while let Some((path, values)) = map.next_entry::<String, Vec<String>>()? {
                    // A second entry would silently multiply the grid by itself.
                    if axes.iter().any(|a| a.path.trim() == path.trim()) {
                        return Err(serde::de::Error::custom(format!(
                            "the grid has `{path}` twice; give each field one list of values"
                        )));
                    }
                    axes.push(Axis { path, values });
                }
                Ok(Grid(axes))
            }
        }
        deserializer.deserialize_map(GridVisitor)
    }
}

/// A sweep file as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename = "Sweep")]
pub struct SweepFile {
    /// The experiment every job starts from.
    pub base: BaseSpec,
    /// `PATH=VALUE` overrides applied to every job before its grid values.
    #[serde(default)]
    pub set: Vec<String>,
    /// The axes; every combination is one job.
    pub grid: Grid,
    /// Updates per job.
    pub steps: u64,
    /// Folder for recordings, result files and `results.csv`.
    pub out: PathBuf,
    /// Also evaluate single-block lesions after training.
    #[serde(default)]
    pub lesion: bool,
    /// Numbers of blocks to remove at once after training (Veit's second experiment), e.g.
    /// `[1, 2, 4, 8]`; each is averaged over the same fixed, seeded block subsets in every job
    /// of a depth ([`crate::report::lesion_subsets`]) and scored on both splits.
    #[serde(default)]
    pub lesion_sizes: Vec<usize>,
    /// Report, per cell, only the best value of one axis (chosen on training loss); written
    /// `select: BestOver("optimizer.lr")`, without RON's `Some(…)`.
    #[serde(default, deserialize_with = "some_select")]
    pub select: Option<Select>,
}

fn some_select<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Select>, D::Error> {
    Select::deserialize(d).map(Some)
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepJob {
    /// File-name-safe id made of the grid values, e.g. `depth-10__skip-Plain__seed-1`.
    pub id: String,
    /// The grid's `PATH=VALUE` assignments for this job, in axis order.
    pub overrides: Vec<String>,
    /// The grid values alone, in axis order (the CSV's axis columns).
    pub values: Vec<String>,
}

/// A loaded sweep: the file, its base experiment, and its jobs.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The file as written.
    pub file: SweepFile,
    /// The base experiment with the common `set` applied.
    pub base: Experiment,
    /// What `gradlab run --preset` should be given to rebuild the base (before `set`).
    pub base_preset: String,
    /// Folder relative CSV task paths are resolved against.
    pub base_dir: Option<PathBuf>,
    /// Every combination of the grid, first axis slowest.
    pub jobs: Vec<SweepJob>,
    /// The job needing the most memory (by [`crate::config::estimate_bytes`]), to check that
    /// as many of it as run at once fit.
    pub largest: Experiment,
}

/// Most jobs a sweep file may expand to: beyond this a typo (an axis of a thousand values)
/// is likelier than intent, and the expansion alone would take a while; split bigger sweeps.
pub const MAX_JOBS: u64 = 100_000;

impl Sweep {
    /// The experiment job `job` runs.
    pub fn experiment(&self, job: &SweepJob) -> Result<Experiment> {
        apply_overrides(&self.base, &job.overrides)
    }

    /// Short names for the axes: the last path segment, or the whole path where two collide.
    pub fn axis_names(&self) -> Vec<String> {
        axis_names(&self.file.grid)
    }

    /// Index of the `seed` axis, whose runs the table averages over.
    pub fn seed_axis(&self) -> Option<usize> {
        self.file
            .grid
            .0
            .iter()
            .position(|a| a.path.trim() == "seed")
    }

    /// Index of the axis `select` chooses a value of (checked to exist when loaded).
    pub fn select_axis(&self) -> Option<usize> {
        let select = self.file.select.as_ref()?;
        self.file
            .grid
            .0
            .iter()
            .position(|a| a.path.trim() == select.path().trim())
    }
}

fn axis_names(grid: &Grid) -> Vec<String> {
    let last = |a: &Axis| a.path.rsplit('.').next().unwrap_or(&a.path).to_string();
    grid.0
        .iter()
        .map(|axis| {
            let short = last(axis);
            let clashes = grid.0.iter().filter(|a| last(a) == short).count() > 1;
            if clashes { axis.path.clone() } else { short }
        })
        .collect()
}

/// Reads and checks a sweep file; errors name the file, line and column.
pub fn load_sweep(path: &Path) -> Result<Sweep> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sweep file {}", path.display()))?;
    parse_sweep(&source, path)
}

/// Parses sweep text; `path` names it in errors and anchors a relative base preset path.
pub fn parse_sweep(source: &str, path: &Path) -> Result<Sweep> {
    let origin = path.display().to_string();
    let file: SweepFile = ron::Options::default().from_str(source).map_err(|e| {
        anyhow!(
            "{origin}:{}:{}: {}",
            e.span.start.line,
            e.span.start.col,
            e.code
        )
    })?;
    let at = |needle: &str| match position_of(source, needle) {
        Some((line, col)) => format!("{origin}:{line}:{col}"),
        None => origin.clone(),
    };
    let folder = path.parent().unwrap_or(Path::new(""));
    let (base, base_preset, base_dir) = match &file.base {
        BaseSpec::Preset(name) => {
            let builtin = builtin_presets().iter().any(|p| p.name == name);
            let resolved = if builtin || Path::new(name).is_absolute() {
                name.clone()
            } else {
                folder.join(name).display().to_string()
            };
            let experiment =
                load_preset(&resolved).map_err(|e| anyhow!("{}: base preset: {e:#}", at(name)))?;
            let dir = (!builtin)
                .then(|| Path::new(&resolved).parent().map(Path::to_path_buf))
                .flatten();
            (experiment, resolved, dir)
        }
        BaseSpec::Inline(experiment) => (
            (**experiment).clone(),
            file.out.join("base.ron").display().to_string(),
            Some(folder.to_path_buf()),
        ),
    };
    let base = apply_overrides(&base, &file.set).map_err(|e| anyhow!("{}: {e:#}", at("set")))?;
    if file.grid.0.is_empty() {
        bail!("{}: the grid has no axes", at("grid"));
    }
    for axis in &file.grid.0 {
        if axis.values.is_empty() {
            bail!("{}: `{}` has no values", at(&axis.path), axis.path);
        }
    }
    if file.lesion_sizes.contains(&0) {
        bail!(
            "{}: lesion_sizes lists 0; each size is a number of blocks to remove, at least 1",
            at("lesion_sizes")
        );
    }
    if let Some(select) = &file.select {
        let path = select.path().trim();
        let paths: Vec<&str> = file.grid.0.iter().map(|a| a.path.trim()).collect();
        if path == "seed" {
            bail!(
                "{}: select cannot choose over `seed`: every seed of a cell must use the same \
                 value, and the table averages over seeds",
                at("select")
            );
        }
        if !paths.contains(&path) {
            bail!(
                "{}: select names `{path}`, which is not an axis of the grid (the axes are {})",
                at("select"),
                paths.join(", ")
            );
        }
    }
    // Counted before expanding, so a grid of millions is refused at once, not after the
    // expansion has used the memory.
    let count = file
        .grid
        .0
        .iter()
        .try_fold(1u64, |n, axis| n.checked_mul(axis.values.len() as u64))
        .unwrap_or(u64::MAX);
    if count > MAX_JOBS {
        let sizes: Vec<String> = file
            .grid
            .0
            .iter()
            .map(|a| format!("{} {}", a.values.len(), a.path))
            .collect();
        bail!(
            "{}: the grid expands to {count} jobs ({}), more than the {MAX_JOBS} a sweep takes; \
             split it into several sweep files",
            at("grid"),
            sizes.join(" × ")
        );
    }
    // Each value alone first, so a typo is reported at its own line and column.
    for axis in &file.grid.0 {
        for value in &axis.values {
            let assignment = format!("{}={value}", axis.path);
            apply_overrides(&base, std::slice::from_ref(&assignment))
                .map_err(|e| anyhow!("{}: {e:#}", at(&format!("\"{value}\""))))?;
        }
    }
    let jobs = expand(&file.grid);
    let mut seen = std::collections::HashSet::new();
    for job in &jobs {
        if !seen.insert(job.id.as_str()) {
            bail!(
                "{origin}: two jobs get the id `{}`; make the grid values differ in letters or digits",
                job.id
            );
        }
    }
    let largest = check_combinations(&base, &file.set, &jobs, &origin)?;
    Ok(Sweep {
        file,
        base,
        base_preset,
        base_dir,
        jobs,
        largest,
    })
}

/// Builds every job's whole experiment before any runs, so a combination that cannot work
/// (a recurrent cell with an MLP task, a field the job's model ignores) fails now and not
/// hours into the sweep; says how far it got on stderr when this takes more than two seconds.
/// Returns the job needing the most memory.
fn check_combinations(
    base: &Experiment,
    set: &[String],
    jobs: &[SweepJob],
    origin: &str,
) -> Result<Experiment> {
    let started = std::time::Instant::now();
    let mut reported = 2;
    let mut largest: Option<(u64, Experiment)> = None;
    for (done, job) in jobs.iter().enumerate() {
        let explain = |e: anyhow::Error| {
            anyhow!(
                "{origin}: job {} ({}) cannot run: {e:#}",
                job.id,
                job.overrides.join(", ")
            )
        };
        let experiment = apply_overrides(base, &job.overrides).map_err(explain)?;
        let every: Vec<String> = set.iter().chain(&job.overrides).cloned().collect();
        check_overrides_apply(&experiment, &every).map_err(explain)?;
        check_task_fits_model(&experiment).map_err(explain)?;
        let bytes = estimate_bytes(&experiment);
        if largest.as_ref().is_none_or(|(b, _)| bytes > *b) {
            largest = Some((bytes, experiment));
        }
        let elapsed = started.elapsed().as_secs();
        if elapsed >= reported {
            crate::out::tell!(
                "checking the grid: {}/{} jobs, {elapsed} s",
                done + 1,
                jobs.len()
            );
            reported = elapsed + 5;
        }
    }
    largest
        .map(|(_, e)| e)
        .ok_or_else(|| anyhow!("{origin}: the grid has no jobs"))
}

/// The cartesian product of the axes, first axis slowest.
pub fn expand(grid: &Grid) -> Vec<SweepJob> {
    let names = axis_names(grid);
    let mut jobs = vec![SweepJob {
        id: String::new(),
        overrides: Vec::new(),
        values: Vec::new(),
    }];
    for (axis, name) in grid.0.iter().zip(&names) {
        jobs = jobs
            .into_iter()
            .flat_map(|job| {
                axis.values.iter().map(move |value| {
                    let mut next = job.clone();
                    let part = format!("{}-{}", slug(name), slug(value));
                    next.id = if next.id.is_empty() {
                        part
                    } else {
                        format!("{}__{part}", next.id)
                    };
                    next.overrides.push(format!("{}={value}", axis.path));
                    next.values.push(value.clone());
                    next
                })
            })
            .collect();
    }
    jobs
}

/// Letters, digits, `.`, `+` and `-` kept; every other run of characters becomes one `_`
/// (ids join axes with `__`, so trailing separators are dropped).
fn slug(text: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// Line and column (1-based) of the first occurrence of `needle` in `source`.
fn position_of(source: &str, needle: &str) -> Option<(usize, usize)> {
    let offset = source.find(needle)?;
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, col))
}

/// Cores to use by default: what the OS reports, at least one.
pub use crate::parallel::cores;
