"""Chunked squared-distance kernels shared by the diversity strategies.

All distances are squared Euclidean, computed with the expansion
``|a|^2 + |b|^2 - 2 a.b`` (one matrix product) and clamped at 0. No function
here builds an ``N x N`` matrix: beyond ``O(N)`` vectors, blocks are
``chunk_size x chunk_size`` (``max(chunk_size, 1024) x chunk_size`` against a
set, ``chunk_size x K`` against K centroids).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

# Rows of the pool per block when measuring distances to a set of points: fewer,
# larger matrix products (Core-Set's 50k x 1,000 labeled initialisation: 0.33 ->
# 0.28 s CPU time on the 2-core machine; results bit-identical).
SET_ROW_BLOCK = 1024


def sq_norms(x: Array) -> Array:
    """Row squared norms ``|x_i|^2`` in float32 (of the values as stored, e.g.
    bfloat16). ``[N, D] -> [N]``."""
    x = x.astype(jnp.float32)
    return jnp.sum(x * x, axis=-1)


def pairwise_sq_dists(a: Array, b: Array, a_sq: Array | None = None, b_sq: Array | None = None):
    """``|a_i - b_j|^2`` for all pairs, clamped at 0. ``[n, D], [m, D] -> [n, m]``."""
    a_sq = sq_norms(a) if a_sq is None else a_sq
    b_sq = sq_norms(b) if b_sq is None else b_sq
    ab = jnp.matmul(a, b.T, preferred_element_type=jnp.float32)
    return jnp.maximum(a_sq[:, None] + b_sq[None, :] - 2.0 * ab, 0.0)


def sq_dists_to_row(x: Array, x_sq: Array, i: Array) -> Array:
    """``|x_n - x_i|^2`` for every row ``n``: one matrix-vector product, float32
    accumulation whatever ``x``'s storage type. ``[N]``."""
    xi = jnp.matmul(x, x[i], preferred_element_type=jnp.float32)
    return jnp.maximum(x_sq + x_sq[i] - 2.0 * xi, 0.0)


def argmax_first(v: Array) -> Array:
    """``jnp.argmax`` over the last axis (first maximum; NaN counts as the maximum).

    Written as a max-reduce and a min-reduce over indices because XLA:CPU lowers
    ``argmax`` to a slow variadic reduce (~145 us vs ~25 us for ``N = 50,000``),
    and it runs once per pick.
    """
    m = jnp.max(v, axis=-1, keepdims=True)
    hit = (v == m) | (jnp.isnan(v) & jnp.isnan(m))
    iota = jax.lax.broadcasted_iota(jnp.int32, v.shape, v.ndim - 1)
    return jnp.min(jnp.where(hit, iota, v.shape[-1]), axis=-1)


def argmin_first(v: Array) -> Array:
    """``jnp.argmin`` over the last axis (first minimum; NaN counts as the minimum)."""
    return argmax_first(-v)


