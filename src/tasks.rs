//! Datasets the lab trains on: synthetic tasks generated from the seed, two real data sets
//! shipped in the binary (see [`datasets`]), or a user CSV file.
//!
//! Every generated or CSV task is produced in full, shuffled once and cut into a test split
//! (20 %, at least one example) and a train split; the shipped data sets keep their own fixed
//! split. All randomness comes from `StdRng` (rand 0.8) seeded from the
//! experiment seed, so the same seed gives bit-identical data on the same build; different
//! purposes (points, split, teacher weights, batch order) draw from independent streams so that,
//! for example, changing the point count does not change the teacher function.

use std::path::Path;

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::TaskSpec;

mod csv;
pub mod datasets;
mod generators;
mod sampler;
pub mod sequence;

pub use sampler::{BatchSampler, SamplerPosition};

use generators::{Teacher, blobs, checkerboard, circles, spirals, teacher};

/// Fraction of the examples held out for testing.
const TEST_FRACTION: f64 = 0.2;

/// Upper bound on `points × dims`, so an oversized preset fails with a message instead of
/// aborting on allocation (2²⁷ values is 512 MiB of inputs).
const MAX_VALUES: usize = 1 << 27;

/// Independent random streams derived from one seed.
mod stream {
    pub const POINTS: u64 = 1;
    pub const SPLIT: u64 = 2;
    pub const TEACHER: u64 = 3;
    pub const BATCHES: u64 = 4;
}

/// What the network predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// One integer label per example in `0..classes`; the head has `classes` logits.
    Classification {
        /// Number of classes (at least 2).
        classes: usize,
    },
    /// `outputs` real targets per example, trained with mean squared error.
    Regression {
        /// Number of real-valued outputs per example.
        outputs: usize,
    },
}

impl TaskKind {
    /// Width of the network's output layer for this task.
    pub fn outputs(self) -> usize {
        match self {
            TaskKind::Classification { classes } => classes,
            TaskKind::Regression { outputs } => outputs,
        }
    }
}

/// One split of a task: `len` examples, row-major inputs of `input_dims` columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Row-major `len × input_dims` inputs.
    pub inputs: Vec<f32>,
    /// Class label of every example for classification tasks; empty for regression.
    pub labels: Vec<usize>,
    /// Row-major `len × outputs` targets for regression tasks; empty for classification.
    pub targets: Vec<f32>,
    /// Number of examples.
    pub len: usize,
}

impl Split {
    /// Gathers rows `indices` into `inputs` (len = indices.len()*input_dims), and labels/targets
    /// likewise, reusing the buffers so a training loop allocates nothing once they are warm.
    ///
    /// `labels` is left empty for a regression split and `targets` for a classification split.
    ///
    /// # Panics
    ///
    /// If an index is not below `self.len`, or the dimensions do not match the split; both are
    /// programming errors, since indices come from [`BatchSampler`] or `0..len`.
    pub fn gather(
        &self,
        indices: &[usize],
        input_dims: usize,
        outputs: usize,
        inputs: &mut Vec<f32>,
        labels: &mut Vec<usize>,
        targets: &mut Vec<f32>,
    ) {
        debug_assert_eq!(self.inputs.len(), self.len * input_dims);
        inputs.clear();
        labels.clear();
        targets.clear();
        inputs.reserve(indices.len() * input_dims);
        for &i in indices {
            inputs.extend_from_slice(&self.inputs[i * input_dims..(i + 1) * input_dims]);
        }
        if !self.labels.is_empty() {
            labels.extend(indices.iter().map(|&i| self.labels[i]));
        }
        if !self.targets.is_empty() {
            debug_assert_eq!(self.targets.len(), self.len * outputs);
            targets.reserve(indices.len() * outputs);
            for &i in indices {
                targets.extend_from_slice(&self.targets[i * outputs..(i + 1) * outputs]);
            }
        }
    }

    /// Copies rows `indices` into a new split.
    fn subset(&self, indices: &[usize], input_dims: usize, outputs: usize) -> Split {
        let mut split = Split {
            inputs: Vec::new(),
            labels: Vec::new(),
            targets: Vec::new(),
            len: indices.len(),
        };
        self.gather(
            indices,
            input_dims,
            outputs,
            &mut split.inputs,
            &mut split.labels,
            &mut split.targets,
        );
        split
    }
}

/// A generated (or loaded) task with its train/test split.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskData {
    /// Classification or regression, and the width of the output layer.
    pub kind: TaskKind,
    /// Number of input features per example.
    pub input_dims: usize,
    /// Examples the network is trained on.
    pub train: Split,
    /// Held-out examples (20 %, at least one) for measuring generalisation.
    pub test: Split,
    /// Short name for headers: `"spirals"`, `"circles"`, …, or the CSV file name.
    pub name: String,
}

