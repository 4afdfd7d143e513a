//! `gradlab compare` and `gradlab sweep`: lock-step determinism, grid expansion, resume and
//! the `--list` commands.

use gradlab::compare::{CompareEntry, run_compare};
use gradlab::config::{Experiment, apply_overrides, load_preset};
use gradlab::model::MlpParams;
use gradlab::model::Trainer;
use gradlab::recording::writer::WriterLock;
use gradlab::report::Analyses;
use gradlab::sweep::run::{
    SweepProgress, list_commands, pending_jobs, read_result, recording_path, result_path, run_jobs,
};
use gradlab::sweep::{load_sweep, parse_sweep};
use gradlab::trainer::{VecSink, run_headless};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

fn preset(name: &str, sets: &[&str]) -> Experiment {
    let base = load_preset(name).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    apply_overrides(&base, &sets).expect("valid overrides")
}

fn all_weights(params: &mut MlpParams) -> Vec<Vec<f32>> {
    params.values()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const SMALL: &[&str] = &["model.depth=6", "model.width=16", "task.points=200"];

#[test]
fn same_seed_and_shape_give_the_same_initial_weights_whatever_the_skip_mode() {
    let mut plain = Trainer::new(preset("plain-deep", SMALL), None).expect("builds");
    let mut residual = Trainer::new(preset("residual-deep", SMALL), None).expect("builds");
    assert_eq!(
        all_weights(plain.params_mut()),
        all_weights(residual.params_mut())
    );
}

#[test]
fn each_run_in_a_comparison_equals_the_same_run_alone() {
    let names = ["plain-deep", "residual-deep", "highway-deep"];
    let entries: Vec<CompareEntry> = names
        .iter()
        .map(|name| CompareEntry {
            label: name.to_string(),
            experiment: preset(name, SMALL),
            base_dir: None,
        })
        .collect();
    let steps = 30;
    let runs = run_compare(&entries, steps, 2, &Analyses::standard(false)).expect("compare");
    for (entry, run) in entries.iter().zip(&runs) {
        let mut alone = Trainer::new(entry.experiment.clone(), None).expect("builds");
        let last = run_headless(&mut alone, steps, &[], &mut VecSink::default()).expect("final");
        assert_eq!(run.report.snapshot, last, "{} differs", entry.label);
    }
    // Different skip modes, same data stream: the runs must not be copies of each other.
    assert_ne!(runs[0].report.snapshot.loss, runs[1].report.snapshot.loss);
}

const GRID: &str = r#"Sweep(
    base: Preset("plain-deep"),
    set: ["model.width=8", "task.points=120", "test_every=5"],
    grid: {
        "model.depth": ["2", "3"],
        "model.skip": ["Plain", "Highway"],
        "seed": ["1", "2"],
    },
    steps: 5,
    out: "OUT",
    lesion_sizes: [1, 2],
)"#;

#[test]
fn the_grid_expands_to_the_cartesian_product_first_axis_slowest() {
    let sweep = parse_sweep(GRID, Path::new("grid.ron")).expect("parses");
    let ids: Vec<&str> = sweep.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "depth-2__skip-Plain__seed-1",
            "depth-2__skip-Plain__seed-2",
            "depth-2__skip-Highway__seed-1",
            "depth-2__skip-Highway__seed-2",
            "depth-3__skip-Plain__seed-1",
            "depth-3__skip-Plain__seed-2",
            "depth-3__skip-Highway__seed-1",
            "depth-3__skip-Highway__seed-2",
        ]
    );
    assert_eq!(
        sweep.jobs[2].overrides,
        ["model.depth=2", "model.skip=Highway", "seed=1"]
    );
    let experiment = sweep.experiment(&sweep.jobs[7]).expect("applies");
    assert_eq!(experiment.model.depth, 3);
    assert_eq!(experiment.model.width, 8);
    assert_eq!(experiment.seed, 2);
    // Ids depend on values only: adding a value to an axis keeps the others' ids.
    let grown = parse_sweep(
        &GRID.replace(r#"["2", "3"]"#, r#"["2", "3", "4"]"#),
        Path::new("grid.ron"),
    )
    .expect("parses");
    for job in &sweep.jobs {
        assert!(
            grown
                .jobs
                .iter()
                .any(|g| g.id == job.id && g.overrides == job.overrides)
        );
    }
}

