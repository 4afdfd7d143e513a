//! Weights out and in: safetensors names, shapes and layout; loading with its refusals; and
//! checkpoints that resume a run bit for bit (MLP, highway, recurrent), in the library and
//! through the real binary; the dashboard's save key end to end through the driver.

use gradlab::config::{CellKind, Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::learner::{Learner, build_learner};
use gradlab::model::{Lesion, Trainer};
use gradlab::protocol::{Command, Event, LaneCommand, LaneEvent, Line};
use gradlab::report::{Analyses, build_report};
use gradlab::trainer::{Driver, LaneStart, VecSink, run_headless};
use gradlab::weights::{Weights, format};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

fn preset(name: &str, sets: &[&str]) -> Experiment {
    let base = load_preset(name).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    apply_overrides(&base, &sets).expect("valid overrides")
}

fn learner(experiment: &Experiment) -> Box<dyn Learner> {
    build_learner(experiment.clone(), None).expect("builds")
}

/// Every tensor's values as bit patterns, by name.
fn bits(weights: &Weights) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    weights
        .tensors
        .iter()
        .map(|t| {
            let values = t.values.iter().map(|v| v.to_bits()).collect();
            (t.name.clone(), t.shape.clone(), values)
        })
        .collect()
}

/// Events as the recording writes them (one JSON line each), from `from_step` on.
fn lines(events: &[Event], from_step: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.step().is_some_and(|s| s >= from_step))
        .map(|event| {
            let line = Line {
                run: 1,
                event: event.clone(),
            };
            serde_json::to_string(&line).expect("serialises")
        })
        .collect()
}

/// A checkpoint through the file format, as `--checkpoint` then `--resume` see it.
fn through_file(checkpoint: &Weights) -> Weights {
    let bytes = format::encode(checkpoint).expect("encodes");
    format::decode(&bytes, "checkpoint.safetensors").expect("decodes")
}

/// Runs `total` steps straight, and `half` + checkpoint + resume to `total`, with the same
/// switch schedule; everything from step `half` on must agree bit for bit: final weights,
/// every event as a recording line, and the final `--json` report.
fn resume_matches_uninterrupted(
    experiment: Experiment,
    total: u64,
    half: u64,
    schedule: &[(u64, Command)],
) {
    let json_report = |learner: &mut dyn Learner, snapshot| {
        let analyses = Analyses {
            paths: Some((8, 4)),
            lesion: true,
            lesion_sizes: vec![2],
        };
        serde_json::to_string(&build_report(learner, snapshot, &analyses)).expect("serialises")
    };
    let mut straight = learner(&experiment);
    let mut sink = VecSink::default();
    let last = run_headless(straight.as_mut(), total, schedule, &mut sink).expect("finite");
    let straight_events = sink.events;
    let straight_weights = straight.weights();
    let straight_report = json_report(straight.as_mut(), last);

    let before: Vec<(u64, Command)> = schedule
        .iter()
        .filter(|(s, _)| *s < half)
        .cloned()
        .collect();
    let after: Vec<(u64, Command)> = schedule
        .iter()
        .filter(|(s, _)| *s >= half)
        .cloned()
        .collect();
    let mut first = learner(&experiment);
    run_headless(first.as_mut(), half, &before, &mut VecSink::default()).expect("finite");
    let checkpoint = through_file(&first.checkpoint().expect("a live run checkpoints"));
    drop(first);
    let mut resumed = learner(&experiment);
    resumed.restore(&checkpoint).expect("restores");
    assert_eq!(resumed.step(), half);
    let mut sink = VecSink::default();
    let last = run_headless(resumed.as_mut(), total, &after, &mut sink).expect("finite");
    let resumed_events = sink.events;

    assert_eq!(
        bits(&resumed.weights()),
        bits(&straight_weights),
        "{}",
        experiment.name
    );
    let (a, b) = (lines(&straight_events, half), lines(&resumed_events, half));
    assert!(
        a.len() > 3,
        "{}: the comparison covers events",
        experiment.name
    );
    assert_eq!(a.len(), b.len(), "{}", experiment.name);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{}", experiment.name);
    }
    assert_eq!(json_report(resumed.as_mut(), last), straight_report);
}