/// Builds the task deterministically from `seed`. `base_dir` resolves a relative CSV path (the
/// preset file's folder), None = current dir.
///
/// Synthetic tasks are generated in full, then shuffled and split; a CSV file is read, checked
/// and standardised (see [`TaskSpec::Csv`] and the notes on the loader) before the same split.
///
/// The teacher task's targets are standardised to mean 0 and variance 1 over the whole task
/// (after the noise is added), so predicting the mean gives MSE ≈ 1: that is the trivial
/// baseline a learning curve should beat. `noise` is relative to the teacher's own standard
/// deviation, so the best achievable MSE is about noise² / (1 + noise²).
pub fn build_task(spec: &TaskSpec, seed: u64, base_dir: Option<&Path>) -> Result<TaskData> {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, stream::POINTS));
    let (name, kind, input_dims, all) = match *spec {
        TaskSpec::Spirals { points, noise } => {
            check_points("spirals", points, 2)?;
            check_noise("spirals", "noise", noise)?;
            let all = spirals(points, noise, &mut rng);
            (
                "spirals".to_string(),
                TaskKind::Classification { classes: 2 },
                2,
                all,
            )
        }
        TaskSpec::Circles { points, noise } => {
            check_points("circles", points, 2)?;
            check_noise("circles", "noise", noise)?;
            let all = circles(points, noise, &mut rng);
            (
                "circles".to_string(),
                TaskKind::Classification { classes: 2 },
                2,
                all,
            )
        }
        TaskSpec::Checkerboard { points, cells } => {
            check_points("checkerboard", points, 2)?;
            if !(2..=1024).contains(&cells) {
                bail!("checkerboard: cells must be in 2..=1024, got {cells}");
            }
            let all = checkerboard(points, cells, &mut rng);
            let kind = TaskKind::Classification { classes: 2 };
            ("checkerboard".to_string(), kind, 2, all)
        }
        TaskSpec::Blobs {
            points,
            classes,
            dims,
            spread,
        } => {
            check_points("blobs", points, dims)?;
            check_noise("blobs", "spread", spread)?;
            if classes < 2 {
                bail!("blobs: classes must be at least 2, got {classes}");
            }
            let all = blobs(points, classes, dims, spread, &mut rng);
            let kind = TaskKind::Classification { classes };
            ("blobs".to_string(), kind, dims, all)
        }
        TaskSpec::Teacher {
            points,
            dims,
            depth,
            noise,
        } => {
            check_points("teacher", points, dims)?;
            check_noise("teacher", "noise", noise)?;
            if !(1..=64).contains(&depth) {
                bail!("teacher: depth must be in 1..=64, got {depth}");
            }
            let mut teacher_rng = StdRng::seed_from_u64(derive_seed(seed, stream::TEACHER));
            let net = Teacher::new(dims, depth, &mut teacher_rng);
            let all = teacher(&net, points, noise, &mut rng);
            let kind = TaskKind::Regression { outputs: 1 };
            ("teacher".to_string(), kind, dims, all)
        }
        TaskSpec::Csv {
            ref path,
            classification,
        } => {
            let resolved = match base_dir {
                Some(dir) if Path::new(path).is_relative() => dir.join(path),
                _ => Path::new(path).to_path_buf(),
            };
            let table = csv::load(&resolved, classification)?;
            let name = resolved
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.clone());
            (name, table.kind, table.input_dims, table.rows)
        }
        TaskSpec::Adding { .. } | TaskSpec::Copy { .. } | TaskSpec::DelayedXor { .. } => {
            bail!("{spec:?} is a sequence task: it needs `kind: Rnn` in the model")
        }
        // Their split is part of the file, the same for every seed.
        TaskSpec::Digits => return Ok(datasets::digits()?.task("digits")),
        TaskSpec::Mnist1d => return Ok(datasets::mnist1d()?.task("mnist-1d")),
    };
    let (train, test) = split(&all, input_dims, kind.outputs(), seed)?;
    Ok(TaskData {
        kind,
        input_dims,
        train,
        test,
        name,
    })
}

/// Mixes a purpose tag into the seed (SplitMix64), so streams of nearby seeds do not overlap.
fn derive_seed(seed: u64, stream: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(seed ^ mix(stream))
}

