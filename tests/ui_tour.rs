//! The guided tour and the panel explanations, driven through `update` without a terminal:
//! lesson detection and confirmation from real headless runs and from hand-made snapshots,
//! snapshots of the lesson panel and the explanation overlay, and the picker's descriptions.

use gradlab::config::load_preset;
use gradlab::learner::build_learner;
use gradlab::metrics::{LayerMetrics, Snapshot};
use gradlab::protocol::{Command, Event, RunState};
use gradlab::trainer::{VecSink, run_headless};
use gradlab::ui::app::{App, Msg, Overlay};
use gradlab::ui::explain::{Panel, panels};
use gradlab::ui::keymap::{self, Action, Context};
use gradlab::ui::render;
use gradlab::ui::theme::Theme;
use gradlab::ui::tour::{Phase, Tour, Verdict, lesson_experiment};
use gradlab::ui::tour_lessons::{LESSONS, Trigger};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[path = "support/dash.rs"]
mod dash;
use dash::Dash;

fn theme() -> Theme {
    Theme {
        color: true,
        ascii: false,
    }
}

/// A dashboard touring lesson `index` with `seed`, its run just started.
fn touring(index: usize, seed: u64, theme: Theme) -> Dash {
    let mut tour = Tour::new(Some(seed));
    tour.index = index;
    let experiment = tour.experiment().expect("lesson preset loads");
    let mut app = App::new(theme);
    app.tour = Some(tour);
    let mut dash = Dash::new(app);
    dash.event(Event::Started {
        preset: Box::new(experiment),
    });
    dash
}

fn phase(dash: &Dash) -> Phase {
    dash.tour.as_ref().expect("touring").phase.clone()
}

/// Steps the lesson asks for before its key is pressed (its run must have some history).
const PRESS_AT: u64 = 60;

/// Plays lesson `index` on a real headless run of its experiment: the key it asks for at
/// step `PRESS_AT` (or at once, for a lesson that starts paused), every event to the dashboard,
/// until the verdict.
fn walk(index: usize, seed: u64) -> Verdict {
    let mut dash = touring(index, seed, theme());
    let lesson = LESSONS[index];
    let experiment = lesson_experiment(&lesson, Some(seed)).expect("lesson preset");
    let mut schedule = Vec::new();
    if let (Trigger::Applied(_), Action::Switch(mv)) = (lesson.trigger, lesson.action) {
        let command = dash
            .run()
            .switches
            .command_for(mv)
            .expect("the key applies");
        schedule.push((PRESS_AT, command));
    }
    if lesson.start_paused {
        // The driver restarts the run paused (the tour paused it before loading it).
        dash.event(Event::State {
            step: 0,
            state: RunState::Paused,
        });
        assert_eq!(phase(&dash), Phase::Waiting);
        dash.key(lesson.action);
        assert_eq!(dash.outbox.last(), Some(&Command::Resume));
        dash.event(Event::State {
            step: 0,
            state: RunState::Running,
        });
        assert!(matches!(phase(&dash), Phase::Watching { at: 0 }));
    }
    let mut learner = build_learner(experiment, None).expect("learner builds");
    let mut sink = VecSink::default();
    run_headless(&mut *learner, PRESS_AT + 400, &schedule, &mut sink);
    for event in sink.events {
        if matches!(
            event,
            Event::Started { .. }
                | Event::State {
                    state: RunState::Finished,
                    ..
                }
        ) {
            continue;
        }
        if let Event::Snapshot(s) = &event
            && s.step == PRESS_AT
            && matches!(lesson.trigger, Trigger::PathsShown)
        {
            dash.key(lesson.action);
        }
        dash.event(event);
        if let Phase::Done(verdict) = phase(&dash) {
            return verdict;
        }
    }
    panic!(
        "lesson {} ({}) gave no verdict: {:?}",
        index + 1,
        lesson.title,
        phase(&dash)
    );
}

#[test]
fn every_lesson_is_confirmed_by_its_own_run() {
    for (index, lesson) in LESSONS.iter().enumerate() {
        let verdict = walk(index, 1);
        assert!(
            verdict.confirmed,
            "lesson {} ({}): {}",
            index + 1,
            lesson.title,
            verdict.text
        );
        assert!(
            verdict.text.contains("since you pressed"),
            "{}",
            verdict.text
        );
    }
}

fn snapshot(step: u64, first: f64) -> Snapshot {
    let layers = (0..32)
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
        layers,
        grad_ratio_first_last: first / 1e-2,
        grad_ratio_db: 20.0 * (first / 1e-2).log10(),
        ..Snapshot::default()
    }
}

/// The residual lesson, on hand-made snapshots.
const RESIDUAL_LESSON: usize = 4;

