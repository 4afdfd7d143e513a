//! The compare view and the fork key, driven through `update` without a terminal: the key
//! tables, the fork menu, focus, toggles for the focused run, the fork limit, and snapshots
//! of both layouts rendered into ratatui's `TestBackend`.

use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::learner::Learner;
use gradlab::model::Trainer;
use gradlab::protocol::Move;
use gradlab::protocol::{Command, Event, LaneEvent, RunState};
use gradlab::trainer::{Driver, LaneStart, VecSink, run_headless};
use gradlab::ui::app::{App, Overlay};
use gradlab::ui::keymap::{self, Action, KEYMAP};
use gradlab::ui::render;
use gradlab::ui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[path = "support/dash.rs"]
mod dash;
use dash::Dash;

const RESIDUAL: Move = Move::SkipTo(SkipMode::Residual { scale: 1.0 });

fn key(app: &App, code: KeyCode) -> Option<Action> {
    let event = KeyEvent::new(code, KeyModifiers::NONE);
    keymap::resolve(&app.contexts(), &app.situation(), &event)?.ok()
}

fn theme() -> Theme {
    Theme {
        color: true,
        ascii: false,
    }
}

fn experiment() -> Experiment {
    let base = load_preset("plain-deep").expect("built-in preset");
    let sets = ["model.depth=12", "path_every=10", "task.points=1000"].map(String::from);
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
fn compare_app(theme: Theme) -> Dash {
    let experiment = experiment();
    let mut app = Dash::new(App::new(theme));
    app.event(Event::Started {
        preset: Box::new(experiment.clone()),
    });
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
    live(std::mem::take(&mut sink.events)).for_each(|e| app.event(e));
    app.key(Action::OpenFork);
    app.key(Action::ForkWith(Some(RESIDUAL)));
    let Some(Command::Fork { flip: Some(flip) }) = app.outbox.pop() else {
        panic!("a fork with a flip was asked for");
    };
    let mut twin = parent.fork();
    twin.apply(&flip);
    app.lane(
        1,
        Event::Forked {
            from: 0,
            step: 20,
            flip: Some((*flip).clone()),
        },
    );
    app.lane(
        1,
        Event::Applied {
            step: 20,
            command: *flip,
        },
    );
    let mut twin_sink = VecSink::default();
    run_headless(&mut parent, 40, &[], &mut sink);
    run_headless(twin.as_mut(), 40, &[], &mut twin_sink);
    for (run, events) in [(0, sink.events), (1, twin_sink.events)] {
        for event in live(events) {
            app.lane(run, event);
        }
        let busy = Event::Throughput {
            steps_per_sec: 100.0 + run as f64,
        };
        app.lane(run, busy);
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
    for (i, a) in KEYMAP.iter().enumerate() {
        for b in &KEYMAP[i + 1..] {
            if a.context != b.context {
                continue;
            }
            let shared = a.keys.iter().any(|k| b.keys.contains(k));
            // Two rows may share a key only where they never both apply (one per kind of net).
            let overlap = (a.scope.mlp && b.scope.mlp) || (a.scope.rnn && b.scope.rnn);
            assert!(
                !(shared && overlap && a.action != b.action),
                "{:?} binds a key twice: {:?} and {:?}",
                a.context,
                a.action,
                b.action
            );
        }
    }
    let mut app = Dash::new(App::new(theme()));
    app.event(Event::Started {
        preset: Box::new(experiment()),
    });
    assert_eq!(key(&app, KeyCode::Char('f')), Some(Action::OpenFork));
    assert_eq!(
        key(&app, KeyCode::Char('o')),
        None,
        "o is a compare-view key"
    );
    let compare = compare_app(theme());
    assert_eq!(
        key(&compare, KeyCode::Char('o')),
        Some(Action::ToggleOverlay)
    );
    assert_eq!(key(&compare, KeyCode::Tab), Some(Action::FocusNext));
    assert_eq!(key(&compare, KeyCode::Char('3')), Some(Action::Focus(2)));
}

#[test]
fn fork_menu_maps_its_own_keys_and_closes() {
    let mut app = Dash::new(App::new(theme()));
    app.event(Event::Started {
        preset: Box::new(experiment()),
    });
    app.key(Action::OpenFork);
    assert_eq!(app.overlay, Overlay::ForkMenu);
    assert_eq!(
        key(&app, KeyCode::Char('r')),
        Some(Action::ForkWith(Some(RESIDUAL)))
    );
    assert_eq!(
        key(&app, KeyCode::Char('q')),
        Some(Action::Close),
        "q closes the menu, not the app"
    );
    app.key(Action::Close);
    assert_eq!(app.overlay, Overlay::None);
    app.key(Action::OpenFork);
    app.key(Action::ForkWith(Some(Move::ScaleLr(
        keymap::FORK_LR_FACTOR,
    ))));
    let flip = Command::SetLearningRate(0.5);
    assert_eq!(
        app.outbox,
        vec![Command::Fork {
            flip: Some(Box::new(flip))
        }],
        "the fork goes to the parent's lane as one command"
    );
    assert_eq!(app.lanes, vec![0]);
    assert!(
        !app.is_compare(),
        "the view changes when the driver confirms"
    );
}

#[test]
fn stopped_or_rnn_runs_refuse_what_does_not_apply() {
    let mut app = Dash::new(App::new(theme()));
    app.key(Action::OpenFork);
    assert_eq!(
        app.overlay,
        Overlay::None,
        "nothing to fork before the run starts"
    );
    let rnn = load_preset("rnn-lstm-adding").expect("built-in preset");
    app.event(Event::Started {
        preset: Box::new(rnn),
    });
    app.key(Action::OpenFork);
    app.key(Action::ForkWith(Some(RESIDUAL)));
    assert!(app.outbox.is_empty());
    assert!(app.note.as_deref().is_some_and(|n| n.contains("recurrent")));
    app.key(Action::OpenFork);
    app.key(Action::ForkWith(Some(Move::NextCell)));
    assert!(matches!(
        app.outbox.as_slice(),
        [Command::Fork { flip: Some(flip) }] if matches!(**flip, Command::SetCell(_))
    ));
    app.key(Action::ToggleOverlay);
    assert!(
        app.note.as_deref().is_some_and(|n| n.contains("compare")),
        "{:?}",
        app.note
    );
}

#[test]
fn forked_twin_inherits_history_and_toggles_follow_the_focus() {
    let mut app = compare_app(theme());
    assert_eq!(app.runs.len(), 2);
    assert_eq!(app.focus, 1, "the twin gets the focus");
    assert_eq!(
        app.runs[1].name(),
        format!("{} +residual", experiment().name)
    );
    assert_eq!(app.runs[1].forked_at, Some(20));
    let (parent, twin) = (&app.runs[0], &app.runs[1]);
    assert_eq!(parent.step, twin.step, "lock-step");
    assert_eq!(
        parent.main_loss.whole_run()[..20],
        twin.main_loss.whole_run()[..20],
        "the twin's history before the fork is its parent's"
    );
    assert_eq!(twin.switches.skip, SkipMode::Residual { scale: 1.0 });
    assert_eq!(parent.switches.skip, SkipMode::Plain);

    app.outbox.clear();
    app.lanes.clear();
    app.key(Action::Switch(Move::ToggleAux));
    app.key(Action::Focus(0));
    app.key(Action::Switch(Move::SkipTo(SkipMode::Highway)));
    assert_eq!(
        app.outbox,
        vec![Command::SetAux(true), Command::SetSkip(SkipMode::Highway)]
    );
    assert_eq!(
        app.lanes,
        vec![1, 0],
        "each toggle goes to the focused run's lane"
    );
    app.key(Action::FocusNext);
    app.key(Action::ToggleOverlay);
    assert_eq!(app.focus, 1);
    assert!(app.overlaid);
    app.key(Action::Focus(3));
    assert!(app.note.as_deref().is_some_and(|n| n.contains("no run 4")));
    app.key(Action::OpenPicker);
    assert!(app.is_compare(), "the picker does not replace a comparison");
    assert!(
        app.note
            .as_deref()
            .is_some_and(|n| n.contains("compare view keeps its runs"))
    );
}

#[test]
fn a_fifth_run_is_refused_with_a_note() {
    let mut app = compare_app(theme());
    for run in 2..4 {
        app.key(Action::OpenFork);
        app.key(Action::ForkWith(None));
        assert!(matches!(
            app.outbox.pop(),
            Some(Command::Fork { flip: None })
        ));
        app.lane(
            run,
            Event::Forked {
                from: 1,
                step: 40,
                flip: None,
            },
        );
    }
    assert_eq!(app.runs.len(), 4);
    assert!(
        app.runs[3].markers.iter().any(|m| m.label == "fork"),
        "an unflipped twin marks its branch point"
    );
    app.key(Action::OpenFork);
    assert_eq!(app.overlay, Overlay::None);
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
    app.key(Action::ToggleOverlay);
    insta::assert_snapshot!("compare_overlay_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn snapshot_overlay_80x24() {
    let mut app = compare_app(theme());
    app.key(Action::ToggleOverlay);
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
    overlay.key(Action::ToggleOverlay);
    let mut menu = compare_app(theme());
    menu.key(Action::OpenFork);
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
