//! Sequence tasks for recurrent nets, generated from the seed: the adding problem, the copy
//! task and delayed XOR. Training batches are drawn fresh every step (the supply is endless);
//! the test set is fixed.

use crate::config::TaskSpec;
use anyhow::{Result, bail};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// What a sequence task asks for at the end of the sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqTargets {
    /// One real value per sequence, read at the last step (batch).
    FinalValue(Vec<f32>),
    /// One class per sequence, read at the last step (batch).
    FinalClass(Vec<usize>),
    /// One class per step for the last `steps` steps (row-major steps × batch).
    TailClasses {
        /// How many final steps are scored.
        steps: usize,
        /// Labels, step-major.
        labels: Vec<usize>,
    },
}

/// A batch of sequences, time-major: `inputs[(t * rows + r) * input_dims + d]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqBatch {
    /// Sequence length T.
    pub steps: usize,
    /// Sequences in the batch.
    pub rows: usize,
    /// Features per time step.
    pub input_dims: usize,
    /// Time-major inputs.
    pub inputs: Vec<f32>,
    /// The targets.
    pub targets: SeqTargets,
}

impl SeqBatch {
    /// The rows × input_dims slice of time step `t`.
    pub fn step_inputs(&self, t: usize) -> &[f32] {
        let width = self.rows * self.input_dims;
        &self.inputs[t * width..(t + 1) * width]
    }
}

/// How the output head is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqKind {
    /// Mean squared error on one value.
    Regression,
    /// Cross-entropy over `classes`, at the last `scored_steps` steps.
    Classification {
        /// Number of classes.
        classes: usize,
        /// Steps scored at the end of the sequence.
        scored_steps: usize,
    },
}

/// A sequence task: its shape, its trivial baseline and a fixed test set.
#[derive(Clone, Debug)]
pub struct SeqTask {
    /// The preset's task.
    pub spec: TaskSpec,
    /// Short name, e.g. "adding".
    pub name: String,
    /// How outputs are scored.
    pub kind: SeqKind,
    /// Features per time step.
    pub input_dims: usize,
    /// Sequence length T.
    pub steps: usize,
    /// Loss of the best input-blind predictor (the line a learning curve must get under).
    pub baseline_loss: f64,
    /// Accuracy of guessing, for classification tasks.
    pub baseline_accuracy: Option<f64>,
    /// The fixed test set.
    pub test: SeqBatch,
}

impl SeqTask {
    /// Builds the task; the test set comes from its own stream of `seed`.
    pub fn new(spec: &TaskSpec, seed: u64) -> Result<Self> {
        let (name, kind, input_dims, steps, baseline_loss, baseline_accuracy, test_points) =
            match *spec {
                TaskSpec::Adding {
                    length,
                    test_points,
                } => (
                    "adding",
                    SeqKind::Regression,
                    2,
                    length,
                    // Var(U₁ + U₂) for independent U[0, 1]: the MSE of always answering 1.
                    1.0 / 6.0,
                    None,
                    test_points,
                ),
                TaskSpec::Copy {
                    symbols,
                    delay,
                    alphabet,
                    test_points,
                } => (
                    "copy",
                    SeqKind::Classification {
                        classes: alphabet,
                        scored_steps: symbols,
                    },
                    alphabet + 2,
                    symbols + delay + 1 + symbols,
                    (alphabet as f64).ln(),
                    Some(1.0 / alphabet as f64),
                    test_points,
                ),
                TaskSpec::DelayedXor {
                    length,
                    test_points,
                } => (
                    "delayed-xor",
                    SeqKind::Classification {
                        classes: 2,
                        scored_steps: 1,
                    },
                    2,
                    length,
                    std::f64::consts::LN_2,
                    Some(0.5),
                    test_points,
                ),
                _ => bail!("{spec:?} is not a sequence task: use `kind: Mlp` for it"),
            };
        let mut task = SeqTask {
            spec: spec.clone(),
            name: name.into(),
            kind,
            input_dims,
            steps,
            baseline_loss,
            baseline_accuracy,
            test: SeqBatch {
                steps,
                rows: 0,
                input_dims,
                inputs: Vec::new(),
                targets: SeqTargets::FinalValue(Vec::new()),
            },
        };
        let mut rng = StdRng::seed_from_u64(seed ^ 0x07e5_75e7_u64);
        task.test = task.sample(test_points, &mut rng);
        Ok(task)
    }

