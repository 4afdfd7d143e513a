//! Real data sets shipped inside the binary: the UCI 8×8 digits and MNIST-1D.
//!
//! Both files live in `data/` (with their licences and the scripts that regenerate them) and
//! are embedded with `include_bytes!`, so the binary works from any folder. Their train/test
//! split is part of the file: the same for every experiment seed, so runs with different seeds
//! are scored on the same test examples, as in the papers that use them.
//!
//! File layout (written by `scripts/gldata.py`), integers little-endian u32:
//! `b"GLDATA1\n"`, rows, cols, classes, train rows, dtype (0 = u8, 1 = f32 LE), then
//! `rows × cols` features row-major (training rows first), then one u8 label per row.

use anyhow::{Result, bail};

use super::{Split, TaskData, TaskKind};

/// `data/digits.bin`: scikit-learn's copy of the UCI optical digits, raw 0..16 pixel counts.
pub const DIGITS_BYTES: &[u8] = include_bytes!("../../data/digits.bin");
/// `data/mnist1d.bin`: MNIST-1D with the paper's default arguments, f32.
pub const MNIST1D_BYTES: &[u8] = include_bytes!("../../data/mnist1d.bin");

const MAGIC: &[u8; 8] = b"GLDATA1\n";
const HEADER: usize = MAGIC.len() + 5 * 4;

/// The digits' pixels count "on" cells of a 4×4 block, 0..=16; dividing by 16 puts every
/// input in [0, 1] without depending on the data (no statistics of the test split leak in).
const DIGITS_SCALE: f32 = 1.0 / 16.0;

/// A data set read from one of the shipped files, split as the file says.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Classification with the file's class count.
    pub kind: TaskKind,
    /// Features per example.
    pub input_dims: usize,
    /// The file's training rows.
    pub train: Split,
    /// The file's test rows.
    pub test: Split,
}

impl Dataset {
    /// The data set as a task named `name`.
    pub fn task(self, name: &str) -> TaskData {
        TaskData {
            kind: self.kind,
            input_dims: self.input_dims,
            train: self.train,
            test: self.test,
            name: name.to_string(),
        }
    }
}

/// The 8×8 digits: 1 437 training and 360 test images of 64 pixels, scaled to [0, 1].
pub fn digits() -> Result<Dataset> {
    parse(DIGITS_BYTES, "data/digits.bin", DIGITS_SCALE)
}

/// MNIST-1D: 4 000 training and 1 000 test signals of 40 samples (already standardised by the
/// generator, so used as they are).
pub fn mnist1d() -> Result<Dataset> {
    parse(MNIST1D_BYTES, "data/mnist1d.bin", 1.0)
}

fn word(bytes: &[u8], index: usize) -> usize {
    let at = MAGIC.len() + 4 * index;
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word) as usize
}

