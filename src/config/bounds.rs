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
            range.start(),
            range.end()
        )))
    }
}

macro_rules! bounded {
    ($($name:ident: $ty:ty = $lo:expr, $hi:expr;)*) => {$(
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            within(d, stringify!($name), $lo..=$hi)
        }
    )*};
}

macro_rules! bounded_f32 {
    ($($name:ident = $lo:expr, $hi:expr;)*) => {$(
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
            finite_within(d, stringify!($name), $lo..=$hi)
        }
    )*};
}

bounded! {
    depth: usize = 1, 512;
    width: usize = 1, 1024;
    batch: usize = 1, 65536;
    every: usize = 1, 1_000_000;
    points: usize = 4, 1_000_000;
    cells: usize = 2, 64;
    classes: usize = 2, 64;
    dims: usize = 1, 1024;
    teacher_depth: usize = 1, 16;
    sequence_length: usize = 2, 5000;
    symbols: usize = 1, 64;
}

bounded_f32! {
    noise = 0.0, 100.0;
    variance = 0.0, 100.0;
    scale = -10.0, 10.0;
    gate_bias = -20.0, 20.0;
    aux_weight = 0.0, 100.0;
    momentum = 0.0, 0.9999;
    positive = 1e-30, 1.0;
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

/// Gradient clipping threshold: absent, or a positive finite norm.
pub fn clip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    match Option::<f32>::deserialize(d)? {
        Some(value) if !(value.is_finite() && value > 0.0) => Err(D::Error::custom(format!(
            "clip_grad_norm must be a positive number, got {value}"
        ))),
        other => Ok(other),
    }
}
