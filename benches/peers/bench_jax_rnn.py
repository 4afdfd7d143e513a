#!/usr/bin/env python3
"""CPU reference #2: the same recurrent training step as bench_torch_rnn.py in JAX (jax[cpu]),
the whole step (batch generation, unroll by lax.scan, backprop, clipping, Adam) jit-compiled.

Cells: gradlab's equations (src/rnn/forward.rs), written by hand, gates packed side by side:
  vanilla  h' = tanh(x W + h U + b)
  gru      r, z = sigmoid(x W_rz + h U_rz + b_rz); n = tanh(x W_n + (r*h) U_n + b_n)
           h' = (1 - z) n + z h
  lstm     i, f, o = sigmoid(.), g = tanh(.); c' = f c + i g; h' = o tanh(c')
Adding problem, hidden 64, batch 64, fresh sequences every step, MSE, global-norm clipping at
1.0, Adam(lr 0.003, 0.9, 0.999, 1e-8) written out (no optax dependency).
"gn" variant (gradlab's metrics on): dL/dh_t via zero "probe" tensors added to every h_t (the
gradient w.r.t. the probe is the gradient w.r.t. h_t), per-step norms and shown-gate means
computed inside the jitted step and pulled to host (np.asarray) every step.

Usage: python bench_jax_rnn.py [--reps 3] [--seconds 0.5] [--lengths 50,200]
       [--cells vanilla,gru,lstm] [--json OUT]
(threads: XLA CPU uses all cores)
"""
import argparse, statistics, time, json
import numpy as np
import jax, jax.numpy as jnp

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=3)
p.add_argument("--seconds", type=float, default=0.5, help="wall time of one rep")
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--lengths", default="50,200")
p.add_argument("--cells", default="vanilla,gru,lstm")
p.add_argument("--json", default=None)
args = p.parse_args()
B, DIN, H, LR, CLIP = 64, 2, 64, 0.003, 1.0
B1, B2, EPS = 0.9, 0.999, 1e-8
GATES = {"vanilla": 1, "gru": 3, "lstm": 4}


def make_params(key, cell):
    g = GATES[cell]
    k1, k2, k3 = jax.random.split(key, 3)
    w = jax.random.normal(k1, (DIN, g * H)) / DIN ** 0.5
    u = jnp.concatenate([jnp.linalg.qr(jax.random.normal(k, (H, H)))[0]
                         for k in jax.random.split(k2, g)], axis=1)
    b = jnp.zeros(g * H)
    if cell == "lstm":
        b = b.at[H:2 * H].set(1.0)  # forget bias
    w_out = jax.random.normal(k3, (H, 1)) / H ** 0.5
    return dict(w=w, u=u, b=b, w_out=w_out, b_out=jnp.zeros(1))


def adding_batch(key, T):
    kv, k1, k2 = jax.random.split(key, 3)
    values = jax.random.uniform(kv, (T, B))
    first = jax.random.randint(k1, (B,), 0, T // 2)
    second = jax.random.randint(k2, (B,), T // 2, T)
    steps = jnp.arange(T)[:, None]
    marks = ((steps == first[None]) | (steps == second[None])).astype(jnp.float32)
    target = jnp.sum(values * marks, axis=0)[:, None]
    return jnp.stack([values, marks], axis=2), target


def make_step(cell, T, gn):
    def loss_fn(ps, probes, x, y):
        xw = (x.reshape(T * B, DIN) @ ps["w"] + ps["b"]).reshape(T, B, -1)
        u = ps["u"]

        def body(carry, inputs):
            h, c = carry
            a, probe = inputs
            if cell == "vanilla":
                h = jnp.tanh(a + h @ u)
                shown = jnp.zeros(())
            elif cell == "gru":
                rz = jax.nn.sigmoid(a[:, :2 * H] + h @ u[:, :2 * H])
                r, z = rz[:, :H], rz[:, H:]
                n = jnp.tanh(a[:, 2 * H:] + (r * h) @ u[:, 2 * H:])
                h = n + z * (h - n)
                shown = jnp.mean(z)
            else:
                a = a + h @ u
                i = jax.nn.sigmoid(a[:, :H])
                f = jax.nn.sigmoid(a[:, H:2 * H])
                g = jnp.tanh(a[:, 2 * H:3 * H])
                o = jax.nn.sigmoid(a[:, 3 * H:])
                c = f * c + i * g
                h = o * jnp.tanh(c)
                shown = jnp.mean(f)
            h = h + probe
            return (h, c), shown

        zeros = jnp.zeros((B, H))
        (h, _), shown = jax.lax.scan(body, (zeros, zeros), (xw, probes))
        out = h @ ps["w_out"] + ps["b_out"]
        return jnp.mean((out - y) ** 2), shown

    def step(ps, m, v, t, key):
        key, sub = jax.random.split(key)
        x, y = adding_batch(sub, T)
        probes = jnp.zeros((T, B, H))
        if gn:
            (loss, shown), (gp, gh) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
                ps, probes, x, y)
            metrics = (jnp.sqrt(jnp.sum(gh * gh, axis=(1, 2))), shown)
        else:
            (loss, _), gp = jax.value_and_grad(loss_fn, has_aux=True)(ps, probes, x, y)
            metrics = None
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(gp)))
        scale = jnp.minimum(1.0, CLIP / (norm + 1e-12))
        gp = jax.tree_util.tree_map(lambda g: g * scale, gp)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m_, g: B1 * m_ + (1 - B1) * g, m, gp)
        v = jax.tree_util.tree_map(lambda v_, g: B2 * v_ + (1 - B2) * g * g, v, gp)
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        ps = jax.tree_util.tree_map(
            lambda p_, m_, v_: p_ - LR * (m_ / c1) / (jnp.sqrt(v_ / c2) + EPS), ps, m, v)
        return ps, m, v, t, key, loss, metrics

    return jax.jit(step)


def bench(cell, T, gn):
    ps = make_params(jax.random.PRNGKey(0), cell)
    m = jax.tree_util.tree_map(jnp.zeros_like, ps)
    v = jax.tree_util.tree_map(jnp.zeros_like, ps)
    t = jnp.zeros((), jnp.float32)
    key = jax.random.PRNGKey(1)
    step = make_step(cell, T, gn)
    state = (ps, m, v, t, key)

    def run():
        nonlocal state
        ps, m, v, t, key, loss, metrics = step(*state)
        state = (ps, m, v, t, key)
        if gn:
            np.asarray(metrics[0]); np.asarray(metrics[1])
        return loss

    t0 = time.perf_counter()
    jax.block_until_ready(run())
    compile_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        run()
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    per_step = time.perf_counter() - t0
    steps = max(3, int(args.seconds / max(per_step, 1e-6)))
    rates = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = run()
        jax.block_until_ready(state)
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates), rates, float(loss), compile_s


print(f"jax {jax.__version__} devices={jax.devices()}")
print(f"{'cell':8s} {'T':>4s} {'gn':>3s} {'steps/s':>9s}  (reps)  loss  compile_s")
results = []
for T in [int(t) for t in args.lengths.split(",")]:
    for cell in args.cells.split(","):
        for gn in (False, True):
            med, rates, loss, cs = bench(cell, T, gn)
            print(f"{cell:8s} {T:4d} {'y' if gn else 'n':>3s} {med:9.1f}  ({', '.join(f'{r:.1f}' for r in rates)})  {loss:.4f}  {cs:.1f}", flush=True)
            results.append(dict(fw="jax", arch=cell, T=T, gn=gn, steps_per_s=med, reps=rates))
if args.json:
    json.dump(results, open(args.json, "w"), indent=1)
