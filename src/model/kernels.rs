//! Element-wise and matrix kernels for the fused ops: branch-free loops the compiler
//! vectorises, and `gemm` (the crate dfdx itself calls) for products.

use crate::config::Activation;
use crate::theory::phi_prime;

/// tanh by a [13/6] rational minimax approximation (the one Eigen uses), clamped where tanh
/// is ±1 in f32; relative error about 1e-7, and it vectorises where libm's `tanhf` cannot.
#[inline(always)]
// The coefficients are kept as Eigen publishes them.
#[allow(clippy::excessive_precision)]
pub fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_671_5e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

/// σ(x) = (1 + tanh(x/2)) / 2, on the fast tanh.
#[inline(always)]
pub fn fast_sigmoid(x: f32) -> f32 {
    0.5 * fast_tanh(0.5 * x) + 0.5
}

/// The instruction-set level the kernels (and gemm) run at on this CPU: AVX-512 and AVX2
/// kernels sum in different orders, so results are bit-identical only within one level.
pub fn cpu_feature_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "x86-64-v4";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "x86-64-v3";
        }
    }
    "baseline"
}

pub(crate) use crate::simd::multiversion;

multiversion! {
/// out = φ(z) element-wise.
pub fn activate(act: Activation, z: &[f32], out: &mut [f32]) {
    match act {
        Activation::Linear => out.copy_from_slice(z),
        Activation::Tanh => out.iter_mut().zip(z).for_each(|(o, &v)| *o = fast_tanh(v)),
        Activation::Relu => out.iter_mut().zip(z).for_each(|(o, &v)| *o = v.max(0.0)),
        Activation::Sigmoid => out.iter_mut().zip(z).for_each(|(o, &v)| *o = fast_sigmoid(v)),
        Activation::Gelu => out
            .iter_mut()
            .zip(z)
            .for_each(|(o, &v)| *o = crate::theory::phi(act, f64::from(v)) as f32),
    }
}
}

multiversion! {
/// grad ← grad ⊙ φ′(z), with φ′ taken from the output f = φ(z) where that is cheaper.
pub fn times_slope(act: Activation, z: &[f32], f: &[f32], grad: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Tanh => grad
            .iter_mut()
            .zip(f)
            .for_each(|(g, &y)| *g *= 1.0 - y * y),
        Activation::Relu => grad
            .iter_mut()
            .zip(z)
            .for_each(|(g, &v)| *g = if v > 0.0 { *g } else { 0.0 }),
        Activation::Sigmoid => grad.iter_mut().zip(f).for_each(|(g, &y)| *g *= y * (1.0 - y)),
        Activation::Gelu => grad
            .iter_mut()
            .zip(z)
            .for_each(|(g, &v)| *g *= phi_prime(act, f64::from(v)) as f32),
    }
}
}

/// `x`, or a zero of the same sign when `x` is subnormal (|x| < f32::MIN_POSITIVE, 1.2e-38).
///
/// A vanishing gradient spends many steps of backprop through time below f32's smallest
/// normal number before it underflows to zero, and on x86 every operation that reads or
/// produces such a subnormal value takes a microcode assist about a hundred times slower
/// than a normal one: without flushing, a recurrent step at T = 200 cost far more than four
/// steps at T = 50. The recurrent kernels pass every state and gradient they write through
/// here, so those values reach 0 a few decades earlier than they would otherwise (a gradient
/// that small is zero at the precision of every sum it enters) and the products that read
/// them never see a subnormal operand. The sign is kept so that every value that is not
/// subnormal, ±0 included, passes through bit for bit, as with the hardware's flush-to-zero;
/// NaN and ±∞ pass through too. (Setting the FTZ/DAZ bits of MXCSR instead would be
/// undefined behaviour in Rust.) Written as a select, so the passes that call it stay
/// vectorised; a rescaled backward that keeps tiny norms visible would change only this.
#[inline(always)]
pub fn flush(x: f32) -> f32 {
    let signed_zero = f32::from_bits(x.to_bits() & 0x8000_0000);
    if x.abs() < f32::MIN_POSITIVE {
        signed_zero
    } else {
        x
    }
}

multiversion! {
/// dst (rows × n) += a (rows × k) · b (k × n) for a k of a few: one axpy per input column.
/// gemm packs both operands for blocks that a product this thin never fills (a recurrent
/// net's 2 inputs against 256 gate columns ran at a tenth of gemm's usual speed).
pub fn add_thin_product(dst: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    for (row, a_row) in dst.chunks_exact_mut(n).zip(a.chunks_exact(k)) {
        for (&a_value, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            row.iter_mut().zip(b_row).for_each(|(d, &b)| *d += a_value * b);
        }
    }
}
}

/// A row-major matrix operand, optionally read transposed.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    /// Row-major data of the stored matrix.
    pub data: &'a [f32],
    /// Columns of the stored matrix.
    pub cols: usize,
    /// Use the transpose of the stored matrix.
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// The stored matrix as is.
    pub fn plain(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            cols,
            transposed: false,
        }
    }

    /// The transpose of the stored matrix.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            cols,
            transposed: true,
        }
    }

    /// (row stride, column stride) of the operand as read.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (1, self.cols as isize)
        } else {
            (self.cols as isize, 1)
        }
    }
}

