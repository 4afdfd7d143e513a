//! The element-wise half of one time step of each recurrent cell, forward and backward, over a
//! whole batch. A row keeps its gates side by side (vanilla [a], GRU [r z n], LSTM [i f g o],
//! each `hidden` wide); the matrix products between these passes are the caller's.
//!
//! Every function takes its slices whole and walks them row by row, so the compiler sees equal
//! lengths and vectorises the inner loops (AVX2 when the CPU has it).

use crate::model::kernels::{fast_sigmoid, fast_tanh, multiversion};

multiversion! {
/// LSTM forward: `gates` holds [i f g o] pre-activations and leaves with their activations;
/// c = f⊙c_prev + i⊙g, tanh_c = tanh(c), h = o⊙tanh_c.
pub fn lstm_forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], tanh_c: &mut [f32], h: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact_mut(4 * hidden).zip(c_prev.chunks_exact(hidden));
    let states = c.chunks_exact_mut(hidden).zip(tanh_c.chunks_exact_mut(hidden)).zip(h.chunks_exact_mut(hidden));
    for ((gates, c_prev), ((c, tanh_c), h)) in rows.zip(states) {
        let (i, rest) = gates.split_at_mut(hidden);
        let (f, rest) = rest.split_at_mut(hidden);
        let (g, o) = rest.split_at_mut(hidden);
        for j in 0..hidden {
            i[j] = fast_sigmoid(i[j]);
            f[j] = fast_sigmoid(f[j]);
            g[j] = fast_tanh(g[j]);
            o[j] = fast_sigmoid(o[j]);
            c[j] = f[j] * c_prev[j] + i[j] * g[j];
            tanh_c[j] = fast_tanh(c[j]);
            h[j] = o[j] * tanh_c[j];
        }
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
        for j in 0..hidden {
            let total = dc[j] + dh[j] * o[j] * (1.0 - tanh_c[j] * tanh_c[j]);
            di[j] = total * g[j] * i[j] * (1.0 - i[j]);
            df[j] = total * c_prev[j] * f[j] * (1.0 - f[j]);
            dg[j] = total * i[j] * (1.0 - g[j] * g[j]);
            d_o[j] = dh[j] * tanh_c[j] * o[j] * (1.0 - o[j]);
            dc[j] = total * f[j];
        }
    }
}
}

multiversion! {
/// GRU forward, first half: r and z of `gates` [r z n] become σ of their pre-activations, and
/// r⊙h_prev goes to `reset_h` (the candidate's product needs it).
pub fn gru_gates(gates: &mut [f32], h_prev: &[f32], reset_h: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact_mut(3 * hidden).zip(h_prev.chunks_exact(hidden)).zip(reset_h.chunks_exact_mut(hidden));
    for ((gates, h_prev), reset_h) in rows {
        let (r, rest) = gates.split_at_mut(hidden);
        let z = &mut rest[..hidden];
        for j in 0..hidden {
            r[j] = fast_sigmoid(r[j]);
            z[j] = fast_sigmoid(z[j]);
            reset_h[j] = r[j] * h_prev[j];
        }
    }
}
}

multiversion! {
/// GRU forward, second half: n = tanh of its pre-activation, h = n + z⊙(h_prev − n).
pub fn gru_state(gates: &mut [f32], h_prev: &[f32], h: &mut [f32], hidden: usize) {
    let rows = gates.chunks_exact_mut(3 * hidden).zip(h_prev.chunks_exact(hidden)).zip(h.chunks_exact_mut(hidden));
    for ((gates, h_prev), h) in rows {
        let (rz, n) = gates.split_at_mut(2 * hidden);
        let z = &rz[hidden..];
        for j in 0..hidden {
            n[j] = fast_tanh(n[j]);
            h[j] = n[j] + z[j] * (h_prev[j] - n[j]);
        }
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
        for j in 0..hidden {
            dz[j] = dh[j] * (h_prev[j] - n[j]) * z[j] * (1.0 - z[j]);
            dn[j] = dh[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j]);
            dh_prev[j] = dh[j] * z[j];
        }
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
        for j in 0..hidden {
            dr[j] = d_reset_h[j] * h_prev[j] * r[j] * (1.0 - r[j]);
            dh_prev[j] += d_reset_h[j] * r[j];
        }
    }
}
}

multiversion! {
/// Vanilla backward: ∂L/∂a = ∂L/∂h ⊙ (1 − h²) for h = tanh(a).
pub fn vanilla_backward(h: &[f32], dh: &[f32], dgates: &mut [f32]) {
    for ((d, &g), &y) in dgates.iter_mut().zip(dh).zip(h) {
        *d = g * (1.0 - y * y);
    }
}
}

/// Mean of gate `index`'s block (`hidden` wide) over every row of `gates` (`gate_count` blocks
/// per row), summed in f64 as the dashboard's gate means always were.
pub fn gate_mean(gates: &[f32], gate_count: usize, index: usize, hidden: usize) -> f64 {
    let mut sum = 0.0f64;
    let mut count = 0usize;
    for row in gates.chunks_exact(gate_count * hidden) {
        sum += row[index * hidden..(index + 1) * hidden]
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>();
        count += hidden;
    }
    sum / count.max(1) as f64
}
