"""Core-Set's k-center greedy against the streaming bound, and bfloat16 storage
(issue 9, item 5), in one process on the inputs of ``benchmarks/acquisition.py``
(embeddings ``[50000, 512]``: ReLU of class centres plus noise, numpy seed 0;
1,000 labeled points; k = 1,000 picks).

* bound: k matrix-vector passes over the embeddings and nothing else
  (``lax.fori_loop`` of ``x @ x[c]``, ``c`` from the previous product, so none
  can be skipped) -- what any k-center greedy must at least read;
* jaxal ``coreset`` (float32 storage) and ``coreset(embedding_dtype=bfloat16)``,
  jitted, compile apart; the bf16 bound (the same passes over bf16 storage);
* picks: how many of the bf16 picks are float32's, and where the orders part.

Median of ``--repeats`` after a warm-up. ::

    .venv/bin/python benchmarks/coreset.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import strategies
from jaxal.strategies.base import Outputs


def inputs(n: int, d: int, labeled: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = np.maximum(centres[y] + 0.5 * rng.normal(size=(n, d)).astype(np.float32), 0.0)
    mask = np.zeros(n, bool)
    mask[rng.choice(n, labeled, replace=False)] = True
    return x.astype(np.float32), mask


def bound_fn(k: int):
    def passes(x):
        def body(_, c):
            v = jnp.matmul(x, x[c], preferred_element_type=jnp.float32)
            return (jnp.abs(v[0]).astype(jnp.int32) + c) % x.shape[0]

        return jax.lax.fori_loop(0, k, body, jnp.int32(0))

    return jax.jit(passes)


def timed(f, *args, repeats: int):
    t0 = time.perf_counter()
    compiled = (
        jax.jit(f).lower(*args).compile() if not hasattr(f, "lower") else f.lower(*args).compile()
    )
    compile_s = time.perf_counter() - t0
    out = jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), compile_s, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--labeled", type=int, default=1000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    x_np, mask_np = inputs(args.n, args.d, args.labeled)
    x, mask = jnp.asarray(x_np), jnp.asarray(mask_np)
    key = jax.random.key(0)
    rows = {}
    for dtype in ("float32", "bfloat16"):
        xs = x.astype(dtype)
        t, c, _ = timed(bound_fn(args.k), xs, repeats=args.repeats)
        rows[f"bound {dtype}"] = (t, c)
    picks = {}
    for dtype in ("float32", "bfloat16"):
        s = strategies.get("coreset", embedding_dtype=dtype)
        sel = jax.jit(lambda kk, e, m, s=s: s.select(kk, Outputs(embeddings=e), m, args.k))
        t, c, out = timed(sel, key, x, mask, repeats=args.repeats)
        rows[f"jaxal coreset {dtype}"] = (t, c)
        picks[dtype] = np.asarray(out)
    f32, b16 = picks["float32"], picks["bfloat16"]
    first_diff = int(np.argmax(f32 != b16)) if (f32 != b16).any() else None
    overlap = len(set(f32.tolist()) & set(b16.tolist())) / args.k
    print(f"N={args.n} D={args.d} labeled={args.labeled} k={args.k}, median of {args.repeats}")
    print("| run | seconds | ms per pick | / float32 bound | compile (s) |")
    print("|---|---:|---:|---:|---:|")
    b = rows["bound float32"][0]
    for name, (t, c) in rows.items():
        print(f"| {name} | {t:.3f} | {1e3 * t / args.k:.2f} | {t / b:.2f} | {c:.2f} |")
    print(
        f"bfloat16 vs float32 picks: {overlap:.1%} of the picks shared; orders equal up to "
        f"pick {first_diff if first_diff is not None else args.k} (0-based first difference)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "overlap": overlap, "first_diff": first_diff}, f)


if __name__ == "__main__":
    main()
