//! Key handling and state updates, driven through `update` without a terminal.

use gradlab::config::{CellKind, SkipMode, load_preset};
use gradlab::metrics::{Divergence, LayerMetrics, Snapshot, TimestepMetrics};
use gradlab::paths::PathStats;
use gradlab::protocol::LesionResult;
use gradlab::protocol::{Command, Event, RunState};
use gradlab::sources::LayerSources;
use gradlab::ui::app::{Action, App, Msg, update};
use gradlab::ui::theme::Theme;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn theme() -> Theme {
    Theme {
        color: false,
        ascii: false,
    }
}

fn started(preset: &str) -> App {
    let mut app = App::new(theme());
    let experiment = load_preset(preset).expect("built-in preset parses");
    update(
        &mut app,
        Msg::Trainer(Event::Started {
            preset: Box::new(experiment),
        }),
    );
    app
}

fn snapshot(step: u64, first: f64, depth: usize) -> Snapshot {
    let layers = (0..depth)
        .map(|index| LayerMetrics {
            index,
            weight_grad_norm: 1e-3,
            act_grad_norm: if index == 0 { first } else { 1e-2 },
            act_rms: 0.5,
            gate_mean: None,
            gate_bias_mean: None,
            update_ratio: 1e-4,
        })
        .collect();
    Snapshot {
        preset: "plain-deep".into(),
        step,
        loss: 0.69,
        main_loss: 0.69,
        aux_losses: vec![],
        train_accuracy: Some(0.5),
        test_accuracy: None,
        test_loss: None,
        diverged: false,
        divergence: None,
        learning_rate: 0.05,
        skip: "plain".into(),
        aux_enabled: false,
        grad_norm: 1.0,
        layers,
        grad_ratio_first_last: first / 1e-2,
        grad_ratio_db: 20.0 * (first / 1e-2).log10(),
        measured_chi1: 0.5,
        ..Snapshot::default()
    }
}

fn key(app: &App, code: KeyCode, modifiers: KeyModifiers) -> Option<Msg> {
    app.key_to_msg(KeyEvent::new(code, modifiers))
}

#[test]
fn keys_map_through_the_table() {
    let app = started("plain-deep");
    let none = KeyModifiers::NONE;
    assert_eq!(
        key(&app, KeyCode::Char('r'), none),
        Some(Msg::Key(Action::Residual))
    );
    assert_eq!(
        key(&app, KeyCode::Char('R'), KeyModifiers::SHIFT),
        Some(Msg::Key(Action::Reset))
    );
    assert_eq!(
        key(&app, KeyCode::Char('j'), none),
        Some(Msg::Key(Action::CursorDown))
    );
    assert_eq!(
        key(&app, KeyCode::Up, none),
        Some(Msg::Key(Action::CursorUp))
    );
    assert_eq!(
        key(&app, KeyCode::Char('c'), KeyModifiers::CONTROL),
        Some(Msg::Key(Action::Quit))
    );
    assert_eq!(
        key(&app, KeyCode::Char('c'), none),
        None,
        "plain c is not bound"
    );
    assert_eq!(
        key(&app, KeyCode::Char(' '), none),
        Some(Msg::Key(Action::TogglePause))
    );
}

#[test]
fn skip_keys_send_commands_and_update_the_switches() {
    let mut app = started("plain-deep");
    update(&mut app, Msg::Key(Action::Residual));
    assert_eq!(
        app.outbox,
        vec![Command::SetSkip(SkipMode::Residual { scale: 1.0 })]
    );
    assert_eq!(app.switches.skip, SkipMode::Residual { scale: 1.0 });
    app.outbox.clear();
    update(&mut app, Msg::Key(Action::Highway));
    assert_eq!(app.outbox, vec![Command::SetSkip(SkipMode::Highway)]);
    update(&mut app, Msg::Key(Action::Dense));
    update(&mut app, Msg::Key(Action::Plain));
    assert_eq!(app.outbox.last(), Some(&Command::SetSkip(SkipMode::Plain)));
}