#[test]
fn the_residual_lesson_waits_for_r_and_measures_before_and_after() {
    let mut dash = touring(RESIDUAL_LESSON, 1, theme());
    assert_eq!(LESSONS[RESIDUAL_LESSON].preset, "plain-deep");
    for step in 0..10 {
        dash.event(Event::Snapshot(Box::new(snapshot(step, 1e-7))));
    }
    assert_eq!(phase(&dash), Phase::Waiting);
    // Another switch is not what the lesson asked for.
    dash.event(Event::Applied {
        step: 10,
        command: Command::SetAux(true),
    });
    assert_eq!(phase(&dash), Phase::Waiting);
    let action = LESSONS[RESIDUAL_LESSON].action;
    dash.key(action);
    let command = dash.outbox.last().cloned().expect("r sends the switch");
    dash.event(Event::Applied { step: 10, command });
    assert_eq!(phase(&dash), Phase::Watching { at: 10 });
    for step in 10..14 {
        dash.event(Event::Snapshot(Box::new(snapshot(step, 1e-3))));
        assert_eq!(phase(&dash), Phase::Watching { at: 10 }, "five samples");
    }
    dash.event(Event::Snapshot(Box::new(snapshot(14, 1e-3))));
    let Phase::Done(verdict) = phase(&dash) else {
        panic!("no verdict: {:?}", phase(&dash));
    };
    assert!(verdict.confirmed, "{}", verdict.text);
    // 1e-7 → 1e-3 is four decades: 80 dB.
    assert!(
        verdict.text.contains("rose 80 dB since you pressed r"),
        "{}",
        verdict.text
    );
}

#[test]
fn a_run_that_does_not_bear_the_claim_out_says_what_it_saw() {
    let mut dash = touring(RESIDUAL_LESSON, 1, theme());
    for step in 0..10 {
        dash.event(Event::Snapshot(Box::new(snapshot(step, 1e-7))));
    }
    dash.key(LESSONS[RESIDUAL_LESSON].action);
    let command = dash.outbox.last().cloned().expect("r sends the switch");
    dash.event(Event::Applied { step: 10, command });
    for step in 10..15 {
        dash.event(Event::Snapshot(Box::new(snapshot(step, 2e-7))));
    }
    let Phase::Done(verdict) = phase(&dash) else {
        panic!("no verdict: {:?}", phase(&dash));
    };
    assert!(!verdict.confirmed);
    // Twice the norm is +6.0 dB.
    assert!(verdict.text.contains("changed +6.0 dB"), "{}", verdict.text);
    assert!(
        verdict.text.contains("not the rise of 40 dB"),
        "{}",
        verdict.text
    );
}

#[test]
fn next_and_previous_load_the_lessons_and_another_preset_is_noticed() {
    let mut dash = touring(0, 2, theme());
    assert!(LESSONS[0].start_paused && !LESSONS[1].start_paused);
    dash.outbox.clear();
    dash.key(Action::NextLesson);
    let [Command::Resume, Command::LoadPreset(experiment)] = dash.outbox.as_slice() else {
        panic!("next resumes and loads a preset: {:?}", dash.outbox);
    };
    assert_eq!(experiment.name, LESSONS[1].preset);
    assert_eq!(experiment.seed, 2, "the tour's seed");
    assert_eq!(phase(&dash), Phase::Loading);
    dash.outbox.clear();
    dash.key(Action::PrevLesson);
    assert_eq!(dash.tour.as_ref().map(|t| t.index), Some(0));
    assert!(
        matches!(
            dash.outbox.as_slice(),
            [Command::Pause, Command::LoadPreset(_)]
        ),
        "a lesson that starts paused is paused before its run restarts: {:?}",
        dash.outbox
    );
    dash.key(Action::PrevLesson);
    assert!(
        dash.note
            .as_deref()
            .is_some_and(|n| n.contains("first lesson"))
    );
    dash.event(Event::Started {
        preset: Box::new(load_preset("rnn-xor").expect("preset")),
    });
    assert_eq!(phase(&dash), Phase::Elsewhere("rnn-xor".into()));
    // The tour keys come from the one keymap, before the main table.
    let press = |dash: &Dash, c: char| {
        keymap::resolve(
            &dash.contexts(),
            &dash.situation(),
            &KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
        )
    };
    assert_eq!(press(&dash, '.'), Some(Ok(Action::NextLesson)));
    assert_eq!(press(&dash, ','), Some(Ok(Action::PrevLesson)));
    let plain = Dash::new(App::new(theme()));
    assert_eq!(press(&plain, '.'), None, "no tour keys outside the tour");
}

#[test]
fn i_explains_the_focused_panel_and_tab_moves_the_focus() {
    let mut dash = touring(RESIDUAL_LESSON, 1, theme());
    dash.key(Action::Explain);
    assert_eq!(dash.overlay, Overlay::Explain);
    assert_eq!(dash.panel, Panel::Bars);
    let tab = KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE);
    dash.send(Msg::Input(tab));
    assert_eq!(dash.panel, Panel::Heat);
    dash.send(Msg::Input(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
    )));
    assert_eq!(dash.panel, Panel::Bars);
    let all = panels(&dash);
    assert!(all.contains(&Panel::Lesson), "{all:?}");
    for _ in 0..all.len() {
        dash.send(Msg::Input(tab));
        let text = screen(&dash, 80, 24);
        assert!(text.contains("next panel"), "{text}");
    }
    dash.send(Msg::Input(KeyEvent::new(
        KeyCode::Char('i'),
        KeyModifiers::NONE,
    )));
    assert_eq!(dash.overlay, Overlay::None);
}

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|frame| render(frame, app)).expect("draw");
    terminal
}

