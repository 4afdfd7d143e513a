//! The synthetic tasks: points, labels and targets generated from one random stream.

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use super::{Split, standardise};

/// Hidden width of the teacher network.
const TEACHER_WIDTH: usize = 32;

/// Teacher weight variance times fan-in. Above 1 a bias-free tanh chain keeps its signal at a
/// non-zero fixed point instead of slowly fading, so deep teachers still compute something
/// non-linear rather than collapsing towards a linear function.
const TEACHER_WEIGHT_VAR: f32 = 2.0;

/// Teacher bias variance: small, so the function is not odd-symmetric, without dominating.
const TEACHER_BIAS_VAR: f32 = 0.05;

/// Turns of each spiral arm; enough that a shallow net cannot separate them with a few planes.
const SPIRAL_TURNS: f32 = 1.75;

fn normal(rng: &mut StdRng) -> f32 {
    rng.sample(StandardNormal)
}

/// Sizes of two balanced classes; the first gets the odd point.
fn halves(points: usize) -> [usize; 2] {
    [points - points / 2, points / 2]
}

fn classification(inputs: Vec<f32>, labels: Vec<usize>) -> Split {
    Split {
        len: labels.len(),
        inputs,
        labels,
        targets: Vec::new(),
    }
}

/// Two Archimedean arms, the second the first rotated by half a turn.
pub(super) fn spirals(points: usize, noise: f32, rng: &mut StdRng) -> Split {
    let mut inputs = Vec::with_capacity(points * 2);
    let mut labels = Vec::with_capacity(points);
    for (class, count) in halves(points).into_iter().enumerate() {
        let phase = class as f32 * PI;
        for _ in 0..count {
            let t: f32 = rng.gen_range(0.0..1.0);
            // Start slightly off the centre, where both arms would otherwise coincide.
            let radius = 0.05 + 0.95 * t;
            let angle = SPIRAL_TURNS * TAU * t + phase;
            inputs.push(radius * angle.cos() + noise * normal(rng));
            inputs.push(radius * angle.sin() + noise * normal(rng));
            labels.push(class);
        }
    }
    classification(inputs, labels)
}

/// Class 0 uniform on the disc r ≤ 0.5, class 1 uniform on the ring 0.7 ≤ r ≤ 1.
pub(super) fn circles(points: usize, noise: f32, rng: &mut StdRng) -> Split {
    let mut inputs = Vec::with_capacity(points * 2);
    let mut labels = Vec::with_capacity(points);
    let bands = [(0.0f32, 0.5f32), (0.7, 1.0)];
    for (class, count) in halves(points).into_iter().enumerate() {
        let (inner, outer) = bands[class];
        for _ in 0..count {
            // Sampling r² uniformly makes the density uniform in area, not crowded at the centre.
            let u: f32 = rng.gen_range(0.0..=1.0);
            let radius = (inner * inner + u * (outer * outer - inner * inner)).sqrt();
            let angle: f32 = rng.gen_range(0.0..TAU);
            inputs.push(radius * angle.cos() + noise * normal(rng));
            inputs.push(radius * angle.sin() + noise * normal(rng));
            labels.push(class);
        }
    }
    classification(inputs, labels)
}

/// Label of a point in [-1, 1]² on a `cells`×`cells` board: the parity of its cell.
fn checker_label(x: f32, y: f32, cells: usize) -> usize {
    let cell = |v: f32| (((v + 1.0) * 0.5 * cells as f32) as usize).min(cells - 1);
    (cell(x) + cell(y)) % 2
}

pub(super) fn checkerboard(points: usize, cells: usize, rng: &mut StdRng) -> Split {
    let mut inputs = Vec::with_capacity(points * 2);
    let mut labels = Vec::with_capacity(points);
    for _ in 0..points {
        let x: f32 = rng.gen_range(-1.0..1.0);
        let y: f32 = rng.gen_range(-1.0..1.0);
        inputs.extend_from_slice(&[x, y]);
        labels.push(checker_label(x, y, cells));
    }
    classification(inputs, labels)
}

/// Gaussian blobs of standard deviation `spread` around random centres (on a circle of radius 2
/// in the plane, so 2-D pictures show evenly spaced clusters; N(0, 4·I) otherwise).
pub(super) fn blobs(
    points: usize,
    classes: usize,
    dims: usize,
    spread: f32,
    rng: &mut StdRng,
) -> Split {
    let mut centres = Vec::with_capacity(classes * dims);
    if dims == 2 {
        let phase: f32 = rng.gen_range(0.0..TAU);
        for k in 0..classes {
            let angle = phase + TAU * k as f32 / classes as f32;
            centres.extend_from_slice(&[2.0 * angle.cos(), 2.0 * angle.sin()]);
        }
    } else {
        centres.extend((0..classes * dims).map(|_| 2.0 * normal(rng)));
    }
    let mut inputs = Vec::with_capacity(points * dims);
    let mut labels = Vec::with_capacity(points);
    for i in 0..points {
        let class = i % classes;
        let centre = &centres[class * dims..(class + 1) * dims];
        inputs.extend(centre.iter().map(|&c| c + spread * normal(rng)));
        labels.push(class);
    }
    classification(inputs, labels)
}