/// Rejects point counts that leave a split empty or would exhaust memory; presets are checked
/// when parsed, but a `TaskSpec` may also be built in code.
fn check_points(task: &str, points: usize, dims: usize) -> Result<()> {
    if points < 2 {
        bail!(
            "{task}: points must be at least 2 (one for training, one for testing), got {points}"
        );
    }
    if dims == 0 {
        bail!("{task}: dims must be at least 1");
    }
    match points.checked_mul(dims) {
        Some(values) if values <= MAX_VALUES => Ok(()),
        _ => bail!(
            "{task}: {points} points × {dims} dims is more than the limit of {MAX_VALUES} input values"
        ),
    }
}

fn check_noise(task: &str, field: &str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        bail!("{task}: {field} must be a finite number ≥ 0, got {value}")
    }
}
/// Shifts every column of a row-major table to mean 0 and scales it to standard deviation 1.
/// A constant column is only centred, since there is no spread to divide by.
fn standardise(values: &mut [f32], columns: usize) {
    let rows = values.len() / columns.max(1);
    if rows == 0 {
        return;
    }
    for col in 0..columns {
        let column = || values.iter().skip(col).step_by(columns);
        // f64 sums, so a million rows do not lose the mean to rounding.
        let mean = column().map(|&v| f64::from(v)).sum::<f64>() / rows as f64;
        let var = column()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / rows as f64;
        let std = var.sqrt();
        let scale = if std > 1e-12 { 1.0 / std } else { 1.0 };
        for v in values.iter_mut().skip(col).step_by(columns) {
            *v = ((f64::from(*v) - mean) * scale) as f32;
        }
    }
}

