//! Runtime dispatch for the recurrent cells' element-wise passes: AVX-512 (16 lanes) where the
//! CPU has it, AVX2 (8 lanes) where it has that, the baseline target otherwise.
//!
//! Every pass is element-wise IEEE arithmetic without fused multiply-adds (Rust never
//! contracts `a * b + c`), and the only reductions keep a fixed number of lanes, so all three
//! versions give the same bits: the vector width changes the speed, never the numbers.

/// Compiles `$body` three times (AVX-512F, AVX2, baseline) and picks one at run time.
macro_rules! multiversion_any {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn widest($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn wide($($arg: $ty),*) {
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
pub(crate) use multiversion_any;
