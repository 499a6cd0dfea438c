"""Model outputs for acquisition: one chunked on-device pass over the pool.

Builds ``predict(variables, x, key) -> Outputs`` computing only what the
strategy needs (``Needs``): deterministic probabilities, penultimate
embeddings, and ``[T, N, C]`` MC-dropout samples in one of two modes:

* ``full``: T stochastic passes through the whole network (``vmap`` over keys);
* ``head``: the deterministic backbone once, T passes through the dropout head
  (exact when all dropout lives in the head; T× cheaper on the backbone).

For an ensemble model (``model.members``), the samples are the M members'
deterministic predictions ``[M, N, C]`` instead.

Consistent MC dropout (``consistent=True``, or a strategy whose
``needs.consistent`` is set, e.g. BatchBALD): sample t is one network draw for
the whole pool -- its key is drawn once per call (not per chunk) and every row
sees the same dropout mask (:func:`jaxal.models.outputs.sample_logits`).
Otherwise (the default) each chunk folds its index into the key and each row
gets its own masks, which is fine for per-point scores (BALD, ...).

Inside :func:`jaxal.parallel.over_seeds` with ``shard_data=True`` each chunk's
rows are split over the mesh's ``data`` axis (devices not needed for seeds).

MC passes run the network in eval mode with dropout on (``train=False`` plus a
dropout key), so batch-norm statistics are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxal.models.base import Model
from jaxal.models.outputs import sample_logits
from jaxal.parallel import shard_pool_rows
from jaxal.strategies.base import Needs, Outputs

Array = jax.Array


def map_chunks(fn: Callable, x: Array, chunk: int) -> object:
    """``fn(x_chunk, chunk_index)`` over ``x [M, ...]`` in static chunks (``lax.map``).

    The input is zero-padded to a multiple of ``chunk``; outputs (leading axis =
    the chunk's rows) are cut back to ``M`` rows. Peak memory: one chunk.
    """
    m = x.shape[0]
    nb = max(1, math.ceil(m / chunk))
    xp = jnp.pad(x, [(0, nb * chunk - m)] + [(0, 0)] * (x.ndim - 1))
    out = jax.lax.map(
        lambda a: fn(a[0], a[1]), (xp.reshape((nb, chunk) + x.shape[1:]), jnp.arange(nb))
    )
    return jax.tree.map(lambda a: a.reshape((nb * chunk,) + a.shape[2:])[:m], out)


def make_predict(
    model: Model,
    needs: Needs,
    *,
    samples: int,
    mode: str,
    chunk: int,
    consistent: bool = False,
) -> Callable:
    """``predict(variables, x, key) -> Outputs`` for the outputs in ``needs``.

    Args:
      model: the model adapter.
      needs: which outputs to compute.
      samples: T, MC-dropout passes (used when ``needs.samples``).
      mode: ``"full"`` or ``"head"``.
      chunk: pool rows per chunk.
      consistent: consistent MC dropout for every sample-based strategy
        (``mc.consistent``); it is used anyway when ``needs.consistent``.
    """
    consistent = bool(consistent or needs.consistent)

    def one_chunk(variables, key, xb: Array, ci: Array):
        xb = shard_pool_rows(xb)  # a chunk's rows split over the mesh's data axis, if any
        probs = emb = None
        if needs.embeddings or (needs.probs and not needs.samples):
            logits, emb, _ = model.apply(variables, xb, train=False)
            probs = jax.nn.softmax(logits.astype(jnp.float32))
        if needs.samples:
            # Consistent: the same T keys (one network draw each) for every chunk.
            keys = jax.random.split(key if consistent else jax.random.fold_in(key, ci), samples)
            logits_t = sample_logits(model, variables, xb, keys, mode, consistent=consistent)
            probs = jnp.swapaxes(jax.nn.softmax(logits_t.astype(jnp.float32)), 0, 1)  # [B,T,C]
        return Outputs(
            probs=probs if needs.probs or needs.samples else None,
            embeddings=emb if needs.embeddings else None,
        )

    def predict(variables, x: Array, key: Array) -> Outputs:
        out = map_chunks(lambda xb, ci: one_chunk(variables, key, xb, ci), x, chunk)
        if needs.samples:
            out = out._replace(probs=jnp.swapaxes(out.probs, 0, 1))  # [T, N, C]
        return out

    return predict
