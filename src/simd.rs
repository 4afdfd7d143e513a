//! Compiling one loop for several instruction-set levels and choosing among them at run
//! time ([`multiversion`]), and the sum of squares every norm is built on ([`sum_squares`]);
//! a leaf module, so any module can use it without an import cycle.

/// Runs `$body` compiled for AVX-512 or AVX2 when the CPU has them (16 or 8 lanes instead of
/// SSE2's 4), and for the baseline target otherwise; the loops are written so all vectorise.
/// Element-wise results do not depend on the lane count (no sum is reordered), so the choice
/// never changes a bit of a result.
macro_rules! multiversion {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn widest($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU was just checked for AVX-512F.
                    return unsafe { widest($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU was just checked for AVX2.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Σ v² in f64 over 32 fixed lanes: lane j sums the squares of the elements at j mod 32 (each
/// an f64 product added to the lane, never fused), the lanes are added in a fixed order, and
/// the tail (fewer than 32 elements) last. One chain of dependent adds would wait on the
/// adder's latency at every element; fixed lanes give the same bits on every vector width.
/// The AVX-512 and AVX2 paths hold the lanes in registers (the compiler does not find that
/// layout itself: it kept them two to a 128-bit register).
pub fn sum_squares(values: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU was just checked for AVX-512F.
            return unsafe { x86::sum_squares_avx512(values) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked for AVX2.
            return unsafe { x86::sum_squares_avx2(values) };
        }
    }
    sum_squares_portable(values)
}

/// The lanes of [`sum_squares`] in plain Rust: the reference the vector paths must match bit
/// for bit, and the path on CPUs without AVX2.
pub fn sum_squares_portable(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            let v = f64::from(v);
            *lane += v * v;
        }
    }
    finish(&lanes, rest)
}

/// Lanes of [`sum_squares`].
const LANES: usize = 32;

/// The lanes added in their fixed order, then the tail.
fn finish(lanes: &[f64; LANES], rest: &[f32]) -> f64 {
    let sum: [f64; 8] =
        std::array::from_fn(|i| (lanes[i] + lanes[8 + i]) + (lanes[16 + i] + lanes[24 + i]));
    sum.iter().sum::<f64>()
        + rest
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LANES, finish};
    use std::arch::x86_64::*;

    /// [`super::sum_squares`] with the 32 lanes in four 8-wide registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn sum_squares_avx512(values: &[f32]) -> f64 {
        let mut acc = [_mm512_setzero_pd(); 4];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (g, a) in acc.iter_mut().enumerate() {
                // SAFETY: the chunk holds 32 floats; this reads 8 of them from 8·g.
                let x = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * g)) });
                *a = _mm512_add_pd(*a, _mm512_mul_pd(x, x));
            }
        }
        let mut lanes = [0.0f64; LANES];
        for (g, a) in acc.iter().enumerate() {
            // SAFETY: lanes holds 32 doubles; this writes 8 of them from 8·g.
            unsafe { _mm512_storeu_pd(lanes.as_mut_ptr().add(8 * g), *a) };
        }
        finish(&lanes, rest)
    }

    /// [`super::sum_squares`] with the 32 lanes in eight 4-wide registers.
    #[target_feature(enable = "avx2")]
    pub(super) fn sum_squares_avx2(values: &[f32]) -> f64 {
        let mut acc = [_mm256_setzero_pd(); 8];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (g, a) in acc.iter_mut().enumerate() {
                // SAFETY: the chunk holds 32 floats; this reads 4 of them from 4·g.
                let x = _mm256_cvtps_pd(unsafe { _mm_loadu_ps(chunk.as_ptr().add(4 * g)) });
                *a = _mm256_add_pd(*a, _mm256_mul_pd(x, x));
            }
        }
        let mut lanes = [0.0f64; LANES];
        for (g, a) in acc.iter().enumerate() {
            // SAFETY: lanes holds 32 doubles; this writes 4 of them from 4·g.
            unsafe { _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * g), *a) };
        }
        finish(&lanes, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_gives_the_portable_bits() {
        for len in [0, 1, 31, 32, 33, 64, 100, 1000, 4099] {
            let values: Vec<f32> = (0..len)
                .map(|i| ((i as f32) * 0.731).sin() * 10f32.powi(i % 13 - 6))
                .collect();
            let expected = sum_squares_portable(&values);
            assert_eq!(
                sum_squares(&values).to_bits(),
                expected.to_bits(),
                "len {len}"
            );
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    let got = unsafe { x86::sum_squares_avx512(&values) };
                    assert_eq!(got.to_bits(), expected.to_bits(), "avx512 len {len}");
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: checked just above.
                    let got = unsafe { x86::sum_squares_avx2(&values) };
                    assert_eq!(got.to_bits(), expected.to_bits(), "avx2 len {len}");
                }
            }
            let naive: f64 = values.iter().map(|&v| f64::from(v).powi(2)).sum();
            assert!((expected - naive).abs() <= 1e-12 * naive, "len {len}");
        }
    }
}