#[test]
fn a_resumed_plain_mlp_continues_bit_identically() {
    // test_every 30: the checkpoint at step 100 must carry the test result of step 90.
    let experiment = preset(
        "plain-deep",
        &[
            "model.depth=6",
            "model.width=16",
            "test_every=30",
            "metrics_every=7",
        ],
    );
    let schedule = [
        (40, Command::SetAux(true)),
        (150, Command::SetLearningRate(0.02)),
    ];
    resume_matches_uninterrupted(experiment, 200, 100, &schedule);
}

#[test]
fn a_resumed_highway_net_continues_bit_identically() {
    let experiment = preset(
        "highway-deep",
        &[
            "model.depth=8",
            "model.width=16",
            "test_every=30",
            "batch=32",
        ],
    );
    let schedule = [
        (60, Command::SetSkip(SkipMode::Residual { scale: 1.0 })),
        (90, Command::SetSkip(SkipMode::Highway)),
        (130, Command::SetSkip(SkipMode::Dense)),
    ];
    resume_matches_uninterrupted(experiment, 200, 100, &schedule);
}

#[test]
fn a_resumed_recurrent_net_continues_bit_identically() {
    let experiment = preset(
        "rnn-gru-adding",
        &[
            "task.length=8",
            "model.width=12",
            "test_every=30",
            "batch=16",
        ],
    );
    let schedule = [
        (50, Command::SetCell(CellKind::Lstm)),
        (170, Command::SetCell(CellKind::Vanilla)),
    ];
    resume_matches_uninterrupted(experiment, 200, 100, &schedule);
}

#[test]
fn sgd_momentum_is_restored_too() {
    let experiment = preset(
        "plain-shallow",
        &["optimizer=Sgd(lr: 0.05, momentum: 0.9)", "test_every=7"],
    );
    resume_matches_uninterrupted(experiment, 60, 25, &[]);
}

#[test]
fn mlp_tensors_are_named_by_layer_from_1_with_fan_in_by_fan_out_shapes() {
    let experiment = preset(
        "aux-deep",
        &["model.depth=4", "model.width=8", "model.aux.every=2"],
    );
    let weights = learner(&experiment).weights();
    let names: Vec<(&str, &[usize])> = weights
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    let outputs = weights.get("head.bias").expect("head").shape[0];
    assert_eq!(
        &names[..7],
        &[
            ("input.weight", &[2usize, 8][..]),
            ("input.bias", &[8][..]),
            ("layer1.weight", &[8, 8][..]),
            ("layer1.bias", &[8][..]),
            ("layer1.gate.weight", &[8, 8][..]),
            ("layer1.gate.bias", &[8][..]),
            ("layer1.readout.weight", &[8, outputs][..]),
        ]
    );
    for name in ["layer4.weight", "head.weight", "aux2.weight", "aux2.bias"] {
        assert!(weights.get(name).is_some(), "{name} in {names:?}");
    }
    // Every `every`-th layer but the last carries an auxiliary head: here layer 2 only.
    assert!(weights.get("aux4.weight").is_none());
    let m = &weights.metadata;
    assert_eq!(m["preset"], "aux-deep");
    assert_eq!(m["step"], "0");
    assert_eq!(m["seed"], experiment.seed.to_string());
    assert_eq!(m["activation"], "tanh");
    assert_eq!(m["format"], "gradlab-weights");
    assert!(m["layout"].contains("y = x @ W + b"));
}

#[test]
fn rnn_tensors_are_named_by_cell_and_gate() {
    let experiment = preset("rnn-lstm-adding", &["task.length=4", "model.width=6"]);
    let weights = learner(&experiment).weights();
    let shape = |name: &str| weights.get(name).map(|t| t.shape.clone());
    assert_eq!(shape("lstm.forget.weight_ih"), Some(vec![2, 6]));
    assert_eq!(shape("lstm.forget.weight_hh"), Some(vec![6, 6]));
    assert_eq!(shape("gru.update.bias"), Some(vec![6]));
    assert_eq!(shape("vanilla.candidate.weight_hh"), Some(vec![6, 6]));
    assert_eq!(shape("head.weight"), Some(vec![6, 1]));
    // vanilla 1 + GRU 3 + LSTM 4 gates, three tensors each, and the head's two.
    assert_eq!(weights.tensors.len(), 8 * 3 + 2);
    assert_eq!(weights.metadata["cell"], "lstm");
}

