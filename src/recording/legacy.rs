//! Version 1 recordings, converted line by line at the reader's edge: the only place the old
//! shapes appear.
//!
//! Version 1 had no runs (a reset or a loaded preset simply followed in the same stream), ended
//! a signalled run with an `interrupted` line, and wrote the highway skip mode with its initial
//! gate bias inside (`{"Highway":{"gate_bias":-2.0}}`, labelled `highway(b=-2)` in
//! snapshots), which is now the model's `gate_bias` field beside a plain `"Highway"` mode.

use crate::protocol::Line;
use serde_json::{Value, json};

/// Converts version-1 lines in order, numbering runs by the `started` lines seen.
#[derive(Debug, Default)]
pub struct V1Lines {
    run: u32,
}

impl V1Lines {
    /// A converter continuing after `runs` runs have started (for reading from the middle).
    pub fn after_runs(runs: u32) -> Self {
        Self { run: runs }
    }

    /// The version-2 line for one version-1 line.
    pub fn convert(&mut self, mut value: Value) -> Result<Line, serde_json::Error> {
        if let Some(object) = value.as_object_mut() {
            match object.get("type").and_then(Value::as_str) {
                Some("started") => {
                    self.run += 1;
                    if let Some(preset) = object.get_mut("preset") {
                        upgrade_experiment(preset);
                    }
                }
                Some("interrupted") => {
                    let signal = object.remove("signal").unwrap_or(json!("a signal"));
                    object.insert("type".into(), json!("ended"));
                    object.insert("reason".into(), signal);
                }
                Some("command") => {
                    if let Some(command) = object.get_mut("command") {
                        upgrade_command(command);
                    }
                }
                Some("state") => {
                    if let Some(divergence) =
                        object.get_mut("state").and_then(|s| s.get_mut("diverged"))
                    {
                        renumber(divergence, "layer");
                    }
                }
                Some("sources") => {
                    if let Some(layers) = object.get_mut("layers").and_then(Value::as_array_mut) {
                        layers.iter_mut().for_each(|l| renumber(l, "layer"));
                    }
                }
                Some("lesion") => {
                    if let Some(results) = object.get_mut("results").and_then(Value::as_array_mut) {
                        results.iter_mut().for_each(|r| renumber(r, "block"));
                    }
                }
                Some("snapshot") => {
                    renumber_snapshot(object);
                    // The skip label carried the gate's initial bias ("highway(b=-2)"); the
                    // mode's label is now plain "highway" (the bias is model.gate_bias).
                    if let Some(skip) = object.get_mut("skip")
                        && skip.as_str().is_some_and(|s| s.starts_with("highway("))
                    {
                        *skip = json!("highway");
                    }
                }
                _ => {}
            }
            object.insert("run".into(), json!(self.run.max(1)));
        }
        serde_json::from_value(value)
    }
}

/// Version 1 numbered layers from 0 in its data (`index`, a divergence's `layer`, a lesion's
/// `block`); version 2 numbers them from 1, as the dashboard always did.
fn renumber_snapshot(snapshot: &mut serde_json::Map<String, Value>) {
    if let Some(layers) = snapshot.get_mut("layers").and_then(Value::as_array_mut) {
        for layer in layers.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(index) = layer.remove("index").and_then(|i| i.as_u64()) {
                layer.insert("layer".into(), json!(index + 1));
            }
        }
    }
    if let Some(divergence) = snapshot.get_mut("divergence") {
        renumber(divergence, "layer");
    }
}

/// Adds one to the number `field` of `object`, where it is a number.
fn renumber(object: &mut Value, field: &str) {
    if let Some(n) = object.get(field).and_then(Value::as_u64) {
        object[field] = json!(n + 1);
    }
}

/// Moves a version-1 highway gate bias out of the skip mode into `model.gate_bias`.
pub fn upgrade_experiment(experiment: &mut Value) {
    let Some(model) = experiment.get_mut("model").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(bias) = model.get_mut("skip").and_then(take_highway_bias) {
        model.insert("gate_bias".into(), bias);
    } else if !model.contains_key("gate_bias") {
        // Version 1 initialised the gates of a net that did not start as highway at −1.
        model.insert("gate_bias".into(), json!(-1.0));
    }
}

/// `{"set_skip":{"Highway":{…}}}` → `{"set_skip":"Highway"}`; a loaded preset is upgraded.
fn upgrade_command(command: &mut Value) {
    if let Some(skip) = command.get_mut("set_skip") {
        take_highway_bias(skip);
    }
    if let Some(preset) = command.get_mut("load_preset") {
        upgrade_experiment(preset);
    }
}

/// Replaces `{"Highway":{"gate_bias":b}}` by `"Highway"`, returning b.
fn take_highway_bias(skip: &mut Value) -> Option<Value> {
    let bias = skip.get("Highway")?.get("gate_bias")?.clone();
    *skip = json!("Highway");
    Some(bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SkipMode;
    use crate::protocol::{Command, Event};

    #[test]
    fn v1_lines_get_runs_and_new_shapes() {
        let mut lines = V1Lines::default();
        let command = json!({"type":"command","step":3,"label":"skip → highway(b=-2)",
            "command":{"set_skip":{"Highway":{"gate_bias":-2.0}}}});
        let line = lines.convert(command).expect("converts");
        assert_eq!(line.run, 1);
        assert_eq!(
            line.event,
            Event::Applied {
                step: 3,
                command: Command::SetSkip(SkipMode::Highway)
            }
        );
        let end = json!({"type":"interrupted","step":9,"signal":"SIGTERM"});
        let line = lines.convert(end).expect("converts");
        assert_eq!(
            line.event,
            Event::Ended {
                step: 9,
                reason: "SIGTERM".into()
            }
        );
    }
}
