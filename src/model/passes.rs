//! The element-wise passes of the engine, each one sweep over its buffers that also collects
//! the metrics the lab shows (Σh², Σ(∂L/∂h)², Σ gate), so no separate pass reads them again.
//!
//! Every value written passes through `flush`: a subnormal never reaches a product.

use super::kernels::{fast_sigmoid, fast_tanh, flush, multiversion};
use crate::config::Activation;
use crate::theory::{phi, phi_prime};

/// φ(x) in f32 for the activations the fused kernels compute themselves.
#[inline(always)]
fn act_f32(act: Activation, v: f32) -> f32 {
    match act {
        Activation::Linear => v,
        Activation::Tanh => tanh_no_underflow(v),
        Activation::Relu => v.max(0.0),
        Activation::Sigmoid => fast_sigmoid(v),
        Activation::Gelu => phi(act, f64::from(v)) as f32,
    }
}

/// φ′ from `src`: the output f = φ(z) for tanh, sigmoid and ReLU, the input z for GELU.
#[inline(always)]
fn slope_f32(act: Activation, src: f32) -> f32 {
    match act {
        Activation::Linear => 1.0,
        Activation::Tanh => tanh_slope(src),
        Activation::Relu => {
            if src > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => src * (1.0 - src),
        Activation::Gelu => phi_prime(act, f64::from(src)) as f32,
    }
}

/// Below this, tanh(x) rounds to x in f32 (|x| < 2^-12: the cubic term is under half an ulp).
const TANH_LINEAR: f32 = 2.441_406_2e-4;

/// `fast_tanh` that never multiplies a tiny value: squaring one underflows, and on x86 an
/// underflowing product takes a microcode assist ~100× slower (the deep vanishing net's
/// activations are 1e-30 and below). Tiny inputs take the polynomial at a harmless stand-in
/// and return x itself.
#[inline(always)]
fn tanh_no_underflow(x: f32) -> f32 {
    let tiny = x.abs() < TANH_LINEAR;
    let safe = if tiny { 1.0 } else { x };
    let y = fast_tanh(safe);
    if tiny { x } else { y }
}

/// 1 − y², without squaring a tiny y (see `tanh_no_underflow`).
#[inline(always)]
fn tanh_slope(y: f32) -> f32 {
    let safe = if y.abs() < TANH_LINEAR { 0.0 } else { y };
    1.0 - safe * safe
}

/// Elements per block: each pass writes a block, then sums it while it is still in L1.
const BLOCK: usize = 512;

use crate::metrics::sum_squares as sumsq;

/// Σv over eight lanes, vectorised like `sum_squares`.
#[inline(always)]
fn sum(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v);
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().map(|&v| f64::from(v)).sum::<f64>()
}

/// v ← op(v) block by block, summing the squares of each block written. Generic and inlined,
/// so each activation gets its own loop (one `match` per call, not per element) compiled
/// for the caller's vector width.
#[inline(always)]
fn map_blocks(v: &mut [f32], op: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0.0;
    for block in v.chunks_mut(BLOCK) {
        for x in block.iter_mut() {
            *x = flush(op(flush(*x)));
        }
        total += sumsq(block);
    }
    total
}

/// dz ← g·slope(src) block by block; returns Σg².
#[inline(always)]
fn slope_blocks(g: &[f32], src: &[f32], dz: &mut [f32], op: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0.0;
    for ((db, gb), sb) in dz
        .chunks_mut(BLOCK)
        .zip(g.chunks(BLOCK))
        .zip(src.chunks(BLOCK))
    {
        for ((d, &gv), &s) in db.iter_mut().zip(gb).zip(sb) {
            *d = flush(gv * op(s));
        }
        total += sumsq(gb);
    }
    total
}

multiversion! {
/// v ← φ(v) in place; returns Σφ(v)².
pub fn act_in_place(act: Activation, v: &mut [f32]) -> f64 {
    match act {
        Activation::Linear => map_blocks(v, |x| x),
        Activation::Tanh => map_blocks(v, tanh_no_underflow),
        Activation::Relu => map_blocks(v, |x| x.max(0.0)),
        Activation::Sigmoid => map_blocks(v, fast_sigmoid),
        Activation::Gelu => map_blocks(v, |x| act_f32(Activation::Gelu, x)),
    }
}
}

multiversion! {
/// z ← flush(z), out ← φ(z); returns Σout².
pub fn act_into(act: Activation, z: &mut [f32], out: &mut [f32]) -> f64 {
    let mut total = 0.0;
    for (zb, ob) in z.chunks_mut(BLOCK).zip(out.chunks_mut(BLOCK)) {
        for (zv, o) in zb.iter_mut().zip(ob.iter_mut()) {
            *zv = flush(*zv);
            *o = flush(act_f32(act, *zv));
        }
        total += sumsq(ob);
    }
    total
}
}

multiversion! {
/// y ← scale·x + f; returns Σy².
pub fn residual_combine(scale: f32, x: &[f32], f: &[f32], y: &mut [f32]) -> f64 {
    let mut total = 0.0;
    for ((yb, xb), fb) in y.chunks_mut(BLOCK).zip(x.chunks(BLOCK)).zip(f.chunks(BLOCK)) {
        for ((o, &xv), &fv) in yb.iter_mut().zip(xb).zip(fb) {
            *o = flush(scale * xv + fv);
        }
        total += sumsq(yb);
    }
    total
}
}