#[test]
fn aux_and_learning_rate_keys() {
    let mut app = started("plain-deep");
    let lr = app.switches.lr;
    update(&mut app, Msg::Key(Action::ToggleAux));
    update(&mut app, Msg::Key(Action::LrUp));
    update(&mut app, Msg::Key(Action::LrDown));
    update(&mut app, Msg::Key(Action::LrDown));
    assert_eq!(
        app.outbox,
        vec![
            Command::SetAux(true),
            Command::SetLearningRate(lr * 2.0),
            Command::SetLearningRate(lr),
            Command::SetLearningRate(lr / 2.0),
        ]
    );
    assert!(app.switches.aux);
}

#[test]
fn pause_resume_and_single_steps_follow_the_run_state() {
    let mut app = started("plain-deep");
    update(&mut app, Msg::Key(Action::StepOnce));
    assert!(app.outbox.is_empty(), "n does nothing while running");
    update(&mut app, Msg::Key(Action::TogglePause));
    assert_eq!(app.outbox, vec![Command::Pause]);
    update(
        &mut app,
        Msg::Trainer(Event::State {
            step: 3,
            state: RunState::Paused,
        }),
    );
    update(&mut app, Msg::Key(Action::StepOnce));
    update(&mut app, Msg::Key(Action::TogglePause));
    assert_eq!(
        app.outbox,
        vec![Command::Pause, Command::Step(1), Command::Resume]
    );
}

#[test]
fn started_resets_history_and_applied_adds_markers() {
    let mut app = started("plain-deep");
    for step in 0..10 {
        update(
            &mut app,
            Msg::Trainer(Event::Snapshot(Box::new(snapshot(step, 1e-6, 32)))),
        );
    }
    update(
        &mut app,
        Msg::Trainer(Event::Applied {
            step: 10,
            command: Command::SetSkip(SkipMode::Residual { scale: 1.0 }),
        }),
    );
    assert_eq!(app.step, 9);
    assert_eq!(app.first_grad.recent().len(), 10);
    assert_eq!(app.markers.len(), 1);
    assert_eq!(app.markers[0].step, 10);
    assert_eq!(app.markers[0].label, "skip → residual");
    assert_eq!(app.switches.skip, SkipMode::Residual { scale: 1.0 });

    update(&mut app, Msg::Key(Action::Reset));
    assert_eq!(app.outbox.last(), Some(&Command::Reset));
    let experiment = load_preset("plain-deep").expect("preset");
    update(
        &mut app,
        Msg::Trainer(Event::Applied {
            step: 10,
            command: Command::Reset,
        }),
    );
    update(
        &mut app,
        Msg::Trainer(Event::Started {
            preset: Box::new(experiment),
        }),
    );
    assert!(app.first_grad.is_empty() && app.loss.is_empty());
    assert_eq!(app.step, 0);
    assert_eq!(
        app.switches.skip,
        SkipMode::Plain,
        "switches come back from the preset"
    );
    assert_eq!(app.markers.len(), 1, "only the restart marker survives");
    assert_eq!(app.markers[0].step, 0);
    assert!(app.markers[0].label.contains("reset"));
}

#[test]
fn non_finite_metrics_stay_out_of_the_charts() {
    let mut app = started("plain-deep");
    let mut s = snapshot(5, f64::NAN, 32);
    s.loss = f64::INFINITY;
    s.main_loss = f64::NAN;
    update(&mut app, Msg::Trainer(Event::Snapshot(Box::new(s))));
    assert!(app.first_grad.is_empty());
    assert!(app.main_loss.is_empty());
    assert_eq!(
        app.layers[1].act_grad.recent().len(),
        1,
        "finite layers still recorded"
    );
    assert!(
        app.latest.as_ref().is_some_and(|l| l.main_loss.is_nan()),
        "kept for the text"
    );
}

#[test]
fn divergence_is_held_until_reset() {
    let mut app = started("plain-deep");
    let divergence = Divergence {
        step: 12,
        layer: Some(3),
        what: "loss is NaN".into(),
    };
    update(
        &mut app,
        Msg::Trainer(Event::State {
            step: 12,
            state: RunState::Diverged(divergence.clone()),
        }),
    );
    assert_eq!(app.state, RunState::Diverged(divergence));
    update(&mut app, Msg::Key(Action::TogglePause));
    assert!(
        app.outbox.is_empty(),
        "space does nothing on a diverged run"
    );
    update(&mut app, Msg::Key(Action::Reset));
    assert_eq!(app.outbox, vec![Command::Reset]);
}

