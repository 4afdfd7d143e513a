//! The table `gradlab run` prints when it ends: numbers a person reads at a glance (fixed
//! notation where the scale allows, dB for ratios), the loss beside what guessing scores, and
//! the mean-field prediction beside the measured gradient ratio.

use crate::learner::Learner;
use crate::metrics::Snapshot;
use crate::out::say;
use crate::report::RunReport;
use crate::tasks::TaskKind;
use anyhow::Result;

/// What an input-blind predictor scores on the task: the loss of predicting the class
/// frequencies (or the mean target), and for classification the accuracy of guessing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Chance {
    /// The loss of the best input-blind prediction.
    pub loss: f64,
    /// The accuracy of guessing (None for regression).
    pub accuracy: Option<f64>,
}

impl Chance {
    /// The baseline of the learner's task, where the task defines one.
    pub fn of(learner: &mut dyn Learner, snapshot: &Snapshot) -> Option<Chance> {
        if let Some(loss) = snapshot.baseline_loss {
            return Some(Chance {
                loss,
                accuracy: None,
            });
        }
        let trainer = learner.as_mlp()?;
        match trainer.task().kind {
            // Uniform over classes: cross-entropy ln C, accuracy 1/C (the generated tasks are
            // balanced; for a user's CSV it is the uniform guess, not the majority class).
            TaskKind::Classification { classes } => Some(Chance {
                loss: (classes as f64).ln(),
                accuracy: Some(1.0 / classes as f64),
            }),
            // Targets are standardised, so predicting their mean scores MSE 1 per output.
            TaskKind::Regression { .. } => Some(Chance {
                loss: 1.0,
                accuracy: None,
            }),
        }
    }
}

/// A number for people: fixed notation between 0.001 and 10⁵, scientific outside.
pub fn readable(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let magnitude = v.abs();
    if magnitude == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&magnitude) {
        let decimals = (3.0 - magnitude.log10().floor()).clamp(0.0, 4.0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.2e}")
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |a| format!("{:.1} %", 100.0 * a))
}

fn db(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.1} dB")
    } else {
        "n/a".into()
    }
}

/// Prints the summary of a finished run.
pub fn print_summary(report: &RunReport, chance: Option<Chance>) -> Result<()> {
    let s = &report.snapshot;
    let state = match &s.divergence {
        Some(d) => format!("diverged at step {} ({})", d.step, d.what),
        None => "finished".to_string(),
    };
    let beside = |text: String| {
        if text.is_empty() {
            String::new()
        } else {
            format!("   ({text})")
        }
    };
    say!("preset            {}", s.preset)?;
    say!("steps             {}", s.step)?;
    say!(
        "loss              {}{}",
        readable(s.loss),
        beside(chance.map_or(String::new(), |c| format!(
            "guessing scores {}",
            readable(c.loss)
        )))
    )?;
    if let Some(test) = s.test_loss {
        say!("test loss         {}", readable(test))?;
    }
    let guess = chance.and_then(|c| c.accuracy).map_or(String::new(), |a| {
        format!("guessing scores {:.1} %", 100.0 * a)
    });
    if s.train_accuracy.is_some() || s.test_accuracy.is_some() {
        say!(
            "train accuracy    {}{}",
            percent(s.train_accuracy),
            beside(guess)
        )?;
        say!("test accuracy     {}", percent(s.test_accuracy))?;
    }
    // Gradient norms: per layer for an MLP, per time step for a recurrent net.
    let (unit, norms): (&str, Vec<f64>) = if s.timesteps.is_empty() {
        ("layer", s.layers.iter().map(|l| l.act_grad_norm).collect())
    } else {
        (
            "t",
            s.timesteps.iter().map(|t| t.hidden_grad_norm).collect(),
        )
    };
    if let (Some(first), Some(last)) = (norms.first(), norms.last()) {
        let n = norms.len();
        say!(
            "‖∂L/∂h‖ {unit} 1{:>w$}{}",
            "",
            readable(*first),
            w = 9 - unit.len()
        )?;
        if n > 2 {
            let middle = n.div_ceil(2);
            say!(
                "‖∂L/∂h‖ {unit} {middle}{:>w$}{}",
                "",
                readable(norms[middle - 1]),
                w = 10usize.saturating_sub(unit.len() + middle.to_string().len())
            )?;
        }
        say!(
            "‖∂L/∂h‖ {unit} {n}{:>w$}{}   (batch Frobenius norms of the mean loss's gradient)",
            "",
            readable(*last),
            w = 10usize.saturating_sub(unit.len() + n.to_string().len())
        )?;
    }
    let theory = report.theory.as_ref();
    let predicted = theory.and_then(|t| {
        Some(format!(
            "mean-field for {} from current variances: {}",
            t.architecture.as_deref()?,
            db(t.predicted_ratio_db?)
        ))
    });
    say!(
        "first/last        {}{}",
        db(s.grad_ratio_db),
        beside(predicted.unwrap_or_else(|| match &s.norm {
            Some(norm) => format!("no mean-field line with {norm}"),
            None => "no mean-field prediction for this net".into(),
        }))
    )?;
    say!(
        "gain per layer    {}   (first/last ÷ ({} − 1))",
        db(crate::metrics::gain_per_layer_db(
            s.grad_ratio_db,
            norms.len()
        )),
        if s.timesteps.is_empty() {
            "layers"
        } else {
            "T"
        }
    )?;
    let plain = theory.and_then(|t| t.chi1).map_or(String::new(), |c| {
        format!(
            "a plain net at the preset's initialisation: {}",
            readable(c)
        )
    });
    say!(
        "χ₁ middle fit     {}{}",
        readable(s.measured_chi1),
        beside(plain)
    )?;
    say!("state             {state}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(readable(0.69269), "0.6927");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(12.5), "12.50");
        assert_eq!(readable(1234.7), "1235");
        assert_eq!(readable(2.6e-41), "2.60e-41");
        assert_eq!(readable(f64::NAN), "n/a");
    }
}