multiversion! {
/// y ← scale·x + α·f (a scaled residual branch); returns Σy².
pub fn residual_combine_branch(scale: f32, alpha: f32, x: &[f32], f: &[f32], y: &mut [f32]) -> f64 {
    let mut total = 0.0;
    for ((yb, xb), fb) in y.chunks_mut(BLOCK).zip(x.chunks(BLOCK)).zip(f.chunks(BLOCK)) {
        for ((o, &xv), &fv) in yb.iter_mut().zip(xb).zip(fb) {
            *o = flush(scale * xv + alpha * fv);
        }
        total += sumsq(yb);
    }
    total
}
}

multiversion! {
/// t ← σ(t), y ← x + t·(f − x); returns (Σy², Σt).
pub fn highway_combine(x: &[f32], f: &[f32], t: &mut [f32], y: &mut [f32]) -> (f64, f64) {
    let (mut total, mut gates) = (0.0, 0.0);
    for (((yb, xb), fb), tb) in y
        .chunks_mut(BLOCK)
        .zip(x.chunks(BLOCK))
        .zip(f.chunks(BLOCK))
        .zip(t.chunks_mut(BLOCK))
    {
        for (((o, &xv), &fv), tv) in yb.iter_mut().zip(xb).zip(fb).zip(tb.iter_mut()) {
            let g = fast_sigmoid(flush(*tv));
            *tv = g;
            *o = flush(g * (fv - xv) + xv);
        }
        total += sumsq(yb);
        gates += sum(tb);
    }
    (total, gates)
}
}

multiversion! {
/// dz ← g·φ′(src); returns Σg².
pub fn slope(act: Activation, g: &[f32], src: &[f32], dz: &mut [f32]) -> f64 {
    match act {
        Activation::Linear => slope_blocks(g, src, dz, |_| 1.0),
        Activation::Tanh => slope_blocks(g, src, dz, tanh_slope),
        Activation::Relu => slope_blocks(g, src, dz, |y| if y > 0.0 { 1.0 } else { 0.0 }),
        Activation::Sigmoid => slope_blocks(g, src, dz, |y| y * (1.0 - y)),
        Activation::Gelu => slope_blocks(g, src, dz, |z| slope_f32(Activation::Gelu, z)),
    }
}
}

multiversion! {
/// dz ← g·φ′(src), next ← scale·g; returns Σg².
pub fn slope_residual(
    act: Activation,
    scale: f32,
    g: &[f32],
    src: &[f32],
    dz: &mut [f32],
    next: &mut [f32]
) -> f64 {
    for (n, &gv) in next.iter_mut().zip(g) {
        *n = flush(scale * gv);
    }
    slope(act, g, src, dz)
}
}

/// The highway block's inputs to its backward pass.
pub struct HighwayBack<'a> {
    /// ∂L/∂y (rescaled).
    pub g: &'a [f32],
    /// φ′'s source (f, or z for GELU).
    pub src: &'a [f32],
    /// The transform's output f.
    pub f: &'a [f32],
    /// The block's input x.
    pub x: &'a [f32],
    /// The gate T.
    pub t: &'a [f32],
}

/// dz ← g·T·φ′, dg ← g·(f − x)·T(1 − T), next ← g·(1 − T); returns Σg².
pub fn slope_highway(
    act: Activation,
    inputs: &HighwayBack,
    dz: &mut [f32],
    dg: &mut [f32],
    next: &mut [f32],
) -> f64 {
    slope_highway_rows(
        act, inputs.g, inputs.src, inputs.f, inputs.x, inputs.t, dz, dg, next,
    )
}

multiversion! {
#[allow(clippy::too_many_arguments)]
/// The loop of `slope_highway`.
fn slope_highway_rows(
    act: Activation,
    g: &[f32],
    src: &[f32],
    f: &[f32],
    x: &[f32],
    t: &[f32],
    dz: &mut [f32],
    dg: &mut [f32],
    next: &mut [f32]
) -> f64 {
    match act {
        Activation::Linear => highway_rows(g, src, f, x, t, dz, dg, next, |_| 1.0),
        Activation::Tanh => highway_rows(g, src, f, x, t, dz, dg, next, tanh_slope),
        Activation::Relu => {
            highway_rows(g, src, f, x, t, dz, dg, next, |y| if y > 0.0 { 1.0 } else { 0.0 })
        }
        Activation::Sigmoid => highway_rows(g, src, f, x, t, dz, dg, next, |y| y * (1.0 - y)),
        Activation::Gelu => highway_rows(g, src, f, x, t, dz, dg, next, |z| {
            slope_f32(Activation::Gelu, z)
        }),
    }
}
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn highway_rows(
    g: &[f32],
    src: &[f32],
    f: &[f32],
    x: &[f32],
    t: &[f32],
    dz: &mut [f32],
    dg: &mut [f32],
    next: &mut [f32],
    op: impl Fn(f32) -> f32,
) -> f64 {
    let n = g.len();
    let (src, f, x, t) = (&src[..n], &f[..n], &x[..n], &t[..n]);
    let (dz, dg, next) = (&mut dz[..n], &mut dg[..n], &mut next[..n]);
    for i in 0..n {
        let gv = g[i];
        let tv = t[i];
        dz[i] = flush(gv * tv * op(src[i]));
        dg[i] = flush(gv * (f[i] - x[i]) * tv * (1.0 - tv));
        next[i] = flush(gv * (1.0 - tv));
    }
    sumsq(g)
}

/// out\[j\] = Σ_i m\[i, j\] for a row-major rows × cols matrix (overwrites `out`).
pub fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    super::kernels::add_column_sums(m, cols, out);
}
