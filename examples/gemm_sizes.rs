//! Times the lab's matrix products (a batch shard times a square weight, in the three layouts
//! a training step uses) with the small-matrix kernel and with the `gemm` crate, in one run:
//! `cargo run --release --example gemm_sizes`.

use gradlab::model::kernels::{Operand, general_matmul_into, matmul_into};
use std::time::Instant;

fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let reps = 2000;
        let start = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn main() {
    println!("rows width layout   small µs  gemm µs  small GFLOP/s  gemm GFLOP/s");
    for &(rows, width) in &[(64, 64), (128, 64), (64, 128), (128, 256)] {
        let x: Vec<f32> = (0..rows * width).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..width * width).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; rows.max(width) * width];
        // (name, m, n, k, a, b)
        let cases = [
            (
                "x·W",
                rows,
                width,
                width,
                Operand::plain(&x, width),
                Operand::plain(&w, width),
            ),
            (
                "g·Wᵀ",
                rows,
                width,
                width,
                Operand::plain(&x, width),
                Operand::transposed(&w, width),
            ),
            (
                "xᵀ·g",
                width,
                width,
                rows,
                Operand::transposed(&x, width),
                Operand::plain(&x, width),
            ),
        ];
        for (name, m, n, k, a, b) in cases {
            let small = time(|| matmul_into(&mut out, n, m, n, k, a, b, false));
            let general = time(|| general_matmul_into(&mut out, n, m, n, k, a, b, false));
            let flop = 2.0 * (m * n * k) as f64;
            println!(
                "{rows:4} {width:5} {name:6} {:9.2} {:8.2} {:14.1} {:13.1}",
                small * 1e6,
                general * 1e6,
                flop / small / 1e9,
                flop / general / 1e9
            );
        }
    }
}
