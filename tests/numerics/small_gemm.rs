//! The small-matrix kernel (`model::small_gemm`, AVX-512 or AVX2) against the `gemm` crate and
//! an f64 reference, in every layout a training step uses, with row tails, column panels,
//! strided destinations and accumulation; and its two instruction sets against each other, bit
//! for bit, where the CPU has both. On a CPU with neither both sides are `gemm` and the test
//! still checks `gemm` against f64.

use gradlab::model::kernels::{Operand, general_matmul_into, matmul_into};
use gradlab::model::small_gemm::{Isa, matmul_on};
use proptest::prelude::*;

/// a·b in f64 from the operands as read (row-major, optionally transposed).
fn reference(m: usize, n: usize, k: usize, a: Operand, b: Operand) -> Vec<f64> {
    let at = |op: &Operand, r: usize, c: usize| {
        let i = if op.transposed {
            c * op.cols + r
        } else {
            r * op.cols + c
        };
        f64::from(op.data[i])
    };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|kk| at(&a, i, kk) * at(&b, kk, j)).sum();
        }
    }
    out
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let x = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (x as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_small_kernel_matches_gemm_and_f64(
        m in 1usize..20,
        panels in 1usize..6,
        k in 0usize..80,
        a_t in any::<bool>(),
        b_t in any::<bool>(),
        accumulate in any::<bool>(),
        pad in 0usize..3,
        b_extra in 0usize..20,
        seed in 0u64..1000,
    ) {
        let n = 16 * panels;
        let dst_cols = n + 16 * pad;
        let a_data = values(m * k.max(1), seed);
        // A transposed right operand may be a column block of a wider matrix (the GRU's
        // candidate weights are), stored n × (k + b_extra).
        let b_data = values((k + b_extra).max(1) * n, seed + 1);
        let a = if a_t { Operand::transposed(&a_data, m) } else { Operand::plain(&a_data, k) };
        let b = if b_t {
            Operand::transposed(&b_data, k + b_extra)
        } else {
            Operand::plain(&b_data, n)
        };
        let start = values(m * dst_cols, seed + 2);
        let mut fast = start.clone();
        let mut general = start.clone();
        matmul_into(&mut fast, dst_cols, m, n, k, a, b, accumulate);
        general_matmul_into(&mut general, dst_cols, m, n, k, a, b, accumulate);
        // Each instruction set this CPU has gives the bits of the one `matmul_into` chose.
        for isa in [Isa::Avx512, Isa::Avx2].into_iter().filter(|isa| isa.present()) {
            let mut on = start.clone();
            matmul_on(isa, &mut on, dst_cols, m, n, k, a, b, accumulate);
            let same = on.iter().zip(&fast).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "{:?} differs from the kernel chosen in the bits", isa);
        }
        let want = reference(m, n, k, a, b);
        for i in 0..m {
            for j in 0..dst_cols {
                let at = i * dst_cols + j;
                if j >= n {
                    prop_assert_eq!(fast[at], start[at], "column {} outside the product written", j);
                    continue;
                }
                let exact = want[i * n + j] + if accumulate { f64::from(start[at]) } else { 0.0 };
                let tolerance = 1e-5 * (k as f64 + 1.0);
                prop_assert!((f64::from(fast[at]) - exact).abs() <= tolerance,
                    "kernel ({}, {}) = {} vs {}", i, j, fast[at], exact);
                prop_assert!((f64::from(general[at]) - exact).abs() <= tolerance);
            }
        }
    }
}

#[test]
fn the_small_kernel_is_deterministic() {
    let (m, n, k) = (64, 64, 64);
    let a_data = values(m * k, 3);
    let b_data = values(k * n, 4);
    let run = || {
        let mut out = vec![0.0f32; m * n];
        matmul_into(
            &mut out,
            n,
            m,
            n,
            k,
            Operand::plain(&a_data, k),
            Operand::transposed(&b_data, k),
            false,
        );
        out
    };
    let first = run();
    let second = std::thread::scope(|scope| scope.spawn(run).join().expect("no panic"));
    assert_eq!(first, second, "same operands, same bits, on any thread");
}