/// The test loss computed from the file's tensors alone, numpy-style (x @ W + b, tanh), must
/// be the loss the trainer reports: the layout the metadata states is the one used.
#[test]
fn the_stated_layout_reproduces_the_networks_loss() {
    let experiment = preset("plain-deep", &["model.depth=3", "model.width=8"]);
    let mut trainer = Trainer::new(experiment, None).expect("builds");
    run_headless(&mut trainer, 20, &[], &mut VecSink::default()).expect("finite");
    let weights = through_file(&Learner::weights(&mut trainer));
    let (loss, _) = trainer.evaluate_test(Lesion::default());
    let task = trainer.task();
    let test = &task.test;
    let dims = task.input_dims;
    let affine = |x: &[f64], name: &str| -> Vec<f64> {
        let w = weights.get(&format!("{name}.weight")).expect("weight");
        let b = weights.get(&format!("{name}.bias")).expect("bias");
        let (fan_in, fan_out) = (w.shape[0], w.shape[1]);
        assert_eq!(x.len(), fan_in);
        (0..fan_out)
            .map(|j| {
                let dot: f64 = (0..fan_in)
                    .map(|i| x[i] * f64::from(w.values[i * fan_out + j]))
                    .sum();
                dot + f64::from(b.values[j])
            })
            .collect()
    };
    let mut total = 0.0;
    for row in 0..test.len {
        let x: Vec<f64> = test.inputs[row * dims..(row + 1) * dims]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mut h = affine(&x, "input");
        for l in 1..=3 {
            h = affine(&h, &format!("layer{l}"))
                .iter()
                .map(|z| z.tanh())
                .collect();
        }
        let logits = affine(&h, "head");
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = logits.iter().map(|z| (z - max).exp()).sum::<f64>().ln() + max;
        total += log_sum - logits[test.labels[row]];
    }
    let numpy_loss = total / test.len as f64;
    assert!(
        (numpy_loss - loss).abs() < 1e-5 * loss.abs().max(1.0),
        "numpy-style {numpy_loss} vs gradlab {loss}"
    );
}

#[test]
fn loaded_weights_give_the_same_network() {
    let experiment = preset("residual-deep", &["model.depth=5", "model.width=8"]);
    let mut trained = learner(&experiment);
    run_headless(trained.as_mut(), 30, &[], &mut VecSink::default()).expect("finite");
    let saved = through_file(&trained.weights());
    let mut fresh = learner(&experiment);
    fresh.load_weights(&saved).expect("fits");
    assert_eq!(bits(&fresh.weights()), bits(&trained.weights()));
    // Same weights, same loss on the test set.
    let test_loss =
        |l: &mut Box<dyn Learner>| l.as_mlp().expect("MLP").evaluate_test(Lesion::default());
    assert_eq!(
        test_loss(&mut fresh).0.to_bits(),
        test_loss(&mut trained).0.to_bits()
    );
    // A checkpoint is also a weights file: its optimiser tensors are not parameters.
    let checkpoint = through_file(&trained.checkpoint().expect("live"));
    let mut other = learner(&experiment);
    other
        .load_weights(&checkpoint)
        .expect("a checkpoint loads as weights");
    assert_eq!(other.step(), 0, "weights alone do not resume the run");
}

#[test]
fn weights_that_do_not_fit_are_refused_naming_file_tensor_and_both_shapes() {
    let small = preset("plain-deep", &["model.depth=3", "model.width=8"]);
    let mut file = learner(&small).weights();
    file.source = "small.safetensors".into();
    let wide = preset("plain-deep", &["model.depth=3", "model.width=16"]);
    let mut net = learner(&wide);
    let before = bits(&net.weights());
    let error = format!("{:#}", net.load_weights(&file).unwrap_err());
    assert!(
        error.starts_with("small.safetensors does not fit preset plain-deep"),
        "{error}"
    );
    assert!(
        error.contains("tensor `input.weight`: expected shape [2, 16], found [2, 8]"),
        "{error}"
    );
    assert!(error.contains("more"), "{error}");
    assert_eq!(
        bits(&net.weights()),
        before,
        "a refused load changes nothing"
    );

    let deeper = preset("plain-deep", &["model.depth=4", "model.width=8"]);
    let error = format!("{:#}", learner(&deeper).load_weights(&file).unwrap_err());
    assert!(
        error.contains("no tensor `layer4.weight` (expected shape [8, 8])"),
        "{error}"
    );

    let rnn = preset("rnn-copy", &[]);
    let error = format!("{:#}", learner(&rnn).load_weights(&file).unwrap_err());
    assert!(
        error.contains(
            "small.safetensors holds the weights of an MLP (written by preset plain-deep)"
        ),
        "{error}"
    );
    // A file without gradlab's metadata (from numpy, say) is judged by its tensors alone.
    file.metadata.clear();
    let deeper = preset("plain-deep", &["model.depth=2", "model.width=8"]);
    let error = format!("{:#}", learner(&deeper).load_weights(&file).unwrap_err());
    assert!(
        error.contains("tensor `layer3.weight` (shape [8, 8]) is not a parameter of this net"),
        "{error}"
    );
}

