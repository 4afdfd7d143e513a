//! The backward signal carried rescaled: an f32 vector and a power-of-two exponent, so a
//! gradient far below f32's range keeps its digits and never turns subnormal.
//!
//! True value = stored value · 2^exp. Scaling by a power of two is exact in floating point
//! (unless the result leaves f32's range), so while the signal stays in the safe range the
//! exponent stays 0 and every bit is what a plain f32 backward pass would compute; only a
//! signal that vanishes or explodes far enough is renormalised. Parameter gradients are
//! brought back to their true scale once, at the end, where a value below f32's normal
//! range is flushed to zero explicitly (the f32 network cannot apply it anyway), so no
//! product ever reads a subnormal operand (x86 takes a microcode assist ~100× slower on those).

use super::kernels::multiversion;

/// Renormalise once Σv² leaves [2^-LIMIT, 2^LIMIT] (norm outside 2^±LIMIT/2).
const LIMIT: f64 = 40.0;

/// The power-of-two exponent k that brings a vector of sum of squares `sumsq` to a norm in
/// [1, 2) when multiplied by 2^k; 0 while the norm is in the safe range or the vector is zero
/// or not finite (a diverged signal is reported as it is).
pub fn renormaliser(sumsq: f64) -> i32 {
    if !(sumsq.is_finite() && sumsq > 0.0) {
        return 0;
    }
    let log2 = sumsq.log2();
    if log2.abs() <= LIMIT {
        return 0;
    }
    -(0.5 * log2).floor() as i32
}

/// 2^k as an f32 factor, for k within f32's normal exponents.
fn pow2(k: i32) -> f32 {
    debug_assert!((-126..=127).contains(&k));
    f32::from_bits(((k + 127) as u32) << 23)
}

multiversion! {
/// values ← values · 2^k (exact; k within ±126).
pub fn scale_exact(values: &mut [f32], factor: f32) {
    values.iter_mut().for_each(|v| *v *= factor);
}
}

/// Multiplies `values` by 2^k exactly (k may be any size when scaling up a vector whose
/// norm is tiny, as `renormaliser` asks).
pub fn shift(values: &mut [f32], mut k: i32) {
    while k != 0 {
        let step = k.clamp(-126, 127);
        scale_exact(values, pow2(step));
        k -= step;
    }
}

multiversion! {
/// values ← values · factor computed in f64 (exact for a power of two), zero where the
/// result is below f32's normal range; with a nonempty `keep` (as long as `values`) the values
/// before go there too. No f32 product ever underflows, which would cost a microcode assist on
/// x86. Returns whether every result is the exact product: nothing nonzero was flushed and
/// nothing left f32's range (or was not finite to begin with).
fn scale_flush(values: &mut [f32], factor: f64, keep: &mut [f32]) -> bool {
    let scaled = |v: f32| {
        let t = f64::from(v) * factor;
        if t.abs() < f64::from(f32::MIN_POSITIVE) {
            (0.0 * v, v == 0.0)
        } else {
            let r = t as f32;
            (r, r.is_finite())
        }
    };
    let mut exact = true;
    if keep.is_empty() {
        for v in values.iter_mut() {
            let (r, ok) = scaled(*v);
            *v = r;
            exact &= ok;
        }
    } else {
        for (v, k) in values.iter_mut().zip(keep.iter_mut()) {
            *k = *v;
            let (r, ok) = scaled(*v);
            *v = r;
            exact &= ok;
        }
    }
    exact
}
}

/// Brings a gradient computed at exponent `exp` to its true f32 value (values below f32's
/// normal range become zero) and returns Σ(true f32 value)². With `exp` = 0 nothing changes
/// and the sum is of the values as they are.
pub fn to_true_scale(values: &mut [f32], exp: i32) -> f64 {
    let sumsq = crate::metrics::sum_squares(values);
    to_true_scale_from(values, exp, sumsq, None)
}

/// [`to_true_scale`] for values whose Σv² at exponent `exp` the caller has just computed
/// (`crate::metrics::sum_squares(values)`); `keep`, when given, receives the values as they
/// were. The same values and the same sum as `to_true_scale`, bit for bit, in one pass where
/// it took two: when every value is scaled exactly, each true square is the rescaled square
/// times 2^(2·exp), and so, exactly, is each partial sum (a power of two commutes with f64
/// rounding away from its range's ends); and a vector whose norm is below f32's normal range
/// is zero throughout without a look at its values.
pub fn to_true_scale_from(
    values: &mut [f32],
    exp: i32,
    sumsq: f64,
    keep: Option<&mut Vec<f32>>,
) -> f64 {
    if exp == 0 {
        return sumsq;
    }
    let keep: &mut [f32] = match keep {
        Some(keep) => {
            keep.resize(values.len(), 0.0);
            keep
        }
        None => &mut [],
    };
    let flush_all = |values: &mut [f32], keep: &mut [f32]| {
        if !keep.is_empty() {
            keep.copy_from_slice(values);
        }
        values.iter_mut().for_each(|v| *v *= 0.0);
        0.0
    };
    if exp < -600 {
        // Below any f32 (and any product of two f32 magnitudes): the true value is zero.
        return flush_all(values, keep);
    }
    let factor = f64::from(exp.min(600)).exp2();
    // Every |v| ≤ √Σv²; half of f32's smallest normal leaves room for the square root's rounding.
    if sumsq.is_finite() && sumsq.sqrt() * factor < 0.5 * f64::from(f32::MIN_POSITIVE) {
        return flush_all(values, keep);
    }
    let exact = scale_flush(values, factor, keep);
    if exact && (-500..=500).contains(&exp) {
        sumsq * f64::from(2 * exp).exp2()
    } else {
        crate::metrics::sum_squares(values)
    }
}

