//! Recordings end to end: write, read back, survive kills and signals, reproduce, export, plot.

use crate::support::{fresh_in, gradlab, scratch_in};
use gradlab::config::{
    BranchScale, Experiment, NormKind, NormPlace, SkipMode, apply_overrides, load_preset,
};
use gradlab::learner::build_learner;
use gradlab::metrics::Snapshot;
use gradlab::protocol::{Command, Event, RunState};
use gradlab::recording::cast::CastWriter;
use gradlab::recording::writer::Tee;
use gradlab::recording::{Follower, Header, Recorder, Recording, RecordingError};
use gradlab::trainer::{VecSink, run_headless};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    scratch_in("recording-tests", name)
}

fn small(preset: &str, depth: usize) -> Experiment {
    let e = load_preset(preset).expect("built-in preset");
    apply_overrides(&e, &[format!("model.depth={depth}")]).expect("override")
}

/// A scratch path for an output file, removed first: export and plot never replace a file
/// without --force.
fn fresh(name: &str) -> PathBuf {
    fresh_in("recording-tests", name)
}

fn interventions() -> Vec<(u64, Command)> {
    vec![
        (10, Command::SetSkip(SkipMode::Residual { scale: 1.0 })),
        (20, Command::SetAux(true)),
        (30, Command::SetLearningRate(0.02)),
    ]
}

/// Records a headless run; returns what a VecSink saw of the same run.
fn record(
    path: &Path,
    experiment: &Experiment,
    steps: u64,
    schedule: &[(u64, Command)],
) -> Vec<Event> {
    let mut trainer = build_learner(experiment.clone(), None).expect("trainer");
    let mut recorder =
        Recorder::create(path, &Header::new(experiment, Some(steps))).expect("recorder");
    let mut seen = VecSink::default();
    run_headless(
        trainer.as_mut(),
        steps,
        schedule,
        &mut Tee(&mut recorder, &mut seen),
    );
    recorder.close().expect("close");
    seen.events
}

fn read_all(path: &Path) -> (Header, Vec<Event>, Option<u64>) {
    let mut recording = Recording::open(path).expect("opens");
    let header = recording.header().clone();
    let records: Vec<Event> = recording
        .by_ref()
        .map(|r| r.expect("record").event)
        .collect();
    (header, records, recording.truncated().map(|t| t.line))
}

