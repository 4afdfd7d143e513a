//! Key handling and state updates, driven through `update` without a terminal.

use gradlab::config::{BranchScale, CellKind, NormKind, NormPlace, SkipMode, load_preset};
use gradlab::metrics::{LayerMetrics, Snapshot, TimestepMetrics};
use gradlab::paths::PathStats;
use gradlab::protocol::LesionResult;
use gradlab::protocol::{Command, Event, Move, RunState};
use gradlab::sources::LayerSources;
use gradlab::ui::app::{App, Msg, Overlay};
use gradlab::ui::keymap::{self, Action};
use gradlab::ui::theme::Theme;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const RESIDUAL: Action = Action::Switch(Move::SkipTo(SkipMode::Residual { scale: 1.0 }));
const HIGHWAY: Action = Action::Switch(Move::SkipTo(SkipMode::Highway));
const DENSE: Action = Action::Switch(Move::SkipTo(SkipMode::Dense));
const PLAIN: Action = Action::Switch(Move::SkipTo(SkipMode::Plain));
const AUX: Action = Action::Switch(Move::ToggleAux);
const LR_UP: Action = Action::Switch(Move::ScaleLr(2.0));
const LR_DOWN: Action = Action::Switch(Move::ScaleLr(0.5));
const CELL: Action = Action::Switch(Move::NextCell);
const NORM: Action = Action::Switch(Move::NextNorm);
const NORM_PLACE: Action = Action::Switch(Move::ToggleNormPlace);
const BRANCH: Action = Action::Switch(Move::NextBranchScale);

#[path = "support/dash.rs"]
mod dash;
use dash::Dash;

fn theme() -> Theme {
    Theme {
        color: false,
        ascii: false,
    }
}

fn started(preset: &str) -> Dash {
    let mut dash = Dash::new(App::new(theme()));
    let experiment = load_preset(preset).expect("built-in preset parses");
    dash.event(Event::Started {
        preset: Box::new(experiment),
    });
    dash
}

