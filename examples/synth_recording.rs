//! Writes a synthetic recording through the real writer, for memory and speed measurements:
//! `cargo run --release --example synth_recording -- OUT.jsonl [SNAPSHOTS] [LAYERS]`.

use gradlab::config::{apply_overrides, load_preset};
use gradlab::metrics::{LayerMetrics, Snapshot, gradient_ratios};
use gradlab::protocol::{Command, Event, RunState};
use gradlab::recording::{Header, Recorder};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: synth_recording OUT [N] [LAYERS]"))?;
    let snapshots: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let layers: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let experiment = apply_overrides(
        &load_preset("plain-deep")?,
        &[format!("model.depth={layers}")],
    )?;
    let mut recorder = Recorder::create(out.as_ref(), &Header::new(&experiment, Some(snapshots)))?;
    for step in 0..snapshots {
        if step % 10_000 == 5_000 {
            let command = Command::SetLearningRate(0.01);
            recorder.record(&Event::Applied { step, command })?;
        }
        let t = step as f64;
        let norms: Vec<f64> = (0..layers)
            .map(|l| (0.8f64).powi((layers - l) as i32) * (1.0 + 1e-5 * t))
            .collect();
        let (ratio, db, chi1) = gradient_ratios(&norms);
        let snapshot = Snapshot {
            preset: experiment.name.clone(),
            step,
            loss: 0.7 * (-t / 30_000.0).exp() + 0.01,
            main_loss: 0.7 * (-t / 30_000.0).exp(),
            aux_losses: Vec::new(),
            train_accuracy: Some(0.5 + 0.4 * (1.0 - (-t / 30_000.0).exp())),
            test_accuracy: None,
            test_loss: None,
            diverged: false,
            divergence: None,
            learning_rate: 0.05,
            skip: "plain".into(),
            aux_enabled: false,
            grad_norm: norms.iter().sum(),
            layers: norms
                .iter()
                .enumerate()
                .map(|(index, &n)| LayerMetrics {
                    layer: index + 1,
                    weight_grad_norm: n * 1.3,
                    act_grad_norm: n,
                    act_rms: 0.5 + 1e-3 * index as f64,
                    gate_mean: None,
                    gate_bias_mean: None,
                    update_ratio: 1e-3 / (1.0 + t),
                    act_grad_db: None,
                    weight_grad_db: None,
                    below_f32: false,
                })
                .collect(),
            grad_ratio_first_last: ratio,
            grad_ratio_db: db,
            measured_chi1: chi1,
            ..Snapshot::default()
        };
        recorder.record(&Event::Snapshot(Box::new(snapshot)))?;
    }
    recorder.record(&Event::State {
        step: snapshots,
        state: RunState::Finished,
    })?;
    recorder.close()?;
    Ok(())
}
