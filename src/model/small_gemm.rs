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
            transpose(b.data, b.cols, n, k, t);
            run(dst, dst_cols, m, n, k, a, (t, n), accumulate);
        });
    } else {
        run(dst, dst_cols, m, n, k, a, (b.data, b.cols), accumulate);
    }
}

/// Writes the n×k matrix `src` (rows `src_cols` apart) into `dst` as k×n, row-major.
/// The caller has checked [`applies`] (AVX-512F, n a multiple of 16).
///
/// Whole 16×16 tiles move through registers (16 loads, 64 shuffles, 16 stores); columns past
/// the last whole tile of k move one by one. Element by element down whole columns, this took
/// as long as the product it prepares.
fn transpose(src: &[f32], src_cols: usize, n: usize, k: usize, dst: &mut [f32]) {
    assert!(n.is_multiple_of(16) && dst.len() >= k * n);
    assert!(n == 0 || k == 0 || src.len() >= (n - 1) * src_cols + k);
    let whole = k - k % 16;
    #[cfg(target_arch = "x86_64")]
    for j0 in (0..n).step_by(16) {
        for k0 in (0..whole).step_by(16) {
            // SAFETY: `applies` found AVX-512F; rows j0..j0+16 of the source hold columns
            // k0..k0+16 and rows k0..k0+16 of the destination columns j0..j0+16 (asserted).
            unsafe {
                transpose_tile(
                    src.as_ptr().add(j0 * src_cols + k0),
                    src_cols,
                    dst.as_mut_ptr().add(k0 * n + j0),
                    n,
                )
            };
        }
    }
    for j in 0..n {
        for kk in whole..k {
            dst[kk * n + j] = src[j * src_cols + kk];
        }
    }
}

/// Transposes the 16×16 tile at `src` (rows `src_rs` apart) into `dst` (rows `dst_rs` apart):
/// pairs of rows interleaved by 32, then 64 bits, then 128-bit lanes gathered twice.
///
/// # Safety
/// The CPU has AVX-512F; 16 rows of 16 floats are readable at `src` and writable at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_tile(src: *const f32, src_rs: usize, dst: *mut f32, dst_rs: usize) {
    use std::arch::x86_64::*;
    // SAFETY: row r of the tile (caller's contract).
    let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * src_rs)) });
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // Within each group of four: (t0, t2) and (t1, t3) interleaved by 64 bits.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let g = i & !3;
        let (a, b) = match i % 4 {
            0 | 1 => (t[g], t[g + 2]),
            _ => (t[g + 1], t[g + 3]),
        };
        let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
        _mm512_castpd_ps(if i % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        })
    });
    // 128-bit lanes: rows i and i + 4 of each half, even lanes then odd lanes.
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let base = (i / 8) * 8 + i % 4;
        let (a, b) = (u[base], u[base + 4]);
        if i % 8 < 4 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        }
    });
    for i in 0..16 {
        let base = i % 8;
        let (a, b) = (v[base], v[base + 8]);
        let column = if i < 8 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        };
        // SAFETY: row i of the destination tile (caller's contract).
        unsafe { _mm512_storeu_ps(dst.add(i * dst_rs), column) };
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
