//! Running a sweep's jobs in parallel, resuming, and collecting their results.
//!
//! Each job writes `OUT/<id>.jsonl` (its recording) and `OUT/<id>.json` (exactly what
//! `gradlab run --json` prints for it). A job whose result file reads back is finished, so an
//! interrupted sweep, or one whose jobs a scheduler ran from `--list`, resumes where it was.

use super::{Sweep, SweepJob};
use crate::learner::build_learner;
use crate::parallel::for_each_dealt;
use crate::protocol::Event;
use crate::recording::runs::Checked;
use crate::recording::writer::{Tee, WriterLock};
use crate::recording::{Header, Recorder};
use crate::report::{Analyses, RunReport, build_report};
use crate::trainer::{LastSnapshot, run_headless_until};
use anyhow::{Context, Result, anyhow};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where job `id`'s result JSON goes.
pub fn result_path(out: &Path, id: &str) -> PathBuf {
    out.join(format!("{id}.json"))
}

/// Where job `id`'s recording goes.
pub fn recording_path(out: &Path, id: &str) -> PathBuf {
    out.join(format!("{id}.jsonl"))
}

/// A finished job's report, or None when its result file is missing or torn.
pub fn read_result(out: &Path, id: &str) -> Option<RunReport> {
    let text = std::fs::read_to_string(result_path(out, id)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Indices of the jobs without a readable result file.
pub fn pending_jobs(sweep: &Sweep) -> Vec<usize> {
    (0..sweep.jobs.len())
        .filter(|&i| read_result(&sweep.file.out, &sweep.jobs[i].id).is_none())
        .collect()
}

/// What the sweep reports as it goes.
#[derive(Debug)]
pub enum SweepProgress {
    /// Job `index` finished after `seconds`.
    Finished {
        /// Index into `Sweep::jobs`.
        index: usize,
        /// Wall-clock time of the job.
        seconds: f64,
        /// Its report.
        report: Box<RunReport>,
    },
    /// Job `index` failed; the others go on.
    Failed {
        /// Index into `Sweep::jobs`.
        index: usize,
        /// Why.
        error: String,
    },
    /// Job `index` was not run: another process (a second sweep on the same folder, or a
    /// scheduler's `gradlab run` from `--list`) is writing its recording.
    Busy {
        /// Index into `Sweep::jobs`.
        index: usize,
        /// The message naming the file.
        reason: String,
    },
    /// Job `index` was not run: another process finished it after this sweep started.
    DoneElsewhere {
        /// Index into `Sweep::jobs`.
        index: usize,
    },
}

/// How one job ended in this process.
#[derive(Debug)]
pub enum JobOutcome {
    /// Trained and its result written.
    Finished(Box<RunReport>),
    /// Stopped by a signal between two steps; its recording says so, no result written.
    Stopped,
    /// Another process holds the job's recording (the message names it); nothing touched.
    Busy(String),
    /// Another process wrote the job's result after this sweep started; nothing touched.
    DoneElsewhere,
}

/// Runs the pending jobs on up to `threads` threads; `progress` is called on the calling
/// thread as jobs end. Once `stop` is set, running jobs end between two steps (their
/// recordings closed as interrupted, no result written) and no new job starts.
pub fn run_jobs(
    sweep: &Sweep,
    pending: &[usize],
    threads: usize,
    stop: &AtomicBool,
    mut progress: impl FnMut(SweepProgress),
) -> Result<()> {
    std::fs::create_dir_all(&sweep.file.out)
        .with_context(|| format!("cannot create {}", sweep.file.out.display()))?;
    let mut jobs = pending.to_vec();
    // Jobs running side by side share the machine: each gets its part of the cores.
    let side_by_side = threads.clamp(1, jobs.len().max(1));
    let job_threads = crate::parallel::threads_per_run(crate::parallel::cores(), side_by_side);
    let work = |&mut index: &mut usize| {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let started = Instant::now();
        match run_job(sweep, &sweep.jobs[index], stop, job_threads) {
            Ok(JobOutcome::Finished(report)) => Some(SweepProgress::Finished {
                index,
                seconds: started.elapsed().as_secs_f64(),
                report,
            }),
            Ok(JobOutcome::Stopped) => None,
            Ok(JobOutcome::Busy(reason)) => Some(SweepProgress::Busy { index, reason }),
            Ok(JobOutcome::DoneElsewhere) => Some(SweepProgress::DoneElsewhere { index }),
            Err(error) => Some(SweepProgress::Failed {
                index,
                error: format!("{error:#}"),
            }),
        }
    };
    for_each_dealt("sweep", &mut jobs, threads, work, |_, message| {
        if let Some(message) = message {
            progress(message);
        }
    })
}

/// Trains one job on up to `threads` threads, recording it, and writes its result file;
/// leaves it alone when another process is running or has finished it.
pub fn run_job(
    sweep: &Sweep,
    job: &SweepJob,
    stop: &AtomicBool,
    threads: usize,
) -> Result<JobOutcome> {
    let out = &sweep.file.out;
    let steps = sweep.file.steps;
    let experiment = sweep.experiment(job)?;
    let record = recording_path(out, &job.id);
    let lock = match WriterLock::take(&record) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => {
            return Ok(JobOutcome::Busy(e.to_string()));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot record to {}", record.display()));
        }
    };
    // Asked again under the lock, which the process that finished the job held while it
    // wrote the result: a job finished since this sweep listed its pending ones is kept.
    if read_result(out, &job.id).is_some() {
        return Ok(JobOutcome::DoneElsewhere);
    }
    // Held until the result is written, after the recorder has closed its own handle.
    let _held = lock
        .duplicate()
        .with_context(|| format!("cannot record to {}", record.display()))?;
    let mut recorder = Recorder::create_locked(lock, &Header::new(&experiment, Some(steps)))
        .with_context(|| format!("cannot record to {}", record.display()))?;
    let mut learner = build_learner(experiment, sweep.base_dir.as_deref())?;
    let mut last = LastSnapshot::default();
    let finished = {
        let mut tee = Tee(&mut recorder, &mut last);
        run_headless_until(learner.as_mut(), steps, &[], &mut tee, stop, threads)
    };
    if stop.load(Ordering::Relaxed) && finished.is_none() {
        recorder
            .end("SIGINT")
            .and_then(|()| recorder.close())
            .with_context(|| format!("cannot write {}", record.display()))?;
        return Ok(JobOutcome::Stopped);
    }
    let reason = if finished.is_some() {
        "finished"
    } else {
        "diverged"
    };
    recorder
        .end(reason)
        .and_then(|()| recorder.close())
        .with_context(|| format!("cannot write {}", record.display()))?;
    let snapshot = finished
        .or(last.0)
        .ok_or_else(|| anyhow!("{}: the run produced no measurement", job.id))?;
    let analyses = Analyses {
        lesion_sizes: sweep.file.lesion_sizes.clone(),
        ..Analyses::standard(sweep.file.lesion)
    };
    let report = build_report(learner.as_mut(), snapshot, &analyses);
    write_result(out, &job.id, &report)?;
    Ok(JobOutcome::Finished(Box::new(report)))
}

/// Writes the result as `gradlab run --json` prints it, via a temporary file and a rename,
/// so a result file that exists is complete.
fn write_result(out: &Path, id: &str, report: &RunReport) -> Result<()> {
    let path = result_path(out, id);
    let partial = out.join(format!("{id}.json.partial"));
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    writeln!(file, "{}", serde_json::to_string(report)?)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &path)
        .with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(())
}

