//! Where the trainer's events go: a channel (dashboard), a vector (tests) or a printer (CLI).

use crate::protocol::Event;
use std::sync::mpsc::Sender;

/// Receives every event the trainer produces, in order.
pub trait MetricsSink {
    /// Takes one event; returns false when the consumer is gone and the run should stop.
    fn send(&mut self, event: Event) -> bool;

    /// Whether the live analyses (path statistics, spectrum) are wanted: a sink that only
    /// shows progress and keeps the last snapshot drops them, so a headless run without a
    /// recording skips computing them.
    fn wants_analyses(&self) -> bool {
        true
    }
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct VecSink {
    /// Events in the order they were produced.
    pub events: Vec<Event>,
}

impl MetricsSink for VecSink {
    fn send(&mut self, event: Event) -> bool {
        self.events.push(event);
        true
    }
}

/// Forwards events over an unbounded channel: the trainer never waits for the reader.
#[derive(Debug, Clone)]
pub struct ChannelSink(pub Sender<Event>);

impl MetricsSink for ChannelSink {
    fn send(&mut self, event: Event) -> bool {
        self.0.send(event).is_ok()
    }
}

/// Keeps only the newest snapshot, for runs whose history goes elsewhere (or nowhere).
#[derive(Debug, Default)]
pub struct LastSnapshot(pub Option<crate::metrics::Snapshot>);

impl MetricsSink for LastSnapshot {
    fn send(&mut self, event: Event) -> bool {
        if let Event::Snapshot(snapshot) = event {
            self.0 = Some(*snapshot);
        }
        true
    }
}
