//! Predicted against measured first/last gradient ratio (dB) at initialisation for the plain,
//! residual and highway presets at depths 16, 32 and 54, rebuilt at width 256 with a batch of
//! 256, mean over seeds 1–3. The prediction is gradlab's mean-field prediction for the
//! architecture (`theory::predict`) from the snapshot's variances; the measurement is the
//! snapshot's `grad_ratio_db` (batch Frobenius norms of the gradient of the mean loss).
//!
//! `cargo run --release --example theory_table` prints a Markdown table.

use gradlab::config::load_preset;
use gradlab::model::Trainer;
use gradlab::theory::predict;

const SEEDS: u64 = 3;

fn main() -> anyhow::Result<()> {
    println!("| preset | depth | predicted dB | measured dB (mean ± sd, 3 seeds) |");
    println!("|--------|-------|--------------|----------------------------------|");
    for preset in ["plain-deep", "residual-deep", "highway-deep"] {
        for depth in [16, 32, 54] {
            let (mut predicted, mut measured) = (Vec::new(), Vec::new());
            for seed in 1..=SEEDS {
                let mut experiment = load_preset(preset)?;
                experiment.model.depth = depth;
                experiment.model.width = 256;
                experiment.batch = 256;
                experiment.seed = seed;
                let mut trainer = Trainer::new(experiment, None)?;
                let snapshot = trainer
                    .train_step(false, true)
                    .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
                let variances = snapshot
                    .variances
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("no variances"))?;
                predicted.push(predict(variances).ratio_db().unwrap_or(f64::NAN));
                measured.push(snapshot.grad_ratio_db);
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (m, p) = (mean(&measured), mean(&predicted));
            let sd = (measured.iter().map(|x| (x - m).powi(2)).sum::<f64>()
                / (measured.len() - 1) as f64)
                .sqrt();
            println!("| {preset} | {depth} | {p:+.1} | {m:+.1} ± {sd:.1} |");
        }
    }
    Ok(())
}
