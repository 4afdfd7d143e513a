//! Range checks run while a preset is parsed, so a bad value is reported at its own position.

use serde::de::{Deserialize, Deserializer, Error};
use std::fmt::Display;
use std::ops::RangeInclusive;

fn within<'de, D, T>(d: D, field: &str, range: RangeInclusive<T>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + Display + Copy,
{
    let value = T::deserialize(d)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(D::Error::custom(format!(
            "{field} must be in {}..={}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

fn finite_within<'de, D>(d: D, field: &str, range: RangeInclusive<f32>) -> Result<f32, D::Error>
where
    D: Deserializer<'de>,
{
    let value = f32::deserialize(d)?;
    if value.is_finite() && range.contains(&value) {
        Ok(value)
    } else {
        Err(D::Error::custom(format!(
            "{field} must be a number in {}..={}, got {value}",
            readable(*range.start()),
            readable(*range.end())
        )))
    }
}

/// A bound as a person writes it: `1e-30`, not thirty zeros.
fn readable(bound: f32) -> String {
    if bound != 0.0 && bound.abs() < 1e-4 {
        format!("{bound:e}")
    } else {
        bound.to_string()
    }
}

/// The name a bound reports: the function's own (which is the field it checks), or the label
/// given where one function would otherwise serve two fields of different meaning.
macro_rules! field_name {
    ($name:ident) => {
        stringify!($name)
    };
    ($name:ident, $label:literal) => {
        $label
    };
}

// One function per field, named after it, so a bad `beta2` says `beta2` and not the name of
// the range it shares with `momentum`; ranges shared by several fields are the consts below.
macro_rules! bounded {
    ($($name:ident $(as $label:literal)?: $ty:ty = $range:expr;)*) => {$(
        #[doc = concat!("Range check of `", field_name!($name $(, $label)?), "`.")]
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            within(d, field_name!($name $(, $label)?), $range)
        }
    )*};
}

macro_rules! bounded_f32 {
    ($($name:ident $(as $label:literal)?: $range:expr;)*) => {$(
        #[doc = concat!("Range check of `", field_name!($name $(, $label)?), "`.")]
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
            finite_within(d, field_name!($name $(, $label)?), $range)
        }
    )*};
}

const EVERY: RangeInclusive<usize> = 1..=1_000_000;
const POINTS: RangeInclusive<usize> = 4..=1_000_000;
const CLASSES: RangeInclusive<usize> = 2..=64;
const DIMS: RangeInclusive<usize> = 1..=1024;
const SEQUENCE_LENGTH: RangeInclusive<usize> = 2..=5000;
const SPREAD: RangeInclusive<f32> = 0.0..=100.0;
const VARIANCE: RangeInclusive<f32> = 0.0..=100.0;
const GATE_BIAS: RangeInclusive<f32> = -20.0..=20.0;
const MOMENTUM: RangeInclusive<f32> = 0.0..=0.9999;

bounded! {
    depth: usize = 1..=512;
    width: usize = 1..=1024;
    batch: usize = 1..=65536;
    metrics_every: usize = EVERY;
    test_every: usize = EVERY;
    path_every: usize = EVERY;
    aux_every as "every": usize = EVERY;
    points: usize = POINTS;
    test_points: usize = POINTS;
    cells: usize = 2..=64;
    classes: usize = CLASSES;
    alphabet: usize = CLASSES;
    dims: usize = DIMS;
    teacher_depth as "depth": usize = 1..=16;
    length: usize = SEQUENCE_LENGTH;
    delay: usize = SEQUENCE_LENGTH;
    symbols: usize = 1..=64;
}

bounded_f32! {
    noise: SPREAD;
    spread: SPREAD;
    weight_var: VARIANCE;
    bias_var: VARIANCE;
    scale: -10.0..=10.0;
    gate_bias: GATE_BIAS;
    forget_bias: GATE_BIAS;
    t_max: 3.0..=1_000_000.0;
    aux_weight as "weight": 0.0..=100.0;
    momentum: MOMENTUM;
    beta1: MOMENTUM;
    beta2: MOMENTUM;
    eps: 1e-30..=1.0;
}

/// Learning rate: positive and at most 100.
pub fn learning_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let value = f32::deserialize(d)?;
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        Ok(value)
    } else {
        Err(D::Error::custom(format!(
            "lr must be a positive number up to 100, got {value}"
        )))
    }
}

/// The most warm-up steps a preset may ask for: longer than any run the dashboard is for,
/// and small enough that every factor (step + 1)/N is exact in f32.
pub const MAX_WARMUP: u32 = 1_000_000;

/// Learning-rate warm-up: a whole number of steps from 0 (none) to `MAX_WARMUP`.
pub fn warmup<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let value = i64::deserialize(d)?;
    u32::try_from(value)
        .ok()
        .filter(|&v| v <= MAX_WARMUP)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "warmup must be a whole number of steps from 0 to {MAX_WARMUP}, got {value}"
            ))
        })
}

/// Gradient clipping threshold: absent, or a positive finite norm.
pub fn clip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    match Option::<f32>::deserialize(d)? {
        Some(value) if !(value.is_finite() && value > 0.0) => Err(D::Error::custom(format!(
            "clip_grad_norm must be a positive number, got {value}"
        ))),
        other => Ok(other),
    }
}
