"""One training step (forward, backward, Adam update) of jaxal's conv models:
``model.conv = xla`` (lax.conv) vs ``im2col`` / ``shifted`` (jaxal.models.conv)
vs PyTorch, same architecture, batch and optimizer, each in its own process
(issue 9).

The jaxal step is the one a run uses (``jaxal.train.make_fit_parts(...).step``,
jitted, as the host step loop calls it). Columns: ``xla, XLA defaults`` is
``lax.conv`` with XLA:CPU's own settings (YNNPACK convolutions,
``JAXAL_XLA_CPU=default``); ``xla, glibc malloc`` leaves glibc's malloc
defaults (``JAXAL_MALLOC=system``); ``xla``, ``im2col`` and ``shifted`` run
with what ``import jaxal`` sets (jaxal/memory.py, jaxal/xla_cpu.py).
Reported: min over ``--repeats`` timed blocks of ``--steps`` steps, compile
time separately, and the FLOP bound: XLA's cost analysis of the step divided by
this CPU's float32 matmul peak, measured in the same run (best of a jitted
1024^3 dot). PyTorch runs with ``--torch_threads`` threads (the peer venv of
benchmarks/README.md: ``--torch_python``).

    .venv/bin/python benchmarks/train_step.py --torch_python /tmp/peers-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# name -> (jaxal model, params, image shape, batch)
WORKLOADS = {
    "cnn": ("cnn", {}, (28, 28, 1), 64),
    "resnet18": ("resnet18", {"width": 64}, (32, 32, 3), 32),
    "vgg11": ("vgg11", {"width": 64}, (32, 32, 3), 32),
}


def build_step(workload: str, conv: str, batch: int | None = None):
    """jaxal's jitted training step of ``workload`` and a ready first carry.

    Returns ``(step, carry, args)``: call ``step(carry, i, *args)`` (``i`` the
    batch index in the epoch, 0..3) to take one step on random inputs.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxal import models
    from jaxal import train as train_lib
    from jaxal.settings import TrainSettings

    name, params, image, default_batch = WORKLOADS[workload]
    batch = batch or default_batch
    model = models.get_model(name, 10, conv=conv, **params)
    rng = np.random.default_rng(0)
    n = batch * 4
    x = jnp.asarray(rng.standard_normal((n, *image)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, n), jnp.int32)
    data = train_lib.Data(x, y, x[:0], y[:0], x[:0], y[:0])
    ts = TrainSettings(optimizer="adam", learning_rate=1e-3, batch_size=batch, epochs=1)
    parts = train_lib.make_fit_parts(model, ts)
    key = jax.random.key(0)
    variables = model.init(key, x[:1])
    order, num = jnp.arange(n, dtype=jnp.int32), jnp.int32(n)
    carry = parts.start(variables, order, num, key, data)
    carry = parts.begin_epoch(carry, order, num, key, data)
    return jax.jit(parts.step), carry, (order, num, key, data)