#[test]
fn bad_sweep_files_name_the_file_line_and_column() {
    let typo = GRID.replace("steps: 5", "stepz: 5");
    let error = parse_sweep(&typo, Path::new("bad.ron")).expect_err("unknown field");
    assert!(error.to_string().starts_with("bad.ron:9:5:"), "{error}");
    let value = GRID.replace("\"Plain\"", "\"Plane\"");
    let error = parse_sweep(&value, Path::new("bad.ron")).expect_err("bad value");
    assert!(error.to_string().starts_with("bad.ron:6:24:"), "{error}");
    assert!(error.to_string().contains("Plane"), "{error}");
    let zero = GRID.replace("lesion_sizes: [1, 2]", "lesion_sizes: [0, 2]");
    let error = parse_sweep(&zero, Path::new("bad.ron")).expect_err("no blocks removed");
    assert!(error.to_string().starts_with("bad.ron:11:5:"), "{error}");
    let missing = load_sweep(Path::new("no/such/sweep.ron")).expect_err("missing file");
    assert!(
        missing.to_string().contains("no/such/sweep.ron"),
        "{missing}"
    );
}

#[test]
fn a_resumed_sweep_runs_only_the_jobs_without_a_result() {
    let dir = scratch("resume");
    let mut sweep = parse_sweep(GRID, Path::new("grid.ron")).expect("parses");
    sweep.file.out = dir.clone();
    let stop = AtomicBool::new(false);
    let all: Vec<usize> = (0..sweep.jobs.len()).collect();
    assert_eq!(pending_jobs(&sweep), all);
    let mut finished = Vec::new();
    run_jobs(&sweep, &all, 2, &stop, |p| finished.push(p)).expect("runs");
    assert_eq!(finished.len(), 8);
    assert!(pending_jobs(&sweep).is_empty());
    // A missing and a torn result file both count as unfinished.
    std::fs::remove_file(result_path(&dir, &sweep.jobs[1].id)).expect("remove");
    std::fs::write(result_path(&dir, &sweep.jobs[6].id), "{\"preset\": ").expect("tear");
    assert_eq!(pending_jobs(&sweep), [1, 6]);
    let before = std::fs::read_to_string(result_path(&dir, &sweep.jobs[0].id)).expect("read");
    let mut rerun = Vec::new();
    run_jobs(&sweep, &pending_jobs(&sweep), 2, &stop, |p| rerun.push(p)).expect("runs");
    assert_eq!(rerun.len(), 2);
    assert!(pending_jobs(&sweep).is_empty());
    let after = std::fs::read_to_string(result_path(&dir, &sweep.jobs[0].id)).expect("read");
    assert_eq!(before, after);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sweep_leaves_alone_a_job_another_process_is_writing_or_has_finished() {
    let dir = scratch("sweep-busy");
    let mut sweep = parse_sweep(GRID, Path::new("grid.ron")).expect("parses");
    sweep.file.out = dir.clone();
    let stop = AtomicBool::new(false);
    // Another sweep on the same folder finished job 1 after this one listed its pending jobs.
    run_jobs(&sweep, &[1], 1, &stop, |_| {}).expect("runs");
    let done_elsewhere = [
        std::fs::read(recording_path(&dir, &sweep.jobs[1].id)).expect("recording"),
        std::fs::read(result_path(&dir, &sweep.jobs[1].id)).expect("result"),
    ];
    // A scheduler's `gradlab run --record` is writing job 0.
    let busy = recording_path(&dir, &sweep.jobs[0].id);
    std::fs::write(&busy, "{\"being\": \"written\"}\n").expect("write");
    let held = WriterLock::take(&busy).expect("lock");

    let mut progress = Vec::new();
    run_jobs(&sweep, &[0, 1, 2], 2, &stop, |p| progress.push(p)).expect("runs");
    let mut saw = [false; 3];
    for p in &progress {
        match p {
            SweepProgress::Busy { index: 0, reason } => {
                assert!(
                    reason.contains(&sweep.jobs[0].id)
                        && reason.contains("another gradlab process"),
                    "{reason}"
                );
                saw[0] = true;
            }
            SweepProgress::DoneElsewhere { index: 1 } => saw[1] = true,
            SweepProgress::Finished { index: 2, .. } => saw[2] = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(saw, [true; 3], "{progress:?}");
    assert_eq!(
        std::fs::read_to_string(&busy).expect("read"),
        "{\"being\": \"written\"}\n",
        "the busy recording is untouched"
    );
    assert!(read_result(&dir, &sweep.jobs[0].id).is_none());
    assert_eq!(
        [
            std::fs::read(recording_path(&dir, &sweep.jobs[1].id)).expect("recording"),
            std::fs::read(result_path(&dir, &sweep.jobs[1].id)).expect("result"),
        ],
        done_elsewhere,
        "the job finished elsewhere keeps its recording and result"
    );

    // Once the other writer has gone, the job runs.
    drop(held);
    assert_eq!(pending_jobs(&sweep)[0], 0);
    let mut rerun = Vec::new();
    run_jobs(&sweep, &[0], 1, &stop, |p| rerun.push(p)).expect("runs");
    assert!(matches!(
        rerun[..],
        [SweepProgress::Finished { index: 0, .. }]
    ));
    assert!(read_result(&dir, &sweep.jobs[0].id).is_some());
}

#[test]
fn listed_commands_run_and_give_the_sweeps_results() {
    let dir = scratch("list");
    let file = dir.join("grid.ron");
    let out = dir.join("out");
    std::fs::write(
        &file,
        GRID.replace("\"OUT\"", &format!("{:?}", out.display().to_string())),
    )
    .expect("write sweep");
    let binary = env!("CARGO_BIN_EXE_gradlab");
    let listed = std::process::Command::new(binary)
        .args(["sweep", "--list"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let text = String::from_utf8(listed.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    let sweep = load_sweep(&file).expect("loads");
    assert_eq!(lines, list_commands(&sweep, "gradlab"));
    // Run two jobs the way a scheduler would, then the sweep, which must find them done.
    for line in &lines[..2] {
        let command = line.replacen("gradlab", binary, 1);
        let status = std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
            .expect("sh runs");
        assert!(status.success(), "{command}");
    }
    assert_eq!(pending_jobs(&sweep), (2..8).collect::<Vec<_>>());
    let by_hand: Vec<String> = sweep.jobs[..2]
        .iter()
        .map(|j| std::fs::read_to_string(result_path(&out, &j.id)).expect("result"))
        .collect();
    let stop = AtomicBool::new(false);
    run_jobs(&sweep, &[0, 1], 1, &stop, |_| {}).expect("sweep runs the same jobs");
    for (job, hand) in sweep.jobs[..2].iter().zip(&by_hand) {
        let swept = std::fs::read_to_string(result_path(&out, &job.id)).expect("result");
        assert_eq!(&swept, hand, "{}", job.id);
        assert!(read_result(&out, &job.id).is_some());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_shipped_sweep_parses_and_expands_to_its_grid() {
    let mut checked = 0;
    for entry in std::fs::read_dir("sweeps").expect("sweeps/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "ron") {
            continue;
        }
        let sweep = load_sweep(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let product: usize = sweep.file.grid.0.iter().map(|a| a.values.len()).product();
        assert_eq!(sweep.jobs.len(), product, "{}", path.display());
        for job in &sweep.jobs {
            sweep
                .experiment(job)
                .unwrap_or_else(|e| panic!("{} {}: {e:#}", path.display(), job.id));
        }
        if let Some(select) = &sweep.file.select {
            assert!(sweep.select_axis().is_some(), "{}", select.path());
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} sweeps found");
}

/// Two depths × three learning rates × two seeds, lesions on: small enough to run in seconds.
const SELECT: &str = r#"Sweep(
    base: Preset("plain-deep"),
    set: ["model.width=8", "task.points=200", "test_every=5", "optimizer=Adam(lr: 0.01)"],
    grid: {
        "model.depth": ["2", "4"],
        "optimizer.lr": ["0.0001", "0.01", "0.1"],
        "seed": ["1", "2"],
    },
    steps: 40,
    out: "OUT",
    lesion: true,
    lesion_sizes: [1, 2, 8],
    select: BestOver("optimizer.lr"),
)"#;

#[test]
fn sweep_json_reports_per_cell_the_lr_with_the_lowest_mean_training_loss() {
    let dir = scratch("select");
    let file = dir.join("select.ron");
    let out = dir.join("out");
    std::fs::write(
        &file,
        SELECT.replace("\"OUT\"", &format!("{:?}", out.display().to_string())),
    )
    .expect("write sweep");
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args(["sweep", "--json", "--threads", "2"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&result.stdout).expect("JSON array");
    assert_eq!(rows.len(), 2, "one row per depth");
    let sweep = load_sweep(&file).expect("loads");
    // Independently of the sweep's code: each job's result file, the final network's loss on
    // the whole training split averaged over the seeds, the lowest per depth.
    let score = |job: &gradlab::sweep::SweepJob| {
        let report = read_result(&out, &job.id).expect("result");
        let scores = report.final_scores.expect("MLP runs have final scores");
        (scores.train_loss, scores.test_loss)
    };
    let mut lowest_test_differs = false;
    for (row, depth) in rows.iter().zip(["2", "4"]) {
        let object = row.as_object().expect("object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "best_lr",
                "candidate_train_loss",
                "diverged",
                "intact_test_accuracy",
                "intact_train_accuracy",
                "lesion_k1_test_accuracy",
                "lesion_k1_train_accuracy",
                "lesion_k2_test_accuracy",
                "lesion_k2_train_accuracy",
                "lesion_k8_test_accuracy",
                "lesion_k8_train_accuracy",
                "lesion_mean_test_accuracy",
                "lesion_mean_train_accuracy",
                "model.depth",
                "runs",
                "select",
                "tail_loss",
                "test_accuracy",
                "test_accuracy_max",
                "test_accuracy_min",
                "test_loss",
                "train_accuracy",
                "train_loss",
                "train_loss_max",
                "train_loss_min",
            ]
        );
        assert_eq!(row["model.depth"], depth);
        assert_eq!(row["runs"], 2);
        let mean = |lr: &str, pick: fn((f64, f64)) -> f64| {
            let runs: Vec<f64> = sweep
                .jobs
                .iter()
                .filter(|j| j.values[0] == depth && j.values[1] == lr)
                .map(|j| pick(score(j)))
                .collect();
            assert_eq!(runs.len(), 2);
            runs.iter().sum::<f64>() / 2.0
        };
        let lrs = ["0.0001", "0.01", "0.1"];
        let by = |pick: fn((f64, f64)) -> f64| {
            lrs.iter()
                .copied()
                .min_by(|a, b| mean(a, pick).total_cmp(&mean(b, pick)))
                .expect("three")
        };
        let best = by(|s| s.0);
        lowest_test_differs |= best != by(|s| s.1);
        assert_eq!(
            row["best_lr"],
            best.parse::<f64>().expect("number"),
            "{row}"
        );
        let reported = row["train_loss"].as_f64().expect("number");
        assert!((reported - mean(best, |s| s.0)).abs() < 1e-12, "{row}");
        for lr in lrs {
            let candidate = row["candidate_train_loss"][lr].as_f64().expect("number");
            assert!((candidate - mean(lr, |s| s.0)).abs() < 1e-12);
        }
        let (lo, hi) = (
            row["train_loss_min"].as_f64().expect("min"),
            row["train_loss_max"].as_f64().expect("max"),
        );
        assert!(lo <= reported && reported <= hi && lo < hi, "{row}");
        for key in [
            "train_accuracy",
            "intact_train_accuracy",
            "lesion_mean_train_accuracy",
            "lesion_mean_test_accuracy",
        ] {
            let v = row[key].as_f64().unwrap_or_else(|| panic!("{key}: {row}"));
            assert!((0.0..=1.0).contains(&v), "{key}: {row}");
        }
        assert_eq!(row["train_accuracy"], row["intact_train_accuracy"]);
        assert_eq!(row["test_accuracy"], row["intact_test_accuracy"]);
        // k blocks at once: the mean over the chosen lr's seeds of each run's mean over its
        // subsets, read back from the result files; k = 8 exceeds both depths, so null.
        for k in [1usize, 2] {
            for (split, pick) in [
                (
                    "train",
                    (|l: &gradlab::report::SizedLesion| l.train_accuracy) as fn(&_) -> _,
                ),
                ("test", |l: &gradlab::report::SizedLesion| l.test_accuracy),
            ] {
                let runs: Vec<f64> = sweep
                    .jobs
                    .iter()
                    .filter(|j| j.values[0] == depth && j.values[1] == best)
                    .map(|j| {
                        let report = read_result(&out, &j.id).expect("result");
                        let sized = report.lesion_sizes.expect("lesion sizes");
                        let entry = sized.iter().find(|l| l.k == k).expect("size k");
                        assert_eq!(entry.subsets.len(), gradlab::report::LESION_SUBSETS);
                        pick(entry).expect("classification")
                    })
                    .collect();
                let expected = runs.iter().sum::<f64>() / runs.len() as f64;
                let key = format!("lesion_k{k}_{split}_accuracy");
                let reported = row[&key].as_f64().unwrap_or_else(|| panic!("{key}: {row}"));
                assert!((reported - expected).abs() < 1e-12, "{key}: {row}");
            }
        }
        assert!(row["lesion_k8_test_accuracy"].is_null(), "{row}");
    }
    // Not required for the check above, but says whether this grid tells the two rules apart.
    eprintln!("selection on test loss would differ somewhere: {lowest_test_differs}");
    let _ = std::fs::remove_dir_all(&dir);
}
