//! The backward signal carried at a power-of-two scale, so that a gradient vanishing through
//! time never becomes a subnormal or zero f32 before the lab has measured it.
//!
//! Backprop through time carries ∂L/∂h_t (and the LSTM's ∂L/∂c_t) stored as x / 2^k with an
//! integer k per shard. Every operation of the backward pass is linear in that signal, and
//! multiplying by a power of two commutes with f32 rounding as long as nothing under- or
//! overflows; so the stored values are bit for bit the true ones times 2^-k, and with k = 0
//! (a gradient that never left f32's comfortable range) the pass is exactly the unscaled one.
//! When the signal's largest element falls below 2^[`LOW`], k follows it down; once it climbs
//! back above 2^[`BACK`] (an output head adds its gradient, or the signal grows), k returns to 0.
//! The norms are taken of the stored values in f64 and reported as log₂ ‖x‖ = log₂ ‖stored‖ + k,
//! exact far beyond f32's range; the weight gradients get the true values 2^k · stored, which
//! are zero (flushed) only where f32 training would really get no update from that step.

use super::simd::multiversion_any;
use crate::model::kernels::flush;

/// Largest element exponent (log₂) of the true signal below which the scale follows it down.
pub const LOW: i32 = -64;
/// Largest element exponent above which a rescaled signal returns to scale 1.
pub const BACK: i32 = -32;

/// The binary exponent of a positive finite `m` (⌊log₂ m⌋, subnormals included).
pub fn exponent(m: f32) -> i32 {
    let bits = m.to_bits() & 0x7fff_ffff;
    let biased = (bits >> 23) as i32;
    if biased == 0 {
        // Subnormal: the exponent of its leading mantissa bit.
        let mantissa = bits & 0x007f_ffff;
        -127 - (mantissa.leading_zeros() as i32 - 9)
    } else {
        biased - 127
    }
}

/// 2^n as an f32, for n in −126..=127.
fn pow2(n: i32) -> f32 {
    debug_assert!((-126..=127).contains(&n));
    f32::from_bits(((n + 127) as u32) << 23)
}

multiversion_any! {
/// xs ← xs · factor, flushed (factor a power of two).
pub fn times(xs: &mut [f32], factor: f32) {
    xs.iter_mut().for_each(|x| *x = flush(*x * factor));
}
}

multiversion_any! {
/// dst ← flush(src · factor) (factor a power of two).
pub fn times_into(dst: &mut [f32], src: &[f32], factor: f32) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = flush(s * factor));
}
}

multiversion_any! {
/// dst ← flush(dst + src).
pub fn add_flushed(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = flush(*d + s));
}
}

/// xs ← xs · 2^n for any n, in steps f32 can represent, flushing what underflows.
pub fn scale_pow2(xs: &mut [f32], mut n: i32) {
    while n != 0 {
        let step = n.clamp(-126, 127);
        times(xs, pow2(step));
        n -= step;
    }
}

/// dst ← src · 2^n for any n (flushed).
pub fn scaled_copy(dst: &mut [f32], src: &[f32], n: i32) {
    let step = n.clamp(-126, 127);
    times_into(dst, src, pow2(step));
    scale_pow2(dst, n - step);
}

multiversion_any! {
/// `out` ← (Σ v² over `v` in f64, largest |element| of `v` and `w`). Eight fixed f64 lanes,
/// so the sum does not depend on the vector width the CPU offers.
pub fn sum_squares_and_max(v: &[f32], w: &[f32], out: &mut (f64, f32)) {
    let mut lanes = [0.0f64; 8];
    let mut top = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((lane, m), &x) in lanes.iter_mut().zip(top.iter_mut()).zip(chunk) {
            let d = f64::from(x);
            *lane += d * d;
            *m = m.max(x.abs());
        }
    }
    let mut sum = lanes.iter().sum::<f64>();
    let mut max = top.iter().fold(0.0f32, |a, &b| a.max(b));
    for &x in rest {
        sum += f64::from(x) * f64::from(x);
        max = max.max(x.abs());
    }
    for &x in w {
        max = max.max(x.abs());
    }
    *out = (sum, max);
}
}

