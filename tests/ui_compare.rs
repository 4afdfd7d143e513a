//! The compare view and the fork key, driven through `update` without a terminal: the key
//! tables, the fork menu, focus, toggles for the focused run, the fork limit, and snapshots
//! of both layouts rendered into ratatui's `TestBackend`.

use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::learner::Learner;
use gradlab::model::Trainer;
use gradlab::protocol::{Command, Event, LaneEvent, RunState};
use gradlab::trainer::{Driver, LaneStart, VecSink, run_headless};
use gradlab::ui::app::{Action, App, FORK_KEYS, MAIN_KEYS, Msg, PICKER_KEYS, update};
use gradlab::ui::fork::Flip;
use gradlab::ui::render;
use gradlab::ui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn theme() -> Theme {
    Theme {
        color: true,
        ascii: false,
    }
}

fn experiment() -> Experiment {
    let base = load_preset("plain-deep").expect("built-in preset");
    let sets = ["model.depth=12", "path_every=10"].map(String::from);
    apply_overrides(&base, &sets).expect("valid overrides")
}

/// Everything but the final `Finished` of a headless run (the dashboard never sees it live).
fn live(events: Vec<Event>) -> impl Iterator<Item = Event> {
    events.into_iter().filter(|e| {
        !matches!(
            e,
            Event::State {
                state: RunState::Finished,
                ..
            }
        )
    })
}

/// A 12-layer plain net, 20 steps alone, then forked with residual on the twin and both run
/// to step 40: the same events every time, and no wall-clock values (no `Tick`).
fn compare_app(theme: Theme) -> App {
    let experiment = experiment();
    let mut app = App::new(theme);
    let started = Event::Started {
        preset: Box::new(experiment.clone()),
    };
    update(&mut app, Msg::Trainer(started));
    let mut sink = VecSink::default();
    // Twenty steps on the driver, with their events and without a closing measurement.
    let mut parent = Trainer::new(experiment.clone(), None).expect("trainer builds");
    {
        let mut driver = Driver::new(1, false);
        let mut out = |e: LaneEvent| {
            sink.events.push(e.event);
            true
        };
        driver.add(LaneStart::running(Box::new(&mut parent), None), &mut out);
        for _ in 0..20 {
            driver.round(&mut out);
        }
    }
    live(std::mem::take(&mut sink.events)).for_each(|e| update(&mut app, Msg::Trainer(e)));
    update(&mut app, Msg::Key(Action::OpenFork));
    update(&mut app, Msg::Key(Action::ForkWith(Flip::Residual)));
    let request = app.fork_request.take().expect("a fork was asked for");
    let mut twin = parent.fork();
    let flip = request.flip.clone().expect("residual is a flip");
    twin.apply(&flip);
    update(
        &mut app,
        Msg::Lane(LaneEvent {
            lane: 1,
            event: Event::Forked {
                from: 0,
                step: 20,
                flip: None,
            },
        }),
    );
    let applied = Event::Applied {
        step: 20,
        command: flip,
    };
    update(
        &mut app,
        Msg::Lane(LaneEvent {
            lane: 1,
            event: applied,
        }),
    );
    let mut twin_sink = VecSink::default();
    run_headless(&mut parent, 40, &[], &mut sink);
    run_headless(twin.as_mut(), 40, &[], &mut twin_sink);
    for (run, events) in [(0, sink.events), (1, twin_sink.events)] {
        for event in live(events) {
            update(&mut app, Msg::Lane(LaneEvent { lane: run, event }));
        }
        let busy = Event::Throughput {
            steps_per_sec: 100.0 + run as f64,
        };
        update(
            &mut app,
            Msg::Lane(LaneEvent {
                lane: run,
                event: busy,
            }),
        );
    }
    app
}

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|frame| render(frame, app)).expect("draw");
    terminal
}

