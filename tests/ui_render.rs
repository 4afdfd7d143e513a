//! Whole-screen rendering: insta snapshots at three sizes from a deterministic run, and no
//! panic at any size.

use gradlab::config::{CellKind, SkipMode, apply_overrides, load_preset};
use gradlab::learner::Learner;
use gradlab::model::Lesion;
use gradlab::model::Trainer;
use gradlab::protocol::{Command, Event, RunState};
use gradlab::report::lesion_all;
use gradlab::rnn::RnnTrainer;
use gradlab::trainer::{VecSink, run_headless};
use gradlab::ui::app::App;
use gradlab::ui::keymap::{self, Action};
use gradlab::ui::render;
use gradlab::ui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

#[path = "support/dash.rs"]
mod dash;
use dash::Dash;

/// plain-deep, seed from the preset, 40 steps, residual switched on at step 25: the same events
/// on every run, and no wall-clock values (no `Tick`, so steps/s stays blank).
fn recorded_app(theme: Theme) -> Dash {
    // The snapshots' numbers come from this data; the preset's own size may change.
    let experiment = apply_overrides(
        &load_preset("plain-deep").expect("built-in preset"),
        &["task.points=1000".to_string()],
    )
    .expect("valid override");
    let mut trainer = Trainer::new(experiment.clone(), None).expect("trainer builds");
    let mut sink = VecSink::default();
    let schedule = [(25, Command::SetSkip(SkipMode::Residual { scale: 1.0 }))];
    run_headless(&mut trainer, 40, &schedule, &mut sink);
    let mut app = Dash::new(App::new(theme));
    app.event(Event::Started {
        preset: Box::new(experiment),
    });
    for event in sink.events {
        // The headless run ends in `Finished`; the dashboard never sees that state live.
        if !matches!(
            event,
            Event::State {
                state: RunState::Finished,
                ..
            }
        ) {
            app.event(event);
        }
    }
    for _ in 0..3 {
        app.key(Action::CursorDown);
    }
    app.outbox.clear();
    app
}

/// Feeds a headless run's events to a fresh dashboard, leaving out the final `Finished`.
fn replay(theme: Theme, experiment: gradlab::config::Experiment, events: Vec<Event>) -> Dash {
    let mut app = Dash::new(App::new(theme));
    app.event(Event::Started {
        preset: Box::new(experiment),
    });
    for event in events {
        if !matches!(
            event,
            Event::State {
                state: RunState::Finished,
                ..
            }
        ) {
            app.event(event);
        }
    }
    app.outbox.clear();
    app
}

/// rnn-lstm-adding at T = 20 for 30 steps, the cell switched to GRU at step 15 (as `g` does).
fn rnn_app(theme: Theme) -> Dash {
    let base = load_preset("rnn-lstm-adding").expect("built-in preset");
    let experiment =
        apply_overrides(&base, &["task.length=20".to_string()]).expect("valid override");
    let mut trainer = RnnTrainer::new(experiment.clone()).expect("trainer builds");
    let mut sink = VecSink::default();
    let schedule = [(15, Command::SetCell(CellKind::Gru))];
    run_headless(&mut trainer, 30, &schedule, &mut sink);
    replay(theme, experiment, sink.events)
}

/// A 12-block residual net for 40 steps with path statistics every 20 steps, then lesions,
/// with the path panel open.
fn paths_app(theme: Theme) -> Dash {
    let base = load_preset("residual-deep").expect("built-in preset");
    let sets = ["model.depth=12", "path_every=20", "task.points=1000"].map(String::from);
    let experiment = apply_overrides(&base, &sets).expect("valid overrides");
    let mut trainer = Trainer::new(experiment.clone(), None).expect("trainer builds");
    let mut sink = VecSink::default();
    run_headless(&mut trainer, 40, &[], &mut sink);
    let results = lesion_all(&mut trainer);
    let intact_test_loss = trainer.evaluate_test(Lesion::default()).0;
    sink.events.push(Event::Lesion {
        step: Learner::step(&trainer),
        intact_test_loss,
        results,
    });
    let mut app = replay(theme, experiment, sink.events);
    app.key(Action::TogglePaths);
    app
}

/// A 12-layer dense net with auxiliary heads after layers 4 and 8, analyses every 20 steps,
/// 40 steps, the path panel open: the gradient-sources view.
fn sources_app(theme: Theme) -> Dash {
    let base = load_preset("dense-deep").expect("built-in preset");
    let sets = [
        "model.depth=12",
        "model.aux.enabled=true",
        "model.aux.every=4",
        "path_every=20",
        "task.points=1000",
    ]
    .map(String::from);
    let experiment = apply_overrides(&base, &sets).expect("valid overrides");
    let mut trainer = Trainer::new(experiment.clone(), None).expect("trainer builds");
    let mut sink = VecSink::default();
    run_headless(&mut trainer, 40, &[], &mut sink);
    let mut app = replay(theme, experiment, sink.events);
    app.key(Action::TogglePaths);
    app
}