/// dst (m×n, row-major) = a (m×k) · b (k×n), added to dst when `accumulate`.
pub fn matmul(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    matmul_into(dst, n, m, n, k, a, b, accumulate);
}

/// Like `matmul`, but dst's rows are `dst_cols` apart, so the product can fill a column block
/// of a wider matrix (the recurrent cells keep all gates of a row side by side).
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
    dst: &mut [f32],
    dst_cols: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    check_extents(dst, dst_cols, m, n, k, a, b);
    if super::small_gemm::applies(m, n, k) {
        super::small_gemm::matmul(dst, dst_cols, m, n, k, a, b, accumulate);
    } else {
        general_matmul_into(dst, dst_cols, m, n, k, a, b, accumulate);
    }
}

/// Panics unless every index an m×k by k×n product into `dst` touches is inside its slice.
#[allow(clippy::too_many_arguments)]
fn check_extents(
    dst: &[f32],
    dst_cols: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
) {
    let span = |rows: usize, cols: usize, (rs, cs): (isize, isize)| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
        }
    };
    assert!(n <= dst_cols && dst.len() >= span(m, n, (dst_cols as isize, 1)));
    assert!(a.data.len() >= span(m, k, a.strides()) && b.data.len() >= span(k, n, b.strides()));
}

/// `matmul_into` by the `gemm` crate whatever the sizes (the reference the small-matrix
/// kernel is checked and timed against).
#[allow(clippy::too_many_arguments)]
pub fn general_matmul_into(
    dst: &mut [f32],
    dst_cols: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    check_extents(dst, dst_cols, m, n, k, a, b);
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    // SAFETY: `check_extents` bounds every index gemm touches by the strides given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_cols as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// out\[j\] += Σ_i m\[i, j\] for a row-major rows × cols matrix (bias gradients).
pub fn add_column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    for row in m.chunks_exact(cols) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
}

/// Each row of dst (rows × cols) set to `bias`.
pub fn fill_rows(dst: &mut [f32], bias: &[f32]) {
    for row in dst.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_is_accurate_to_a_few_ulp_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -12.0f64;
        while x < 12.0 {
            let exact = x.tanh();
            let got = f64::from(fast_tanh(x as f32));
            let exact_in_f32 = f64::from((x as f32).tanh());
            let err = (got - exact_in_f32).abs() / exact.abs().max(1e-30);
            worst = worst.max(err);
            x += 1.3e-4;
        }
        assert!(worst < 1e-6, "worst relative error {worst:e}");
        assert_eq!(fast_tanh(0.0), 0.0);
        assert!((fast_tanh(1e-30) - 1e-30).abs() < 1e-36);
        assert!((fast_tanh(20.0) - 1.0).abs() < 1e-6 && (fast_tanh(-20.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn fast_sigmoid_is_accurate() {
        let mut x = -20.0f64;
        while x < 20.0 {
            let exact = 1.0 / (1.0 + (-x).exp());
            let got = f64::from(fast_sigmoid(x as f32));
            assert!(
                (got - exact).abs() < 2e-7 + 1e-6 * exact,
                "σ({x}) = {got} vs {exact}"
            );
            x += 7e-3;
        }
    }

    #[test]
    fn flush_zeroes_subnormals_and_keeps_everything_else_bit_identical() {
        let subnormals = [
            f32::from_bits(1),
            f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE / 2.0,
            1e-39,
        ];
        for x in subnormals {
            assert!(x.is_subnormal());
            assert_eq!(flush(x).to_bits(), 0.0f32.to_bits(), "{x:e}");
            assert_eq!(flush(-x).to_bits(), (-0.0f32).to_bits(), "{:e}", -x);
        }
        let kept = [
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(0x0080_0001),
            1e-30,
            -0.5,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ];
        for x in kept {
            assert_eq!(flush(x).to_bits(), x.to_bits(), "{x:e}");
        }
    }

    #[test]
    fn matmul_handles_every_transpose() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3
        let b = [1.0, 0.0, -1.0, 2.0, 0.5, 1.0]; // 3×2
        let mut c = [0.0; 4];
        matmul(
            &mut c,
            2,
            2,
            3,
            Operand::plain(&a, 3),
            Operand::plain(&b, 2),
            false,
        );
        assert_eq!(c, [1.0 - 2.0 + 1.5, 4.0 + 3.0, 4.0 - 5.0 + 3.0, 10.0 + 6.0]);
        // aᵀ (3×2) · a (2×3) = 3×3 Gram matrix, accumulated on top of ones.
        let mut g = [1.0; 9];
        matmul(
            &mut g,
            3,
            3,
            2,
            Operand::transposed(&a, 3),
            Operand::plain(&a, 3),
            true,
        );
        assert_eq!(g, [18.0, 23.0, 28.0, 23.0, 30.0, 37.0, 28.0, 37.0, 46.0]);
        // a (2×3) · aᵀ (3×2)
        let mut h = [0.0; 4];
        matmul(
            &mut h,
            2,
            2,
            3,
            Operand::plain(&a, 3),
            Operand::transposed(&a, 3),
            false,
        );
        assert_eq!(h, [14.0, 32.0, 32.0, 77.0]);
    }
}