/// A fixed random tanh network with one linear output.
pub(super) struct Teacher {
    /// Per layer: row-major `fan_out × fan_in` weights and `fan_out` biases.
    layers: Vec<(Vec<f32>, Vec<f32>, usize)>,
}

impl Teacher {
    pub(super) fn new(dims: usize, depth: usize, rng: &mut StdRng) -> Teacher {
        let mut layers = Vec::with_capacity(depth + 1);
        let mut fan_in = dims;
        for layer in 0..=depth {
            let hidden = layer < depth;
            let fan_out = if hidden { TEACHER_WIDTH } else { 1 };
            // The output layer is plain N(0, 1/fan_in): its scale is removed by standardising.
            let weight_var = if hidden { TEACHER_WEIGHT_VAR } else { 1.0 };
            let std = (weight_var / fan_in as f32).sqrt();
            let weights = (0..fan_out * fan_in).map(|_| std * normal(rng)).collect();
            let bias_std = if hidden { TEACHER_BIAS_VAR.sqrt() } else { 0.0 };
            let biases = (0..fan_out).map(|_| bias_std * normal(rng)).collect();
            layers.push((weights, biases, fan_in));
            fan_in = fan_out;
        }
        Teacher { layers }
    }

    fn eval(&self, x: &[f32], buf: &mut Vec<f32>, next: &mut Vec<f32>) -> f32 {
        buf.clear();
        buf.extend_from_slice(x);
        let last = self.layers.len() - 1;
        for (layer, (weights, biases, fan_in)) in self.layers.iter().enumerate() {
            next.clear();
            for (row, bias) in weights.chunks_exact(*fan_in).zip(biases) {
                let z = bias + row.iter().zip(buf.iter()).map(|(w, h)| w * h).sum::<f32>();
                next.push(if layer < last { z.tanh() } else { z });
            }
            std::mem::swap(buf, next);
        }
        buf[0]
    }
}

