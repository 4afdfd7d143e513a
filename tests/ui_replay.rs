//! The dashboard on recordings: replay rebuilds the same state the live dashboard had, keys
//! seek and jump without touching training, follow mode takes in appended lines, `--cast`
//! writes a valid asciicast, and the real binary replays in tmux.

use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::learner::build_learner;
use gradlab::protocol::LaneEvent;
use gradlab::protocol::{Command, Event};
use gradlab::recording::writer::Tee;
use gradlab::recording::{Header, Recorder};
use gradlab::trainer::{LaneStart, VecSink, run_headless, spawn_driver};
use gradlab::ui::app::{App, Msg, Overlay};
use gradlab::ui::cast::{CastingWriter, SharedCast};
use gradlab::ui::event::{apply, deliver};
use gradlab::ui::follow::FollowSource;
use gradlab::ui::live::LiveSource;
use gradlab::ui::playback::ReplaySource;
use gradlab::ui::run_view::RunView;
use gradlab::ui::theme::Theme;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "support/tmux.rs"]
mod tmux_support;

use tmux_support::{Session, tmux, wait_for};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-replay-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn small(depth: usize) -> Experiment {
    let e = load_preset("plain-deep").expect("built-in preset");
    apply_overrides(&e, &[format!("model.depth={depth}")]).expect("override")
}

fn app() -> App {
    App::new(Theme {
        color: false,
        ascii: false,
    })
}

/// Records a headless run with interventions; returns the events a live dashboard would
/// have taken in, `Started` first (headless runs announce the preset in the header only).
fn record(path: &Path, steps: u64) -> Vec<Event> {
    let experiment = small(6);
    let schedule = vec![
        (10, Command::SetSkip(SkipMode::Residual { scale: 1.0 })),
        (20, Command::SetAux(true)),
        (30, Command::SetLearningRate(0.02)),
    ];
    let mut trainer = build_learner(experiment.clone(), None).expect("trainer");
    let mut recorder =
        Recorder::create(path, &Header::new(&experiment, Some(steps))).expect("recorder");
    let mut seen = VecSink::default();
    run_headless(
        trainer.as_mut(),
        steps,
        &schedule,
        &mut Tee(&mut recorder, &mut seen),
    );
    recorder.close().expect("close");
    let mut events = vec![Event::Started {
        preset: Box::new(experiment),
    }];
    events.extend(seen.events);
    events
}

fn event_step(event: &Event) -> Option<u64> {
    match event {
        Event::Snapshot(s) => Some(s.step),
        Event::State { step, .. } | Event::Applied { step, .. } => Some(*step),
        Event::Paths { step, .. } | Event::Sources { step, .. } | Event::Lesion { step, .. } => {
            Some(*step)
        }
        _ => None,
    }
}

/// The words every training key's note in a replay carries.
const TRAINING_KEYS_OFF: &str = "training keys are off";

/// Everything the panels draw from, as text, so a difference shows where it is.
fn shown(app: &App) -> String {
    let app: &RunView = app.run();
    let layers: Vec<_> = app
        .layers
        .iter()
        .map(|l| {
            (
                l.act_grad.whole_run(),
                l.weight_grad.whole_run(),
                l.act_rms.whole_run(),
                l.update_ratio.whole_run(),
            )
        })
        .collect();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        app.experiment,
        app.step,
        app.state,
        app.switches,
        app.latest,
        app.markers,
        app.loss.whole_run(),
        app.main_loss.whole_run(),
        app.test_loss.whole_run(),
        app.ratio_db.whole_run(),
        app.first_grad.whole_run(),
        layers,
        app.paths,
        app.sources
    )
}

fn live_until(events: &[Event], step: u64) -> App {
    let mut live = app();
    for event in events {
        if event_step(event).is_some_and(|s| s > step) {
            break;
        }
        let event = event.clone();
        let _ = gradlab::ui::app::update(&mut live, Msg::Lane(LaneEvent { lane: 0, event }));
    }
    live
}

fn replay(path: &Path) -> (App, ReplaySource) {
    let mut source = ReplaySource::open(path).expect("replay opens");
    let mut app = App::replaying(
        Theme {
            color: false,
            ascii: false,
        },
        source.view(),
    );
    for msg in source.start().expect("replay starts") {
        apply(&mut app, &mut source, msg);
    }
    (app, source)
}

