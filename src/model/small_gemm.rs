//! Matrix products of the lab's own sizes (a batch shard of 32–128 rows times 64×64 weights)
//! on AVX-512, without the packing and blocking a general `gemm` does for large matrices.
//!
//! At these sizes every operand fits in L1/L2, so a general library's packing of both operands
//! and its dispatch cost as much as the arithmetic. This kernel keeps a 6-row × 64-column block
//! of the product in 24 vector registers and streams the k-loop through them: per k, four
//! loads of the right operand's row and one broadcast per left row. It runs only where the
//! CPU has AVX-512F and the right operand's rows are 16-float multiples; everything else goes
//! to `gemm`. The sums run in k order with fused multiply-adds, so a product's bits depend on
//! its operands alone (not on threads or on where it sits in memory); they differ from `gemm`'s
//! by rounding, which is why recordings carry the CPU feature level and the engine revision.

use super::kernels::Operand;

/// Whether this machine and these sizes take the kernel: AVX-512F, a right operand of whole
/// 16-float vectors, and sizes where its block stays in cache (`gemm` blocks larger ones
/// better).
pub fn applies(m: usize, n: usize, k: usize) -> bool {
    available() && n > 0 && n.is_multiple_of(16) && n <= 512 && k <= 256 && m > 0
}

/// AVX-512F is present (checked once; `is_x86_feature_detected!` caches it).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

thread_local! {
    /// A transposed right operand, laid out row-major so its rows load as vectors.
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// dst (m×n, rows `dst_cols` apart) = a (m×k) · b (k×n), added to dst when `accumulate`.
/// The caller has checked [`applies`] and the operands' extents.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    dst_cols: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    if b.transposed {
        // b is stored n×k: lay it out k×n once (n·k moves against m·n·k multiply-adds).
        TRANSPOSED.with_borrow_mut(|t| {
            t.clear();
            t.resize(k * n, 0.0);
            for j in 0..n {
                for kk in 0..k {
                    t[kk * n + j] = b.data[j * b.cols + kk];
                }
            }
            run(dst, dst_cols, m, n, k, a, (t, n), accumulate);
        });
    } else {
        run(dst, dst_cols, m, n, k, a, (b.data, b.cols), accumulate);
    }
}

/// The product with a row-major k×n right operand `b` (rows `b_rs` apart).
#[allow(clippy::too_many_arguments)]
fn run(
    dst: &mut [f32],
    dst_cols: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    (b, b_rs): (&[f32], usize),
    accumulate: bool,
) {
    if k == 0 {
        // An empty sum: the product is zero.
        if !accumulate {
            for row in dst.chunks_mut(dst_cols).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let (a_rs, a_cs) = if a.transposed {
        (1, a.cols)
    } else {
        (a.cols, 1)
    };
    // Every index the kernel touches is below these bounds (checked, not assumed).
    let need_a = (m - 1) * a_rs + (k - 1) * a_cs + 1;
    let need_b = (k - 1) * b_rs + n;
    let need_dst = (m - 1) * dst_cols + n;
    assert!(a.data.len() >= need_a && b.len() >= need_b && dst.len() >= need_dst);
    #[cfg(target_arch = "x86_64")]
    {
        let mut j = 0;
        while j < n {
            let vectors = ((n - j) / 16).min(4);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(ROWS);
                let block = Block {
                    c: dst[i * dst_cols + j..].as_mut_ptr(),
                    c_rs: dst_cols,
                    a: a.data[i * a_rs..].as_ptr(),
                    a_rs,
                    a_cs,
                    b: b[j..].as_ptr(),
                    b_rs,
                    k,
                    accumulate,
                };
                // SAFETY: `applies` found AVX-512F; the block's rows i..i+rows and columns
                // j..j+16·vectors lie inside the extents asserted above.
                unsafe { dispatch(rows, vectors, &block) };
                i += rows;
            }
            j += 16 * vectors;
        }
    }
}

/// Rows of the product held in registers at once (6 × 4 vectors = 24 of the 32 registers).
const ROWS: usize = 6;

/// One register block's operands, as raw pointers into checked slices.
struct Block {
    c: *mut f32,
    c_rs: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    k: usize,
    accumulate: bool,
}

/// Calls the kernel compiled for this block's rows and vectors.
///
/// # Safety
/// The CPU has AVX-512F, and every address the block's rows × vectors reach is in bounds.
#[cfg(target_arch = "x86_64")]
unsafe fn dispatch(rows: usize, vectors: usize, block: &Block) {
    macro_rules! go {
        ($($r:literal),*) => {
            match (rows, vectors) {
                $(
                    ($r, 1) => unsafe { kernel::<$r, 1>(block) },
                    ($r, 2) => unsafe { kernel::<$r, 2>(block) },
                    ($r, 3) => unsafe { kernel::<$r, 3>(block) },
                    ($r, 4) => unsafe { kernel::<$r, 4>(block) },
                )*
                _ => unreachable!("rows ≤ {ROWS} and 1 ≤ vectors ≤ 4 by construction"),
            }
        };
    }
    go!(1, 2, 3, 4, 5, 6)
}

/// C\[R × 16V\] (+)= A\[R × k\] · B\[k × 16V\], the block in registers throughout.
///
/// # Safety
/// As for [`dispatch`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize, const V: usize>(block: &Block) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    if block.accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, slot) in row.iter_mut().enumerate() {
                // SAFETY: inside the block (caller's contract).
                *slot = unsafe { _mm512_loadu_ps(block.c.add(r * block.c_rs + 16 * v)) };
            }
        }
    }
    for kk in 0..block.k {
        let mut b = [_mm512_setzero_ps(); V];
        for (v, slot) in b.iter_mut().enumerate() {
            // SAFETY: row kk of the right operand, columns of this block.
            *slot = unsafe { _mm512_loadu_ps(block.b.add(kk * block.b_rs + 16 * v)) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: A[r, kk] of this block.
            let x = _mm512_set1_ps(unsafe { *block.a.add(r * block.a_rs + kk * block.a_cs) });
            for (slot, &bv) in row.iter_mut().zip(&b) {
                *slot = _mm512_fmadd_ps(x, bv, *slot);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &value) in row.iter().enumerate() {
            // SAFETY: inside the block.
            unsafe { _mm512_storeu_ps(block.c.add(r * block.c_rs + 16 * v), value) };
        }
    }
}
