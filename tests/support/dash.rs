//! A dashboard driven through `update` without a terminal, recording every command it sends
//! and reading presets as the live source does.
#![allow(dead_code)]

use gradlab::protocol::{Command, Event, LaneCommand, LaneEvent};
use gradlab::ui::app::{App, Effect, Msg, update};
use gradlab::ui::keymap::Action;
use gradlab::ui::picker::Picker;

/// The dashboard and every command it sent, with presets read as the live source reads them.
pub struct Dash {
    /// The state.
    pub app: App,
    /// Every command sent, in order, with the lane it went to.
    pub outbox: Vec<Command>,
    /// The lanes of `outbox`.
    pub lanes: Vec<usize>,
}

impl Dash {
    pub fn send(&mut self, msg: Msg) {
        let mut queue = vec![msg];
        while let Some(msg) = queue.pop() {
            for effect in update(&mut self.app, msg) {
                match effect {
                    Effect::Send(LaneCommand { lane, command }) => {
                        self.outbox.push(command);
                        self.lanes.push(lane);
                    }
                    Effect::DiscoverPresets => queue.push(Msg::Presets(Picker::discover(
                        std::path::Path::new("presets"),
                    ))),
                    Effect::LoadPreset(source) => queue.push(Msg::PresetLoaded(
                        source.load().map(Box::new).map_err(|e| e.to_string()),
                    )),
                    other => panic!("unexpected effect {other:?}"),
                }
            }
        }
    }

    pub fn key(&mut self, action: Action) {
        self.send(Msg::Key(action));
    }

    pub fn event(&mut self, event: Event) {
        self.send(Msg::Lane(LaneEvent { lane: 0, event }));
    }
}

impl std::ops::Deref for Dash {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl Dash {
    /// A dashboard on `app`.
    pub fn new(app: App) -> Self {
        Self {
            app,
            outbox: Vec::new(),
            lanes: Vec::new(),
        }
    }

    /// Lane 0 reports that it diverged at `step` in `layer` (the loss went NaN).
    pub fn diverge(&mut self, step: u64, layer: usize) -> gradlab::metrics::Divergence {
        let divergence = gradlab::metrics::Divergence {
            step,
            layer: Some(layer),
            what: "loss is NaN".into(),
        };
        self.event(Event::State {
            step,
            state: gradlab::protocol::RunState::Diverged(divergence.clone()),
        });
        divergence
    }

    /// An event of lane `lane`.
    pub fn lane(&mut self, lane: usize, event: Event) {
        self.send(Msg::Lane(LaneEvent { lane, event }));
    }
}
