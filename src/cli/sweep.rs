//! `gradlab sweep FILE.ron`: run a grid of experiments, or `--list` them for a scheduler.

use super::compare::report_cells;
use super::headless::{signal_name, watch_signals};
use crate::out::{say, tell};
use crate::report::RunReport;
use crate::sweep::run::{
    SweepProgress, list_commands, pending_jobs, read_result, run_jobs, tail_loss,
};
use crate::sweep::select::{Cell, cells};
use crate::sweep::{BaseSpec, Sweep, load_sweep};
use anyhow::{Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

pub use crate::sweep::cores;

/// Options of `gradlab sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep file (RON).
    file: PathBuf,
    /// Print one `gradlab run` command per job instead of running them.
    #[arg(long)]
    list: bool,
    /// Jobs to run at once, at least 1 (default: the number of cores).
    #[arg(long, value_parser = thread_count)]
    threads: Option<usize>,
    /// Write to this folder instead of the file's `out`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the table's rows as one JSON array instead of the table.
    #[arg(long, conflicts_with = "list")]
    json: bool,
}

/// Fraction of the run the `tail loss` column averages the training loss over.
const TAIL: f64 = 0.1;

/// `--threads`: a whole number of threads, at least one.
pub(crate) fn thread_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a thread count: expected 1 to 4096"
        )),
    }
}