/// log2 of a norm whose square, at exponent `exp`, is `sumsq`: log2(√sumsq · 2^exp).
pub fn log2_norm(sumsq: f64, exp: i32) -> f64 {
    0.5 * sumsq.log2() + f64::from(exp)
}

/// A norm kept as (Σv² at exponent `exp`), as f64 (0 only below f64's range, ~1e-308).
pub fn norm_f64(sumsq: f64, exp: i32) -> f64 {
    if sumsq == 0.0 || !sumsq.is_finite() {
        return sumsq.sqrt();
    }
    log2_norm(sumsq, exp).exp2()
}

/// The same norm in decibels, 20·log10, exact far beyond f64's range (−∞ for a true zero).
pub fn norm_db(sumsq: f64, exp: i32) -> f64 {
    if sumsq == 0.0 || !sumsq.is_finite() {
        return 20.0 * sumsq.sqrt().log10();
    }
    20.0 * std::f64::consts::LOG10_2 * log2_norm(sumsq, exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renormaliser_leaves_the_safe_range_alone_and_brings_the_rest_to_one() {
        assert_eq!(renormaliser(1.0), 0);
        assert_eq!(renormaliser(2f64.powi(39)), 0);
        assert_eq!(renormaliser(0.0), 0);
        assert_eq!(renormaliser(f64::NAN), 0);
        for e in [-300, -90, -45, 45, 200] {
            let sumsq = 3.0 * 2f64.powi(e);
            let k = renormaliser(sumsq);
            let norm = sumsq.sqrt() * 2f64.powi(k);
            assert!((1.0..2.0).contains(&norm), "2^{e}: k {k} gives {norm}");
        }
    }

    #[test]
    fn shifting_is_exact_and_true_scale_flushes_only_what_f32_cannot_hold() {
        let original = [1.5f32, -3.25, 0.0, 7.0e-3];
        let mut v = original;
        // Down and back up, staying in f32's normal range (only then is a shift exact).
        shift(&mut v, -100);
        shift(&mut v, 100);
        assert_eq!(v, original);
        let mut w = original;
        let sumsq = to_true_scale(&mut w, -130);
        // 1.5·2^-130 is subnormal in f32: flushed; none of these survive at 2^-130.
        assert!(w.iter().all(|&x| x == 0.0), "{w:?}");
        assert_eq!(sumsq, 0.0);
        let mut u = original;
        let sumsq = to_true_scale(&mut u, -100);
        for (a, b) in u.iter().zip(original) {
            assert_eq!(f64::from(*a), f64::from(b) * 2f64.powi(-100));
        }
        assert!(sumsq > 0.0);
    }

    /// The two-pass bringing to true scale this module did before `to_true_scale_from`.
    fn two_pass(values: &mut [f32], exp: i32) -> f64 {
        if exp == 0 {
            return crate::metrics::sum_squares(values);
        }
        let factor = f64::from(exp.clamp(-1000, 600)).exp2();
        for v in values.iter_mut() {
            let t = f64::from(*v) * factor;
            *v = if t.abs() < f64::from(f32::MIN_POSITIVE) {
                0.0 * *v
            } else {
                t as f32
            };
        }
        crate::metrics::sum_squares(values)
    }

    #[test]
    fn the_one_pass_true_scale_gives_the_two_pass_bits() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let exps = [
            0, 1, -1, -40, -100, -120, -126, -127, -130, -150, -200, -499, -500, -501, -560, -601,
            40, 100, 126, 127, 128, 200,
        ];
        for len in [1usize, 7, 33, 64, 100, 4096] {
            for &exp in &exps {
                for spread in [0i32, 4, 40] {
                    let original: Vec<f32> = (0..len)
                        .map(|_| {
                            let r = next();
                            let mantissa = (r >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                            let scale = ((r >> 8) % (spread as u64 + 1)) as i32 - spread / 2;
                            if r % 17 == 0 {
                                0.0
                            } else {
                                mantissa * 2f32.powi(scale)
                            }
                        })
                        .collect();
                    let mut want = original.clone();
                    let want_sum = two_pass(&mut want, exp);
                    let mut got = original.clone();
                    let mut keep = Vec::new();
                    let keep_arg = (exp != 0).then_some(&mut keep);
                    let sumsq = crate::metrics::sum_squares(&got);
                    let got_sum = to_true_scale_from(&mut got, exp, sumsq, keep_arg);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "values, len {len} exp {exp}");
                    assert_eq!(
                        got_sum.to_bits(),
                        want_sum.to_bits(),
                        "sum, len {len} exp {exp}"
                    );
                    if exp != 0 {
                        assert_eq!(bits(&keep), bits(&original), "kept, len {len} exp {exp}");
                    }
                    let mut plain = original.clone();
                    assert_eq!(to_true_scale(&mut plain, exp).to_bits(), want_sum.to_bits());
                    assert_eq!(bits(&plain), bits(&want));
                }
            }
        }
    }

    #[test]
    fn norms_in_log_space_reach_beyond_f64() {
        let db = norm_db(4.0, -5000);
        assert!((db - 20.0 * std::f64::consts::LOG10_2 * (1.0 - 5000.0)).abs() < 1e-9);
        assert_eq!(norm_f64(4.0, -5000), 0.0);
        assert!((norm_f64(4.0, -600) / 2f64.powi(-599) - 1.0).abs() < 1e-12);
        assert_eq!(norm_db(0.0, 3), f64::NEG_INFINITY);
    }
}