fn snapshots(records: &[Event]) -> Vec<Snapshot> {
    records
        .iter()
        .filter_map(|r| match r {
            Event::Snapshot(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn round_trip_keeps_preset_commands_snapshots_and_state() {
    let path = scratch("round-trip.jsonl");
    let experiment =
        apply_overrides(&small("plain-deep", 6), &["optimizer.lr=0.03".into()]).expect("override");
    let events = record(&path, &experiment, 40, &interventions());
    let (header, records, truncated) = read_all(&path);
    assert_eq!(truncated, None);
    assert_eq!(header.format, "gradlab-recording");
    assert_eq!(header.version, gradlab::recording::VERSION);
    assert_eq!(
        header.preset, experiment,
        "the preset as loaded, --set included"
    );
    assert_eq!(header.seed, experiment.seed);
    assert_eq!(header.steps, Some(40));
    assert!(header.started_at.ends_with('Z') && header.started_at.len() == 20);

    let live: Vec<Snapshot> = events
        .iter()
        .filter_map(|e| match e {
            Event::Snapshot(s) => Some((**s).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(live.len(), 41);
    assert_eq!(snapshots(&records), live, "every field, bit for bit");

    let commands: Vec<(u64, Command, String)> = records
        .iter()
        .filter_map(|r| match r {
            Event::Applied { step, command } => Some((*step, command.clone(), command.label())),
            _ => None,
        })
        .collect();
    let expected: Vec<(u64, Command, String)> = interventions()
        .into_iter()
        .map(|(s, c)| {
            let label = c.label();
            (s, c, label)
        })
        .collect();
    assert_eq!(commands, expected);
    assert_eq!(
        records.last(),
        Some(&Event::State {
            step: 40,
            state: RunState::Finished
        })
    );

    // The snapshot lines are the --json object plus a type tag, for jq and pandas.
    let text = std::fs::read_to_string(&path).expect("text");
    let line = text
        .lines()
        .find(|l| l.contains("\"type\":\"snapshot\""))
        .expect("a snapshot");
    let value: serde_json::Value = serde_json::from_str(line).expect("json");
    assert!(value.get("loss").is_some_and(|l| l.is_f64()));
    assert!(value.get("layers").is_some_and(|l| l.is_array()));
    assert_eq!(
        value.get("run"),
        Some(&serde_json::json!(1)),
        "every line names its run"
    );
    assert!(text.contains("{\"run\":1,\"type\":\"command\",\"step\":10,\"command\":{\"set_skip\":{\"Residual\":{\"scale\":1.0}}}}"));
}

#[test]
fn norm_placement_and_branch_switches_are_recorded_read_back_and_reproduced() {
    let path = scratch("norm-switches.jsonl");
    let schedule = vec![
        (5, Command::SetSkip(SkipMode::Residual { scale: 1.0 })),
        (8, Command::SetNorm(NormKind::LayerNorm)),
        (12, Command::SetBranchScale(BranchScale::InvSqrtDepth)),
        (16, Command::SetNormPlace(NormPlace::Post)),
        (20, Command::SetNorm(NormKind::BatchNorm)),
        (24, Command::SetBranchScale(BranchScale::ReZero)),
    ];
    record(&path, &small("plain-deep", 6), 30, &schedule);
    let (_, records, truncated) = read_all(&path);
    assert_eq!(truncated, None);
    let commands: Vec<(u64, Command)> = records
        .iter()
        .filter_map(|r| match r {
            Event::Applied { step, command } => Some((*step, command.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(commands, schedule);
    let text = std::fs::read_to_string(&path).expect("text");
    assert!(
        text.contains("\"command\":{\"set_norm\":\"LayerNorm\"}"),
        "the norm switch as a line of its own"
    );
    let out = gradlab(&["reproduce", path.to_str().expect("utf-8")]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("identical"), "{said}");
}

#[test]
fn non_finite_numbers_read_back_as_nan() {
    let path = scratch("diverged.jsonl");
    let overrides = [
        "clip_grad_norm=None",
        "optimizer.lr=50",
        "model.activation=Linear",
        "model.init.weight_var=4.0",
    ];
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let experiment = apply_overrides(&small("exploding", 6), &overrides).expect("override");
    record(&path, &experiment, 200, &[]);
    let (_, records, _) = read_all(&path);
    let last = snapshots(&records).pop().expect("snapshots");
    assert!(last.diverged, "lr 50 diverges");
    assert!(!last.loss.is_finite(), "written as null, read as NaN");
    assert!(matches!(
        records.last(),
        Some(Event::State {
            state: RunState::Diverged(_),
            ..
        })
    ));
}

#[test]
fn a_truncated_last_line_is_reported_and_everything_before_kept() {
    let path = scratch("truncated.jsonl");
    record(&path, &small("plain-deep", 4), 10, &[]);
    let full = std::fs::read(&path).expect("bytes");
    let (_, records, _) = read_all(&path);
    // Cut the file in the middle of the last line, as kill -9 during a write would.
    let last_start = full[..full.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("lines")
        + 1;
    std::fs::write(&path, &full[..last_start + 7]).expect("write");
    let (_, kept, truncated) = read_all(&path);
    assert_eq!(kept, records[..records.len() - 1]);
    assert_eq!(truncated, Some(records.len() as u64 + 1));
}

#[test]
fn seeking_to_a_remembered_offset_reads_the_same_records() {
    let path = scratch("seek.jsonl");
    record(&path, &small("plain-deep", 4), 20, &interventions());
    let mut recording = Recording::open(&path).expect("opens");
    let mut index = Vec::new();
    let mut all = Vec::new();
    loop {
        index.push((recording.offset(), recording.line_number()));
        match recording.next() {
            Some(r) => all.push(r.expect("record")),
            None => break,
        }
    }
    let (offset, line) = index[7];
    recording.seek(offset, line).expect("seek");
    let rest: Vec<_> = recording.by_ref().map(|r| r.expect("record")).collect();
    assert_eq!(rest, all[7..]);
}

#[test]
fn a_corrupt_line_is_named_and_reading_goes_on() {
    let path = scratch("corrupt.jsonl");
    record(&path, &small("plain-deep", 4), 5, &[]);
    let text = std::fs::read_to_string(&path).expect("text");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "{\"type\":\"snapshot\",\"step\":");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let results: Vec<_> = Recording::open(&path).expect("opens").collect();
    let errors: Vec<&RecordingError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().starts_with("line 4: corrupt record"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].is_fatal());
    assert_eq!(results.len(), lines.len() - 1);
}

#[test]
fn other_formats_and_newer_versions_are_rejected_clearly() {
    let check = |name: &str, text: &str, expected: &str| {
        let path = scratch(name);
        std::fs::write(&path, text).expect("write");
        let message = match Recording::open(&path) {
            Ok(_) => panic!("{name} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains(expected), "{name}: {message}");
    };
    check("empty.jsonl", "", "empty");
    check("csv.jsonl", "step,loss\n1,2\n", "not a gradlab recording");
    check(
        "cast.jsonl",
        "{\"version\":2,\"width\":80}\n",
        "no \"format\"",
    );
    check(
        "other.jsonl",
        "{\"format\":\"other\",\"version\":1}\n",
        "\"other\"",
    );
    let mut header =
        serde_json::to_value(Header::new(&small("plain-deep", 4), None)).expect("json");
    header["version"] = 99.into();
    check("newer.jsonl", &format!("{header}\n"), "version 99 is newer");
}

#[test]
fn follower_picks_up_appended_lines_and_completes_a_partial_one() {
    let path = scratch("follow-unit.jsonl");
    record(&path, &small("plain-deep", 4), 3, &[]);
    let text = std::fs::read_to_string(&path).expect("text");
    let lines: Vec<&str> = text.lines().collect();
    // Start with the header and half of the first record.
    let (head, rest) = lines[1].split_at(lines[1].len() / 2);
    std::fs::write(&path, format!("{}\n{head}", lines[0])).expect("write");
    let mut follower = Follower::open(&path).expect("opens");
    assert!(follower.poll().is_none(), "half a line is not a record");
    assert!(follower.header().is_some());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("append");
    writeln!(file, "{rest}").expect("write");
    // The first line after the header is the live path decomposition at step 0.
    assert!(matches!(
        follower.poll(),
        Some(Ok(line)) if matches!(line.event, Event::Snapshot(_) | Event::Paths { .. })
    ));
    assert!(follower.poll().is_none());
    for line in &lines[2..] {
        writeln!(file, "{line}").expect("write");
    }
    let mut count = 0;
    while let Some(r) = follower.poll() {
        r.expect("record");
        count += 1;
    }
    assert_eq!(count, lines.len() - 2);
    assert!(follower.ended());
}

fn spawn_recording(path: &Path) -> Child {
    let _ = std::fs::remove_file(path);
    std::process::Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args([
            "run",
            "--preset",
            "plain-deep",
            "--steps",
            "100000000",
            "--record",
        ])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs")
}

/// Follows `path` until it holds `want` snapshots; returns how many the follower saw.
fn follow_until(path: &Path, want: usize) -> (Follower, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut follower = loop {
        if let Ok(f) = Follower::open(path) {
            break f;
        }
        assert!(Instant::now() < deadline, "the recording never appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut seen = 0;
    while seen < want {
        assert!(Instant::now() < deadline, "only {seen} snapshots arrived");
        match follower.wait(Duration::from_millis(200), Duration::from_millis(20)) {
            Some(Ok(line)) if matches!(line.event, Event::Snapshot(_)) => seen += 1,
            Some(Ok(_)) | None => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
    (follower, seen)
}

#[test]
fn follow_another_process_then_sigterm_closes_the_file_with_a_final_line() {
    for (signal, name, code) in [("-TERM", "SIGTERM", 143), ("-HUP", "SIGHUP", 129)] {
        let path = scratch(&format!("signal{signal}.jsonl"));
        let mut child = spawn_recording(&path);
        let (mut follower, _) = follow_until(&path, 20);
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = child.wait().expect("exits");
        assert_eq!(exit.code(), Some(code), "{name}");
        // The follower sees the closing line the run wrote on its way out.
        let mut last = None;
        while let Some(r) = follower.poll() {
            last = Some(r.expect("record"));
        }
        assert!(follower.ended());
        let (_, records, truncated) = read_all(&path);
        assert_eq!(truncated, None, "{name}: closed cleanly");
        match records.last() {
            Some(Event::Ended { reason, step }) => {
                assert_eq!(reason, name);
                assert!(*step >= 20);
            }
            other => panic!("{name}: last record {other:?}"),
        }
        assert_eq!(last.map(|line| line.event).as_ref(), records.last());
    }
}

#[test]
fn kill_9_while_recording_keeps_every_complete_line() {
    let path = scratch("kill9.jsonl");
    let mut child = spawn_recording(&path);
    follow_until(&path, 30);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let mut recording = Recording::open(&path).expect("still reads");
    let mut snapshots = 0;
    for record in recording.by_ref() {
        if let Event::Snapshot(_) = record.expect("every complete line parses").event {
            snapshots += 1;
        }
    }
    assert!(snapshots >= 30, "{snapshots}");
    let bytes = std::fs::read(&path).expect("bytes");
    let ends_cleanly = bytes.last() == Some(&b'\n');
    assert_eq!(recording.truncated().is_none(), ends_cleanly);
    eprintln!(
        "kill -9: {snapshots} snapshots kept, truncated tail: {:?}",
        recording.truncated()
    );
}

/// `gradlab plot <recording or sweep folder> --out <figure>`, expected to succeed.
fn plot(recording: &Path, figure: &Path) {
    let out = gradlab(&[
        "plot",
        recording.to_str().expect("utf-8"),
        "--out",
        figure.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reproduce_is_exact_on_every_builtin_preset_with_interventions() {
    for preset in gradlab::config::builtin_presets() {
        let path = scratch(&format!("reproduce-{}.jsonl", preset.name));
        let experiment = load_preset(preset.name).expect("preset");
        record(&path, &experiment, 40, &interventions());
        let out = gradlab(&["reproduce", path.to_str().expect("utf-8")]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {text}{}",
            preset.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("identical"), "{text}");
    }
}

#[test]
fn reproduce_reports_the_largest_deviation_and_where() {
    let path = scratch("tampered.jsonl");
    record(&path, &small("plain-deep", 6), 20, &interventions());
    let text = std::fs::read_to_string(&path).expect("text");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"type\":\"snapshot\"") && l.contains("\"step\":12,"))
        .expect("step 12");
    let mut value: serde_json::Value = serde_json::from_str(&lines[at]).expect("json");
    let loss = value["loss"].as_f64().expect("loss");
    value["loss"] = (loss * 1.5).into();
    lines[at] = value.to_string();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let out = gradlab(&["reproduce", path.to_str().expect("utf-8")]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("at step 12 in loss"), "{report}");
    assert!(report.contains("fields differing    1"), "{report}");
}

#[test]
fn export_csv_has_per_layer_columns_and_a_row_per_snapshot() {
    let path = scratch("export.jsonl");
    let csv = fresh("export.csv");
    record(&path, &small("aux-deep", 8), 25, &interventions());
    let snaps = snapshots(&read_all(&path).1);
    let out = gradlab(&[
        "export",
        path.to_str().expect("utf-8"),
        "--csv",
        csv.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let aux = snaps.iter().map(|s| s.aux_losses.len()).max().unwrap_or(0);
    // A leading run column, then 16 whole-network columns; six fields per hidden layer.
    assert_eq!(header.len(), 17 + aux + 6 * 8);
    assert_eq!(&header[..4], ["run", "step", "preset", "loss"]);
    // Hidden layers are numbered 1..n from the input, as everywhere in gradlab.
    for l in 1..=8 {
        assert!(header.contains(&format!("layer{l}_act_grad_norm").as_str()));
        assert!(header.contains(&format!("layer{l}_weight_grad_norm").as_str()));
        assert!(header.contains(&format!("layer{l}_gate_bias_mean").as_str()));
    }
    assert!(!header.contains(&"layer0_act_grad_norm"));
    assert!(!header.contains(&"layer9_act_grad_norm"));
    assert!(header.contains(&"last_command"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), snaps.len());
    for (row, snap) in rows.iter().zip(&snaps) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), header.len());
        assert_eq!(cells[0], "1", "a one-run recording");
        assert_eq!(cells[1].parse::<u64>().expect("step"), snap.step);
        let act: f64 = cells[header
            .iter()
            .position(|h| *h == "layer4_act_grad_norm")
            .expect("col")]
        .parse()
        .expect("number");
        assert_eq!(act, snap.layers[3].act_grad_norm);
    }
}

#[test]
fn plot_writes_a_valid_png_and_svg() {
    let path = scratch("plot.jsonl");
    record(&path, &small("plain-deep", 8), 60, &interventions());
    let png_path = fresh("plot.png");
    let svg_path = fresh("plot.svg");
    for out in [&png_path, &svg_path] {
        plot(&path, out);
    }
    let bytes = std::fs::read(&png_path).expect("png");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png decodes");
    // Four panels: loss, heat map, the live path decomposition the run recorded, and the
    // gradient sources measured when the auxiliary losses came on at step 20.
    assert_eq!((info.width, info.height), (1200, 1400));
    // Not a blank image: the heat map paints many colours.
    let colours: std::collections::HashSet<&[u8]> = buf.chunks(3).collect();
    assert!(colours.len() > 20, "{} colours", colours.len());

    let svg = std::fs::read_to_string(&svg_path).expect("svg");
    assert!(svg.contains("<svg"));
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        svg.contains("skip → residual"),
        "intervention markers are labelled"
    );
    assert!(doc.descendants().filter(|n| n.has_tag_name("rect")).count() > 100);
    assert!(svg.contains("gradient sources per layer (step 20)"));
    // Counts read as counts: no tick says `1000.0` or `2.5` on a step or layer axis, the
    // layer axis is labelled, and the heat map has its colour bar.
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    let float_counts: Vec<&&str> = texts
        .iter()
        .filter(|t| t.ends_with(".0") && t.trim_end_matches(".0").parse::<i64>().is_ok())
        .collect();
    assert!(float_counts.is_empty(), "tick labels {float_counts:?}");
    assert!(texts.contains(&"8"), "the layer axis reads 1–8: {texts:?}");
    assert!(texts.contains(&"log10 ‖∂L/∂h‖"), "colour bar: {texts:?}");
    assert!(
        texts.contains(&"test set (last evaluation)"),
        "test loss: {texts:?}"
    );

    let bad = gradlab(&[
        "plot",
        path.to_str().expect("utf-8"),
        "--out",
        "figure.jpeg",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn asciicast_header_and_events_are_valid_v2() {
    let mut cast = CastWriter::from_writer(Vec::new(), 120, 40).expect("header");
    cast.output(b"\x1b[2Jhello ").expect("output");
    // "→" is three bytes; split it across two writes.
    let arrow = "→".as_bytes();
    cast.output(&arrow[..1]).expect("output");
    cast.output(&arrow[1..]).expect("output");
    cast.resize(100, 30).expect("resize");
    cast.marker("skip → residual").expect("marker");
    let text = String::from_utf8(cast.into_inner().expect("flush")).expect("utf-8");
    let mut lines = text.lines();
    let header: serde_json::Value =
        serde_json::from_str(lines.next().expect("header")).expect("json");
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 120);
    assert_eq!(header["height"], 40);
    assert!(
        header["timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000)
    );
    let events: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e[1].as_str().expect("kind"), e[2].as_str().expect("data")))
        .collect();
    assert_eq!(
        kinds,
        [
            ("o", "\u{1b}[2Jhello "),
            ("o", "→"),
            ("r", "100x30"),
            ("m", "skip → residual")
        ]
    );
    let times: Vec<f64> = events
        .iter()
        .map(|e| e[0].as_f64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]) && times[0] >= 0.0);
    assert!(
        events
            .iter()
            .all(|e| e.as_array().is_some_and(|a| a.len() == 3))
    );
}

#[test]
fn cast_writer_creates_a_file() {
    let path = scratch("session.cast");
    let mut cast = CastWriter::new(&path, 80, 24).expect("create");
    cast.output(b"x").expect("output");
    drop(cast);
    let text = std::fs::read_to_string(&path).expect("cast");
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn live_gradient_sources_are_recorded_as_shown() {
    let path = scratch("sources.jsonl");
    let sets = [
        "path_every=5",
        "model.aux.enabled=true",
        "model.aux.every=2",
    ]
    .map(String::from);
    let experiment = apply_overrides(&small("dense-deep", 6), &sets).expect("valid");
    let seen = record(&path, &experiment, 12, &[]);
    let live: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Sources { step, layers } => Some((*step, layers.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(live.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 5, 10]);
    let (_, records, _) = read_all(&path);
    let recorded: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Event::Sources { step, layers } => Some((*step, layers.clone())),
            _ => None,
        })
        .collect();
    // JSON round trip of f64 is exact (serde_json's float_roundtrip).
    assert_eq!(recorded, live);
    let svg = fresh("sources.svg");
    plot(&path, &svg);
    let text = std::fs::read_to_string(&svg).expect("written");
    assert!(
        text.contains("gradient sources per layer (step 10)"),
        "sources panel"
    );
    for label in [
        "dense read-outs",
        "aux head after layer 2",
        "aux head after layer 4",
    ] {
        assert!(text.contains(label), "legend names {label}");
    }
    assert!(
        !text.contains("path length"),
        "dense nets have no path panel"
    );
}

#[test]
fn live_path_statistics_are_recorded_replayed_and_plotted() {
    let path = scratch("paths.jsonl");
    let experiment =
        apply_overrides(&small("residual-deep", 6), &["path_every=5".to_string()]).expect("valid");
    let seen = record(&path, &experiment, 12, &[]);
    let live: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Paths { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(live, [0, 5, 10]);
    let (_, records, _) = read_all(&path);
    let recorded: Vec<(u64, usize)> = records
        .iter()
        .filter_map(|r| match r {
            Event::Paths { step, stats } => Some((*step, stats.by_length.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        recorded,
        [(0, 7), (5, 7), (10, 7)],
        "6 blocks: lengths 0..=6"
    );
    let svg = fresh("paths.svg");
    plot(&path, &svg);
    let text = std::fs::read_to_string(&svg).expect("written");
    assert!(text.contains("path length"), "the path panel is drawn");
}

#[test]
fn a_sweep_folder_plots_the_metric_against_depth_with_one_line_per_skip_mode() {
    let dir = scratch("sweep-figure");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::write(
        dir.join("results.csv"),
        "id,model.depth,model.skip,seed,step,loss,tail_loss\n\
         a,4,Plain,1,50,0.5,0.41\n\
         b,4,Plain,2,50,0.5,0.45\n\
         c,16,Plain,1,50,0.7,0.69\n\
         d,16,Plain,2,50,0.7,0.68\n\
         e,4,\"Residual(scale: 1.0)\",1,50,0.3,0.31\n\
         f,4,\"Residual(scale: 1.0)\",2,50,0.3,0.29\n\
         g,16,\"Residual(scale: 1.0)\",1,50,0.2,0.21\n\
         h,16,\"Residual(scale: 1.0)\",2,50,0.2,0.19\n",
    )
    .expect("results.csv");
    let png_path = fresh("sweep.png");
    let svg_path = fresh("sweep.svg");
    for out in [&png_path, &svg_path] {
        let run = gradlab(&[
            "plot",
            dir.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(&png_path).expect("png")));
    let reader = decoder.read_info().expect("png header");
    assert_eq!((reader.info().width, reader.info().height), (1200, 700));
    let svg = std::fs::read_to_string(&svg_path).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for wanted in [
        "model.skip=Plain",
        "model.skip=Residual(scale: 1.0)",
        "model.depth",
        "tail_loss",
        "4",
        "16",
    ] {
        assert!(texts.contains(&wanted), "{wanted} missing from {texts:?}");
    }
    assert!(!texts.iter().any(|t| t.ends_with(".0")), "{texts:?}");
}