/// Reads a data file; `origin` names it in errors. Features are multiplied by `scale`.
pub fn parse(bytes: &[u8], origin: &str, scale: f32) -> Result<Dataset> {
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        bail!("{origin}: not a gradlab data file (expected it to start with GLDATA1)");
    }
    let (rows, cols, classes, train, dtype) = (
        word(bytes, 0),
        word(bytes, 1),
        word(bytes, 2),
        word(bytes, 3),
        word(bytes, 4),
    );
    if cols == 0 || !(2..=255).contains(&classes) || train == 0 || train >= rows {
        bail!(
            "{origin}: bad header: {rows} rows, {cols} columns, {classes} classes, {train} \
             training rows (expected columns ≥ 1, 2..=255 classes and 0 < training rows < rows)"
        );
    }
    let width = match dtype {
        0 => 1,
        1 => 4,
        _ => bail!("{origin}: unknown feature type {dtype} (expected 0 for u8 or 1 for f32)"),
    };
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(width))
        .and_then(|n| n.checked_add(rows))
        .and_then(|n| n.checked_add(HEADER));
    if expected != Some(bytes.len()) {
        bail!(
            "{origin}: {} bytes, but a header of {rows} rows × {cols} columns needs {}",
            bytes.len(),
            expected.map_or("more than fits in memory".into(), |n| n.to_string())
        );
    }
    let body = &bytes[HEADER..bytes.len() - rows];
    let features: Vec<f32> = match dtype {
        0 => body.iter().map(|&b| f32::from(b) * scale).collect(),
        _ => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * scale)
            .collect(),
    };
    if let Some(at) = features.iter().position(|v| !v.is_finite()) {
        bail!(
            "{origin}: feature {} of row {} is not a finite number",
            at % cols + 1,
            at / cols + 1
        );
    }
    let labels: Vec<usize> = bytes[bytes.len() - rows..]
        .iter()
        .map(|&b| usize::from(b))
        .collect();
    if let Some(row) = labels.iter().position(|&l| l >= classes) {
        bail!(
            "{origin}: row {} has label {}, but the file has {classes} classes",
            row + 1,
            labels[row]
        );
    }
    let (train_x, test_x) = features.split_at(train * cols);
    let (train_y, test_y) = labels.split_at(train);
    let split = |inputs: &[f32], labels: &[usize]| Split {
        inputs: inputs.to_vec(),
        labels: labels.to_vec(),
        targets: Vec::new(),
        len: labels.len(),
    };
    Ok(Dataset {
        kind: TaskKind::Classification { classes },
        input_dims: cols,
        train: split(train_x, train_y),
        test: split(test_x, test_y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a, 64 bits: enough to notice any change to a shipped file.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn counts(labels: &[usize], classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in labels {
            counts[l] += 1;
        }
        counts
    }

    #[test]
    fn shipped_files_are_the_ones_the_scripts_write() {
        // The SHA-256 sums in data/README.md belong to the same bytes; these catch an edit.
        assert_eq!(DIGITS_BYTES.len(), 116_833);
        assert_eq!(fnv1a(DIGITS_BYTES), 0x646b_fa59_2206_28b1);
        assert_eq!(MNIST1D_BYTES.len(), 805_028);
        assert_eq!(fnv1a(MNIST1D_BYTES), 0xb40b_da6e_a51f_abd0);
    }

    #[test]
    fn digits_rows_classes_and_scale() {
        let d = digits().expect("shipped file");
        assert_eq!(d.kind, TaskKind::Classification { classes: 10 });
        assert_eq!((d.input_dims, d.train.len, d.test.len), (64, 1437, 360));
        assert_eq!(d.train.inputs.len(), 1437 * 64);
        // Class counts of the whole set as scikit-learn ships it, and of the fixed split.
        let all: Vec<usize> = d
            .train
            .labels
            .iter()
            .chain(&d.test.labels)
            .copied()
            .collect();
        assert_eq!(
            counts(&all, 10),
            [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert_eq!(
            counts(&d.test.labels, 10),
            [31, 35, 39, 33, 44, 29, 40, 40, 28, 41]
        );
        let inputs = d.train.inputs.iter().chain(&d.test.inputs);
        assert!(inputs.clone().all(|&v| (0.0..=1.0).contains(&v)));
        // Every value is a whole pixel count over 16, and both ends of the range occur.
        assert!(inputs.clone().all(|&v| (v * 16.0).fract() == 0.0));
        assert!(inputs.clone().any(|&v| v == 1.0) && inputs.clone().any(|&v| v == 0.0));
    }

    #[test]
    fn mnist1d_shapes_classes_and_standardisation() {
        let d = mnist1d().expect("shipped file");
        assert_eq!(d.kind, TaskKind::Classification { classes: 10 });
        assert_eq!((d.input_dims, d.train.len, d.test.len), (40, 4000, 1000));
        assert_eq!(
            counts(&d.train.labels, 10),
            [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
        );
        assert_eq!(
            counts(&d.test.labels, 10),
            [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
        );
        // The first training signal's first samples, as the package's generator gives them.
        assert_eq!(
            &d.train.inputs[..3],
            [-0.332_005_68, -0.471_910_36, -0.778_697_1]
        );
        // The generator standardises the whole set to mean 0 and standard deviation 1.
        let all: Vec<f64> = d
            .train
            .inputs
            .iter()
            .chain(&d.test.inputs)
            .map(|&v| f64::from(v))
            .collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64;
        assert!(mean.abs() < 1e-6, "mean {mean}");
        assert!((var.sqrt() - 1.0).abs() < 1e-5, "std {}", var.sqrt());
    }

    #[test]
    fn loading_twice_gives_the_same_bits() {
        let bits = |d: &Dataset| {
            d.train
                .inputs
                .iter()
                .chain(&d.test.inputs)
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        let (a, b) = (mnist1d().expect("file"), mnist1d().expect("file"));
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(a, b);
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let good = DIGITS_BYTES;
        let mut bad_label = good.to_vec();
        let last = bad_label.len() - 1;
        bad_label[last] = 10;
        let mut bad_dtype = good.to_vec();
        bad_dtype[HEADER - 4] = 7;
        let mut nan = MNIST1D_BYTES.to_vec();
        nan[HEADER..HEADER + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let mut huge = good[..HEADER].to_vec();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[24..28].copy_from_slice(&1u32.to_le_bytes());
        let mut no_train = good.to_vec();
        no_train[20..24].copy_from_slice(&0u32.to_le_bytes());
        let cases: [(&[u8], &str); 8] = [
            (b"", "not a gradlab data file"),
            (b"GLDATA2\nxxxxxxxxxxxxxxxxxxxx", "not a gradlab data file"),
            (
                &good[..good.len() - 1],
                "116832 bytes, but a header of 1797 rows",
            ),
            (
                &bad_label,
                "row 1797 has label 10, but the file has 10 classes",
            ),
            (&bad_dtype, "unknown feature type 7"),
            (&nan, "feature 1 of row 1 is not a finite number"),
            (&huge, "needs more than fits in memory"),
            (
                &no_train,
                "bad header: 1797 rows, 64 columns, 10 classes, 0 training rows",
            ),
        ];
        for (bytes, expected) in cases {
            match parse(bytes, "x.bin", 1.0) {
                Ok(_) => panic!("{expected}: should fail"),
                Err(e) => {
                    let message = e.to_string();
                    assert!(message.starts_with("x.bin: "), "{message}");
                    assert!(message.contains(expected), "{message}");
                }
            }
        }
    }
}
