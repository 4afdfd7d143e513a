//! Recordings with several runs (a reset, a loaded preset), recurrent recordings, and the one
//! bad-line policy, through the real `export`, `plot` and `reproduce` commands.

use crate::support::{fresh_in, gradlab};
use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::learner::build_learner;
use gradlab::protocol::{Command, Event};
use gradlab::recording::writer::Tee;
use gradlab::recording::{Header, Recorder, Recording, runs};
use gradlab::trainer::{MetricsSink, VecSink, run_headless};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    fresh_in("recording-runs-tests", name)
}

fn small(preset: &str, depth: usize) -> Experiment {
    let e = load_preset(preset).expect("built-in preset");
    apply_overrides(&e, &[format!("model.depth={depth}")]).expect("override")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `gradlab export <recording> --csv <csv> <extra>`, expected to succeed.
fn export(recording: &Path, csv: &Path, extra: &[&str]) {
    let (recording, csv) = (recording.display().to_string(), csv.display().to_string());
    let args = [
        &["export", recording.as_str(), "--csv", csv.as_str()],
        extra,
    ]
    .concat();
    let out = gradlab(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `gradlab plot <recording> --out <svg> <extra>`, expected to succeed; the figure drawn.
fn plot(recording: &Path, svg: &Path, extra: &[&str]) -> String {
    let (recording, out) = (recording.display().to_string(), svg.display().to_string());
    let args = [&["plot", recording.as_str(), "--out", out.as_str()], extra].concat();
    let out = gradlab(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::read_to_string(svg).expect("svg")
}

/// A one-run recording of `steps` steps of `experiment` at `path`.
fn record(path: &Path, experiment: &Experiment, steps: u64) {
    let mut trainer = build_learner(experiment.clone(), None).expect("trainer");
    let mut recorder =
        Recorder::create(path, &Header::new(experiment, Some(steps))).expect("recorder");
    run_headless(trainer.as_mut(), steps, &[], &mut recorder);
    recorder.close().expect("close");
}

/// Passes events on until a snapshot of `step` has gone through, then hangs up: a dashboard
/// run that the user reset at that point.
struct Until<'a> {
    inner: &'a mut dyn MetricsSink,
    step: u64,
}

impl MetricsSink for Until<'_> {
    fn send(&mut self, event: Event) -> bool {
        let last = matches!(&event, Event::Snapshot(s) if s.step >= self.step);
        self.inner.send(event) && !last
    }
}

/// What the dashboard records when `command` at `step` starts a new run of `next`.
fn new_run(recorder: &mut Recorder, step: u64, command: Command, next: &Experiment) {
    recorder
        .record(&Event::Applied { step, command })
        .expect("write");
    recorder
        .record(&Event::Started {
            preset: Box::new(next.clone()),
        })
        .expect("write");
}

/// A session of three runs as the dashboard records one: plain-deep with a switch, reset at
/// step 9; plain-deep again with aux losses switched on; then residual-deep loaded.
fn three_runs(path: &Path) -> [Experiment; 2] {
    let first = small("plain-deep", 4);
    let loaded = small("residual-deep", 6);
    let mut recorder = Recorder::create(path, &Header::new(&first, None)).expect("recorder");
    let mut trainer = build_learner(first.clone(), None).expect("trainer");
    let switch = [(4, Command::SetSkip(SkipMode::Residual { scale: 1.0 }))];
    let mut until = Until {
        inner: &mut recorder,
        step: 9,
    };
    run_headless(trainer.as_mut(), 1000, &switch, &mut until);
    new_run(&mut recorder, 9, Command::Reset, &first);
    let mut trainer = build_learner(first.clone(), None).expect("trainer");
    run_headless(
        trainer.as_mut(),
        8,
        &[(3, Command::SetAux(true))],
        &mut recorder,
    );
    new_run(
        &mut recorder,
        8,
        Command::LoadPreset(Box::new(loaded.clone())),
        &loaded,
    );
    let mut trainer = build_learner(loaded.clone(), None).expect("trainer");
    run_headless(trainer.as_mut(), 6, &[], &mut recorder);
    recorder.close().expect("close");
    [first, loaded]
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("row").iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[test]
fn runs_are_numbered_and_indexed_in_file_order() {
    let path = scratch("index.jsonl");
    three_runs(&path);
    let numbers: Vec<u32> = Recording::open(&path)
        .expect("opens")
        .map(|l| l.expect("line").run)
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] <= w[1]), "{numbers:?}");
    let index = runs::index(&path).expect("index");
    let summary: Vec<(u32, &str, u64, Option<u64>)> = index
        .runs
        .iter()
        .map(|r| (r.run, r.experiment.name.as_str(), r.last_step, r.finished))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "plain-deep", 9, None),
            (2, "plain-deep", 8, Some(8)),
            (3, "residual-deep", 6, Some(6))
        ]
    );
    assert_eq!(
        index.runs[0].schedule(),
        [(4, Command::SetSkip(SkipMode::Residual { scale: 1.0 }))],
        "the reset ends run 1 and is not part of its schedule"
    );
    assert_eq!(index.describe_runs(), "runs 1–3");
}