#[test]
fn a_checkpoint_of_other_settings_or_plain_weights_is_refused_by_resume() {
    let experiment = preset("plain-deep", &["model.depth=3", "model.width=8"]);
    let mut run = learner(&experiment);
    run_headless(run.as_mut(), 5, &[], &mut VecSink::default()).expect("finite");
    let mut checkpoint = through_file(&run.checkpoint().expect("live"));
    checkpoint.source = "ck.safetensors".into();

    let other = preset("highway-deep", &["model.depth=3", "model.width=8"]);
    let error = format!("{:#}", learner(&other).restore(&checkpoint).unwrap_err());
    assert!(
        error.contains("ck.safetensors is a checkpoint of preset plain-deep, not highway-deep"),
        "{error}"
    );
    let changed = preset("plain-deep", &["model.depth=3", "model.width=8", "seed=3"]);
    let error = format!("{:#}", learner(&changed).restore(&checkpoint).unwrap_err());
    assert!(
        error.contains("seed is 7 in the checkpoint, 3 now"),
        "{error}"
    );
    // The step budget is not a setting: a resumed run may go further.
    let longer = preset(
        "plain-deep",
        &["model.depth=3", "model.width=8", "steps=5000"],
    );
    learner(&longer)
        .restore(&checkpoint)
        .expect("another budget resumes");

    let mut weights_only = through_file(&run.weights());
    weights_only.source = "w.safetensors".into();
    let error = format!(
        "{:#}",
        learner(&experiment).restore(&weights_only).unwrap_err()
    );
    assert!(
        error.contains("w.safetensors holds weights but no checkpoint"),
        "{error}"
    );
}

#[test]
fn a_diverged_run_writes_no_checkpoint() {
    let experiment = preset(
        "exploding",
        &[
            // The preset clips updates to norm 1; unclipped, lr 50 diverges.
            "clip_grad_norm=None",
            "optimizer.lr=50",
            "model.depth=6",
            "model.activation=Linear",
            "model.init.weight_var=4.0",
        ],
    );
    let mut run = learner(&experiment);
    let _ = run_headless(run.as_mut(), 200, &[], &mut VecSink::default());
    assert!(run.divergence().is_some(), "the exploding preset diverges");
    let error = format!("{:#}", run.checkpoint().unwrap_err());
    assert!(error.contains("diverged at step"), "{error}");
}

/// The dashboard's key path: `SaveWeights` to the driver, a fresh file, `WeightsSaved` back.
#[test]
fn the_save_command_writes_fresh_files_and_answers_with_the_path() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let experiment = preset("plain-deep", &["model.depth=3", "model.width=8"]);
    let mut events: Vec<LaneEvent> = Vec::new();
    let mut out = |e: LaneEvent| {
        events.push(e);
        true
    };
    let mut driver = Driver::new(1, true).with_save_dir(dir.path().to_path_buf());
    assert!(driver.add(LaneStart::fresh(experiment, None), &mut out));
    let save = || LaneCommand {
        lane: 0,
        command: Command::SaveWeights,
    };
    assert!(driver.handle(save(), &mut out));
    assert!(driver.handle(save(), &mut out));
    let paths: Vec<PathBuf> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::WeightsSaved { step: 0, path } => Some(PathBuf::from(path)),
            _ => None,
        })
        .collect();
    assert_eq!(
        paths,
        [
            dir.path().join("plain-deep-step0.safetensors"),
            dir.path().join("plain-deep-step0-2.safetensors"),
        ]
    );
    let read = format::decode(&std::fs::read(&paths[0]).expect("written"), "saved")
        .expect("a weights file");
    assert_eq!(read.metadata["step"], "0");

    // A folder that cannot be written is an error event, not a crash.
    let mut events: Vec<LaneEvent> = Vec::new();
    let mut out = |e: LaneEvent| {
        events.push(e);
        true
    };
    let mut driver = Driver::new(1, true).with_save_dir(dir.path().join("missing"));
    let experiment = preset("plain-deep", &["model.depth=3", "model.width=8"]);
    assert!(driver.add(LaneStart::fresh(experiment, None), &mut out));
    assert!(driver.handle(save(), &mut out));
    let errors: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Error { message } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("weights not saved: cannot write"),
        "{errors:?}"
    );
}