fn plain_theme() -> Theme {
    Theme {
        color: true,
        ascii: false,
    }
}

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|frame| render(frame, app)).expect("draw");
    terminal
}

fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

#[test]
fn snapshot_80x24() {
    let app = recorded_app(plain_theme());
    insta::assert_snapshot!("dashboard_80x24", draw(&app, 80, 24).backend());
}

#[test]
fn snapshot_120x40() {
    let app = recorded_app(plain_theme());
    insta::assert_snapshot!("dashboard_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn snapshot_200x60() {
    let app = recorded_app(plain_theme());
    insta::assert_snapshot!("dashboard_200x60", draw(&app, 200, 60).backend());
}

#[test]
fn snapshot_help_overlay_120x40() {
    let mut app = recorded_app(plain_theme());
    app.key(Action::ToggleHelp);
    insta::assert_snapshot!("help_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn help_overlay_fits_80x24_with_every_key() {
    let mut app = recorded_app(plain_theme());
    app.key(Action::ToggleHelp);
    let text = screen_text(&draw(&app, 80, 24));
    for (label, _, _) in keymap::help_rows(&app.contexts(), &app.situation(), false) {
        assert!(
            text.contains(&format!("{label}  ")),
            "{label} missing:\n{text}"
        );
    }
    assert!(text.contains("markers:"), "legend under the keys:\n{text}");
}

#[test]
fn snapshot_rnn_120x40() {
    let app = rnn_app(plain_theme());
    insta::assert_snapshot!("rnn_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn rnn_view_shows_cell_baseline_and_time_axis() {
    let app = rnn_app(plain_theme());
    for (w, h) in [(80, 24), (120, 40)] {
        let text = screen_text(&draw(&app, w, h));
        assert!(
            text.contains("cell gru"),
            "cell in the header, {w}×{h}:\n{text}"
        );
        assert!(text.contains("baseline"), "{w}×{h}:\n{text}");
        assert!(text.contains("per time step"), "{w}×{h}:\n{text}");
        assert!(text.contains("g cell"), "{w}×{h}:\n{text}");
    }
    let text = screen_text(&draw(&app, 120, 40));
    assert!(text.contains("RNN gru"), "{text}");
    assert!(text.contains("cell → gru"), "marker of the switch:\n{text}");
    assert!(text.contains("time × step"), "{text}");
    assert!(text.contains("update z"), "GRU gate sparkline:\n{text}");
}

#[test]
fn snapshot_paths_panel_80x24() {
    let app = paths_app(plain_theme());
    insta::assert_snapshot!("paths_80x24", draw(&app, 80, 24).backend());
}

#[test]
fn snapshot_paths_panel_120x40() {
    let app = paths_app(plain_theme());
    insta::assert_snapshot!("paths_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn snapshot_paths_panel_200x60() {
    let app = paths_app(plain_theme());
    insta::assert_snapshot!("paths_200x60", draw(&app, 200, 60).backend());
}

#[test]
fn path_panel_shows_range_and_lesions() {
    let app = paths_app(plain_theme());
    for (w, h) in [(80, 24), (120, 40), (200, 60)] {
        let text = screen_text(&draw(&app, w, h));
        assert!(text.contains("paths by length"), "{w}×{h}:\n{text}");
        assert!(text.contains("lesion"), "{w}×{h}:\n{text}");
    }
    let text = screen_text(&draw(&app, 120, 40));
    assert!(text.contains("90% in"), "{text}");
    assert!(
        text.contains("mean-field"),
        "theory named in the header:\n{text}"
    );
    // Both path views, each under its own name, and the estimate says it is one.
    for label in [
        "Veit peak",
        "exact peak",
        "Veit C(n,k)·E‖g_path‖",
        "exact split",
        "est. M=4",
    ] {
        assert!(text.contains(label), "{label}:\n{text}");
    }
}

#[test]
fn snapshot_sources_120x40() {
    let app = sources_app(plain_theme());
    insta::assert_snapshot!("sources_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn sources_view_names_every_head() {
    let app = sources_app(plain_theme());
    for (w, h) in [(80, 24), (120, 40), (200, 60)] {
        let text = screen_text(&draw(&app, w, h));
        assert!(text.contains("gradient sources"), "{w}×{h}:\n{text}");
        assert!(text.contains("blocks crossed"), "{w}×{h}:\n{text}");
        assert!(
            !text.contains("paths by length"),
            "dense nets have no path decomposition, {w}×{h}:\n{text}"
        );
    }
    let text = screen_text(&draw(&app, 200, 60));
    for label in ["main", "read-outs", "aux@L4", "aux@L8", "L1 ←", "90% in"] {
        assert!(text.contains(label), "{label}:\n{text}");
    }
}

#[test]
fn plain_net_has_one_path() {
    let mut app = recorded_app(plain_theme());
    let experiment = load_preset("plain-deep").expect("built-in preset");
    let depth = experiment.model.depth;
    let trainer = Trainer::new(experiment, None).expect("trainer builds");
    let stats = gradlab::report::path_stats(&trainer, 8, 4, 1).expect("plain nets decompose");
    app.event(Event::Paths {
        step: 40,
        stats: Box::new(stats),
    });
    app.key(Action::TogglePaths);
    let text = screen_text(&draw(&app, 120, 40));
    assert!(
        text.contains(&format!("one path of length {depth}")),
        "{text}"
    );
}

#[test]
fn header_shows_the_switch_and_marker() {
    let app = recorded_app(plain_theme());
    let text = screen_text(&draw(&app, 120, 40));
    assert!(text.contains("plain-deep"), "{text}");
    assert!(text.contains("skip residual"), "{text}");
    assert!(
        text.contains("skip → residual"),
        "marker label on the loss chart:\n{text}"
    );
    assert!(text.contains("step 40"), "{text}");
}

#[test]
fn no_panic_at_any_size() {
    let mut app = recorded_app(plain_theme());
    let mut ascii = recorded_app(Theme {
        color: false,
        ascii: true,
    });
    ascii.key(Action::ToggleHelp);
    app.key(Action::OpenPicker);
    let empty = App::new(plain_theme());
    let rnn = rnn_app(plain_theme());
    let paths = paths_app(Theme {
        color: true,
        ascii: true,
    });
    let sources = sources_app(plain_theme());
    for width in 1..=300u16 {
        for height in 1..=100u16 {
            // Small sizes and the layout thresholds are covered exhaustively; a lattice covers
            // the rest of 300×100 so the test stays quick on CI.
            let near = |v: u16, edges: &[u16]| edges.iter().any(|e| v.abs_diff(*e) <= 2);
            let exhaustive = width <= 24
                || height <= 14
                || near(width, &[40, 80, 120, 200, 300])
                || near(height, &[12, 24, 36, 40, 60, 100]);
            if exhaustive || (width + 3 * height) % 13 == 0 {
                draw(&app, width, height);
            }
            if (width + height) % 17 == 0 {
                draw(&ascii, width, height);
                draw(&empty, width, height);
            }
            if (exhaustive && (width + height) % 3 == 0) || (width + height) % 19 == 0 {
                draw(&rnn, width, height);
                draw(&paths, width, height);
                draw(&sources, width, height);
            }
        }
    }
}

#[test]
fn too_small_terminal_gets_one_line() {
    let app = recorded_app(plain_theme());
    let text = screen_text(&draw(&app, 30, 8));
    assert!(text.contains("terminal too small"), "{text}");
}

#[test]
fn ascii_mode_draws_only_ascii() {
    let app = recorded_app(Theme {
        color: false,
        ascii: true,
    });
    let terminal = draw(&app, 120, 40);
    let buffer = terminal.backend().buffer();
    // Text taken from the trainer (labels like "skip → residual") is the only Unicode allowed.
    let glyphs: String = buffer.content().iter().map(|c| c.symbol()).collect();
    for bad in ['█', '▀', '⠁', '│', '╭', '▲', '▁'] {
        assert!(!glyphs.contains(bad), "{bad} in ASCII mode");
    }
}

#[test]
fn divergence_and_nan_are_shown_as_text() {
    let mut app = recorded_app(plain_theme());
    let mut latest = app.run().latest.clone().expect("a snapshot was recorded");
    latest.main_loss = f64::NAN;
    latest.loss = f64::NAN;
    latest.grad_ratio_db = f64::NAN;
    for layer in &mut latest.layers {
        layer.act_grad_norm = f64::INFINITY;
    }
    app.event(Event::Snapshot(Box::new(latest)));
    app.diverge(41, 3);
    for (w, h) in [(80, 24), (120, 40), (200, 60)] {
        let text = screen_text(&draw(&app, w, h));
        assert!(
            text.contains("diverged at step 41, layer 3"),
            "{w}×{h}:\n{text}"
        );
        assert!(text.contains("NaN"), "{w}×{h}:\n{text}");
        assert!(text.contains("R reset") || text.contains("R"), "{text}");
    }
}

#[test]
fn crash_is_shown_with_its_message() {
    let mut app = recorded_app(plain_theme());
    app.event(Event::State {
        step: 40,
        state: RunState::Crashed("boom".into()),
    });
    let text = screen_text(&draw(&app, 80, 24));
    assert!(text.contains("crashed: boom"), "{text}");
}

/// `preset` (with `sets`) for 10 steps — the spectrum analysis is taken at step 0 — with the
/// spectrum view (`J`) open.
fn spectrum_app(theme: Theme, preset: &str, sets: &[&str]) -> Dash {
    let base = load_preset(preset).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let experiment = apply_overrides(&base, &sets).expect("valid overrides");
    let mut trainer = Trainer::new(experiment.clone(), None).expect("trainer builds");
    let mut sink = VecSink::default();
    run_headless(&mut trainer, 10, &[], &mut sink);
    let mut app = replay(theme, experiment, sink.events);
    app.key(Action::ToggleSpectrum);
    app
}

#[test]
fn snapshot_spectrum_80x24() {
    let app = spectrum_app(plain_theme(), "isometry-gaussian", &[]);
    insta::assert_snapshot!("spectrum_80x24", draw(&app, 80, 24).backend());
}

#[test]
fn snapshot_spectrum_120x40() {
    let app = spectrum_app(plain_theme(), "isometry-gaussian", &[]);
    insta::assert_snapshot!("spectrum_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn snapshot_spectrum_200x60() {
    let app = spectrum_app(plain_theme(), "isometry-gaussian", &[]);
    insta::assert_snapshot!("spectrum_200x60", draw(&app, 200, 60).backend());
}

#[test]
fn spectrum_view_names_its_quantities_and_shows_collapse() {
    let app = spectrum_app(plain_theme(), "isometry-orthogonal", &[]);
    for (w, h) in [(80, 24), (120, 40), (200, 60)] {
        let text = screen_text(&draw(&app, w, h));
        for label in [
            "singular values",
            "estimate from 8 inputs",
            "Forward signal",
            "mean σ²",
        ] {
            assert!(text.contains(label), "{label}, {w}×{h}:\n{text}");
        }
    }
    // plain-deep's signal dies on the way up: the view says the inputs have collapsed.
    let app = spectrum_app(plain_theme(), "plain-deep", &[]);
    let text = screen_text(&draw(&app, 120, 40));
    assert!(text.contains("collapsed"), "{text}");
    assert!(text.contains("ξ_c"), "{text}");
    // Highway stacks have no mean-field map, and the view says so.
    let app = spectrum_app(plain_theme(), "highway-deep", &["model.depth=8"]);
    let text = screen_text(&draw(&app, 200, 60));
    assert!(text.contains("no prediction"), "{text}");
    // The key toggles the view back off.
    let mut app = app;
    app.key(Action::ToggleSpectrum);
    let text = screen_text(&draw(&app, 120, 40));
    assert!(!text.contains("Forward signal"), "{text}");
}

#[test]
fn spectrum_view_says_it_is_for_mlps_on_a_recurrent_net() {
    let mut app = rnn_app(plain_theme());
    app.app.runs[0].show_spectrum = true;
    let text = screen_text(&draw(&app, 120, 40));
    assert!(text.contains("this view is for MLPs"), "{text}");
}

#[test]
fn spectrum_view_never_panics() {
    let app = spectrum_app(
        Theme {
            color: false,
            ascii: true,
        },
        "isometry-gaussian",
        &[],
    );
    let waiting = {
        let mut app = recorded_app(plain_theme());
        app.app.runs[0].spectrum = None;
        app.key(Action::ToggleSpectrum);
        app
    };
    for width in (1..=220u16).step_by(3) {
        for height in (1..=70u16).step_by(2) {
            draw(&app, width, height);
            draw(&waiting, width, height);
        }
    }
}

#[test]
fn the_header_never_cuts_the_prediction_and_shortens_it_to_fit() {
    let app = recorded_app(plain_theme());
    let mut forms = std::collections::BTreeSet::new();
    for width in 80..=200 {
        let text = screen_text(&draw(&app, width, 40));
        // The backend's text quotes each row; the header's second line is the second row.
        let line = text.lines().nth(1).unwrap_or_default().trim_matches('"');
        let Some(at) = line.find("mean-field ") else {
            forms.insert("none");
            continue;
        };
        let rest = line[at + "mean-field ".len()..].trim_end();
        let (number, after) = rest
            .split_once(" dB")
            .unwrap_or_else(|| panic!("the number is cut at width {width}: {line}"));
        let value = number.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok(),
            "width {width}: `{value}` is not a whole number in {line}"
        );
        forms.insert(match (number.contains("residual"), after.is_empty()) {
            (true, false) => "full",
            (true, true) => "short",
            (false, _) => "shortest",
        });
        if !after.is_empty() {
            assert_eq!(after.trim(), "(current σ²)", "width {width}");
        }
    }
    // Every form is used at some width, from none at 80 columns to the full one at 200.
    assert_eq!(
        forms.into_iter().collect::<Vec<_>>(),
        ["full", "none", "short", "shortest"]
    );
}