#[test]
fn export_keeps_runs_apart_with_a_leading_run_column() {
    let path = scratch("export-runs.jsonl");
    let csv = scratch("export-runs.csv");
    three_runs(&path);
    export(&path, &csv, &[]);
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header[0], "run");
    let run_of: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let count = |n: &str| run_of.iter().filter(|r| **r == n).count();
    // Run 1 measured steps 0..=9; runs 2 and 3 every step plus the final measurement.
    assert_eq!((count("1"), count("2"), count("3")), (10, 9, 7));
    assert!(
        run_of.windows(2).all(|w| w[0] <= w[1]),
        "rows of a run stay together"
    );
    // The widest run (6 layers) sets the columns; narrower runs leave them empty.
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let layer6 = col("layer6_act_grad_norm");
    for row in &rows {
        assert_eq!(row[layer6].is_empty(), row[0] != "3", "{row:?}");
    }
    // The last command does not leak from one run into the next.
    let last = col("last_command");
    let first_of_run2 = rows.iter().find(|r| r[0] == "2").expect("run 2");
    assert_eq!(first_of_run2[last], "");
    assert!(
        rows.iter()
            .any(|r| r[0] == "1" && r[last] == "skip → residual")
    );
    assert!(rows.iter().any(|r| r[0] == "2" && r[last] == "aux on"));

    let only = scratch("export-run2.csv");
    export(&path, &only, &["--run", "2"]);
    let (_, rows) = csv_rows(&only);
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| r[0] == "2"));
}

