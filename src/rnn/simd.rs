//! Runtime dispatch for the recurrent cells' element-wise passes: AVX-512 (16 lanes) where the
//! CPU has it, AVX2 (8 lanes) where it has that, the baseline target otherwise.
//!
//! Every pass is element-wise IEEE arithmetic without fused multiply-adds (Rust never
//! contracts `a * b + c`), and the only reductions keep a fixed number of lanes, so all three
//! versions give the same bits: the vector width changes the speed, never the numbers.

/// The crate's runtime dispatch (`crate::simd::multiversion`), under the name these passes use.
pub(crate) use crate::simd::multiversion as multiversion_any;