fn snapshot(step: u64, first: f64, depth: usize) -> Snapshot {
    let layers = (0..depth)
        .map(|index| LayerMetrics {
            layer: index + 1,
            weight_grad_norm: 1e-3,
            act_grad_norm: if index == 0 { first } else { 1e-2 },
            act_rms: 0.5,
            gate_mean: None,
            gate_bias_mean: None,
            update_ratio: 1e-4,
            act_grad_db: None,
            weight_grad_db: None,
            below_f32: false,
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
    let event = KeyEvent::new(code, modifiers);
    match keymap::resolve(&app.contexts(), &app.situation(), &event)? {
        Ok(action) => Some(Msg::Key(action)),
        Err(_) => None,
    }
}

#[test]
fn keys_map_through_the_table() {
    let app = started("plain-deep");
    let none = KeyModifiers::NONE;
    assert_eq!(
        key(&app, KeyCode::Char('r'), none),
        Some(Msg::Key(RESIDUAL))
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
    app.key(RESIDUAL);
    assert_eq!(
        app.outbox,
        vec![Command::SetSkip(SkipMode::Residual { scale: 1.0 })]
    );
    assert_eq!(app.run().switches.skip, SkipMode::Residual { scale: 1.0 });
    app.outbox.clear();
    app.key(HIGHWAY);
    assert_eq!(app.outbox, vec![Command::SetSkip(SkipMode::Highway)]);
    app.key(DENSE);
    app.key(PLAIN);
    assert_eq!(app.outbox.last(), Some(&Command::SetSkip(SkipMode::Plain)));
}

#[test]
fn norm_placement_and_branch_keys_send_commands_and_update_the_switches() {
    let mut app = started("plain-deep");
    for (c, action) in [('N', NORM), ('m', NORM_PLACE), ('b', BRANCH)] {
        assert_eq!(
            key(&app, KeyCode::Char(c), KeyModifiers::NONE),
            Some(Msg::Key(action)),
            "{c}"
        );
    }
    for action in [NORM, NORM, NORM_PLACE, BRANCH, BRANCH] {
        app.key(action);
    }
    assert_eq!(
        app.outbox,
        vec![
            Command::SetNorm(NormKind::LayerNorm),
            Command::SetNorm(NormKind::BatchNorm),
            Command::SetNormPlace(NormPlace::Post),
            Command::SetBranchScale(BranchScale::InvSqrtDepth),
            Command::SetBranchScale(BranchScale::ReZero),
        ]
    );
    let switches = app.run().switches;
    assert_eq!(switches.norm, NormKind::BatchNorm);
    assert_eq!(switches.norm_place, NormPlace::Post);
    assert_eq!(switches.branch_scale, BranchScale::ReZero);
}

#[test]
fn aux_and_learning_rate_keys() {
    let mut app = started("plain-deep");
    let lr = app.run().switches.lr;
    app.key(AUX);
    app.key(LR_UP);
    app.key(LR_DOWN);
    app.key(LR_DOWN);
    assert_eq!(
        app.outbox,
        vec![
            Command::SetAux(true),
            Command::SetLearningRate(lr * 2.0),
            Command::SetLearningRate(lr),
            Command::SetLearningRate(lr / 2.0),
        ]
    );
    assert!(app.run().switches.aux);
}

#[test]
fn pause_resume_and_single_steps_follow_the_run_state() {
    let mut app = started("plain-deep");
    app.key(Action::StepOnce);
    assert!(app.outbox.is_empty(), "n does nothing while running");
    app.key(Action::TogglePause);
    assert_eq!(app.outbox, vec![Command::Pause]);
    app.event(Event::State {
        step: 3,
        state: RunState::Paused,
    });
    app.key(Action::StepOnce);
    app.key(Action::TogglePause);
    assert_eq!(
        app.outbox,
        vec![Command::Pause, Command::Step(1), Command::Resume]
    );
}

#[test]
fn started_resets_history_and_applied_adds_markers() {
    let mut app = started("plain-deep");
    for step in 0..10 {
        app.event(Event::Snapshot(Box::new(snapshot(step, 1e-6, 32))));
    }
    app.event(Event::Applied {
        step: 10,
        command: Command::SetSkip(SkipMode::Residual { scale: 1.0 }),
    });
    assert_eq!(app.run().step, 9);
    assert_eq!(app.run().first_grad.recent().len(), 10);
    assert_eq!(app.run().markers.len(), 1);
    assert_eq!(app.run().markers[0].step, 10);
    assert_eq!(app.run().markers[0].label, "skip → residual");
    assert_eq!(app.run().switches.skip, SkipMode::Residual { scale: 1.0 });

    app.key(Action::Reset);
    assert_eq!(app.outbox.last(), Some(&Command::Reset));
    let experiment = load_preset("plain-deep").expect("preset");
    app.event(Event::Applied {
        step: 10,
        command: Command::Reset,
    });
    app.event(Event::Started {
        preset: Box::new(experiment),
    });
    assert!(app.run().first_grad.is_empty() && app.run().loss.is_empty());
    assert_eq!(app.run().step, 0);
    assert_eq!(
        app.run().switches.skip,
        SkipMode::Plain,
        "switches come back from the preset"
    );
    assert_eq!(
        app.run().markers.len(),
        1,
        "only the restart marker survives"
    );
    assert_eq!(app.run().markers[0].step, 0);
    assert!(app.run().markers[0].label.contains("reset"));
}

#[test]
fn non_finite_metrics_stay_out_of_the_charts() {
    let mut app = started("plain-deep");
    let mut s = snapshot(5, f64::NAN, 32);
    s.loss = f64::INFINITY;
    s.main_loss = f64::NAN;
    app.event(Event::Snapshot(Box::new(s)));
    assert!(app.run().first_grad.is_empty());
    assert!(app.run().main_loss.is_empty());
    assert_eq!(
        app.run().layers[1].act_grad.recent().len(),
        1,
        "finite layers still recorded"
    );
    assert!(
        app.run()
            .latest
            .as_ref()
            .is_some_and(|l| l.main_loss.is_nan()),
        "kept for the text"
    );
}

#[test]
fn divergence_is_held_until_reset() {
    let mut app = started("plain-deep");
    let divergence = app.diverge(12, 3);
    assert_eq!(app.run().state, RunState::Diverged(divergence));
    app.key(Action::TogglePause);
    assert!(
        app.outbox.is_empty(),
        "space does nothing on a diverged run"
    );
    app.key(Action::Reset);
    assert_eq!(app.outbox, vec![Command::Reset]);
}

#[test]
fn cursor_stays_within_the_layers() {
    let mut app = started("plain-deep");
    app.key(Action::CursorUp);
    assert_eq!(app.run().cursor, 0);
    for _ in 0..100 {
        app.key(Action::CursorDown);
    }
    assert_eq!(app.run().cursor, 31);
}

#[test]
fn help_picker_and_quit() {
    let mut app = started("plain-deep");
    app.key(Action::ToggleHelp);
    assert_eq!(app.overlay, Overlay::Help);
    app.key(Action::Close);
    assert_eq!(app.overlay, Overlay::None);
    app.key(Action::OpenPicker);
    let Overlay::Picker(picker) = &app.overlay else {
        panic!("picker open");
    };
    assert!(picker.entries.len() >= 8, "every built-in preset is listed");
    // In the picker, q closes instead of quitting.
    assert_eq!(
        key(&app, KeyCode::Char('q'), KeyModifiers::NONE),
        Some(Msg::Key(Action::Close))
    );
    app.key(Action::CursorDown);
    app.key(Action::Choose);
    assert_eq!(app.overlay, Overlay::None);
    match app.outbox.last() {
        Some(Command::LoadPreset(e)) => assert_eq!(e.name, "residual-deep"),
        other => panic!("expected LoadPreset, got {other:?}"),
    }
    app.key(Action::Quit);
    assert!(app.quit);
}

#[test]
fn steps_per_second_comes_from_ticks() {
    let mut app = started("plain-deep");
    app.send(Msg::Tick(0.0));
    for step in 0..=50 {
        app.event(Event::Snapshot(Box::new(snapshot(step, 1e-6, 4))));
    }
    app.send(Msg::Tick(0.5));
    assert_eq!(
        app.run().steps_per_sec,
        None,
        "not measured before a second has passed"
    );
    app.send(Msg::Tick(2.0));
    assert_eq!(app.run().steps_per_sec, Some(25.0));
}

#[test]
fn trainer_gone_is_shown_as_a_crash() {
    let mut app = started("plain-deep");
    app.send(Msg::DriverGone);
    assert!(matches!(app.run().state, RunState::Crashed(_)));
}

#[test]
fn g_cycles_the_cell_in_the_rnn_view() {
    let mut app = started("rnn-vanilla-adding");
    assert!(app.run().is_rnn());
    assert_eq!(
        key(&app, KeyCode::Char('g'), KeyModifiers::NONE),
        Some(Msg::Key(CELL))
    );
    for expected in [CellKind::Gru, CellKind::Lstm, CellKind::Vanilla] {
        app.key(CELL);
        assert_eq!(app.run().switches.cell, expected);
        assert_eq!(app.outbox.pop(), Some(Command::SetCell(expected)));
    }
    app.event(Event::Applied {
        step: 12,
        command: Command::SetCell(CellKind::Lstm),
    });
    assert_eq!(app.run().switches.cell, CellKind::Lstm);
    let marker = app.run().markers.back().expect("a marker for the switch");
    assert_eq!((marker.step, marker.label.as_str()), (12, "cell → lstm"));
}

#[test]
fn mlp_keys_only_leave_a_note_in_the_rnn_view() {
    let mut app = started("rnn-gru-adding");
    for action in [
        PLAIN,
        RESIDUAL,
        HIGHWAY,
        DENSE,
        AUX,
        NORM,
        NORM_PLACE,
        BRANCH,
        Action::TogglePaths,
        Action::Lesion,
    ] {
        app.key(action);
        assert!(app.outbox.is_empty(), "{action:?} sent a command");
        assert!(app.note.is_some(), "{action:?} left no note");
        assert!(!app.run().show_paths);
    }
    // Shared keys act as in the MLP view, and clear the note.
    app.key(LR_UP);
    assert!(app.note.is_none());
    assert!(matches!(
        app.outbox.as_slice(),
        [Command::SetLearningRate(_)]
    ));
}

#[test]
fn g_only_leaves_a_note_in_the_mlp_view() {
    let mut app = started("plain-deep");
    assert!(!app.run().is_rnn());
    app.key(CELL);
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
    app.event(Event::Snapshot(Box::new(s)));
    assert_eq!(app.run().timesteps.len(), 5);
    assert_eq!(app.run().depth(), 5, "the cursor moves over time steps");
    assert_eq!(
        app.run().first_grad.recent().last().map(|p| p.1),
        Some(1e-3)
    );
    assert_eq!(app.run().gate_last.recent().last().map(|p| p.1), Some(0.7));
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
    app.key(Action::TogglePaths);
    assert!(app.run().show_paths && app.outbox.is_empty());
    app.key(Action::TogglePaths);
    assert!(!app.run().show_paths);
    app.key(Action::Lesion);
    assert!(app.run().show_paths && app.run().lesion_pending);
    assert_eq!(app.outbox.pop(), Some(Command::Lesion));
    let results = vec![LesionResult {
        block: 1,
        test_loss: 0.9,
        test_accuracy: Some(0.5),
    }];
    app.event(Event::Lesion {
        step: 7,
        intact_test_loss: 0.5,
        results: results.clone(),
    });
    assert!(!app.run().lesion_pending);
    let lesion = app.run().lesion.as_ref().expect("lesion results kept");
    assert_eq!((lesion.step, lesion.intact_test_loss), (7, 0.5));
    assert_eq!(lesion.results, results);
    let stats = PathStats {
        blocks: 1,
        samples_per_length: 1,
        peak_length: 1,
        mean_length: 1.0,
        effective_range: [1, 1],
        by_length: vec![],
        rows: None,
        exact_by_length: vec![],
        exact_peak_length: None,
        exact_mean_length: None,
    };
    app.event(Event::Paths {
        step: 50,
        stats: Box::new(stats.clone()),
    });
    assert_eq!(app.run().paths, Some((50, stats)));
    app.event(Event::Applied {
        step: 60,
        command: Command::SetSkip(SkipMode::Plain),
    });
    assert!(
        app.run().paths.is_none(),
        "stale decomposition dropped on a skip switch"
    );
    let layers = vec![LayerSources {
        layer: 1,
        total: 1.0,
        main: 0.5,
        readouts: vec![],
        aux: vec![0.6],
    }];
    app.event(Event::Sources {
        step: 70,
        layers: layers.clone(),
    });
    assert_eq!(app.run().sources, Some((70, layers.clone())));
    app.event(Event::Applied {
        step: 80,
        command: Command::SetAux(false),
    });
    assert!(
        app.run().sources.is_none(),
        "sources of the old wiring dropped"
    );
    app.event(Event::Sources {
        step: 80,
        layers: layers.clone(),
    });
    // A restart forgets analyses of the old network.
    let experiment = load_preset("residual-deep").expect("preset");
    app.event(Event::Started {
        preset: Box::new(experiment),
    });
    assert!(app.run().paths.is_none() && app.run().lesion.is_none() && app.run().sources.is_none());
}

#[test]
fn paused_header_step_and_newest_snapshot_agree_and_n_moves_both() {
    let mut app = started("plain-deep");
    for step in 0..10 {
        app.event(Event::Snapshot(Box::new(snapshot(step, 1e-6, 32))));
    }
    // The trainer has applied ten updates when it pauses; its newest measurement is step 9.
    app.event(Event::State {
        step: 10,
        state: RunState::Paused,
    });
    let newest = app.run().latest.as_ref().map(|s| s.step);
    assert_eq!(Some(app.run().step), newest, "header and charts agree");
    app.key(Action::StepOnce);
    assert_eq!(app.outbox, vec![Command::Step(1)]);
    app.event(Event::Snapshot(Box::new(snapshot(10, 1e-6, 32))));
    assert_eq!(app.run().step, 10, "one n moves the header by one");
}

#[test]
fn the_learning_rate_keys_say_when_they_reach_their_limit() {
    let mut app = started("plain-deep");
    for _ in 0..40 {
        app.key(LR_UP);
    }
    assert_eq!(app.run().switches.lr, gradlab::protocol::LR_RANGE.1);
    let sent = app.outbox.len();
    app.key(LR_UP);
    assert_eq!(app.outbox.len(), sent, "nothing sent past the limit");
    assert!(
        app.note.as_deref().is_some_and(|n| n.contains("highest")),
        "{:?}",
        app.note
    );
}

#[test]
fn every_action_has_a_key_and_every_key_is_in_the_help() {
    use gradlab::config::ModelKind;
    use gradlab::ui::keymap::{Context, KEYMAP, Situation, help_rows, tour_contexts};
    let all = [
        RESIDUAL,
        HIGHWAY,
        DENSE,
        PLAIN,
        AUX,
        LR_UP,
        LR_DOWN,
        CELL,
        Action::TogglePaths,
        Action::Lesion,
        Action::TogglePause,
        Action::StepOnce,
        Action::Reset,
        Action::CursorUp,
        Action::CursorDown,
        Action::OpenPicker,
        Action::ToggleHelp,
        Action::Close,
        Action::Choose,
        Action::OpenFork,
        Action::ForkWith(None),
        Action::ToggleOverlay,
        Action::FocusNext,
        Action::Focus(0),
        Action::Focus(3),
        Action::Play,
        Action::Faster,
        Action::Slower,
        Action::SeekBy(100),
        Action::SeekBy(-100),
        Action::SeekStart,
        Action::SeekEnd,
        Action::NextMarker,
        Action::PrevMarker,
        Action::Suspend,
        Action::Quit,
        Action::Explain,
        Action::NextPanel,
        Action::PrevPanel,
        Action::NextLesson,
        Action::PrevLesson,
    ];
    for action in all {
        assert!(
            KEYMAP.iter().any(|b| b.actions().any(|a| a == action)),
            "{action:?} has no key"
        );
    }
    let situations = [false, true].into_iter().flat_map(|replay| {
        [ModelKind::Mlp, ModelKind::Rnn].map(|kind| Situation {
            kind: Some(kind),
            replay,
            follow: false,
            compare: false,
        })
    });
    let situations: Vec<Situation> = situations.collect();
    for binding in KEYMAP {
        let overlay = match binding.context {
            Context::Fork | Context::Picker | Context::Explain => Some(binding.context),
            Context::Main | Context::Replay | Context::Tour => None,
        };
        let tour = binding.context == Context::Tour;
        let listed = situations.iter().any(|s| {
            help_rows(&tour_contexts(overlay, s.replay, tour), s, false)
                .iter()
                .any(|(label, help, _)| *label == binding.label(false) && *help == binding.help)
        });
        let in_fork_menu = binding.context == Context::Fork;
        assert!(
            listed || in_fork_menu,
            "{} ({}) is not in any help",
            binding.label(false),
            binding.help
        );
    }
}