/// Mean training-batch loss over the last `fraction` of a job's recorded steps: a steadier
/// measure of training loss than the final batch alone (None without a readable recording).
pub fn tail_loss(out: &Path, id: &str, fraction: f64) -> Option<f64> {
    // The same bad-line policy as export and plot: each named once, a count at the end.
    let mut reading = Checked::open(&recording_path(out, id), true).ok()?;
    let steps = reading.header().steps? as f64;
    let from = steps * (1.0 - fraction);
    let (mut sum, mut n) = (0.0, 0usize);
    for line in reading.by_ref().map_while(Result::ok) {
        if let Event::Snapshot(s) = line.event
            && (s.step as f64) >= from
            && s.loss.is_finite()
        {
            sum += s.loss;
            n += 1;
        }
    }
    if let Some(summary) = reading.damage().summary() {
        crate::out::tell!("gradlab: {summary}");
    }
    (n > 0).then(|| sum / n as f64)
}

/// One `gradlab run` command line per job, for a scheduler; running it writes the same
/// result and recording files the sweep would.
pub fn list_commands(sweep: &Sweep, program: &str) -> Vec<String> {
    let out = &sweep.file.out;
    sweep
        .jobs
        .iter()
        .map(|job| {
            let mut args: Vec<String> = vec![
                program.into(),
                "run".into(),
                "--preset".into(),
                sweep.base_preset.clone(),
            ];
            for assignment in sweep.file.set.iter().chain(&job.overrides) {
                args.push("--set".into());
                args.push(assignment.clone());
            }
            args.extend([
                "--steps".into(),
                sweep.file.steps.to_string(),
                "--json".into(),
            ]);
            if sweep.file.lesion {
                args.push("--lesion".into());
            }
            if !sweep.file.lesion_sizes.is_empty() {
                let sizes: Vec<String> = sweep
                    .file
                    .lesion_sizes
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                args.push("--lesion-sizes".into());
                args.push(sizes.join(","));
            }
            args.push("--record".into());
            args.push(recording_path(out, &job.id).display().to_string());
            let mut line: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
            line.push(">".into());
            line.push(shell_quote(
                &result_path(out, &job.id).display().to_string(),
            ));
            line.join(" ")
        })
        .collect()
}

/// Quotes for POSIX shells when needed.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