#[test]
fn cursor_stays_within_the_layers() {
    let mut app = started("plain-deep");
    update(&mut app, Msg::Key(Action::CursorUp));
    assert_eq!(app.cursor, 0);
    for _ in 0..100 {
        update(&mut app, Msg::Key(Action::CursorDown));
    }
    assert_eq!(app.cursor, 31);
}

#[test]
fn help_picker_and_quit() {
    let mut app = started("plain-deep");
    update(&mut app, Msg::Key(Action::ToggleHelp));
    assert!(app.show_help);
    update(&mut app, Msg::Key(Action::Close));
    assert!(!app.show_help);
    update(&mut app, Msg::Key(Action::OpenPicker));
    let picker = app.picker.as_ref().expect("picker open");
    assert!(picker.entries.len() >= 8, "every built-in preset is listed");
    // In the picker, q closes instead of quitting.
    assert_eq!(
        key(&app, KeyCode::Char('q'), KeyModifiers::NONE),
        Some(Msg::Key(Action::Close))
    );
    update(&mut app, Msg::Key(Action::CursorDown));
    update(&mut app, Msg::Key(Action::Choose));
    assert!(app.picker.is_none());
    match app.outbox.last() {
        Some(Command::LoadPreset(e)) => assert_eq!(e.name, "residual-deep"),
        other => panic!("expected LoadPreset, got {other:?}"),
    }
    update(&mut app, Msg::Key(Action::Quit));
    assert!(app.quit);
}

#[test]
fn steps_per_second_comes_from_ticks() {
    let mut app = started("plain-deep");
    update(&mut app, Msg::Tick(0.0));
    for step in 0..=50 {
        update(
            &mut app,
            Msg::Trainer(Event::Snapshot(Box::new(snapshot(step, 1e-6, 4)))),
        );
    }
    update(&mut app, Msg::Tick(0.5));
    assert_eq!(
        app.steps_per_sec, None,
        "not measured before a second has passed"
    );
    update(&mut app, Msg::Tick(2.0));
    assert_eq!(app.steps_per_sec, Some(25.0));
}

#[test]
fn trainer_gone_is_shown_as_a_crash() {
    let mut app = started("plain-deep");
    update(&mut app, Msg::TrainerGone);
    assert!(matches!(app.state, RunState::Crashed(_)));
}

#[test]
fn g_cycles_the_cell_in_the_rnn_view() {
    let mut app = started("rnn-vanilla-adding");
    assert!(app.is_rnn());
    assert_eq!(
        key(&app, KeyCode::Char('g'), KeyModifiers::NONE),
        Some(Msg::Key(Action::CycleCell))
    );
    for expected in [CellKind::Gru, CellKind::Lstm, CellKind::Vanilla] {
        update(&mut app, Msg::Key(Action::CycleCell));
        assert_eq!(app.switches.cell, expected);
        assert_eq!(app.outbox.pop(), Some(Command::SetCell(expected)));
    }
    update(
        &mut app,
        Msg::Trainer(Event::Applied {
            step: 12,
            command: Command::SetCell(CellKind::Lstm),
        }),
    );
    assert_eq!(app.switches.cell, CellKind::Lstm);
    let marker = app.markers.back().expect("a marker for the switch");
    assert_eq!((marker.step, marker.label.as_str()), (12, "cell → lstm"));
}

#[test]
fn mlp_keys_only_leave_a_note_in_the_rnn_view() {
    let mut app = started("rnn-gru-adding");
    for action in [
        Action::Plain,
        Action::Residual,
        Action::Highway,
        Action::Dense,
        Action::ToggleAux,
        Action::TogglePaths,
        Action::Lesion,
    ] {
        update(&mut app, Msg::Key(action));
        assert!(app.outbox.is_empty(), "{action:?} sent a command");
        assert!(app.note.is_some(), "{action:?} left no note");
        assert!(!app.show_paths);
    }
    // Shared keys act as in the MLP view, and clear the note.
    update(&mut app, Msg::Key(Action::LrUp));
    assert!(app.note.is_none());
    assert!(matches!(
        app.outbox.as_slice(),
        [Command::SetLearningRate(_)]
    ));
}