/// A dashboard following `path` (which may not exist yet).
fn following(path: &Path) -> (App, FollowSource) {
    let app = App::replaying(
        Theme {
            color: false,
            ascii: false,
        },
        FollowSource::view(path),
    );
    (app, FollowSource::open(path))
}

fn press(app: &mut App, source: &mut ReplaySource, code: KeyCode) {
    let msg = Msg::Input(KeyEvent::new(code, KeyModifiers::NONE));
    let own = apply(app, source, msg).own;
    assert!(own.is_empty(), "{own:?}");
}

fn note(app: &App) -> Option<String> {
    app.replay()
        .and_then(|v| v.note.clone())
        .or(app.note.clone())
}

#[test]
fn replayed_state_equals_the_live_state_at_the_same_step() {
    let path = scratch("round-trip.jsonl");
    let events = record(&path, 60);
    let (mut app, mut source) = replay(&path);
    assert_eq!(shown(&app), shown(&live_until(&events, 0)));

    press(&mut app, &mut source, KeyCode::Right);
    assert_eq!(app.run().step, 60, "→ jumps 100 steps, clamped to the end");
    let live = live_until(&events, u64::MAX);
    assert_eq!(shown(&app), shown(&live));
    assert_eq!(app.run().markers.len(), 3, "{:?}", app.run().markers);

    // Back to the start and forward again by a different route: same state.
    press(&mut app, &mut source, KeyCode::Home);
    assert_eq!(shown(&app), shown(&live_until(&events, 0)));
    for _ in 0..3 {
        press(&mut app, &mut source, KeyCode::Char(']'));
    }
    assert_eq!(app.run().markers.len(), 3);
    assert_eq!(shown(&app), shown(&live_until(&events, 30)));
    press(&mut app, &mut source, KeyCode::End);
    assert_eq!(shown(&app), shown(&live));
}

#[test]
fn replay_keys_seek_and_jump_and_training_keys_are_off() {
    let path = scratch("keys.jsonl");
    record(&path, 60);
    let (mut app, mut source) = replay(&path);
    assert!(app.replay().is_some_and(|v| v.last_step == 60));

    for key in ['r', 'a', 'R', 'P', 'n'] {
        press(&mut app, &mut source, KeyCode::Char(key));
        assert_eq!(app.overlay, Overlay::None);
        let note = note(&app).unwrap_or_default();
        assert!(note.contains(TRAINING_KEYS_OFF), "{key}: {note}");
    }
    assert_eq!(app.run().switches.skip, SkipMode::Plain, "r did not switch");
    // The path panel only shows what was recorded, so it opens in a replay too.
    press(&mut app, &mut source, KeyCode::Char('l'));
    assert!(app.run().show_paths);
    press(&mut app, &mut source, KeyCode::Char('l'));
    assert!(!app.run().show_paths);

    press(&mut app, &mut source, KeyCode::Char(']'));
    assert_eq!(app.run().markers.len(), 1);
    assert_eq!(app.run().step, 10);
    assert!(matches!(app.run().switches.skip, SkipMode::Residual { .. }));
    press(&mut app, &mut source, KeyCode::Char(']'));
    assert_eq!((app.run().markers.len(), app.run().step), (2, 20));
    assert!(app.run().switches.aux);
    press(&mut app, &mut source, KeyCode::Char('['));
    assert_eq!((app.run().markers.len(), app.run().step), (1, 10));
    assert!(!app.run().switches.aux, "seeking back undoes aux");
    press(&mut app, &mut source, KeyCode::Char('['));
    assert!(
        note(&app).is_some_and(|n| n.contains("no more")),
        "no marker before the first"
    );
    assert_eq!(app.run().step, 10);

    press(&mut app, &mut source, KeyCode::End);
    assert_eq!(app.run().step, 60);
    press(&mut app, &mut source, KeyCode::Left);
    assert!(app.run().step <= 60 - 50, "← went back: {}", app.run().step);
    press(&mut app, &mut source, KeyCode::Home);
    assert_eq!((app.run().step, app.run().markers.len()), (0, 0));

    let before = app.replay().map(|v| v.speed);
    press(&mut app, &mut source, KeyCode::Char('+'));
    assert_eq!(app.replay().map(|v| v.speed), before.map(|s| s + 1));
    let playing = app.replay().map(|v| v.playing);
    press(&mut app, &mut source, KeyCode::Char(' '));
    assert_eq!(app.replay().map(|v| v.playing), playing.map(|p| !p));
}