#[test]
fn a_missing_run_is_an_error_naming_the_file_and_its_runs() {
    let path = scratch("missing-run.jsonl");
    three_runs(&path);
    let file = path.display().to_string();
    let out_csv = scratch("missing-run.csv").display().to_string();
    let out_svg = scratch("missing-run.svg").display().to_string();
    for args in [
        vec!["export", &file, "--csv", &out_csv, "--run", "4"],
        vec!["plot", &file, "--out", &out_svg, "--run", "4"],
        vec!["reproduce", &file, "--run", "4"],
    ] {
        let out = gradlab(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(&file), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no run 4") && stderr.contains("runs 1–3"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!Path::new(&out_csv).exists() && !Path::new(&out_svg).exists());
    let zero = gradlab(&["reproduce", &file, "--run", "0"]);
    assert_eq!(zero.status.code(), Some(2), "runs are numbered from 1");
}

#[test]
fn plot_draws_one_band_per_run_titled_with_its_preset() {
    let path = scratch("plot-runs.jsonl");
    three_runs(&path);
    let svg = scratch("plot-runs.svg");
    let figure = plot(&path, &svg, &[]);
    let doc = roxmltree::Document::parse(&figure).expect("well-formed");
    for title in [
        "run 1 (plain-deep): loss",
        "run 2 (plain-deep): loss",
        "run 3 (residual-deep): loss",
    ] {
        assert!(figure.contains(title), "{title}");
    }
    let height: u32 = doc
        .root_element()
        .attribute("height")
        .and_then(|h| h.parse().ok())
        .expect("height");
    assert!(height >= 3 * 800, "three bands: {height}");

    let one = scratch("plot-run3.svg");
    let figure = plot(&path, &one, &["--run", "3"]);
    assert!(figure.contains("run 3 (residual-deep): loss"));
    assert!(!figure.contains("run 1 ("));
}

#[test]
fn reproduce_checks_each_run_and_reports_a_total() {
    let path = scratch("reproduce-runs.jsonl");
    three_runs(&path);
    let out = gradlab(&["reproduce", &path.display().to_string()]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    for line in [
        "run 1 (plain-deep): identical",
        "run 2 (plain-deep): identical",
        "run 3 (residual-deep): identical",
        "total: 3 runs, identical",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }

    // Tamper with one snapshot of run 2: only run 2 differs, and the exit status says so.
    let original = std::fs::read_to_string(&path).expect("text");
    let mut lines: Vec<String> = original.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| {
            l.starts_with("{\"run\":2,\"type\":\"snapshot\"") && l.contains("\"step\":5,")
        })
        .expect("run 2 step 5");
    let mut value: serde_json::Value = serde_json::from_str(&lines[at]).expect("json");
    value["loss"] = (value["loss"].as_f64().expect("loss") * 2.0).into();
    lines[at] = value.to_string();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let out = gradlab(&["reproduce", &path.display().to_string()]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("run 1 (plain-deep): identical"), "{report}");
    assert!(report.contains("run 2 (plain-deep): differs"), "{report}");
    assert!(
        report.contains("run 3 (residual-deep): identical"),
        "{report}"
    );
    assert!(report.contains("at step 5 in loss"), "{report}");
    assert!(report.contains("total: 3 runs, differs"), "{report}");

    let only = gradlab(&["reproduce", &path.display().to_string(), "--run", "3"]);
    let report = text(&only.stdout);
    assert_eq!(only.status.code(), Some(0), "{report}");
    assert!(!report.contains("run 2"), "{report}");
}

#[test]
fn recurrent_recordings_export_time_steps_and_plot_a_time_heat_map() {
    let path = scratch("rnn.jsonl");
    let experiment = load_preset("rnn-lstm-adding").expect("preset");
    let mut trainer = build_learner(experiment.clone(), None).expect("trainer");
    let mut recorder =
        Recorder::create(&path, &Header::new(&experiment, Some(3))).expect("recorder");
    let mut seen = VecSink::default();
    run_headless(trainer.as_mut(), 3, &[], &mut Tee(&mut recorder, &mut seen));
    recorder.close().expect("close");
    let steps = seen
        .events
        .iter()
        .find_map(|e| match e {
            Event::Snapshot(s) => Some(s.timesteps.len()),
            _ => None,
        })
        .expect("a snapshot");
    assert!(steps > 1, "an RNN snapshot measures every time step");

    let csv = scratch("rnn.csv");
    export(&path, &csv, &[]);
    let (header, rows) = csv_rows(&csv);
    let col = |name: &str| header.iter().position(|h| h == name);
    for name in [
        "cell".to_string(),
        "t1_hidden_grad_norm".into(),
        "t1_forget_gate_mean".into(),
        "t1_update_gate_mean".into(),
        format!("t{steps}_hidden_grad_norm"),
    ] {
        assert!(col(&name).is_some(), "{name} in {header:?}");
    }
    assert!(col(&format!("t{}_hidden_grad_norm", steps + 1)).is_none());
    assert!(
        col("t0_hidden_grad_norm").is_none(),
        "time steps count from 1"
    );
    let (cell, forget, update) = (
        col("cell").expect("cell"),
        col("t1_forget_gate_mean").expect("forget"),
        col("t1_update_gate_mean").expect("update"),
    );
    for row in &rows {
        assert_eq!(row[cell], "lstm", "{row:?}");
        assert!(
            row[forget].parse::<f64>().is_ok(),
            "an LSTM has forget gates"
        );
        assert!(row[update].is_empty(), "and no GRU update gate");
    }

    let svg = scratch("rnn.svg");
    let figure = plot(&path, &svg, &[]);
    assert!(
        figure.contains("log10 ‖∂L/∂h_t‖ per time step"),
        "the time heat map"
    );
    assert!(figure.contains("time step t"));
    assert!(!figure.contains("per layer"));
    let doc = roxmltree::Document::parse(&figure).expect("well-formed");
    let cells = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    // One cell per time step and measured training step, plus the background.
    assert!(
        cells > rows.len() * steps,
        "the heat map is painted: {cells} rectangles for {} snapshots of {steps} time steps",
        rows.len()
    );
}

#[test]
fn every_reader_names_each_corrupt_line_once_and_counts_them() {
    let path = scratch("corrupt-runs.jsonl");
    record(&path, &small("plain-deep", 4), 6);
    let original = std::fs::read_to_string(&path).expect("text");
    let mut lines: Vec<&str> = original.lines().collect();
    lines.insert(3, "{\"run\":1,\"type\":\"snapshot\",\"step\":");
    lines.insert(6, "not json at all");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let file = path.display().to_string();
    let csv = scratch("corrupt-runs.csv").display().to_string();
    let svg = scratch("corrupt-runs.svg").display().to_string();
    for args in [
        vec!["export", &file, "--csv", &csv],
        vec!["plot", &file, "--out", &svg],
        vec!["reproduce", &file],
    ] {
        let out = gradlab(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        for line in [4, 7] {
            let named = format!("{file}:{line}: corrupt record: ");
            assert_eq!(stderr.matches(&named).count(), 1, "{args:?}: {stderr}");
        }
        assert!(
            stderr.contains(&format!("{file}: 2 lines skipped")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn appended_sessions_continue_the_run_numbering() {
    let path = scratch("appended.jsonl");
    record(&path, &small("plain-deep", 4), 4);

    // A headless session appended to the file: its run gets the next number and a started
    // line naming its experiment, so it can be reproduced on its own.
    let second = small("residual-deep", 3);
    let mut appender = gradlab::recording::writer::open_for_record(
        &path,
        false,
        true,
        &Header::new(&second, Some(5)),
    )
    .expect("appends");
    let mut trainer = build_learner(second.clone(), None).expect("trainer");
    run_headless(trainer.as_mut(), 5, &[], &mut appender);
    appender.end("quit").expect("end");
    appender.close().expect("close");

    let index = runs::index(&path).expect("index");
    let summary: Vec<(u32, &str)> = index
        .runs
        .iter()
        .map(|r| (r.run, r.experiment.name.as_str()))
        .collect();
    assert_eq!(summary, [(1, "plain-deep"), (2, "residual-deep")]);
    assert_eq!(index.damage.skipped(), 0);
    let out = gradlab(&["reproduce", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("total: 2 runs, identical"));
}