/// The scale k′ the signal should move to, given its current k and the exponent of its
/// largest element at true scale (None when it is zero or not finite: the scale stays).
pub fn next_scale(k: i32, true_exponent: Option<i32>) -> i32 {
    match true_exponent {
        Some(e) if e < LOW => e,
        Some(e) if k != 0 && e > BACK => 0,
        _ => k,
    }
}

/// log₂ of the norm of a signal whose stored sum of squares is `sum_squares` at scale 2^k.
pub fn log2_norm(sum_squares: f64, k: i32) -> f64 {
    0.5 * sum_squares.log2() + f64::from(k)
}

/// log₂ √(Σ 2^(2·l_i)) for shard norms given as log₂ values l_i, summed in order.
pub fn combine_log2(parts: impl Iterator<Item = f64> + Clone) -> f64 {
    let top = parts.clone().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        // All zero (−∞), or a NaN/+∞ that must show as such.
        return parts.fold(top, |acc, l| if l.is_nan() { l } else { acc });
    }
    let sum: f64 = parts.map(|l| (2.0 * (l - top)).exp2()).sum();
    top + 0.5 * sum.log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_is_floor_log2_for_normals_and_subnormals() {
        for x in [
            1.0f32,
            1.5,
            2.0,
            0.75,
            1e-30,
            3e38,
            f32::MIN_POSITIVE,
            1e-40,
            1e-45,
        ] {
            assert_eq!(exponent(x), f64::from(x).log2().floor() as i32, "{x:e}");
        }
    }

    #[test]
    fn scaling_by_powers_of_two_is_exact_and_reaches_beyond_f32() {
        let mut v = vec![1.25f32, -3.0, 0.0, 7e-20];
        let original = v.clone();
        scale_pow2(&mut v, -60);
        scale_pow2(&mut v, 60);
        assert_eq!(v, original);
        scale_pow2(&mut v, -300);
        assert!(v.iter().all(|&x| x == 0.0), "underflow flushes: {v:?}");
        // Far below f32's smallest normal and back: beyond one factor's range each way.
        let tiny = [1e-30f32, -2.5e-35, 0.0];
        let mut w = vec![0.0f32; 3];
        scaled_copy(&mut w, &tiny, 200);
        assert!((f64::from(w[0]) - 1e-30 * 2f64.powi(200)).abs() < 1e-6 * f64::from(w[0]));
        scale_pow2(&mut w, -200);
        assert_eq!(w, tiny);
    }

    #[test]
    fn sum_squares_and_max_match_plain_loops() {
        for n in 0..30 {
            let v: Vec<f32> = (0..n).map(|i| (i as f32 - 7.3) * 0.11).collect();
            let w = [-9.0f32, 0.5];
            let mut out = (0.0, 0.0);
            sum_squares_and_max(&v, &w[..n % 3], &mut out);
            let plain: f64 = v.iter().map(|&x| f64::from(x).powi(2)).sum();
            let max = v
                .iter()
                .chain(&w[..n % 3])
                .fold(0.0f32, |a, &b| a.max(b.abs()));
            assert!((out.0 - plain).abs() <= 1e-12 * plain.max(1.0), "n = {n}");
            assert_eq!(out.1, max, "n = {n}");
        }
    }

    #[test]
    fn norms_combine_in_log_space_far_below_f64() {
        let a = log2_norm(9.0, -2000);
        assert!((a - (1.5f64.log2() + 1.0 - 2000.0)).abs() < 1e-12);
        // Two shards with norms 3·2^-2000 and 4·2^-2000 make 5·2^-2000.
        let three = 3f64.log2() - 2000.0;
        let four = 4f64.log2() - 2000.0;
        let five = combine_log2([three, four].into_iter());
        assert!((five - (5f64.log2() - 2000.0)).abs() < 1e-12, "{five}");
        assert_eq!(
            combine_log2([f64::NEG_INFINITY, f64::NEG_INFINITY].into_iter()),
            f64::NEG_INFINITY
        );
        assert!(combine_log2([1.0, f64::NAN].into_iter()).is_nan());
        assert_eq!(next_scale(0, Some(-10)), 0);
        assert_eq!(next_scale(0, Some(-70)), -70);
        assert_eq!(next_scale(-70, Some(-50)), -70);
        assert_eq!(next_scale(-70, Some(-20)), 0);
        assert_eq!(next_scale(-70, None), -70);
    }
}