#[test]
fn playing_advances_with_the_clock_and_stops_at_the_end() {
    let path = scratch("play.jsonl");
    record(&path, 60);
    let (mut app, mut source) = replay(&path);
    for _ in 0..8 {
        press(&mut app, &mut source, KeyCode::Char('+'));
    }
    // The clock is a message: a tenth of a second at a time, no sleeping.
    let mut now = 0.0;
    while app.replay().is_some_and(|v| v.playing) && now < 60.0 {
        apply(&mut app, &mut source, Msg::Tick(now));
        now += 0.1;
    }
    assert_eq!(app.run().step, 60);
    assert!(
        now < 1.0,
        "×64 plays 60 steps in well under a second: {now}"
    );
    assert!(app.replay().is_some_and(|v| v.at_end && !v.playing));
}

#[test]
fn follow_takes_in_lines_another_writer_appends() {
    let path = scratch("follow.jsonl");
    let source_path = scratch("follow-source.jsonl");
    record(&source_path, 40);
    let text = std::fs::read_to_string(&source_path).expect("recorded");
    let lines: Vec<&str> = text.lines().collect();
    let _ = std::fs::remove_file(&path);
    let (mut app, mut follow) = following(&path);
    apply(&mut app, &mut follow, Msg::Tick(0.0));
    assert!(
        note(&app).is_some_and(|n| n.contains("waiting for")),
        "a file that does not exist yet is waited for"
    );
    let mut file = std::fs::File::create(&path).expect("create");
    let mut steps_seen = Vec::new();
    let mut now = 0.0;
    // The writer appends in batches of ten lines; the follower polls between batches.
    for batch in lines.chunks(10) {
        for line in batch {
            writeln!(file, "{line}").expect("append");
        }
        file.flush().expect("flush");
        now += 0.1;
        apply(&mut app, &mut follow, Msg::Tick(now));
        steps_seen.push(app.run().step);
    }
    assert_eq!(app.run().step, 40);
    assert_eq!(app.run().markers.len(), 3);
    let distinct: std::collections::BTreeSet<_> = steps_seen.iter().collect();
    assert!(
        distinct.len() > 2,
        "updated while the writer ran: {distinct:?}"
    );
    assert!(
        app.replay().is_some_and(|v| v.at_end),
        "the finished state ends it"
    );
}

#[test]
fn follow_says_when_a_file_stops_without_an_end() {
    let path = scratch("follow-cut.jsonl");
    let source_path = scratch("follow-cut-source.jsonl");
    record(&source_path, 20);
    let text = std::fs::read_to_string(&source_path).expect("recorded");
    // Everything but the closing line: what SIGKILL leaves behind.
    let cut: Vec<&str> = text.lines().collect();
    std::fs::write(&path, cut[..cut.len() - 1].join("\n") + "\n").expect("write");
    let (mut app, mut follow) = following(&path);
    apply(&mut app, &mut follow, Msg::Tick(0.0));
    assert!(app.replay().is_some_and(|v| !v.at_end));
    apply(&mut app, &mut follow, Msg::Tick(12.0));
    let note = note(&app).unwrap_or_default();
    assert!(note.contains("no new line for 12 s"), "{note}");
}