pub(super) fn teacher(net: &Teacher, points: usize, noise: f32, rng: &mut StdRng) -> Split {
    let dims = net.layers[0].2;
    let inputs: Vec<f32> = (0..points * dims).map(|_| normal(rng)).collect();
    let (mut buf, mut next) = (Vec::new(), Vec::new());
    let mut targets: Vec<f32> = inputs
        .chunks_exact(dims)
        .map(|x| net.eval(x, &mut buf, &mut next))
        .collect();
    // First to unit scale, so `noise` means a fraction of the signal's standard deviation...
    standardise(&mut targets, 1);
    for t in &mut targets {
        *t += noise * normal(rng);
    }
    // ...then again, so the mean predictor scores MSE = 1 whatever the noise.
    standardise(&mut targets, 1);
    Split {
        inputs,
        labels: Vec::new(),
        targets,
        len: points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TaskSpec;
    use crate::tasks::TaskData;
    use crate::tasks::tests::{all_labels, build};
    use crate::tasks::{derive_seed, stream};
    use rand::SeedableRng;

    #[test]
    fn spirals_and_circles_are_balanced() {
        for (spec, n0, n1) in [
            (
                TaskSpec::Spirals {
                    points: 501,
                    noise: 0.1,
                },
                251,
                250,
            ),
            (
                TaskSpec::Circles {
                    points: 400,
                    noise: 0.1,
                },
                200,
                200,
            ),
        ] {
            let labels = all_labels(&build(&spec, 11));
            let ones = labels.iter().filter(|&&l| l == 1).count();
            assert_eq!((labels.len() - ones, ones), (n0, n1), "{spec:?}");
        }
    }

    #[test]
    fn noiseless_spirals_lie_on_two_opposite_arms_within_unit_radius() {
        let task = build(
            &TaskSpec::Spirals {
                points: 200,
                noise: 0.0,
            },
            5,
        );
        let rows = task.train.inputs.chunks_exact(2).zip(&task.train.labels);
        for (p, &label) in rows {
            let r = p[0].hypot(p[1]);
            assert!((0.05 - 1e-5..=1.0).contains(&r), "radius {r}");
            // The angle follows from the radius; the second arm is the first turned by π.
            let t = (r - 0.05) / 0.95;
            let expected = SPIRAL_TURNS * TAU * t + label as f32 * PI;
            let off = (p[1].atan2(p[0]) - expected).rem_euclid(TAU);
            assert!(
                off.min(TAU - off) < 1e-3,
                "class {label} point {p:?} off its arm"
            );
        }
    }

    #[test]
    fn noiseless_circles_respect_their_radii() {
        let task = build(
            &TaskSpec::Circles {
                points: 300,
                noise: 0.0,
            },
            2,
        );
        let rows = task.train.inputs.chunks_exact(2).zip(&task.train.labels);
        for (p, &label) in rows {
            let r = p[0].hypot(p[1]);
            if label == 0 {
                assert!(r <= 0.5 + 1e-5, "inner radius {r}");
            } else {
                assert!((0.7 - 1e-5..=1.0 + 1e-5).contains(&r), "outer radius {r}");
            }
        }
    }

    #[test]
    fn checkerboard_with_two_cells_is_xor_of_signs() {
        let task = build(
            &TaskSpec::Checkerboard {
                points: 500,
                cells: 2,
            },
            9,
        );
        for s in [&task.train, &task.test] {
            for (p, &label) in s.inputs.chunks_exact(2).zip(&s.labels) {
                assert!(p.iter().all(|v| (-1.0..=1.0).contains(v)));
                let xor = (p[0] >= 0.0) != (p[1] >= 0.0);
                assert_eq!(label, usize::from(xor), "point {p:?}");
            }
        }
    }

    #[test]
    fn checkerboard_cells_alternate() {
        assert_eq!(checker_label(-0.9, -0.9, 4), 0);
        assert_eq!(checker_label(-0.4, -0.9, 4), 1);
        assert_eq!(checker_label(0.1, -0.9, 4), 0);
        assert_eq!(checker_label(0.1, 0.1, 4), 0);
        assert_eq!(checker_label(1.0, -1.0, 4), 1);
    }

    #[test]
    fn blobs_cluster_around_their_centres() {
        let task = build(
            &TaskSpec::Blobs {
                points: 600,
                classes: 3,
                dims: 4,
                spread: 0.01,
            },
            4,
        );
        // With a tiny spread, two points of the same class are far closer than any two centres.
        let s = &task.train;
        let row = |i: usize| &s.inputs[i * 4..(i + 1) * 4];
        let dist = |a: &[f32], b: &[f32]| -> f32 {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        for i in 1..s.len {
            let d = dist(row(0), row(i));
            if s.labels[i] == s.labels[0] {
                assert!(d < 0.2, "same class at distance {d}");
            }
        }
    }

    /// Train and test targets together in f64, with their mean and (population) variance.
    fn targets_with_moments(task: &TaskData) -> (Vec<f64>, f64, f64) {
        let targets: Vec<f64> = task
            .train
            .targets
            .iter()
            .chain(&task.test.targets)
            .map(|&t| f64::from(t))
            .collect();
        let n = targets.len() as f64;
        let mean = targets.iter().sum::<f64>() / n;
        let var = targets.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n;
        (targets, mean, var)
    }

    #[test]
    fn noiseless_teacher_targets_are_the_standardised_teacher_output() {
        let spec = TaskSpec::Teacher {
            points: 2000,
            dims: 5,
            depth: 4,
            noise: 0.0,
        };
        let task = build(&spec, 21);
        let (targets, mean, var) = targets_with_moments(&task);
        assert!(mean.abs() < 1e-4, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-3, "variance {var}");
        // Noiseless, so the targets are exactly the standardised teacher outputs; the teacher
        // comes from its own stream of the seed.
        let net = Teacher::new(
            5,
            4,
            &mut StdRng::seed_from_u64(derive_seed(21, stream::TEACHER)),
        );
        let (mut b1, mut b2) = (Vec::new(), Vec::new());
        let mut expected: Vec<f32> = task
            .train
            .inputs
            .chunks_exact(5)
            .chain(task.test.inputs.chunks_exact(5))
            .map(|x| net.eval(x, &mut b1, &mut b2))
            .collect();
        standardise(&mut expected, 1);
        standardise(&mut expected, 1);
        for (e, t) in expected.iter().zip(&targets) {
            assert!((f64::from(*e) - t).abs() < 1e-4, "{e} vs {t}");
        }
        let spread = targets.iter().cloned().fold(f64::MIN, f64::max)
            - targets.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 1.0, "targets barely vary: {spread}");
    }

    #[test]
    fn noisy_teacher_targets_still_have_unit_variance() {
        let spec = TaskSpec::Teacher {
            points: 1000,
            dims: 3,
            depth: 2,
            noise: 1.0,
        };
        let task = build(&spec, 5);
        let (_, mean, var) = targets_with_moments(&task);
        assert!(
            mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }
}
