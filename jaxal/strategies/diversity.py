"""Diversity strategies on embeddings: Core-Set (k-center greedy) and k-means.

Both run fully on device with fixed shapes and never build an ``N x N`` distance
matrix: every distance pass is one matrix-vector product per pick, or a chunked
matrix product over ``chunk_size x chunk_size`` blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.strategies import _distances as dist
from jaxal.strategies.base import Array, Needs, Outputs, Strategy

# Core-Set --------------------------------------------------------------------


def kcenter_greedy(
    key: Array,
    embeddings: Array,
    labeled: Array,
    k: int,
    chunk_size: int = 256,
    dtype=jnp.float32,
) -> Array:
    """Greedy k-center (Sener & Savarese, 2018): repeatedly pick the farthest point.

    The centres start as the labeled points. A running vector ``mind[N]`` holds
    every point's squared distance to its nearest centre; each pick is the
    unlabeled point with the largest ``mind`` (ties: lowest index), after which
    ``mind`` is lowered with the distances to the new centre.

    One loop step is one pass over the embeddings (the mat-vec ``x @ x[c]``,
    with ``|x|^2`` computed once) and one fused update of ``mind`` (distance,
    running min, the new centre marked taken) followed by its argmax, which is
    the next pick; the last pick needs no update, so ``k`` picks cost ``k - 1``
    passes.

    If nothing is labeled, the first pick is uniformly random (from ``key``) as in
    Google's ``kcenter_greedy``; otherwise ``key`` is unused.

    Args:
      key: PRNG key (used only when ``labeled`` is all False).
      embeddings: ``[N, D]``.
      labeled: ``bool[N]``.
      k: static number of picks (at most the number of unlabeled points).
      chunk_size: labeled points compared at once when initialising ``mind``.
      dtype: storage type of the embeddings during the picks (float32
        accumulation either way).

    Returns:
      ``int32[k]`` in acquisition order.
    """
    x = jnp.asarray(embeddings).astype(dtype)  # storage: each pick reads it once
    x_sq = dist.sq_norms(x)  # [N] float32, once
    labeled = jnp.asarray(labeled, bool)
    if k == 0:
        return jnp.zeros((0,), jnp.int32)
    mind = dist.min_sq_dist_to_set(x, labeled, chunk_size)  # [N], +inf without labels
    # Taken points (labeled, then picked) hold -1: below every real distance, and
    # min(-1, d) keeps them there.
    mind = jnp.where(labeled, -1.0, mind)
    # With no labels every mind is +inf and a random draw makes the first pick.
    random_first = dist.argmax_first(jax.random.uniform(key, labeled.shape))
    first = jnp.where(jnp.any(labeled), dist.argmax_first(mind), random_first)
    iota = jax.lax.broadcasted_iota(jnp.int32, mind.shape, 0)

    def body(j, state):  # pick j is c; returns pick j + 1
        mind, picks, c = state
        d = dist.sq_dists_to_row(x, x_sq, c)  # the one pass over x
        mind = jnp.where(iota == c, -1.0, jnp.minimum(mind, d))
        return mind, picks.at[j].set(c), dist.argmax_first(mind)

    state = (mind, jnp.zeros((k,), jnp.int32), first)
    _, picks, last = jax.lax.fori_loop(0, k - 1, body, state)
    return picks.at[k - 1].set(last)


EMBEDDING_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def coreset(chunk_size: int = 256, embedding_dtype: str = "float32") -> Strategy:
    """Core-Set acquisition by greedy k-center on the embeddings.

    Args:
      chunk_size: labeled points compared at once when the min-distance vector is
        initialised (blocks of ``max(chunk_size, 1024) x chunk_size`` distances).
      embedding_dtype: ``float32`` or ``bfloat16``, how the embeddings are
        stored while picking. ``bfloat16`` halves the memory each pick streams;
        distances are still accumulated in float32, but of the rounded points
        (8 mantissa bits), so near-ties may be broken differently (measured in
        benchmarks/README.md).
    """
    if embedding_dtype not in EMBEDDING_DTYPES:
        raise ValueError(
            f"coreset: embedding_dtype must be one of {', '.join(EMBEDDING_DTYPES)}, "
            f"got {embedding_dtype!r}"
        )
    dtype = EMBEDDING_DTYPES[embedding_dtype]

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        return kcenter_greedy(key, outputs.embeddings, labeled, k, chunk_size, dtype)

    return Strategy(name="coreset", needs=Needs(embeddings=True), select=select)


# k-means ---------------------------------------------------------------------


def lloyd(
    x: Array,
    weights: Array,
    centroids: Array,
    active: Array,
    num_iters: int,
    chunk_size: int = 256,
):
    """Weighted Lloyd iterations from given centroids, on device.

    Each iteration moves every active centroid to the weighted mean of the points
    assigned to it (an empty centroid stays where it is) and reassigns the points.
    It stops early once the assignment of the weighted points stops changing, which
    gives the same result as running all ``num_iters`` (that state is a fixed point).

    Args:
      x: ``[N, D]``.
      weights: ``float[N]``; 0 for points that must not pull centroids.
      centroids: ``[K, D]`` initial centroids.
      active: ``bool[K]``; inactive centroids are never assigned points.
      num_iters: maximum number of centroid updates.
      chunk_size: rows per block in the assignment step.

    Returns:
      ``(centroids [K, D], assignment int32[N])`` after the last update.
    """
    x = jnp.asarray(x, jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    num = centroids.shape[0]
    labels, _ = dist.nearest_centroid(x, centroids, active, chunk_size)

    def cond(state):
        it, _, _, changed = state
        return (it < num_iters) & changed

    def body(state):
        it, c, labels, _ = state
        sums = jax.ops.segment_sum(weights[:, None] * x, labels, num)  # [K, D]
        counts = jax.ops.segment_sum(weights, labels, num)  # [K]
        c = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], c)
        new_labels, _ = dist.nearest_centroid(x, c, active, chunk_size)
        changed = jnp.any((new_labels != labels) & (weights > 0))
        return it + 1, c, new_labels, changed

    state = (jnp.int32(0), jnp.asarray(centroids, jnp.float32), labels, jnp.bool_(True))
    _, centroids, labels, _ = jax.lax.while_loop(cond, body, state)
    return centroids, labels


def nearest_distinct(x: Array, centroids: Array, avail: Array) -> Array:
    """For each centroid in order, the nearest still-unused available point.

    Greedy in centroid order: if centroid ``j``'s nearest point was already taken by
    an earlier centroid, ``j`` gets its nearest unused one. Ties: lowest index.

    Args:
      x: ``[N, D]``.
      centroids: ``[k, D]``.
      avail: ``bool[N]`` (at least ``k`` true).

    Returns:
      ``int32[k]`` distinct indices.
    """
    x = jnp.asarray(x, jnp.float32)
    x_sq = dist.sq_norms(x)
    centroids = jnp.asarray(centroids, jnp.float32)
    avail = jnp.asarray(avail, bool)
    k = centroids.shape[0]

    def body(j, state):
        avail, picks = state
        c = centroids[j]
        d = jnp.maximum(x_sq + c @ c - 2.0 * (x @ c), 0.0)
        i = dist.argmin_first(jnp.where(avail, d, jnp.inf))
        return avail.at[i].set(False), picks.at[j].set(i)

    return jax.lax.fori_loop(0, k, body, (avail, jnp.zeros((k,), jnp.int32)))[1]


def kmeans_select(
    key: Array,
    embeddings: Array,
    labeled: Array,
    k: int,
    num_iters: int = 20,
    chunk_size: int = 256,
) -> Array:
    """k-means on the unlabeled embeddings; pick the unlabeled point nearest each centroid.

    k-means++ seeding over the unlabeled points (first centre uniform, then
    ``∝ D^2``) from the uniforms ``jax.random.uniform(key, (k,))`` (see
    :func:`_distances.sample_by_weight`), then :func:`lloyd` with labeled points
    weighted 0, then :func:`nearest_distinct`.

    Returns:
      ``int32[k]``, one point per centroid in centroid order.
    """
    x = jnp.asarray(embeddings, jnp.float32)
    x_sq = dist.sq_norms(x)
    unlabeled = ~jnp.asarray(labeled, bool)
    uniforms = jax.random.uniform(key, (k,))
    seeds = dist.d2_sampling(lambda i: dist.sq_dists_to_row(x, x_sq, i), unlabeled, uniforms)
    active = jnp.ones((k,), bool)
    weights = unlabeled.astype(jnp.float32)
    centroids, _ = lloyd(x, weights, x[seeds], active, num_iters, chunk_size)
    return nearest_distinct(x, centroids, unlabeled)


def kmeans(num_iters: int = 20, chunk_size: int = 256) -> Strategy:
    """k-means sampling: cluster the unlabeled pool into k groups, take each group's centre.

    Args:
      num_iters: maximum Lloyd iterations (stops early at convergence).
      chunk_size: rows per block in the assignment step (memory ``chunk x k``).
    """

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        return kmeans_select(key, outputs.embeddings, labeled, k, num_iters, chunk_size)

    return Strategy(name="kmeans", needs=Needs(embeddings=True), select=select)