#[test]
fn cast_holds_header_output_resize_and_a_marker_for_a_toggle_key() {
    let path = scratch("session.cast");
    let cast = SharedCast::create(&path, 100, 30).expect("cast");
    let mut terminal = CastingWriter::new(Vec::new(), Some(cast.clone()));
    // A character split across two writes must come out whole.
    let text = "loss ‖∂L/∂h‖".as_bytes();
    terminal.write_all(&text[..6]).expect("write");
    terminal.write_all(&text[6..]).expect("write");
    terminal.flush().expect("flush");
    terminal.write_all(b"\x1b[2J").expect("write");
    terminal.flush().expect("flush");
    cast.resize(90, 20);

    let handle = spawn_driver(vec![LaneStart::fresh(small(4), None)], 1, false).expect("trainer");
    let (inbox_tx, inbox) = std::sync::mpsc::channel();
    let mut source = LiveSource::start(handle, None, inbox_tx, 20).expect("driver starts");
    let mut app = app();
    let deadline = Instant::now() + Duration::from_secs(20);
    let take = |app: &mut App, source: &mut LiveSource| {
        if let Ok(msg) = inbox.recv_timeout(Duration::from_millis(50)) {
            deliver(app, source, Some(&cast), msg);
        }
    };
    while app.run().experiment.is_none() && Instant::now() < deadline {
        take(&mut app, &mut source);
    }
    let a = Msg::Input(KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE));
    deliver(&mut app, &mut source, Some(&cast), a);
    while app.run().markers.is_empty() && Instant::now() < deadline {
        take(&mut app, &mut source);
    }
    source
        .close("quit", &inbox, Duration::from_secs(20))
        .expect("closes");
    cast.close().expect("cast closes");

    let text = std::fs::read_to_string(&path).expect("cast file");
    let mut lines = text.lines();
    let header: serde_json::Value =
        serde_json::from_str(lines.next().expect("header")).expect("header is JSON");
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 100);
    assert_eq!(header["height"], 30);
    let mut output = String::new();
    let mut kinds = Vec::new();
    let mut last_t = 0.0;
    for line in lines {
        let event: (f64, String, String) = serde_json::from_str(line).expect("event array");
        assert!(event.0 >= last_t, "time goes forward");
        last_t = event.0;
        if event.1 == "o" {
            output.push_str(&event.2);
        }
        kinds.push((event.1, event.2));
    }
    assert_eq!(output, "loss ‖∂L/∂h‖\x1b[2J");
    assert_eq!(
        kinds.iter().filter(|(k, _)| k == "o").count(),
        2,
        "one event a flush"
    );
    assert!(kinds.contains(&("r".into(), "90x20".into())), "{kinds:?}");
    assert!(kinds.contains(&("m".into(), "aux on".into())), "{kinds:?}");
}

/// `wait_for` with a yes/no test, returning the screen that passed it.
fn wait_for_screen(
    session: &str,
    timeout: Duration,
    found: impl Fn(&str) -> bool,
) -> Option<String> {
    wait_for(session, timeout, |screen| {
        found(screen).then(|| screen.to_string())
    })
}

#[test]
fn replay_binary_shows_the_header_and_answers_space_and_q() {
    if !tmux_support::tmux_available() {
        return;
    }
    let path = scratch("e2e.jsonl");
    record(&path, 60);
    let name = format!("gradlab-replay-e2e-{}", std::process::id());
    let session = Session(name.clone());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "120",
        "-y",
        "40",
        "env PS1='$ ' sh",
    ])
    .expect("tmux starts");
    let command = format!(
        "{} replay {}; echo GRADLAB_EXIT=$?",
        env!("CARGO_BIN_EXE_gradlab"),
        path.display()
    );
    tmux(&["send-keys", "-t", &name, &command, "Enter"]);
    let screen = wait_for_screen(&name, Duration::from_secs(20), |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("replay e2e.jsonl"))
    });
    let screen = screen.unwrap_or_else(|| panic!("no replay header"));
    assert!(screen.contains("at "), "{screen}");
    tmux(&["send-keys", "-t", &name, "Home", " "]);
    let paused = wait_for_screen(&name, Duration::from_secs(10), |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("⏸") && l.contains("at 0/60"))
    });
    assert!(paused.is_some(), "space did not pause at Home");
    tmux(&["send-keys", "-t", &name, "End"]);
    assert!(
        wait_for_screen(&name, Duration::from_secs(10), |s| s.contains("at 60/60")).is_some(),
        "End did not reach the last step"
    );
    tmux(&["send-keys", "-t", &name, "q"]);
    let back = wait_for_screen(&name, Duration::from_secs(10), |s| {
        s.contains("GRADLAB_EXIT=0")
    });
    let back = back.unwrap_or_else(|| panic!("q did not exit with 0"));
    assert!(
        !back.contains("replay e2e.jsonl"),
        "dashboard left on screen:\n{back}"
    );
    drop(session);
}

#[test]
fn replay_says_how_many_corrupt_lines_it_skipped() {
    let path = scratch("corrupt.jsonl");
    record(&path, 20);
    let text = std::fs::read_to_string(&path).expect("recorded");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(5, "{\"run\":1,\"type\":\"snapshot\",\"step\":");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let (app, _source) = replay(&path);
    let note = note(&app).unwrap_or_default();
    assert!(
        note.contains("1 corrupt line(s) skipped, the first at line 6"),
        "{note}"
    );
}