def _gathered_chunks(mask: Array, chunk_size: int):
    """Indices of ``mask``'s true entries, padded to whole chunks, and their count.

    Returns ``(idx [n_chunks * chunk], count)``; entries past ``count`` are 0 and
    must be masked by the caller.
    """
    n = mask.shape[0]
    n_chunks = -(-n // chunk_size)
    idx = jnp.nonzero(mask, size=n_chunks * chunk_size, fill_value=0)[0].astype(jnp.int32)
    return idx, jnp.sum(mask, dtype=jnp.int32)


def _row_blocks(n: int, block: int, fn, outs):
    """Writes ``fn(start) -> values for rows [start, start + block)`` into ``outs``.

    Blocks are sliced, never padded (padding would copy the whole ``[N, D]``
    pool); the last block starts at ``n - block`` and overlaps its neighbour,
    whose rows it rewrites with the same values.
    """
    block = min(block, n)

    def body(b, outs):
        start = jnp.minimum(b * block, n - block)
        vals = fn(start)
        return jax.tree.map(
            lambda o, v: jax.lax.dynamic_update_slice_in_dim(o, v, start, 0), outs, vals
        )

    return jax.lax.fori_loop(0, -(-n // block), body, outs)


def _over_member_chunks(x: Array, mask: Array, chunk_size: int, init: Array, combine):
    """Folds ``combine(carry, d, valid)`` over chunks of the rows selected by ``mask``.

    Both sides are blocked. The outer loop visits only the ``ceil(count /
    chunk)`` chunks of selected rows, gathering each chunk's points once; the
    inner one sweeps the pool in blocks of ``max(chunk_size, SET_ROW_BLOCK)``
    rows, where ``d`` is the block's ``[rows, chunk]`` squared distances to the
    chunk, ``valid`` is ``bool[chunk]`` (padding off) and ``carry`` the block's
    slice of the ``[N]`` result (initialised to ``init``). Peak memory is one
    ``rows x chunk`` block beyond the inputs, and the cost is ``O(N * count *
    D)`` rather than ``O(N^2 * D)``. The distances of a pair do not depend on
    the blocking (nor, for a min or a count, on the order of the chunks).
    """
    n = x.shape[0]
    x_sq = sq_norms(x)
    idx, count = _gathered_chunks(mask, chunk_size)
    n_chunks = (count + chunk_size - 1) // chunk_size
    rows_per_block = min(max(chunk_size, SET_ROW_BLOCK), n)

    def member_chunk(c, out):
        first = c * chunk_size
        members = jax.lax.dynamic_slice_in_dim(idx, first, chunk_size)  # [chunk]
        valid = first + jnp.arange(chunk_size) < count
        xm, xm_sq = x[members], x_sq[members]  # [chunk, D], [chunk]

        # Blocks read `out` as it was before this chunk (not the inner loop's
        # carry): the last block overlaps its neighbour and must rewrite those
        # rows with the same values, not fold the chunk into them twice.
        def row_block(start):
            rows = jax.lax.dynamic_slice_in_dim(x, start, rows_per_block)
            rows_sq = jax.lax.dynamic_slice_in_dim(x_sq, start, rows_per_block)
            d = pairwise_sq_dists(rows, xm, rows_sq, xm_sq)  # [rows, chunk]
            return combine(jax.lax.dynamic_slice_in_dim(out, start, rows_per_block), d, valid)

        return _row_blocks(n, rows_per_block, row_block, out)

    return jax.lax.fori_loop(0, n_chunks, member_chunk, jnp.full((n,), init))


def min_sq_dist_to_set(x: Array, mask: Array, chunk_size: int) -> Array:
    """``min_{j: mask_j} |x_i - x_j|^2`` for every row (``+inf`` if ``mask`` is empty).

    Args:
      x: ``[N, D]`` points.
      mask: ``bool[N]``, the set to measure against (e.g. the labeled points).
      chunk_size: points of the set compared at once (memory
        ``max(chunk, SET_ROW_BLOCK) x chunk``).

    Returns:
      ``float32[N]``.
    """
    x = jnp.asarray(x, jnp.float32)

    def combine(mind, d, valid):
        return jnp.minimum(mind, jnp.min(jnp.where(valid[None, :], d, jnp.inf), axis=1))

    return _over_member_chunks(x, mask, chunk_size, jnp.float32(jnp.inf), combine)


def ball_counts(x: Array, mask: Array, radius_sq: Array, chunk_size: int) -> Array:
    """``#{j: mask_j, |x_i - x_j|^2 < radius_sq}`` for every row ``i``. ``int32[N]``."""
    x = jnp.asarray(x, jnp.float32)

    def combine(counts, d, valid):
        inside = (d < radius_sq) & valid[None, :]
        return counts + jnp.sum(inside, axis=1, dtype=jnp.int32)

    return _over_member_chunks(x, mask, chunk_size, jnp.int32(0), combine)


def nearest_centroid(x: Array, centroids: Array, active: Array, chunk_size: int):
    """Index of, and squared distance to, the nearest active centroid of every row.

    Rows are processed ``chunk_size`` at a time (memory ``chunk x K``). Ties go to
    the lower centroid index.

    Args:
      x: ``[N, D]``.
      centroids: ``[K, D]``.
      active: ``bool[K]``; inactive centroids are ignored.
      chunk_size: rows per block.

    Returns:
      ``(int32[N], float32[N])``.
    """
    n = x.shape[0]
    c_sq = sq_norms(centroids)
    rows_per_block = min(chunk_size, n)

    def block(start):
        rows = jax.lax.dynamic_slice_in_dim(x, start, rows_per_block)
        d = pairwise_sq_dists(rows, centroids, b_sq=c_sq)
        d = jnp.where(active[None, :], d, jnp.inf)
        j = argmin_first(d)
        return j, jnp.take_along_axis(d, j[:, None], axis=1)[:, 0]

    outs = (jnp.zeros((n,), jnp.int32), jnp.zeros((n,), jnp.float32))
    return _row_blocks(n, rows_per_block, block, outs)


# D^2 (k-means++) sampling -----------------------------------------------------


def sample_by_weight(weights: Array, avail: Array, u: Array, block: int = 256) -> Array:
    """Inverse-CDF draw of one index with probability ``∝ weights`` among ``avail``.

    The pick is the first index whose cumulative weight exceeds ``u * total``, so
    a reference can reproduce it from the same uniform ``u``. If every available
    weight is 0, the draw is uniform over ``avail`` instead (same rule, weight 1).
    The cumulative sum is two-level (over blocks of ``block`` weights, then inside
    one block): XLA:CPU's flat ``cumsum`` costs ~140 us at ``N = 50,000``.

    Args:
      weights: ``float[N]``, non-negative.
      avail: ``bool[N]``, the points that may be drawn (at least one).
      u: scalar uniform in ``[0, 1)``.
      block: block length of the two-level cumulative sum.

    Returns:
      int32 scalar.
    """
    n = weights.shape[0]
    w = jnp.where(avail, weights, 0.0)
    w = jnp.where(jnp.sum(w) > 0, w, avail.astype(w.dtype))
    n_blocks = -(-n // block)
    wb = jnp.pad(w, (0, n_blocks * block - n)).reshape(n_blocks, block)
    bsum = jnp.sum(wb, axis=1)  # [n_blocks]
    bcdf = jnp.cumsum(bsum)
    target = u * bcdf[-1]
    # First block whose cumulative weight exceeds the target; u * total can round
    # up to total, so never step past the last block with positive weight.
    last_block = jnp.max(jnp.where(bsum > 0, jnp.arange(n_blocks), -1))
    b = jnp.minimum(jnp.sum(bcdf <= target), last_block)
    inner = jnp.where(b > 0, bcdf[jnp.maximum(b - 1, 0)], 0.0) + jnp.cumsum(wb[b])  # [block]
    last = jnp.max(jnp.where(wb[b] > 0, jnp.arange(block), -1))
    j = jnp.minimum(jnp.sum(inner <= target), last)
    return (b * block + j).astype(jnp.int32)


def d2_sampling(
    dist_to: Callable[[Array], Array], avail: Array, uniforms: Array, first: Array | None = None
) -> Array:
    """k-means++ seeding: each next centre drawn ``∝ D^2`` (min squared distance to chosen).

    Args:
      dist_to: ``dist_to(i) -> float[N]``, squared distances of all points to point ``i``.
      avail: ``bool[N]`` points that may be chosen (chosen ones are removed as we go).
      uniforms: ``float[k]`` in ``[0, 1)``; pick ``j`` uses ``uniforms[j]``.
      first: the first centre; ``None``: drawn uniformly over ``avail`` with
        ``uniforms[0]``.

    Returns:
      ``int32[k]`` distinct indices of available points, in the order chosen.
    """
    k = uniforms.shape[0]
    if first is None:
        first = sample_by_weight(jnp.ones(avail.shape, jnp.float32), avail, uniforms[0])
    first = jnp.asarray(first, jnp.int32)
    picks = jnp.zeros((k,), jnp.int32).at[0].set(first)
    state = (dist_to(first), avail.at[first].set(False), picks)

    def body(j, state):
        mind, avail, picks = state
        c = sample_by_weight(mind, avail, uniforms[j])
        return jnp.minimum(mind, dist_to(c)), avail.at[c].set(False), picks.at[j].set(c)

    return jax.lax.fori_loop(1, k, body, state)[2]