def jaxal_step(workload: str, conv: str, steps: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    step, carry, args = build_step(workload, conv)
    t0 = time.perf_counter()
    compiled = step.lower(carry, jnp.int32(0), *args).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", 0.0))
    carry = jax.block_until_ready(step(carry, jnp.int32(0), *args))
    best, _ = time_steps(step, carry, args, steps, repeats)
    return {"step_ms": 1e3 * best, "compile_s": compile_s, "gflop": flops / 1e9}


def time_steps(step, carry, args: tuple, steps: int, repeats: int):
    """Seconds per step: the best of ``repeats`` blocks of ``steps`` steps.

    Returns ``(seconds, carry)``, the carry after the last step."""
    import jax
    import jax.numpy as jnp

    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            carry = step(carry, jnp.int32(i % 4), *args)
        jax.block_until_ready(carry)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best, carry


def matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    """This CPU's float32 matmul rate in FLOP/s: the best of ``repeats`` n^3 dots."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(dot(a, a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


TORCH = r'''
import json, sys, time, torch, torch.nn as nn
workload = sys.argv[1]
steps, repeats, threads = (int(a) for a in sys.argv[2:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(4608, 128), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(128, 10))
def vgg11():
    layers, c = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))
class Block(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, s, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.sc = nn.Sequential()
        if s != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.sc(x))
def resnet18():
    layers, c = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for i, w in enumerate((64, 128, 256, 512)):
        for j in range(2):
            layers.append(Block(c, w, 2 if i > 0 and j == 0 else 1)); c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))
SHAPES = {"cnn": ((1, 28, 28), 64), "resnet18": ((3, 32, 32), 32), "vgg11": ((3, 32, 32), 32)}
shape, batch = SHAPES[workload]
model = {"cnn": cnn, "resnet18": resnet18, "vgg11": vgg11}[workload]().train()
opt = torch.optim.Adam(model.parameters(), 1e-3)
x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
def step():
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward(); opt.step()
for _ in range(3):
    step()
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    best = min(best, (time.perf_counter() - t0) / steps)
print("RESULT " + json.dumps({"step_ms": 1e3 * best}))
'''


def _run(cmd, env=None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[7:])


# (column, model.conv, environment): XLA's / glibc's defaults vs what import jaxal sets
JAXAL_RUNS = [
    ("xla, XLA defaults", "xla", {"JAXAL_XLA_CPU": "default"}),
    ("xla, glibc malloc", "xla", {"JAXAL_MALLOC": "system"}),
    ("xla", "xla", {}),
    ("im2col", "im2col", {}),
    ("shifted", "shifted", {}),
]
CLEAR = ("JAXAL_XLA_CPU", "JAXAL_MALLOC")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="cnn,resnet18,vgg11")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--torch_python", default="", help="python of the peer venv (with torch)")
    p.add_argument("--torch_threads", default="1,2")
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "CONV"), help=argparse.SUPPRESS)
    p.add_argument("--peak_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peak_child:
        print("RESULT " + json.dumps({"flops": matmul_peak()}))
        return
    if args.child:
        res = jaxal_step(*args.child, args.steps, args.repeats)
        print("RESULT " + json.dumps(res))
        return
    peak = _run([sys.executable, __file__, "--peak_child"])["flops"]
    print(f"matmul peak (1024^3 f32 dot, best of 20): {peak / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    threads = [int(t) for t in args.torch_threads.split(",") if t]
    for w in args.workloads.split(","):
        steps = args.steps if w == "cnn" else max(2, args.steps // 4)
        row = {"workload": w, "batch": WORKLOADS[w][3], "runs": {}}
        for label, conv, extra in JAXAL_RUNS:
            env = {k: v for k, v in os.environ.items() if k not in CLEAR} | extra
            cmd = [sys.executable, __file__, "--child", w, conv, "--steps", str(steps)]
            res = _run(cmd + ["--repeats", str(args.repeats)], env)
            row["runs"][label], row["gflop"] = res["step_ms"], res["gflop"]
            print(f"{w:9s} jaxal {label:18s} {res['step_ms']:8.1f} ms/step "
                  f"(compile {res['compile_s']:.1f} s, {res['gflop']:.2f} GFLOP)", flush=True)
        if args.torch_python and os.path.exists(args.torch_python):
            for t in threads:
                cmd = [args.torch_python, "-c", TORCH, w, str(steps), str(args.repeats), str(t)]
                ms = _run(cmd)["step_ms"]
                row["runs"][f"PyTorch {t} thr"] = ms
                print(f"{w:9s} PyTorch {t} thread(s)     {ms:8.1f} ms/step", flush=True)
        rows.append(row)
    cols = list(rows[0]["runs"])
    print()
    print(f"| model (batch) | FLOP bound at {peak / 1e9:.0f} GFLOP/s | " + " | ".join(cols)
          + " | xla / FLOP bound |")
    print("|---" * (len(cols) + 3) + "|")
    for r in rows:
        bound = 1e3 * r["gflop"] * 1e9 / peak
        cells = " | ".join(f"{r['runs'][c]:.1f} ms" for c in cols)
        print(f"| {r['workload']} ({r['batch']}) | {bound:.1f} ms | {cells} | "
              f"{r['runs']['xla'] / bound:.1f} |")


if __name__ == "__main__":
    main()