/// Runs (or lists) the sweep, then prints the table and writes `results.csv`.
pub fn run(args: &SweepArgs) -> Result<ExitCode> {
    let mut sweep = load_sweep(&args.file)?;
    if let Some(out) = &args.out {
        if let BaseSpec::Inline(_) = sweep.file.base {
            sweep.base_preset = out.join("base.ron").display().to_string();
        }
        sweep.file.out = out.clone();
    }
    let out = sweep.file.out.clone();
    if args.list {
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        if let BaseSpec::Inline(experiment) = &sweep.file.base {
            // Jobs run by a scheduler need the base as a file they can pass to --preset.
            let text = ron::ser::to_string_pretty(experiment, ron::ser::PrettyConfig::default())?;
            std::fs::write(&sweep.base_preset, text)
                .with_context(|| format!("cannot write {}", sweep.base_preset))?;
        }
        for line in list_commands(&sweep, "gradlab") {
            say!("{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pending = pending_jobs(&sweep);
    let threads = args.threads.unwrap_or_else(cores);
    // Jobs run `threads` at a time, so that many of the largest must fit together.
    crate::config::check_fits(
        &vec![sweep.largest.clone(); threads.min(pending.len().max(1))],
        sweep.base_dir.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e:#}", args.file.display()))?;
    let total = sweep.jobs.len();
    tell!(
        "sweep {}: {total} jobs, {} finished earlier, running {} on {} thread(s), {} steps each → {}",
        args.file.display(),
        total - pending.len(),
        pending.len(),
        threads.min(pending.len().max(1)),
        sweep.file.steps,
        out.display()
    );
    let signal = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(&signal, &stop)?;
    let started = Instant::now();
    let (mut done, mut failed, mut busy, mut elsewhere) = (0usize, 0usize, 0usize, 0usize);
    run_jobs(&sweep, &pending, threads, &stop, |message| match message {
        SweepProgress::Finished {
            index,
            seconds,
            report,
        } => {
            done += 1;
            let settled = done + failed + busy + elsewhere;
            let [loss, _, test, db, _, _, _] = report_cells(&report);
            let elapsed = started.elapsed().as_secs_f64();
            let left = pending.len() - settled;
            let eta = elapsed / settled as f64 * left as f64;
            tell!(
                "[{:>3}/{}] {}  loss {loss}  test {test} %  {db} dB  {seconds:.1} s  eta {eta:.0} s",
                settled,
                pending.len(),
                sweep.jobs[index].id
            );
        }
        SweepProgress::Failed { index, error } => {
            failed += 1;
            tell!("[failed] {}: {error}", sweep.jobs[index].id);
        }
        SweepProgress::Busy { index, reason } => {
            busy += 1;
            tell!("[busy] {}: {reason}", sweep.jobs[index].id);
        }
        SweepProgress::DoneElsewhere { index } => {
            elsewhere += 1;
            tell!(
                "[done elsewhere] {}: another process finished it meanwhile; its result is kept",
                sweep.jobs[index].id
            );
        }
    })?;
    let caught = signal.load(Ordering::Relaxed);
    if caught != 0 {
        tell!(
            "gradlab: sweep stopped by {}; {done} job(s) finished this time; run the same command to resume",
            signal_name(caught)
        );
        return Ok(ExitCode::from(128 + caught as u8));
    }
    tell!(
        "{done} job(s) in {:.1} s{}",
        started.elapsed().as_secs_f64(),
        [
            (failed, "failed"),
            (
                busy,
                "busy in another process, not run: run this command again once it has finished"
            ),
            (elsewhere, "finished by another process")
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!(", {n} {what}"))
        .collect::<String>()
    );
    let rows = collect(&sweep);
    let csv = out.join("results.csv");
    std::fs::write(&csv, results_csv(&sweep.axis_names(), &rows)?)
        .with_context(|| format!("cannot write {}", csv.display()))?;
    tell!("wrote {}", csv.display());
    // After the CSV, so the results are on disk even when stdout's reader has gone away.
    let table = table_cells(&sweep, &rows);
    if args.json {
        say!(
            "{}",
            serde_json::to_string(&json_rows(&sweep, &rows, &table))?
        )?;
    } else {
        print_table(&sweep, &rows, &table)?;
    }
    Ok(if failed > 0 || rows.iter().any(|r| r.report.is_none()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One job's line in the table and CSV.
struct Row {
    values: Vec<String>,
    id: String,
    report: Option<RunReport>,
    tail_loss: Option<f64>,
}

fn collect(sweep: &Sweep) -> Vec<Row> {
    let out = &sweep.file.out;
    sweep
        .jobs
        .iter()
        .map(|job| {
            let report = read_result(out, &job.id);
            // Without a result the recording is unfinished (interrupted, or still being
            // written by another process): its tail is not the run's.
            let tail_loss = report.as_ref().and_then(|_| tail_loss(out, &job.id, TAIL));
            Row {
                values: job.values.clone(),
                id: job.id.clone(),
                report,
                tail_loss,
            }
        })
        .collect()
}

/// Mean test accuracy over single-block lesions, where lesions were measured.
fn lesion_mean(report: &RunReport) -> Option<f64> {
    let lesion = report.lesion.as_ref()?;
    let accs: Vec<f64> = lesion.iter().filter_map(|l| l.test_accuracy).collect();
    (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64)
}

/// Mean training accuracy over single-block lesions, where lesions were measured.
fn lesion_mean_train(report: &RunReport) -> Option<f64> {
    let lesion = report.lesion_train.as_ref()?;
    let accs: Vec<f64> = lesion.iter().filter_map(|l| l.train_accuracy).collect();
    (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64)
}

/// Training and test accuracy with `k` blocks removed at once (means over the subsets), where
/// that size was measured.
fn sized_lesion(report: &RunReport, k: usize) -> Option<(Option<f64>, Option<f64>)> {
    let sized = report.lesion_sizes.as_ref()?.iter().find(|l| l.k == k)?;
    Some((sized.train_accuracy, sized.test_accuracy))
}

/// The training loss a selection compares: the final network's loss on the whole training
/// split, or for a run without one (a recurrent net) the tail loss; None when the job has no
/// result or diverged, so a value that diverged on any seed is never chosen.
fn train_loss(row: &Row) -> Option<f64> {
    let report = row.report.as_ref()?;
    if report.snapshot.diverged {
        return None;
    }
    let loss = match &report.final_scores {
        Some(scores) => scores.train_loss,
        None => row.tail_loss.unwrap_or(report.snapshot.loss),
    };
    loss.is_finite().then_some(loss)
}

/// The table's rows: runs grouped over seeds and, with `select`, the chosen value per cell.
fn table_cells(sweep: &Sweep, rows: &[Row]) -> Vec<Cell> {
    let values: Vec<Vec<String>> = rows.iter().map(|r| r.values.clone()).collect();
    let losses: Vec<Option<f64>> = rows.iter().map(train_loss).collect();
    cells(&values, &losses, sweep.seed_axis(), sweep.select_axis())
}

/// `--json`: one object per table row. Axis values are keyed by their `--set` path; every
/// number is a mean over the row's runs (its seeds) of the final network's scores on the
/// whole split, accuracies as fractions; `_min`/`_max` give the spread over seeds.
fn json_rows(sweep: &Sweep, rows: &[Row], table: &[Cell]) -> Vec<serde_json::Value> {
    use serde_json::{Map, Value, json};
    let shown: Vec<&str> = sweep
        .file
        .grid
        .0
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != sweep.seed_axis() && Some(*i) != sweep.select_axis())
        .map(|(_, a)| a.path.trim())
        .collect();
    let num = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or(Value::Null, |v| json!(v))
    };
    table
        .iter()
        .map(|cell| {
            let members: Vec<&Row> = cell.members.iter().map(|&i| &rows[i]).collect();
            let reports: Vec<&RunReport> =
                members.iter().filter_map(|r| r.report.as_ref()).collect();
            let stats = |f: &dyn Fn(&Row) -> Option<f64>| {
                let v: Vec<f64> = members
                    .iter()
                    .filter_map(|r| f(r))
                    .filter(|v| v.is_finite())
                    .collect();
                let mean = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
                let min = v.iter().copied().reduce(f64::min);
                let max = v.iter().copied().reduce(f64::max);
                (mean, min, max)
            };
            let scores = |f: fn(&crate::report::FinalScores) -> Option<f64>| {
                move |r: &Row| r.report.as_ref()?.final_scores.as_ref().and_then(f)
            };
            let mut object = Map::new();
            for (path, value) in shown.iter().zip(&cell.key) {
                object.insert(path.to_string(), Value::String(value.clone()));
            }
            object.insert("runs".into(), json!(reports.len()));
            let diverged = reports.iter().filter(|r| r.snapshot.diverged).count();
            object.insert("diverged".into(), json!(diverged));
            let (loss, loss_min, loss_max) = stats(&train_loss);
            object.insert("train_loss".into(), num(loss));
            object.insert("train_loss_min".into(), num(loss_min));
            object.insert("train_loss_max".into(), num(loss_max));
            object.insert("tail_loss".into(), num(stats(&|r| r.tail_loss).0));
            let train_acc = stats(&scores(|s| s.train_accuracy)).0;
            object.insert("train_accuracy".into(), num(train_acc));
            let test = |r: &Row| {
                let report = r.report.as_ref()?;
                match &report.final_scores {
                    Some(scores) => scores.test_accuracy,
                    None => report.snapshot.test_accuracy,
                }
            };
            let (test_acc, test_min, test_max) = stats(&test);
            object.insert("test_accuracy".into(), num(test_acc));
            object.insert("test_accuracy_min".into(), num(test_min));
            object.insert("test_accuracy_max".into(), num(test_max));
            object.insert(
                "test_loss".into(),
                num(stats(&scores(|s| Some(s.test_loss))).0),
            );
            if let Some(select) = &sweep.file.select {
                object.insert("select".into(), json!(select.path()));
                // A learning rate reads back as a number; another axis's value stays text.
                let best = cell.chosen.as_ref().map_or(Value::Null, |v| {
                    v.trim()
                        .parse::<f64>()
                        .map_or_else(|_| Value::String(v.clone()), |n| json!(n))
                });
                object.insert("best_lr".into(), best);
                let candidates: Map<String, Value> = cell
                    .candidates
                    .iter()
                    .map(|c| (c.value.clone(), num(c.mean_train_loss)))
                    .collect();
                object.insert("candidate_train_loss".into(), Value::Object(candidates));
            }
            if sweep.file.lesion || !sweep.file.lesion_sizes.is_empty() {
                let intact_train = stats(&scores(|s| s.train_accuracy)).0;
                let intact_test = stats(&scores(|s| s.test_accuracy)).0;
                object.insert("intact_train_accuracy".into(), num(intact_train));
                object.insert("intact_test_accuracy".into(), num(intact_test));
            }
            if sweep.file.lesion {
                let lesion_train = stats(&|r| lesion_mean_train(r.report.as_ref()?)).0;
                let lesion_test = stats(&|r| lesion_mean(r.report.as_ref()?)).0;
                object.insert("lesion_mean_train_accuracy".into(), num(lesion_train));
                object.insert("lesion_mean_test_accuracy".into(), num(lesion_test));
            }
            // One pair of columns per size, named by it: `lesion_k4_test_accuracy` is the
            // test accuracy with 4 blocks removed, averaged over the subsets and the seeds.
            for &k in &sweep.file.lesion_sizes {
                let train = stats(&|r| sized_lesion(r.report.as_ref()?, k)?.0).0;
                let test = stats(&|r| sized_lesion(r.report.as_ref()?, k)?.1).0;
                object.insert(format!("lesion_k{k}_train_accuracy"), num(train));
                object.insert(format!("lesion_k{k}_test_accuracy"), num(test));
            }
            Value::Object(object)
        })
        .collect()
}

/// Numbers of one row, for averaging: tail loss, test acc, dB, gain per layer (dB), χ₁ fitted
/// over the middle layers, path lo, path hi, lesion.
fn numbers(row: &Row) -> Option<[Option<f64>; 8]> {
    let report = row.report.as_ref()?;
    let s = &report.snapshot;
    let finite = |v: f64| v.is_finite().then_some(v);
    let range = report.paths.as_ref().map(|p| p.effective_range);
    Some([
        row.tail_loss.or(finite(s.loss)),
        s.test_accuracy.map(|a| 100.0 * a),
        finite(s.grad_ratio_db),
        finite(super::compare::gain_per_layer(s)),
        finite(s.measured_chi1),
        range.map(|r| r[0] as f64),
        range.map(|r| r[1] as f64),
        lesion_mean(report).map(|a| 100.0 * a),
    ])
}

fn print_table(sweep: &Sweep, rows: &[Row], table: &[Cell]) -> Result<()> {
    let names = sweep.axis_names();
    let seed_axis = sweep.seed_axis();
    let select_axis = sweep.select_axis();
    let lesion = sweep.file.lesion;
    // Averaging over seeds is what the papers' curves show; single runs follow in the CSV.
    let groups: Vec<(&Vec<String>, Vec<&Row>, &Cell)> = table
        .iter()
        .map(|cell| {
            let members = cell.members.iter().map(|&i| &rows[i]).collect();
            (&cell.key, members, cell)
        })
        .collect();
    let shown: Vec<&String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != seed_axis && Some(*i) != select_axis)
        .map(|(_, n)| n)
        .collect();
    let mut header = String::new();
    for name in &shown {
        let _ = write!(header, "| {name} ");
    }
    header.push_str(
        "| runs | train loss | test acc % | dB first/last | gain per layer (dB) | χ₁ mid | Veit paths 90 % |",
    );
    let sizes = &sweep.file.lesion_sizes;
    if lesion || !sizes.is_empty() {
        header.push_str(" intact acc % train/test |");
    }
    if lesion {
        header.push_str(" one block out, acc % train/test |");
    }
    for k in sizes {
        let _ = write!(header, " {k} out, acc % train/test |");
    }
    if let Some(axis) = select_axis {
        let _ = write!(
            header,
            " best {} (train) | whole-train loss, seeds min–max |",
            names[axis]
        );
    }
    say!("{header}")?;
    say!(
        "{}",
        header
            .chars()
            .map(|c| if c == '|' { '|' } else { '-' })
            .collect::<String>()
    )?;
    for (key, members, cell) in &groups {
        let measured: Vec<[Option<f64>; 8]> = members.iter().filter_map(|r| numbers(r)).collect();
        let diverged = members
            .iter()
            .filter(|r| r.report.as_ref().is_some_and(|r| r.snapshot.diverged))
            .count();
        let mean = |i: usize| {
            let v: Vec<f64> = measured.iter().filter_map(|n| n[i]).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let show =
            |v: Option<f64>, digits: usize| v.map_or("n/a".into(), |v| format!("{v:.digits$}"));
        let mut line = String::new();
        for value in key.iter() {
            let _ = write!(line, "| {value} ");
        }
        let runs = if diverged > 0 {
            format!("{} ({diverged} diverged)", measured.len())
        } else {
            measured.len().to_string()
        };
        let _ = write!(
            line,
            "| {runs} | {} | {} | {} | {} | {} | {}–{} |",
            show(mean(0), 4),
            show(mean(1), 1),
            show(mean(2), 1),
            show(mean(3), 2),
            show(mean(4), 3),
            show(mean(5), 1),
            show(mean(6), 1)
        );
        // Accuracies in per cent, each averaged over the row's runs.
        let percent = |f: &dyn Fn(&RunReport) -> Option<f64>| {
            let v: Vec<f64> = members
                .iter()
                .filter_map(|r| f(r.report.as_ref()?))
                .filter(|v| v.is_finite())
                .collect();
            (!v.is_empty()).then(|| 100.0 * v.iter().sum::<f64>() / v.len() as f64)
        };
        let pair = |train: Option<f64>, test: Option<f64>| {
            format!(" {} / {} |", show(train, 1), show(test, 1))
        };
        if lesion || !sizes.is_empty() {
            line.push_str(&pair(
                percent(&|r| r.final_scores.as_ref()?.train_accuracy),
                percent(&|r| r.final_scores.as_ref()?.test_accuracy),
            ));
        }
        if lesion {
            line.push_str(&pair(percent(&lesion_mean_train), mean(7)));
        }
        for &k in sizes {
            line.push_str(&pair(
                percent(&|r| sized_lesion(r, k)?.0),
                percent(&|r| sized_lesion(r, k)?.1),
            ));
        }
        if select_axis.is_some() {
            let losses: Vec<f64> = members.iter().filter_map(|r| train_loss(r)).collect();
            let spread = match (
                losses.iter().copied().reduce(f64::min),
                losses.iter().copied().reduce(f64::max),
            ) {
                (Some(lo), Some(hi)) => format!("{lo:.4}–{hi:.4}"),
                _ => "n/a".into(),
            };
            let chosen = cell.chosen.as_deref().unwrap_or("none finished");
            let _ = write!(line, " {chosen} | {spread} |");
        }
        say!("{line}")?;
    }
    let missing = rows.iter().filter(|r| r.report.is_none()).count();
    if missing > 0 {
        say!("({missing} job(s) without a result)")?;
    }
    say!(
        "dB first/last: batch Frobenius norms of the mean loss's gradient (they scale as 1/√B) · \
         gain per layer: dB first/last ÷ (layers − 1) · χ₁ mid: exp(−slope) of ln ‖∂L/∂h_l‖² \
         over the middle half of the layers (first and last quarter left out) · Veit paths 90 %: \
         the lengths holding 90 % of Veit's profile C(n,k)·E‖g_path‖ (a magnitude, not a share)"
    )?;
    Ok(())
}

/// Columns after the id and the axis values.
/// `measured_chi1` is the middle-layer fit (`metrics::middle_fit_chi1`); `gain_per_layer_db`
/// is grad_ratio_db ÷ (layers − 1). New columns go at the end so existing readers keep working.
const RESULT_COLUMNS: [&str; 14] = [
    "step",
    "loss",
    "tail_loss",
    "train_accuracy",
    "test_accuracy",
    "test_loss",
    "grad_ratio_db",
    "measured_chi1",
    "path_lo",
    "path_hi",
    "path_mean",
    "diverged",
    "lesion_mean_test_accuracy",
    "gain_per_layer_db",
];

/// `results.csv`: one line per job, its axis values as written in the sweep file (RON values
/// such as `Residual(scale: 1.0)` contain commas and quotes, which the writer quotes).
fn results_csv(axis_names: &[String], rows: &[Row]) -> Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = std::iter::once("id")
        .chain(axis_names.iter().map(String::as_str))
        .chain(RESULT_COLUMNS);
    out.write_record(header)?;
    // Not-a-number and infinities are left empty, which spreadsheets read as missing.
    let num = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or(String::new(), |v| v.to_string())
    };
    for row in rows {
        let results: [String; 14] = match &row.report {
            Some(report) => {
                let s = &report.snapshot;
                let paths = report.paths.as_ref();
                [
                    s.step.to_string(),
                    num(Some(s.loss)),
                    num(row.tail_loss),
                    num(s.train_accuracy),
                    num(s.test_accuracy),
                    num(s.test_loss),
                    num(Some(s.grad_ratio_db)),
                    num(Some(s.measured_chi1)),
                    paths.map_or(String::new(), |p| p.effective_range[0].to_string()),
                    paths.map_or(String::new(), |p| p.effective_range[1].to_string()),
                    num(paths.map(|p| p.mean_length)),
                    s.diverged.to_string(),
                    num(lesion_mean(report)),
                    num(Some(super::compare::gain_per_layer(s))),
                ]
            }
            None => Default::default(),
        };
        let record = std::iter::once(&row.id).chain(&row.values).chain(&results);
        out.write_record(record)?;
    }
    Ok(out.into_inner().map_err(|e| e.into_error())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_and_quotes_round_trip_through_a_csv_reader() {
        let axes = vec!["skip".to_string(), "odd, \"name\"".to_string()];
        let rows = [
            Row {
                values: vec![
                    "Residual(scale: 1.0)".into(),
                    "Csv(path: \"a,b.csv\")".into(),
                ],
                id: "skip-residual, \"x\"".into(),
                report: None,
                tail_loss: None,
            },
            Row {
                values: vec!["Plain".into(), "line\nbreak".into()],
                id: "plain".into(),
                report: None,
                tail_loss: None,
            },
        ];
        let text = results_csv(&axes, &rows).expect("writing to memory cannot fail");
        let mut reader = csv::Reader::from_reader(text.as_slice());
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(String::from)
            .collect();
        let mut expected = vec!["id".to_string()];
        expected.extend(axes.iter().cloned());
        expected.extend(RESULT_COLUMNS.iter().map(|c| c.to_string()));
        assert_eq!(header, expected);
        let records: Vec<csv::StringRecord> =
            reader.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(records.len(), rows.len());
        for (record, row) in records.iter().zip(&rows) {
            assert_eq!(record.len(), header.len());
            assert_eq!(&record[0], row.id);
            assert_eq!(&record[1], row.values[0]);
            assert_eq!(&record[2], row.values[1]);
            assert!(record.iter().skip(3).all(str::is_empty));
        }
    }
}