/// A run started from weights goes back to them on reset, not to the preset's initialisation.
#[test]
fn a_run_started_from_weights_resets_to_them() {
    let experiment = preset("plain-deep", &["model.depth=3", "model.width=8"]);
    let mut trained = learner(&experiment);
    run_headless(trained.as_mut(), 10, &[], &mut VecSink::default()).expect("finite");
    let weights = std::sync::Arc::new(trained.weights());
    let snapshot_at_0 = |events: &[LaneEvent]| -> String {
        events
            .iter()
            .find_map(|e| match &e.event {
                Event::Snapshot(s) if s.step == 0 => Some(serde_json::to_string(s).expect("json")),
                _ => None,
            })
            .expect("a snapshot at step 0")
    };
    let events = std::cell::RefCell::new(Vec::<LaneEvent>::new());
    let mut out = |e: LaneEvent| {
        events.borrow_mut().push(e);
        true
    };
    let mut driver = Driver::new(1, false);
    let start = LaneStart::fresh(experiment.clone(), None).with_weights(weights);
    assert!(driver.add(start, &mut out));
    assert!(driver.round(&mut out));
    let first = snapshot_at_0(&events.borrow());
    let reset = LaneCommand {
        lane: 0,
        command: Command::Reset,
    };
    assert!(driver.handle(reset, &mut out));
    let seen = events.borrow().len();
    assert!(driver.round(&mut out));
    assert_eq!(snapshot_at_0(&events.borrow()[seen..]), first);
    // …and differs from a run of the preset's own initialisation.
    let mut plain = Driver::new(1, false);
    let mut other: Vec<LaneEvent> = Vec::new();
    let mut out = |e: LaneEvent| {
        other.push(e);
        true
    };
    assert!(plain.add(LaneStart::fresh(experiment, None), &mut out));
    assert!(plain.round(&mut out));
    assert_ne!(snapshot_at_0(&other), first);
}