fn screen(app: &App, width: u16, height: u16) -> String {
    draw(app, width, height).backend().to_string()
}

/// The residual lesson confirmed on hand-made snapshots, for the panel snapshots.
fn confirmed_residual(theme: Theme) -> Dash {
    let mut dash = touring(RESIDUAL_LESSON, 1, theme);
    for step in 0..10 {
        dash.event(Event::Snapshot(Box::new(snapshot(step, 1e-7))));
    }
    dash.key(LESSONS[RESIDUAL_LESSON].action);
    let command = dash.outbox.last().cloned().expect("r sends the switch");
    dash.event(Event::Applied { step: 10, command });
    for step in 10..15 {
        dash.event(Event::Snapshot(Box::new(snapshot(step, 1e-3))));
    }
    dash
}

#[test]
fn snapshot_lesson_panel_80x24() {
    let dash = confirmed_residual(theme());
    insta::assert_snapshot!("lesson_80x24", draw(&dash, 80, 24).backend());
}

#[test]
fn snapshot_lesson_panel_120x40() {
    let dash = confirmed_residual(theme());
    insta::assert_snapshot!("lesson_120x40", draw(&dash, 120, 40).backend());
}

#[test]
fn snapshot_explain_overlay_80x24() {
    let mut dash = confirmed_residual(theme());
    dash.key(Action::Explain);
    insta::assert_snapshot!("explain_80x24", draw(&dash, 80, 24).backend());
}

#[test]
fn snapshot_explain_overlay_120x40() {
    let mut dash = confirmed_residual(theme());
    dash.key(Action::Explain);
    insta::assert_snapshot!("explain_120x40", draw(&dash, 120, 40).backend());
}

#[test]
fn the_lesson_reads_at_80x24_without_colour_and_in_ascii() {
    let plain = Theme {
        color: false,
        ascii: false,
    };
    let ascii = Theme {
        color: false,
        ascii: true,
    };
    for (theme, mark) in [(plain, "✓ confirmed"), (ascii, "[ok] confirmed")] {
        let dash = confirmed_residual(theme);
        let text = screen(&dash, 80, 24);
        assert!(text.contains(mark), "{text}");
        assert!(text.contains("since you pressed r"), "{text}");
        assert!(text.contains("tour 5/"), "{text}");
        assert!(
            text.contains("MLP 32×64"),
            "the header keeps the network:\n{text}"
        );
    }
    let dash = confirmed_residual(ascii);
    let buffer = draw(&dash, 80, 24);
    let glyphs: String = buffer
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    for bad in ['│', '╭', '✓', '▁'] {
        assert!(!glyphs.contains(bad), "{bad} in ASCII mode");
    }
}

#[test]
fn every_preset_has_a_description_shown_in_the_picker() {
    let mut dash = Dash::new(App::new(theme()));
    dash.event(Event::Started {
        preset: Box::new(load_preset("plain-deep").expect("preset")),
    });
    dash.key(Action::OpenPicker);
    let Overlay::Picker(picker) = dash.overlay.clone() else {
        panic!("the picker opens");
    };
    for (i, preset) in gradlab::config::builtin_presets().iter().enumerate() {
        let description = load_preset(preset.name).expect("preset").description;
        assert!(
            !description.trim().is_empty(),
            "{} has no description",
            preset.name
        );
        // The highlighted preset's description is shown in full under the list.
        while dash.overlay_selected() != i {
            dash.key(Action::CursorDown);
        }
        let text = screen(&dash, 100, 40).replace(['│', '\n', '"'], " ");
        let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squeezed.contains(&description),
            "{}: {description}\n{text}",
            preset.name
        );
    }
    assert_eq!(picker.descriptions.len(), picker.entries.len());
}

trait Selected {
    fn overlay_selected(&self) -> usize;
}

impl Selected for Dash {
    fn overlay_selected(&self) -> usize {
        match &self.overlay {
            Overlay::Picker(p) => p.selected,
            _ => usize::MAX,
        }
    }
}

#[test]
fn tour_keys_are_in_the_help_and_the_explain_keys_in_their_overlay() {
    let dash = touring(RESIDUAL_LESSON, 1, theme());
    let rows = keymap::help_rows(&dash.contexts(), &dash.situation(), false);
    assert!(
        rows.iter()
            .any(|(k, h, works)| k == "." && h.contains("next lesson") && *works)
    );
    assert!(keymap::label_of(Context::Explain, Action::NextPanel).is_some());
    assert!(keymap::label_of(Context::Main, Action::Explain).as_deref() == Some("i"));
}