#[test]
fn g_only_leaves_a_note_in_the_mlp_view() {
    let mut app = started("plain-deep");
    assert!(!app.is_rnn());
    update(&mut app, Msg::Key(Action::CycleCell));
    assert!(app.outbox.is_empty());
    assert!(app.note.as_deref().is_some_and(|n| n.contains("MLP")));
}

#[test]
fn rnn_snapshots_fill_the_time_step_histories() {
    let mut app = started("rnn-lstm-adding");
    let mut s = snapshot(4, 1e-3, 0);
    s.layers.clear();
    s.timesteps = (1..=5)
        .map(|t| TimestepMetrics {
            t,
            hidden_grad_norm: 1e-3 * t as f64,
            forget_gate_mean: Some(0.7),
            update_gate_mean: None,
        })
        .collect();
    s.baseline_loss = Some(0.167);
    update(&mut app, Msg::Trainer(Event::Snapshot(Box::new(s))));
    assert_eq!(app.timesteps.len(), 5);
    assert_eq!(app.depth(), 5, "the cursor moves over time steps");
    assert_eq!(app.first_grad.recent().last().map(|p| p.1), Some(1e-3));
    assert_eq!(app.gate_last.recent().last().map(|p| p.1), Some(0.7));
}

#[test]
fn path_panel_and_lesion_keys() {
    let mut app = started("residual-deep");
    let none = KeyModifiers::NONE;
    assert_eq!(
        key(&app, KeyCode::Char('l'), none),
        Some(Msg::Key(Action::TogglePaths))
    );
    assert_eq!(
        key(&app, KeyCode::Char('L'), KeyModifiers::SHIFT),
        Some(Msg::Key(Action::Lesion))
    );
    update(&mut app, Msg::Key(Action::TogglePaths));
    assert!(app.show_paths && app.outbox.is_empty());
    update(&mut app, Msg::Key(Action::TogglePaths));
    assert!(!app.show_paths);
    update(&mut app, Msg::Key(Action::Lesion));
    assert!(app.show_paths && app.lesion_pending);
    assert_eq!(app.outbox.pop(), Some(Command::Lesion));
    let results = vec![LesionResult {
        block: 0,
        test_loss: 0.9,
        test_accuracy: Some(0.5),
    }];
    update(
        &mut app,
        Msg::Trainer(Event::Lesion {
            step: 7,
            intact_test_loss: 0.5,
            results: results.clone(),
        }),
    );
    assert!(!app.lesion_pending);
    let lesion = app.lesion.as_ref().expect("lesion results kept");
    assert_eq!((lesion.step, lesion.intact_test_loss), (7, 0.5));
    assert_eq!(lesion.results, results);
    let stats = PathStats {
        blocks: 1,
        samples_per_length: 1,
        peak_length: 1,
        mean_length: 1.0,
        effective_range: [1, 1],
        by_length: vec![],
    };
    update(
        &mut app,
        Msg::Trainer(Event::Paths {
            step: 50,
            stats: Box::new(stats.clone()),
        }),
    );
    assert_eq!(app.paths, Some((50, stats)));
    update(
        &mut app,
        Msg::Trainer(Event::Applied {
            step: 60,
            command: Command::SetSkip(SkipMode::Plain),
        }),
    );
    assert!(
        app.paths.is_none(),
        "stale decomposition dropped on a skip switch"
    );
    let layers = vec![LayerSources {
        layer: 0,
        total: 1.0,
        main: 0.5,
        readouts: vec![],
        aux: vec![0.6],
    }];
    update(
        &mut app,
        Msg::Trainer(Event::Sources {
            step: 70,
            layers: layers.clone(),
        }),
    );
    assert_eq!(app.sources, Some((70, layers.clone())));
    update(
        &mut app,
        Msg::Trainer(Event::Applied {
            step: 80,
            command: Command::SetAux(false),
        }),
    );
    assert!(app.sources.is_none(), "sources of the old wiring dropped");
    update(
        &mut app,
        Msg::Trainer(Event::Sources {
            step: 80,
            layers: layers.clone(),
        }),
    );
    // A restart forgets analyses of the old network.
    let experiment = load_preset("residual-deep").expect("preset");
    update(
        &mut app,
        Msg::Trainer(Event::Started {
            preset: Box::new(experiment),
        }),
    );
    assert!(app.paths.is_none() && app.lesion.is_none() && app.sources.is_none());
}
