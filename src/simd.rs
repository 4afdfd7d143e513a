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

/// Σ v² in f64, over eight independent accumulators so the loop vectorises (a single running
/// sum is a chain of dependent additions the compiler may not reorder). The lanes fix the
/// order, so every vector width gives the same bits.
pub fn sum_squares(values: &[f32]) -> f64 {
    sum_squares_wide(values)
}

multiversion! {
/// `sum_squares_inline` compiled for the widest vectors the CPU has.
fn sum_squares_wide(values: &[f32]) -> f64 {
    sum_squares_inline(values)
}
}

/// `sum_squares`, inlined into its caller so it is compiled for the caller's vector width
/// (the fused passes call it on each block they have just written, while it is in L1).
#[inline(always)]
pub fn sum_squares_inline(values: &[f32]) -> f64 {
    // Four independent 8-lane sums: one chain of dependent adds would wait on the adder's
    // latency at every element. Fixed lanes, so the bits do not depend on the vector width.
    let mut lanes = [[0.0f64; 8]; 4];
    let chunks = values.chunks_exact(32);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (group, part) in lanes.iter_mut().zip(chunk.chunks_exact(8)) {
            for (lane, &v) in group.iter_mut().zip(part) {
                let v = f64::from(v);
                *lane += v * v;
            }
        }
    }
    let [a, b, c, d] = lanes;
    let sum: [f64; 8] = std::array::from_fn(|i| (a[i] + b[i]) + (c[i] + d[i]));
    sum.iter().sum::<f64>()
        + rest
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
}
