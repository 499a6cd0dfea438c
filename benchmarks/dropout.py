"""Dropout masks in MC-dropout scoring: flax's ``nn.Dropout`` vs jaxal's packed
``Dropout`` (issue 9, item 5), in one process on one input.

Workload: the BALD workload of ``benchmarks/acquisition.py`` -- the BALD-paper
CNN (``conv_dropout`` 0.25 after the pool, ``dropout`` 0.5 after Dense(128)),
10,000 28x28 images, T = 20 MC passes, "head" mode (backbone once, T head
passes), chunks of 100, BALD top-1,000 -- jitted and compiled ahead of time:

* ``flax``: the CNN head with ``flax.linen.Dropout`` (one 32-bit uniform per
  element), i.e. jaxal before packed masks;
* ``jaxal``: the CNN as shipped (:mod:`jaxal.models.dropout`: 2 bits per
  element at rate 0.25, 1 bit at 0.5);
* ``floor``: the dropout layers replaced by a multiply with one random scalar
  per pass -- what the T head passes cost without masks. (With no randomness
  at all XLA computes the T identical passes once, which is no floor.)
* ``masks_flax`` / ``masks_jaxal``: the head's masks alone (both layers, every
  chunk and pass), ``jax.random.bernoulli`` vs ``keep_mask``.

Median of ``--repeats`` after a warm-up. ::

    .venv/bin/python benchmarks/dropout.py
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxal import models, strategies
from jaxal.models.dropout import keep_mask
from jaxal.predict import make_predict

# the module (``jaxal.models.cnn`` the attribute is the factory function)
cnn_module = importlib.import_module("jaxal.models.cnn")


def timed(fn, repeats):
    jax.block_until_ready(fn())
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        runs.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(runs), "min_s": min(runs)}


class ScaleNoise(nn.Module):
    """The floor: each pass scales its input by one random scalar (a multiply
    per element like a mask, one random word per layer), so XLA cannot merge
    the T passes as it would with no randomness at all."""

    rate: float

    @nn.compact
    def __call__(self, x, deterministic):
        if deterministic:
            return x
        u = jax.random.uniform(self.make_rng("dropout"), (), x.dtype)
        return x * (1 + 1e-3 * u)


def scoring(images, t, chunk, k, layer):
    with mock.patch.object(cnn_module, "Dropout", layer):
        model = models.get_model("cnn", 10, dropout=0.5, conv_dropout=0.25)
        variables = model.init(jax.random.key(0), images[:1])
        s = strategies.get("bald")
        predict = make_predict(model, s.needs, samples=t, mode="head", chunk=chunk)
        labeled = jnp.zeros(len(images), bool)

        def fn(v, x, lab, key):
            return s.select(key, predict(v, x, key), lab, k)

        args = (variables, images, labeled, jax.random.key(1))
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        compile_s = time.perf_counter() - t0
    return (lambda: compiled(*args)), compile_s


def masks(n, t, chunk, flax_masks):
    shapes = [((chunk, 12, 12, 32), 0.25), ((chunk, 128), 0.5)]

    def fn(key):
        def one(carry, k):
            total = carry
            for i, (shape, rate) in enumerate(shapes):
                kk = jax.random.fold_in(k, i)
                if flax_masks:
                    m = jax.random.bernoulli(kk, 1 - rate, shape)
                else:
                    m = keep_mask(kk, rate, shape)
                total = total + m.sum(dtype=jnp.int32)
            return total, None

        keys = jax.random.split(key, (n // chunk) * t)
        return jax.lax.scan(one, jnp.int32(0), keys)[0]

    compiled = jax.jit(fn).lower(jax.random.key(2)).compile()
    return lambda: compiled(jax.random.key(2))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--t", type=int, default=20)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--k", type=int, default=1_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="n=500, t=4, one repeat")
    a = p.parse_args()
    if a.quick:
        a.n, a.t, a.k, a.repeats = 500, 4, 50, 1
    images = jnp.asarray(np.random.default_rng(0).normal(size=(a.n, 28, 28, 1)).astype(np.float32))
    rows = {}
    for name, layer in [("flax", nn.Dropout), ("jaxal", cnn_module.Dropout), ("floor", ScaleNoise)]:
        fn, compile_s = scoring(images, a.t, a.chunk, a.k, layer)
        rows[name] = {**timed(fn, a.repeats), "compile_s": compile_s}
        print(name, json.dumps(rows[name]), flush=True)
    for name, flax_masks in [("masks_flax", True), ("masks_jaxal", False)]:
        rows[name] = timed(masks(a.n, a.t, a.chunk, flax_masks), a.repeats)
        print(name, json.dumps(rows[name]), flush=True)
    med = {k: v["median_s"] for k, v in rows.items()}
    cpu = platform.processor() or platform.machine()
    print(
        f"\nBALD head-mode scoring, CNN, N={a.n}, T={a.t} on {cpu}"
        f" ({jax.devices()[0].device_kind}, {jax.local_device_count()} device):\n"
        f"  flax nn.Dropout {med['flax']:.2f} s, jaxal Dropout {med['jaxal']:.2f} s"
        f" ({med['flax'] / med['jaxal']:.1f}x), floor (no masks) {med['floor']:.2f} s\n"
        f"  masks alone: flax {med['masks_flax']:.2f} s, jaxal {med['masks_jaxal']:.2f} s"
        f" ({med['masks_flax'] / med['masks_jaxal']:.1f}x)"
    )


if __name__ == "__main__":
    main()