    /// Draws `rows` fresh sequences.
    pub fn sample(&self, rows: usize, rng: &mut impl Rng) -> SeqBatch {
        let (steps, dims) = (self.steps, self.input_dims);
        let mut inputs = vec![0.0f32; steps * rows * dims];
        let at = |t: usize, r: usize, d: usize| (t * rows + r) * dims + d;
        let targets = match self.spec {
            TaskSpec::Adding { .. } => {
                let mut sums = Vec::with_capacity(rows);
                for r in 0..rows {
                    for t in 0..steps {
                        inputs[at(t, r, 0)] = rng.r#gen::<f32>();
                    }
                    // One mark in each half, as Hochreiter & Schmidhuber set it up, so the first
                    // mark is always at least T/2 steps before the answer.
                    let half = (steps / 2).max(1);
                    let first = rng.gen_range(0..half);
                    let second = rng.gen_range(half..steps);
                    inputs[at(first, r, 1)] = 1.0;
                    inputs[at(second, r, 1)] = 1.0;
                    sums.push(inputs[at(first, r, 0)] + inputs[at(second, r, 0)]);
                }
                SeqTargets::FinalValue(sums)
            }
            TaskSpec::Copy {
                symbols, alphabet, ..
            } => {
                let (blank, cue) = (alphabet, alphabet + 1);
                let mut labels = vec![0usize; symbols * rows];
                for r in 0..rows {
                    for t in 0..steps {
                        let channel = if t < symbols {
                            let symbol = rng.gen_range(0..alphabet);
                            labels[t * rows + r] = symbol;
                            symbol
                        } else if t == steps - symbols - 1 {
                            cue
                        } else {
                            blank
                        };
                        inputs[at(t, r, channel)] = 1.0;
                    }
                }
                SeqTargets::TailClasses {
                    steps: symbols,
                    labels,
                }
            }
            TaskSpec::DelayedXor { .. } => {
                let mut labels = Vec::with_capacity(rows);
                for r in 0..rows {
                    for t in 0..steps {
                        inputs[at(t, r, 0)] = if rng.r#gen::<bool>() { 1.0 } else { -1.0 };
                    }
                    let half = (steps / 2).max(1);
                    let first = rng.gen_range(0..half);
                    let second = rng.gen_range(half..steps);
                    inputs[at(first, r, 1)] = 1.0;
                    inputs[at(second, r, 1)] = 1.0;
                    let bit = |t: usize| inputs[at(t, r, 0)] > 0.0;
                    labels.push(usize::from(bit(first) ^ bit(second)));
                }
                SeqTargets::FinalClass(labels)
            }
            _ => SeqTargets::FinalValue(vec![0.0; rows]),
        };
        SeqBatch {
            steps,
            rows,
            input_dims: dims,
            inputs,
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(spec: TaskSpec) -> SeqTask {
        SeqTask::new(&spec, 3).expect("valid task")
    }

    #[test]
    fn adding_targets_are_the_sum_of_the_two_marked_values_and_the_baseline_holds() {
        let t = task(TaskSpec::Adding {
            length: 50,
            test_points: 4000,
        });
        let SeqTargets::FinalValue(sums) = &t.test.targets else {
            panic!("regression targets");
        };
        for (r, sum) in sums.iter().enumerate() {
            let marked: Vec<f32> = (0..t.steps)
                .filter(|&s| t.test.step_inputs(s)[r * 2 + 1] == 1.0)
                .map(|s| t.test.step_inputs(s)[r * 2])
                .collect();
            assert_eq!(marked.len(), 2);
            assert!((marked[0] + marked[1] - sum).abs() < 1e-6);
        }
        let mse_of_one =
            sums.iter().map(|s| f64::from(s - 1.0).powi(2)).sum::<f64>() / sums.len() as f64;
        assert!(
            (mse_of_one - 1.0 / 6.0).abs() < 0.01,
            "baseline {mse_of_one}"
        );
    }

    #[test]
    fn copy_sequences_carry_symbols_then_blanks_then_a_cue() {
        let t = task(TaskSpec::Copy {
            symbols: 3,
            delay: 10,
            alphabet: 4,
            test_points: 20,
        });
        assert_eq!(t.steps, 3 + 10 + 1 + 3);
        let SeqTargets::TailClasses { steps, labels } = &t.test.targets else {
            panic!("tail classes");
        };
        assert_eq!(*steps, 3);
        for r in 0..t.test.rows {
            let symbol_at = |s: usize| {
                t.test.step_inputs(s)[r * 6..(r + 1) * 6]
                    .iter()
                    .position(|&v| v == 1.0)
            };
            for k in 0..3 {
                assert_eq!(symbol_at(k), Some(labels[k * t.test.rows + r]));
            }
            assert_eq!(symbol_at(13), Some(5), "the cue");
            assert_eq!(symbol_at(5), Some(4), "a blank");
        }
    }

    #[test]
    fn delayed_xor_labels_are_the_xor_of_the_marked_bits() {
        let t = task(TaskSpec::DelayedXor {
            length: 30,
            test_points: 200,
        });
        let SeqTargets::FinalClass(labels) = &t.test.targets else {
            panic!("classes");
        };
        let ones = labels.iter().filter(|&&l| l == 1).count();
        assert!((60..140).contains(&ones), "balanced: {ones}");
        for (r, label) in labels.iter().enumerate() {
            let marked: Vec<bool> = (0..30)
                .filter(|&s| t.test.step_inputs(s)[r * 2 + 1] == 1.0)
                .map(|s| t.test.step_inputs(s)[r * 2] > 0.0)
                .collect();
            assert_eq!(usize::from(marked[0] ^ marked[1]), *label);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_test_set_and_long_sequences_work() {
        let spec = TaskSpec::Adding {
            length: 1000,
            test_points: 8,
        };
        let (a, b) = (task(spec.clone()), task(spec));
        assert_eq!(a.test, b.test);
        assert_eq!(a.test.inputs.len(), 1000 * 8 * 2);
    }
}