#[test]
fn key_tables_have_no_conflicts_and_bind_the_compare_keys() {
    for table in [MAIN_KEYS, PICKER_KEYS, FORK_KEYS] {
        for (i, a) in table.iter().enumerate() {
            for b in &table[i + 1..] {
                assert!(
                    !(a.code == b.code && a.ctrl == b.ctrl),
                    "{:?} is bound twice: {:?} and {:?}",
                    a.code,
                    a.action,
                    b.action
                );
            }
        }
    }
    let app = App::new(theme());
    let key = |code| app.key_to_msg(KeyEvent::new(code, KeyModifiers::NONE));
    assert_eq!(key(KeyCode::Char('f')), Some(Msg::Key(Action::OpenFork)));
    assert_eq!(
        key(KeyCode::Char('o')),
        Some(Msg::Key(Action::ToggleOverlay))
    );
    assert_eq!(key(KeyCode::Tab), Some(Msg::Key(Action::FocusNext)));
    assert_eq!(key(KeyCode::Char('3')), Some(Msg::Key(Action::Focus(2))));
}

#[test]
fn fork_menu_maps_its_own_keys_and_closes() {
    let mut app = App::new(theme());
    update(
        &mut app,
        Msg::Trainer(Event::Started {
            preset: Box::new(experiment()),
        }),
    );
    update(&mut app, Msg::Key(Action::OpenFork));
    assert!(app.fork_menu);
    let key = |app: &App, c| app.key_to_msg(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    assert_eq!(
        key(&app, 'r'),
        Some(Msg::Key(Action::ForkWith(Flip::Residual)))
    );
    assert_eq!(
        key(&app, 'q'),
        Some(Msg::Key(Action::Close)),
        "q closes the menu, not the app"
    );
    update(&mut app, Msg::Key(Action::Close));
    assert!(!app.fork_menu);
    update(&mut app, Msg::Key(Action::OpenFork));
    update(&mut app, Msg::Key(Action::ForkWith(Flip::LrUp)));
    let request = app.fork_request.clone().expect("fork requested");
    assert_eq!(request.from, 0);
    assert_eq!(request.flip, Some(Command::SetLearningRate(0.5)));
    assert!(
        app.compare.is_none(),
        "the view changes when the driver confirms"
    );
    assert!(
        app.outbox.is_empty(),
        "a fork sends no command to the parent"
    );
}

#[test]
fn stopped_or_rnn_runs_refuse_what_does_not_apply() {
    let mut app = App::new(theme());
    update(&mut app, Msg::Key(Action::OpenFork));
    assert!(!app.fork_menu, "nothing to fork before the run starts");
    let rnn = load_preset("rnn-lstm-adding").expect("built-in preset");
    update(
        &mut app,
        Msg::Trainer(Event::Started {
            preset: Box::new(rnn),
        }),
    );
    update(&mut app, Msg::Key(Action::OpenFork));
    update(&mut app, Msg::Key(Action::ForkWith(Flip::Residual)));
    assert!(app.fork_request.is_none());
    assert!(app.note.as_deref().is_some_and(|n| n.contains("recurrent")));
    update(&mut app, Msg::Key(Action::OpenFork));
    update(&mut app, Msg::Key(Action::ForkWith(Flip::Cell)));
    let request = app.fork_request.take().expect("g applies to an RNN");
    assert!(matches!(request.flip, Some(Command::SetCell(_))));
    update(&mut app, Msg::Key(Action::ToggleOverlay));
    assert!(app.note.as_deref().is_some_and(|n| n.contains("compare")));
}

#[test]
fn forked_twin_inherits_history_and_toggles_follow_the_focus() {
    let mut app = compare_app(theme());
    let view = app.compare.as_ref().expect("compare view");
    assert_eq!(view.runs.len(), 2);
    assert_eq!(view.focus, 1, "the twin gets the focus");
    assert_eq!(
        view.runs[1].label,
        format!("{} +residual", experiment().name)
    );
    assert_eq!(view.runs[1].forked_at, Some(20));
    let (parent, twin) = (&view.runs[0].app, &view.runs[1].app);
    assert_eq!(parent.step, twin.step, "lock-step");
    assert_eq!(
        parent.main_loss.whole_run()[..20],
        twin.main_loss.whole_run()[..20],
        "the twin's history before the fork is its parent's"
    );
    assert_eq!(twin.switches.skip, SkipMode::Residual { scale: 1.0 });
    assert_eq!(parent.switches.skip, SkipMode::Plain);

    update(&mut app, Msg::Key(Action::ToggleAux));
    update(&mut app, Msg::Key(Action::Focus(0)));
    update(&mut app, Msg::Key(Action::Highway));
    let view = app.compare.as_ref().expect("compare view");
    assert_eq!(view.runs[1].app.outbox, vec![Command::SetAux(true)]);
    assert!(matches!(
        view.runs[0].app.outbox[..],
        [Command::SetSkip(SkipMode::Highway)]
    ));
    update(&mut app, Msg::Key(Action::FocusNext));
    update(&mut app, Msg::Key(Action::ToggleOverlay));
    let view = app.compare.as_ref().expect("compare view");
    assert_eq!(view.focus, 1);
    assert!(view.overlay);
    update(&mut app, Msg::Key(Action::Focus(3)));
    assert!(app.note.as_deref().is_some_and(|n| n.contains("no run 4")));
    update(&mut app, Msg::Key(Action::OpenPicker));
    assert!(
        app.compare.is_some(),
        "the picker does not replace a comparison"
    );
}

#[test]
fn a_fifth_run_is_refused_with_a_note() {
    let mut app = compare_app(theme());
    for run in 2..4 {
        update(&mut app, Msg::Key(Action::OpenFork));
        update(&mut app, Msg::Key(Action::ForkWith(Flip::Nothing)));
        assert!(app.fork_request.take().is_some());
        update(
            &mut app,
            Msg::Lane(LaneEvent {
                lane: run,
                event: Event::Forked {
                    from: 1,
                    step: 40,
                    flip: None,
                },
            }),
        );
    }
    let view = app.compare.as_ref().expect("compare view");
    assert_eq!(view.runs.len(), 4);
    assert!(
        view.runs[3].app.markers.iter().any(|m| m.label == "fork"),
        "an unflipped twin marks its branch point"
    );
    update(&mut app, Msg::Key(Action::OpenFork));
    assert!(!app.fork_menu);
    assert!(app.note.as_deref().is_some_and(|n| n.contains("4 runs")));
}

#[test]
fn snapshot_side_by_side_120x40() {
    let app = compare_app(theme());
    insta::assert_snapshot!("compare_side_by_side_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn snapshot_side_by_side_80x24() {
    let app = compare_app(theme());
    insta::assert_snapshot!("compare_side_by_side_80x24", draw(&app, 80, 24).backend());
}

#[test]
fn snapshot_overlay_120x40() {
    let mut app = compare_app(theme());
    update(&mut app, Msg::Key(Action::ToggleOverlay));
    insta::assert_snapshot!("compare_overlay_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn snapshot_overlay_80x24() {
    let mut app = compare_app(theme());
    update(&mut app, Msg::Key(Action::ToggleOverlay));
    insta::assert_snapshot!("compare_overlay_80x24", draw(&app, 80, 24).backend());
}

#[test]
fn focused_run_is_marked_and_both_columns_show() {
    let app = compare_app(theme());
    let screen = draw(&app, 120, 40).backend().to_string();
    assert!(screen.contains("▶2 plain-deep +residual"), "{screen}");
    assert!(screen.contains(" 1 plain-deep"), "{screen}");
    assert!(screen.contains("alone 101/s"), "{screen}");
    assert!(screen.contains("skip residual"), "{screen}");
}

#[test]
fn no_panic_at_any_size() {
    let side = compare_app(theme());
    let mut overlay = compare_app(Theme {
        color: false,
        ascii: true,
    });
    update(&mut overlay, Msg::Key(Action::ToggleOverlay));
    let mut menu = compare_app(theme());
    update(&mut menu, Msg::Key(Action::OpenFork));
    for width in 1..=300u16 {
        for height in 1..=100u16 {
            // Small sizes exhaustively, a lattice over the rest, as in ui_render.
            let exhaustive = width <= 24 || height <= 14 || width % 40 <= 1;
            if exhaustive || (width + 3 * height) % 13 == 0 {
                draw(&side, width, height);
                draw(&overlay, width, height);
                draw(&menu, width, height);
            }
        }
    }
}