/// Shuffles the examples and holds out the first 20 % (at least one) as the test split.
fn split(all: &Split, input_dims: usize, outputs: usize, seed: u64) -> Result<(Split, Split)> {
    if all.len < 2 {
        bail!(
            "a task needs at least 2 examples (one for training, one for testing), got {}",
            all.len
        );
    }
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, stream::SPLIT));
    let mut order: Vec<usize> = (0..all.len).collect();
    order.shuffle(&mut rng);
    let n_test = ((all.len as f64 * TEST_FRACTION).round() as usize).clamp(1, all.len - 1);
    let (test, train) = order.split_at(n_test);
    Ok((
        all.subset(train, input_dims, outputs),
        all.subset(test, input_dims, outputs),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn build(spec: &TaskSpec, seed: u64) -> TaskData {
        match build_task(spec, seed, None) {
            Ok(task) => task,
            Err(e) => panic!("{spec:?} failed: {e:#}"),
        }
    }

    fn all_specs() -> Vec<TaskSpec> {
        vec![
            TaskSpec::Spirals {
                points: 501,
                noise: 0.05,
            },
            TaskSpec::Circles {
                points: 400,
                noise: 0.05,
            },
            TaskSpec::Checkerboard {
                points: 300,
                cells: 4,
            },
            TaskSpec::Blobs {
                points: 300,
                classes: 5,
                dims: 2,
                spread: 0.3,
            },
            TaskSpec::Blobs {
                points: 300,
                classes: 3,
                dims: 7,
                spread: 0.3,
            },
            TaskSpec::Teacher {
                points: 250,
                dims: 6,
                depth: 3,
                noise: 0.1,
            },
        ]
    }

    /// Train and test together, so class counts can be checked exactly.
    pub(super) fn all_labels(task: &TaskData) -> Vec<usize> {
        task.train
            .labels
            .iter()
            .chain(&task.test.labels)
            .copied()
            .collect()
    }

    #[test]
    fn same_seed_gives_identical_data_and_different_seed_differs() {
        for spec in all_specs() {
            let a = build(&spec, 7);
            let b = build(&spec, 7);
            assert_eq!(a, b, "{spec:?}");
            let bits = |s: &Split| s.inputs.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.train), bits(&b.train));
            let c = build(&spec, 8);
            assert_ne!(a.train.inputs, c.train.inputs, "{spec:?}");
        }
    }

    #[test]
    fn shapes_split_sizes_and_label_ranges() {
        for spec in all_specs() {
            let task = build(&spec, 3);
            let points = match spec {
                TaskSpec::Spirals { points, .. }
                | TaskSpec::Circles { points, .. }
                | TaskSpec::Checkerboard { points, .. }
                | TaskSpec::Blobs { points, .. }
                | TaskSpec::Teacher { points, .. } => points,
                _ => unreachable!(),
            };
            let expected_dims = match spec {
                TaskSpec::Blobs { dims, .. } | TaskSpec::Teacher { dims, .. } => dims,
                _ => 2,
            };
            assert_eq!(task.input_dims, expected_dims, "{spec:?}");
            assert_eq!(task.train.len + task.test.len, points);
            assert_eq!(task.test.len, (points as f64 * 0.2).round() as usize);
            for s in [&task.train, &task.test] {
                assert_eq!(s.inputs.len(), s.len * task.input_dims);
                assert!(s.inputs.iter().all(|v| v.is_finite()));
                match task.kind {
                    TaskKind::Classification { classes } => {
                        assert_eq!(s.labels.len(), s.len);
                        assert!(s.targets.is_empty());
                        assert!(s.labels.iter().all(|&l| l < classes), "{spec:?}");
                    }
                    TaskKind::Regression { outputs } => {
                        assert_eq!(outputs, 1);
                        assert_eq!(s.targets.len(), s.len);
                        assert!(s.labels.is_empty());
                    }
                }
            }
            let expected_kind = match spec {
                TaskSpec::Blobs { classes, .. } => TaskKind::Classification { classes },
                TaskSpec::Teacher { .. } => TaskKind::Regression { outputs: 1 },
                _ => TaskKind::Classification { classes: 2 },
            };
            assert_eq!(task.kind, expected_kind);
            if let TaskKind::Classification { classes } = task.kind {
                let labels = all_labels(&task);
                for class in 0..classes {
                    assert!(labels.contains(&class), "{spec:?} never uses class {class}");
                }
            }
        }
    }

    #[test]
    fn test_split_has_at_least_one_example() {
        let task = build(
            &TaskSpec::Circles {
                points: 4,
                noise: 0.0,
            },
            1,
        );
        assert_eq!((task.train.len, task.test.len), (3, 1));
    }

    #[test]
    fn invalid_specs_are_errors_not_panics() {
        let cases = [
            (
                TaskSpec::Spirals {
                    points: 1,
                    noise: 0.1,
                },
                "spirals: points must be at least 2",
            ),
            (
                TaskSpec::Circles {
                    points: 10,
                    noise: f32::NAN,
                },
                "circles: noise must be a finite number",
            ),
            (
                TaskSpec::Checkerboard {
                    points: 10,
                    cells: 1,
                },
                "checkerboard: cells must be in 2..=1024, got 1",
            ),
            (
                TaskSpec::Blobs {
                    points: 10,
                    classes: 1,
                    dims: 2,
                    spread: 0.1,
                },
                "blobs: classes must be at least 2, got 1",
            ),
            (
                TaskSpec::Blobs {
                    points: 10,
                    classes: 2,
                    dims: 0,
                    spread: 0.1,
                },
                "blobs: dims must be at least 1",
            ),
            (
                TaskSpec::Teacher {
                    points: 1_000_000,
                    dims: 1024,
                    depth: 2,
                    noise: 0.1,
                },
                "teacher: 1000000 points × 1024 dims is more than the limit",
            ),
            (
                TaskSpec::Teacher {
                    points: 10,
                    dims: 2,
                    depth: 0,
                    noise: 0.1,
                },
                "teacher: depth must be in 1..=64, got 0",
            ),
        ];
        for (spec, expected) in cases {
            match build_task(&spec, 0, None) {
                Ok(_) => panic!("{spec:?} should fail"),
                Err(e) => assert!(e.to_string().starts_with(expected), "{e}"),
            }
        }
    }

    #[test]
    fn gather_copies_rows_and_reuses_buffers() {
        let split = Split {
            inputs: vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
            labels: Vec::new(),
            targets: vec![10.0, 11.0, 12.0],
            len: 3,
        };
        let mut inputs = Vec::with_capacity(16);
        let mut labels = vec![99];
        let mut targets = Vec::with_capacity(16);
        let (pi, pt) = (inputs.as_ptr(), targets.as_ptr());
        split.gather(&[2, 0, 2], 2, 1, &mut inputs, &mut labels, &mut targets);
        assert_eq!(inputs, [2.0, 2.5, 0.0, 0.5, 2.0, 2.5]);
        assert_eq!(targets, [12.0, 10.0, 12.0]);
        assert!(labels.is_empty());
        assert_eq!((inputs.as_ptr(), targets.as_ptr()), (pi, pt));

        let classes = Split {
            inputs: vec![1.0, 2.0, 3.0],
            labels: vec![0, 1, 2],
            targets: Vec::new(),
            len: 3,
        };
        classes.gather(&[1], 1, 3, &mut inputs, &mut labels, &mut targets);
        assert_eq!(
            (inputs.as_slice(), labels.as_slice()),
            ([2.0].as_slice(), [1].as_slice())
        );
        assert!(targets.is_empty());
    }
}