fn gradlab(dir: &Path, args: &[&str]) -> std::process::Output {
    Process::new(env!("CARGO_BIN_EXE_gradlab"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// Through the real binary: `run --checkpoint` then `run --resume` prints the same `--json`
/// as the uninterrupted run, and the weights files hold the same bits.
#[test]
fn run_resume_through_the_binary_prints_the_uninterrupted_json() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let set = [
        "--set",
        "model.depth=4",
        "--set",
        "model.width=8",
        "--set",
        "test_every=9",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["run", "-p", "highway-deep", "--json"];
        args.extend(set);
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = gradlab(dir.path(), &refs);
        assert!(
            output.status.success(),
            "gradlab {}: {}",
            refs.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let straight = run(with(&[
        "--steps",
        "40",
        "--save-weights",
        "straight.safetensors",
    ]));
    run(with(&["--steps", "15", "--checkpoint", "ck.safetensors"]));
    let resumed = run(with(&[
        "--steps",
        "40",
        "--resume",
        "ck.safetensors",
        "--save-weights",
        "resumed.safetensors",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&resumed),
        String::from_utf8_lossy(&straight)
    );
    let read = |name: &str| {
        let bytes = std::fs::read(dir.path().join(name)).expect("written");
        format::decode(&bytes, name).expect("readable")
    };
    let (a, b) = (read("straight.safetensors"), read("resumed.safetensors"));
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.metadata["step"], "40");
    assert_eq!(a.metadata["skip"], "highway");
}

/// The `w` key asks the focused run's lane to save; the answer puts the path on the status
/// line, and a refusal shows as the run's error.
#[test]
fn the_save_key_sends_the_command_and_shows_the_answer() {
    use gradlab::ui::app::{App, Effect, Msg, update};
    use gradlab::ui::keymap::Action;
    use gradlab::ui::theme::Theme;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = App::new(Theme {
        color: false,
        ascii: false,
    });
    let lane_event = |event| Msg::Lane(LaneEvent { lane: 0, event });
    let experiment = preset("rnn-copy", &[]);
    update(
        &mut app,
        lane_event(Event::Started {
            preset: Box::new(experiment),
        }),
    );
    let key = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::NONE);
    let effects = update(&mut app, Msg::Input(key));
    assert_eq!(
        effects,
        [Effect::Send(LaneCommand {
            lane: 0,
            command: Command::SaveWeights,
        })]
    );
    update(
        &mut app,
        lane_event(Event::WeightsSaved {
            step: 12,
            path: "./rnn-copy-step12.safetensors".into(),
        }),
    );
    assert_eq!(
        app.note.as_deref(),
        Some("weights at step 12 saved to ./rnn-copy-step12.safetensors")
    );
    update(
        &mut app,
        lane_event(Event::error("weights not saved: cannot write ./x")),
    );
    assert_eq!(
        app.run().error.as_deref(),
        Some("weights not saved: cannot write ./x")
    );
    // A replay has no network to save: the key says so instead of sending anything.
    let view = gradlab::ui::replay::ReplayView::new("run.jsonl", false);
    let mut replay = App::replaying(
        Theme {
            color: false,
            ascii: false,
        },
        view,
    );
    assert!(update(&mut replay, Msg::Key(Action::SaveWeights)).is_empty());
    assert!(
        replay
            .note
            .as_deref()
            .is_some_and(|n| n.contains("replaying"))
    );
}

#[test]
fn a_resumed_batch_normalised_rezero_net_continues_bit_identically() {
    // The running estimates, γ, β and α are in the checkpoint, and so are the switches.
    let experiment = preset(
        "residual-deep",
        &[
            "model.depth=5",
            "model.width=16",
            "model.norm=BatchNorm",
            "model.norm_place=Post",
            "model.branch_scale=ReZero",
            "test_every=30",
            "metrics_every=7",
        ],
    );
    resume_matches_uninterrupted(experiment, 160, 80, &[]);
}

#[test]
fn normalised_weights_round_trip_and_files_from_before_normalisation_still_load() {
    let experiment = preset(
        "residual-deep",
        &[
            "model.depth=4",
            "model.width=8",
            "model.norm=BatchNorm",
            "model.branch_scale=ReZero",
        ],
    );
    let mut trained = learner(&experiment);
    run_headless(trained.as_mut(), 30, &[], &mut VecSink::default()).expect("finite");
    let saved = through_file(&trained.weights());
    for name in [
        "layer1.norm.gain",
        "layer1.norm.shift",
        "layer1.norm.running_mean",
        "layer1.norm.running_var",
        "layer1.branch.alpha",
    ] {
        let t = saved.get(name).unwrap_or_else(|| panic!("{name} saved"));
        let moved = t.values.iter().any(|&v| v != 0.0 && v != 1.0);
        assert!(moved, "{name} was trained or folded: {:?}", t.values);
    }
    let mut fresh = learner(&experiment);
    fresh.load_weights(&saved).expect("fits");
    assert_eq!(bits(&fresh.weights()), bits(&trained.weights()));
    let test_loss =
        |l: &mut Box<dyn Learner>| l.as_mlp().expect("MLP").evaluate_test(Lesion::default());
    assert_eq!(
        test_loss(&mut fresh).0.to_bits(),
        test_loss(&mut trained).0.to_bits()
    );

    // A file written before these tensors existed: the net keeps their step-0 values.
    let plain = preset("residual-deep", &["model.depth=4", "model.width=8"]);
    let mut old = through_file(&learner(&plain).weights());
    old.tensors
        .retain(|t| !t.name.contains(".norm.") && !t.name.ends_with(".branch.alpha"));
    let mut loaded = learner(&plain);
    loaded.load_weights(&old).expect("an older file loads");
    assert_eq!(bits(&loaded.weights()), bits(&learner(&plain).weights()));
}

#[test]
fn a_run_resumed_inside_its_adam_warmup_continues_bit_identically() {
    // The checkpoint at step 100 falls inside the 150-step warm-up; the lr change at 40
    // scales the rate the warm-up ramps towards.
    let experiment = preset(
        "plain-deep",
        &[
            "model.depth=6",
            "model.width=16",
            "test_every=30",
            "optimizer=Adam(lr: 0.01, warmup: 150)",
        ],
    );
    let schedule = [(40, Command::SetLearningRate(0.02))];
    resume_matches_uninterrupted(experiment, 200, 100, &schedule);
}

#[test]
fn a_run_resumed_inside_its_sgd_warmup_continues_bit_identically() {
    let experiment = preset(
        "plain-shallow",
        &[
            "optimizer=Sgd(lr: 0.05, momentum: 0.9, warmup: 40)",
            "test_every=7",
        ],
    );
    resume_matches_uninterrupted(experiment, 60, 25, &[]);
}
