//! The element-wise half of one time step of each recurrent cell, forward and backward, over a
//! whole batch. A row keeps its gates side by side (vanilla [a], GRU [r z n], LSTM [i f g o],
//! each `hidden` wide); the matrix products between these passes are the caller's.
//!
//! Every function takes its slices whole and walks them row by row in zipped passes, one
//! formula per pass: with indexed loops the compiler kept bounds checks and did not vectorise
//! the LSTM's five activations (half of the step's time); zipped, the passes run 16 lanes wide
//! under AVX-512 and 8 under AVX2 (`super::simd`), with the same bits either way.
//!
//! Every state and gradient a pass writes goes through [`flush`], in the same pass: a vanishing
//! gradient at T = 200 would otherwise spend many steps as subnormal floats, which x86 handles
//! about a hundred times slower than normal ones (see `flush`).

use super::simd::multiversion_any as multiversion;
use crate::model::kernels::{fast_sigmoid, fast_tanh, flush};

multiversion! {
/// LSTM forward: `gates` holds [i f g o] pre-activations and leaves with their activations;
/// c = f⊙c_prev + i⊙g, tanh_c = tanh(c), h = o⊙tanh_c.
pub fn lstm_forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], tanh_c: &mut [f32], h: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact_mut(4 * hidden).zip(c_prev.chunks_exact(hidden));
    let states = c.chunks_exact_mut(hidden).zip(tanh_c.chunks_exact_mut(hidden)).zip(h.chunks_exact_mut(hidden));
    for ((gates, c_prev), ((c, tanh_c), h)) in rows.zip(states) {
        let (i_f, g_o) = gates.split_at_mut(2 * hidden);
        let (g, o) = g_o.split_at_mut(hidden);
        sigmoid_in_place(i_f);
        tanh_in_place(g);
        sigmoid_in_place(o);
        let (i, f) = i_f.split_at(hidden);
        c.iter_mut()
            .zip(c_prev)
            .zip(i.iter().zip(f.iter()).zip(g.iter()))
            .for_each(|((c, &cp), ((&i, &f), &g))| *c = flush(f * cp + i * g));
        tanh_c.iter_mut().zip(c.iter()).for_each(|(t, &c)| *t = flush(fast_tanh(c)));
        h.iter_mut().zip(o.iter()).zip(tanh_c.iter()).for_each(|((h, &o), &t)| *h = flush(o * t));
    }
}
}

multiversion! {
/// LSTM backward through one step: from the total ∂L/∂h (`dh`) and ∂L/∂c carried back from the
/// next step (`dc`, replaced by ∂L/∂c_prev), the pre-activation gradients `dgates` [i f g o].
pub fn lstm_backward(gates: &[f32], c_prev: &[f32], tanh_c: &[f32], dh: &[f32], dc: &mut [f32], dgates: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact(4 * hidden).zip(dgates.chunks_exact_mut(4 * hidden));
    let states = c_prev.chunks_exact(hidden).zip(tanh_c.chunks_exact(hidden));
    let grads = dh.chunks_exact(hidden).zip(dc.chunks_exact_mut(hidden));
    for (((gates, dgates), (c_prev, tanh_c)), (dh, dc)) in rows.zip(states).zip(grads) {
        let (i, rest) = gates.split_at(hidden);
        let (f, rest) = rest.split_at(hidden);
        let (g, o) = rest.split_at(hidden);
        let (di, rest) = dgates.split_at_mut(hidden);
        let (df, rest) = rest.split_at_mut(hidden);
        let (dg, d_o) = rest.split_at_mut(hidden);
        // dc becomes the total ∂L/∂c of this step first; every gate reads that.
        dc.iter_mut()
            .zip(dh.iter().zip(o.iter()).zip(tanh_c.iter()))
            .for_each(|(dc, ((&dh, &o), &t))| *dc = flush(*dc + dh * o * (1.0 - t * t)));
        d_o.iter_mut()
            .zip(dh.iter().zip(tanh_c.iter()).zip(o.iter()))
            .for_each(|(d, ((&dh, &t), &o))| *d = flush(dh * t * o * (1.0 - o)));
        di.iter_mut()
            .zip(dc.iter().zip(g.iter()).zip(i.iter()))
            .for_each(|(d, ((&dc, &g), &i))| *d = flush(dc * g * i * (1.0 - i)));
        dg.iter_mut()
            .zip(dc.iter().zip(i.iter()).zip(g.iter()))
            .for_each(|(d, ((&dc, &i), &g))| *d = flush(dc * i * (1.0 - g * g)));
        df.iter_mut()
            .zip(dc.iter().zip(c_prev.iter()).zip(f.iter()))
            .for_each(|(d, ((&dc, &cp), &f))| *d = flush(dc * cp * f * (1.0 - f)));
        dc.iter_mut().zip(f.iter()).for_each(|(dc, &f)| *dc = flush(*dc * f));
    }
}
}

multiversion! {
/// GRU forward, first half: r and z of `gates` [r z n] become σ of their pre-activations, and
/// r⊙h_prev goes to `reset_h` (the candidate's product needs it).
pub fn gru_gates(gates: &mut [f32], h_prev: &[f32], reset_h: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact_mut(3 * hidden).zip(h_prev.chunks_exact(hidden)).zip(reset_h.chunks_exact_mut(hidden));
    for ((gates, h_prev), reset_h) in rows {
        sigmoid_in_place(&mut gates[..2 * hidden]);
        reset_h.iter_mut()
            .zip(gates[..hidden].iter().zip(h_prev.iter()))
            .for_each(|(rh, (&r, &h))| *rh = flush(r * h));
    }
}
}

