//! Matrix products of the lab's own sizes (a batch shard of 32–128 rows times 64×64 weights)
//! on AVX-512 or AVX2, without the packing and blocking a general `gemm` does for large
//! matrices.
//!
//! At these sizes every operand fits in L1/L2, so a general library's packing of both operands
//! and its dispatch cost as much as the arithmetic. The kernel keeps a block of the product in
//! vector registers and streams the k-loop through them: per k, one load of each of the right
//! operand's vectors in the block and one broadcast per left row. On AVX-512 the block is
//! 6 rows × 64 columns (24 of the 32 registers), on AVX2 6 rows × 16 columns (12 of the 16).
//! It runs only where the CPU has one of them and the right operand's rows are 16-float
//! multiples; everything else goes to `gemm`. Every element is summed in k order with fused
//! multiply-adds, so a product's bits depend on its operands alone (not on threads, on where it
//! sits in memory, nor on which of the two instruction sets ran it); they differ from `gemm`'s
//! by rounding, which is why recordings carry the CPU feature level and the engine revision.

use super::kernels::Operand;

/// The vector instruction set a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: blocks of 6 rows × 64 columns.
    Avx512,
    /// AVX2 with FMA: blocks of 6 rows × 16 columns.
    Avx2,
}

impl Isa {
    /// The widest of the two this CPU has (checked once; `is_x86_feature_detected!` caches it).
    pub fn best() -> Option<Self> {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|isa| isa.present())
    }

    /// Whether this CPU has the instruction set.
    pub fn present(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Self::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Columns of the product one register block holds at most, in 16-column panels.
    fn panels(self) -> usize {
        match self {
            Self::Avx512 => 4,
            Self::Avx2 => 1,
        }
    }

    /// Side of the square tiles a transposition moves through registers.
    fn tile(self) -> usize {
        match self {
            Self::Avx512 => 16,
            Self::Avx2 => 8,
        }
    }
}

/// Whether this machine and these sizes take the kernel: AVX-512F or AVX2, a right operand of
/// whole 16-float panels, and sizes where the kernel beats `gemm` (which blocks larger ones
/// better): up to 512 columns and an inner size of 256 on AVX-512, 128 and 128 on AVX2
/// (`cargo run --release --example gemm_sizes` times both; at width 256 `gemm` was 15 % faster
/// on an AVX2 machine).
pub fn applies(m: usize, n: usize, k: usize) -> bool {
    let Some(isa) = Isa::best() else {
        return false;
    };
    let (max_n, max_k) = match isa {
        Isa::Avx512 => (512, 256),
        Isa::Avx2 => (128, 128),
    };
    n > 0 && n.is_multiple_of(16) && n <= max_n && k <= max_k && m > 0
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
    let isa = Isa::best().expect("the caller checked `applies`");
    matmul_on(isa, dst, dst_cols, m, n, k, a, b, accumulate);
}

/// [`matmul`] on a chosen instruction set, which the CPU must have (tests run both).
#[allow(clippy::too_many_arguments)]
pub fn matmul_on(
    isa: Isa,
    dst: &mut [f32],
    dst_cols: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    assert!(isa.present(), "{isa:?} is not on this CPU");
    assert!(
        n.is_multiple_of(16),
        "the kernel takes whole 16-column panels"
    );
    if b.transposed {
        // b is stored n×k: lay it out k×n once (n·k moves against m·n·k multiply-adds).
        TRANSPOSED.with_borrow_mut(|t| {
            t.clear();
            t.resize(k * n, 0.0);
            transpose(isa, b.data, b.cols, n, k, t);
            run(isa, dst, dst_cols, m, n, k, a, (t, n), accumulate);
        });
    } else {
        run(isa, dst, dst_cols, m, n, k, a, (b.data, b.cols), accumulate);
    }
}

/// Writes the n×k matrix `src` (rows `src_cols` apart) into `dst` as k×n, row-major, on `isa`
/// (which the CPU has; n is a multiple of 16).
///
/// Whole square tiles move through registers (16×16 on AVX-512, 8×8 on AVX2); columns past
/// the last whole tile of k move one by one. Element by element down whole columns, this took
/// as long as the product it prepares.
fn transpose(isa: Isa, src: &[f32], src_cols: usize, n: usize, k: usize, dst: &mut [f32]) {
    assert!(n.is_multiple_of(16) && dst.len() >= k * n);
    assert!(n == 0 || k == 0 || src.len() >= (n - 1) * src_cols + k);
    let tile = isa.tile();
    let whole = k - k % tile;
    #[cfg(target_arch = "x86_64")]
    for j0 in (0..n).step_by(tile) {
        for k0 in (0..whole).step_by(tile) {
            let from = src[j0 * src_cols + k0..].as_ptr();
            let to = dst[k0 * n + j0..].as_mut_ptr();
            // SAFETY: the CPU has `isa` (asserted by the caller); rows j0..j0+tile of the
            // source hold columns k0..k0+tile and rows k0..k0+tile of the destination columns
            // j0..j0+tile (asserted above).
            unsafe {
                match isa {
                    Isa::Avx512 => transpose_tile(from, src_cols, to, n),
                    Isa::Avx2 => transpose_tile_avx2(from, src_cols, to, n),
                }
            };
        }
    }
    for j in 0..n {
        for kk in whole..k {
            dst[kk * n + j] = src[j * src_cols + kk];
        }
    }
}

