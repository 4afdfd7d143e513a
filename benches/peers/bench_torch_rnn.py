#!/usr/bin/env python3
"""CPU reference: recurrent-net training steps/s in PyTorch (eager), the work of one gradlab
RNN training step (src/rnn): the adding problem, hidden 64, batch 64, Adam(lr 0.003),
gradient clipping at global norm 1.0, a fresh batch of sequences every step.

Cells, written by hand with gradlab's equations (src/rnn/forward.rs), gates packed side by
side so a step is one product h @ U (x @ W for all steps is one product up front):
  vanilla  h' = tanh(x W + h U + b)
  gru      r, z = sigmoid(x W_rz + h U_rz + b_rz); n = tanh(x W_n + (r*h) U_n + b_n)
           h' = (1 - z) n + z h
           (torch.nn.GRU differs: it computes r * (h U_n + b_hn), so it is not used)
  lstm     i, f, o = sigmoid(.), g = tanh(.); c' = f c + i g; h' = o tanh(c')
           (the same as torch.nn.LSTM up to its second bias; hand-written anyway, so the
           per-step hidden states can be read)
Head: y = h_T W_out + b_out (1 output), loss: mean squared error against the sum of the two
marked values.
"gn" variant (gradlab's metrics on): per step also reads ||dL/dh_t|| for every t (retain_grad)
and the mean of the shown gate at every t (LSTM forget, GRU update), pulled to Python floats.

Usage: python bench_torch_rnn.py [--threads 1] [--reps 3] [--seconds 0.5] [--lengths 50,200]
       [--cells vanilla,gru,lstm] [--json OUT]
"""
import argparse, statistics, time, json
import torch

p = argparse.ArgumentParser()
# One thread: these products are 64x64x256; with two, OpenMP's hand-offs cost more than they
# save, and when the other core is busy a step took 60x longer (measured on the 2-core box).
p.add_argument("--threads", type=int, default=1)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--seconds", type=float, default=0.5, help="wall time of one rep")
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--lengths", default="50,200")
p.add_argument("--cells", default="vanilla,gru,lstm")
p.add_argument("--json", default=None)
args = p.parse_args()

torch.set_num_threads(args.threads)
# gradlab flushes subnormals during backprop through time and XLA's CPU backend does by
# default; without it the vanilla/GRU gradient's subnormal tail makes T = 200 ~10x slower.
torch.set_flush_denormal(True)
torch.manual_seed(0)
B, DIN, H, LR, CLIP = 64, 2, 64, 0.003, 1.0
GATES = {"vanilla": 1, "gru": 3, "lstm": 4}


def adding_batch(T):
    """Values in U[0, 1] with two marked steps (one in each half); target: their sum."""
    values = torch.rand(T, B)
    first = torch.randint(0, T // 2, (B,))
    second = torch.randint(T // 2, T, (B,))
    marks = torch.zeros(T, B)
    rows = torch.arange(B)
    marks[first, rows] = 1.0
    marks[second, rows] = 1.0
    target = (values * marks).sum(0, keepdim=True).T
    return torch.stack([values, marks], dim=2), target


def make_params(cell):
    g = GATES[cell]
    w = (torch.randn(DIN, g * H) / DIN ** 0.5).requires_grad_()
    u = torch.cat([torch.linalg.qr(torch.randn(H, H))[0] for _ in range(g)], dim=1).requires_grad_()
    b = torch.zeros(g * H)
    if cell == "lstm":
        b[H:2 * H] = 1.0  # forget bias
    b.requires_grad_()
    w_out = (torch.randn(H, 1) / H ** 0.5).requires_grad_()
    b_out = torch.zeros(1).requires_grad_()
    return [w, u, b, w_out, b_out]


def forward(cell, params, x, keep):
    w, u, b, w_out, b_out = params
    T = x.shape[0]
    # unbind, not xw[t]: each indexing op's backward writes a zero tensor of xw's full size,
    # which made the step quadratic in T.
    xw = (x.reshape(T * B, DIN) @ w + b).reshape(T, B, -1).unbind(0)
    h = torch.zeros(B, H)
    c = torch.zeros(B, H)
    hs, shown = [], []
    for t in range(T):
        if cell == "vanilla":
            h = torch.tanh(xw[t] + h @ u)
        elif cell == "gru":
            rz = torch.sigmoid(xw[t][:, :2 * H] + h @ u[:, :2 * H])
            r, z = rz[:, :H], rz[:, H:]
            n = torch.tanh(xw[t][:, 2 * H:] + (r * h) @ u[:, 2 * H:])
            h = n + z * (h - n)
            shown.append(z)
        else:
            a = xw[t] + h @ u
            i = torch.sigmoid(a[:, :H])
            f = torch.sigmoid(a[:, H:2 * H])
            g = torch.tanh(a[:, 2 * H:3 * H])
            o = torch.sigmoid(a[:, 3 * H:])
            c = f * c + i * g
            h = o * torch.tanh(c)
            shown.append(f)
        if keep:
            h.retain_grad()
            hs.append(h)
    return h @ w_out + b_out, hs, shown


def bench(cell, T, gn):
    params = make_params(cell)
    opt = torch.optim.Adam(params, lr=LR)

    def step():
        x, y = adding_batch(T)
        opt.zero_grad(set_to_none=True)
        out, hs, shown = forward(cell, params, x, gn)
        loss = torch.mean((out - y) ** 2)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        if gn:
            torch.stack([torch.linalg.vector_norm(h.grad) for h in hs]).tolist()
            if shown:
                torch.stack([s.detach().mean() for s in shown]).tolist()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    step().item()
    per_step = time.perf_counter() - t0
    steps = max(3, int(args.seconds / max(per_step, 1e-6)))
    rates = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        loss.item()
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates), rates, float(loss.detach())


results = []
print(f"torch {torch.__version__} threads={torch.get_num_threads()}")
print(f"{'cell':8s} {'T':>4s} {'gn':>3s} {'steps/s':>9s}  (reps)  loss")
for T in [int(t) for t in args.lengths.split(",")]:
    for cell in args.cells.split(","):
        for gn in (False, True):
            med, rates, loss = bench(cell, T, gn)
            print(f"{cell:8s} {T:4d} {'y' if gn else 'n':>3s} {med:9.1f}  ({', '.join(f'{r:.1f}' for r in rates)})  {loss:.4f}", flush=True)
            results.append(dict(fw="torch", arch=cell, T=T, gn=gn, steps_per_s=med, reps=rates))
if args.json:
    json.dump(results, open(args.json, "w"), indent=1)