multiversion! {
/// GRU forward, second half: n = tanh of its pre-activation, h = n + z⊙(h_prev − n).
pub fn gru_state(gates: &mut [f32], h_prev: &[f32], h: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact_mut(3 * hidden).zip(h_prev.chunks_exact(hidden)).zip(h.chunks_exact_mut(hidden));
    for ((gates, h_prev), h) in rows {
        let (rz, n) = gates.split_at_mut(2 * hidden);
        tanh_in_place(n);
        h.iter_mut()
            .zip(n.iter().zip(&rz[hidden..]).zip(h_prev.iter()))
            .for_each(|(h, ((&n, &z), &hp))| *h = flush(n + z * (hp - n)));
    }
}
}

multiversion! {
/// GRU backward, first half: from the total ∂L/∂h, the z and n pre-activation gradients in
/// `dgates` and the direct path z⊙∂L/∂h into `dh_prev` (overwritten).
pub fn gru_backward_state(gates: &[f32], h_prev: &[f32], dh: &[f32], dgates: &mut [f32], dh_prev: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact(3 * hidden).zip(dgates.chunks_exact_mut(3 * hidden));
    let vectors = h_prev.chunks_exact(hidden).zip(dh.chunks_exact(hidden)).zip(dh_prev.chunks_exact_mut(hidden));
    for ((gates, dgates), ((h_prev, dh), dh_prev)) in rows.zip(vectors) {
        let z = &gates[hidden..2 * hidden];
        let n = &gates[2 * hidden..];
        let (_, rest) = dgates.split_at_mut(hidden);
        let (dz, dn) = rest.split_at_mut(hidden);
        dz.iter_mut()
            .zip(dh.iter().zip(h_prev.iter()).zip(n.iter().zip(z.iter())))
            .for_each(|(d, ((&dh, &hp), (&n, &z)))| *d = flush(dh * (hp - n) * z * (1.0 - z)));
        dn.iter_mut()
            .zip(dh.iter().zip(z.iter()).zip(n.iter()))
            .for_each(|(d, ((&dh, &z), &n))| *d = flush(dh * (1.0 - z) * (1.0 - n * n)));
        dh_prev.iter_mut().zip(dh.iter().zip(z.iter())).for_each(|(d, (&dh, &z))| *d = flush(dh * z));
    }
}
}

multiversion! {
/// GRU backward, second half: from ∂L/∂(r⊙h_prev) (`d_reset_h`), the r pre-activation
/// gradient in `dgates` and the path through the reset product added to `dh_prev`.
pub fn gru_backward_reset(gates: &[f32], h_prev: &[f32], d_reset_h: &[f32], dgates: &mut [f32], dh_prev: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact(3 * hidden).zip(dgates.chunks_exact_mut(3 * hidden));
    let vectors = h_prev.chunks_exact(hidden).zip(d_reset_h.chunks_exact(hidden)).zip(dh_prev.chunks_exact_mut(hidden));
    for ((gates, dgates), ((h_prev, d_reset_h), dh_prev)) in rows.zip(vectors) {
        let r = &gates[..hidden];
        let dr = &mut dgates[..hidden];
        dr.iter_mut()
            .zip(d_reset_h.iter().zip(h_prev.iter()).zip(r.iter()))
            .for_each(|(d, ((&drh, &hp), &r))| *d = flush(drh * hp * r * (1.0 - r)));
        dh_prev.iter_mut()
            .zip(d_reset_h.iter().zip(r.iter()))
            .for_each(|(d, (&drh, &r))| *d = flush(*d + drh * r));
    }
}
}

multiversion! {
/// Vanilla forward: h = tanh(a).
pub fn vanilla_forward(a: &[f32], h: &mut [f32]) {
    h.iter_mut().zip(a).for_each(|(h, &a)| *h = flush(fast_tanh(a)));
}
}

multiversion! {
/// Vanilla backward: ∂L/∂a = ∂L/∂h ⊙ (1 − h²) for h = tanh(a).
pub fn vanilla_backward(h: &[f32], dh: &[f32], dgates: &mut [f32]) {
    for ((d, &g), &y) in dgates.iter_mut().zip(dh).zip(h) {
        *d = flush(g * (1.0 - y * y));
    }
}
}

#[inline(always)]
fn sigmoid_in_place(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = fast_sigmoid(*v));
}

#[inline(always)]
fn tanh_in_place(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = fast_tanh(*v));
}

/// Sum of gate `index`'s block (`hidden` wide) over every row of `gates` (`gate_count` blocks
/// per row), in f64, row by row.
pub fn gate_sum(gates: &[f32], gate_count: usize, index: usize, hidden: usize) -> f64 {
    let mut sum = 0.0f64;
    for row in gates.chunks_exact(gate_count * hidden) {
        sum += row[index * hidden..(index + 1) * hidden]
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>();
    }
    sum
}

/// Mean of gate `index`'s block over every row of `gates`: [`gate_sum`] over the count.
pub fn gate_mean(gates: &[f32], gate_count: usize, index: usize, hidden: usize) -> f64 {
    let count = gates.len() / gate_count.max(1);
    gate_sum(gates, gate_count, index, hidden) / count.max(1) as f64
}