/// A tile transposition's first step: output i interleaves rows i & !1 and i | 1 (their low
/// halves for even i, high halves for odd).
fn row_pair(i: usize) -> (usize, usize) {
    (i & !1, i | 1)
}

/// Its second step: within each group of four, outputs 0 and 1 combine inputs 0 and 2, outputs
/// 2 and 3 inputs 1 and 3.
fn quad_pair(i: usize) -> (usize, usize) {
    let g = i & !3;
    if i % 4 < 2 {
        (g, g + 2)
    } else {
        (g + 1, g + 3)
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
        let (a, b) = row_pair(i);
        let (a, b) = (r[a], r[b]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // Within each group of four: (t0, t2) and (t1, t3) interleaved by 64 bits.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = quad_pair(i);
        let (a, b) = (t[a], t[b]);
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

/// Transposes the 8×8 tile at `src` (rows `src_rs` apart) into `dst` (rows `dst_rs` apart):
/// pairs of rows interleaved by 32 bits, then by 64, then the 128-bit halves exchanged.
///
/// # Safety
/// The CPU has AVX; 8 rows of 8 floats are readable at `src` and writable at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_tile_avx2(src: *const f32, src_rs: usize, dst: *mut f32, dst_rs: usize) {
    use std::arch::x86_64::*;
    // SAFETY: row r of the tile (caller's contract).
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * src_rs)) });
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = row_pair(i);
        let (a, b) = (r[a], r[b]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // Within each group of four: (t0, t2) and (t1, t3), low then high pairs.
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = quad_pair(i);
        let (a, b) = (t[a], t[b]);
        if i % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    for i in 0..8 {
        let (a, b) = (u[i % 4], u[i % 4 + 4]);
        let column = if i < 4 {
            _mm256_permute2f128_ps::<0x20>(a, b)
        } else {
            _mm256_permute2f128_ps::<0x31>(a, b)
        };
        // SAFETY: row i of the destination tile (caller's contract).
        unsafe { _mm256_storeu_ps(dst.add(i * dst_rs), column) };
    }
}

/// The product with a row-major k×n right operand `b` (rows `b_rs` apart).
#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
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
            let panels = ((n - j) / 16).min(isa.panels());
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
                // SAFETY: the CPU has `isa` (asserted by `matmul_on`); the block's rows
                // i..i+rows and columns j..j+16·panels lie inside the extents asserted above.
                unsafe {
                    match isa {
                        Isa::Avx512 => dispatch(rows, panels, &block),
                        Isa::Avx2 => dispatch_avx2(rows, &block),
                    }
                };
                i += rows;
            }
            j += 16 * panels;
        }
    }
}

/// Rows of the product held in registers at once (AVX-512: 6 × 4 vectors = 24 of the 32
/// registers; AVX2: 6 × 2 = 12 of the 16).
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

/// Calls the AVX2 kernel compiled for this block's rows (one 16-column panel).
///
/// # Safety
/// The CPU has AVX2 and FMA, and every address the block's rows × 16 columns reach is in
/// bounds.
#[cfg(target_arch = "x86_64")]
unsafe fn dispatch_avx2(rows: usize, block: &Block) {
    match rows {
        1 => unsafe { kernel_avx2::<1>(block) },
        2 => unsafe { kernel_avx2::<2>(block) },
        3 => unsafe { kernel_avx2::<3>(block) },
        4 => unsafe { kernel_avx2::<4>(block) },
        5 => unsafe { kernel_avx2::<5>(block) },
        6 => unsafe { kernel_avx2::<6>(block) },
        _ => unreachable!("rows ≤ {ROWS} by construction"),
    }
}

/// C\[R × 16\] (+)= A\[R × k\] · B\[k × 16\] in two 8-float vectors per row, summed in the same
/// order with the same fused multiply-adds as [`kernel`], so the bits are the same.
///
/// # Safety
/// As for [`dispatch_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const R: usize>(block: &Block) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    if block.accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, slot) in row.iter_mut().enumerate() {
                // SAFETY: inside the block (caller's contract).
                *slot = unsafe { _mm256_loadu_ps(block.c.add(r * block.c_rs + 8 * v)) };
            }
        }
    }
    for kk in 0..block.k {
        // SAFETY: row kk of the right operand, the block's 16 columns.
        let b = unsafe {
            let row = block.b.add(kk * block.b_rs);
            [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))]
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: A[r, kk] of this block.
            let x = _mm256_set1_ps(unsafe { *block.a.add(r * block.a_rs + kk * block.a_cs) });
            for (slot, &bv) in row.iter_mut().zip(&b) {
                *slot = _mm256_fmadd_ps(x, bv, *slot);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &value) in row.iter().enumerate() {
            // SAFETY: inside the block.
            unsafe { _mm256_storeu_ps(block.c.add(r * block.c_rs + 8 * v), value) };
        }
    }
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
