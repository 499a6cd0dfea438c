"""Low-budget ("cold start") strategies on embeddings: TypiClust and ProbCover.

Both pick representative rather than uncertain points and are meant for small
labeled sets. Both run on device with fixed shapes (the number of clusters and
the graph live in masks, not in shapes) and never build an ``N x N`` matrix.
As in the official code (``avihu111/TypiClust``), embeddings are L2-normalised
first by default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.strategies import _distances as dist
from jaxal.strategies.base import Array, Needs, Outputs, Strategy
from jaxal.strategies.diversity import lloyd


def _prepare(embeddings: Array, normalize: bool) -> Array:
    x = jnp.asarray(embeddings, jnp.float32)
    if normalize:
        x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x


# TypiClust -------------------------------------------------------------------


def _most_typical(xp, xp_sq, availp, start, end, n_avail, knn: int, block: int):
    """Position (in ``xp``) of the most typical available row of ``xp[start:end]``.

    Typicality is ``1 / mean Euclidean distance to the K nearest other available
    rows of the segment``, ``K = min(knn, n_avail // 2)``; we take the smallest
    mean distance (same argmax, no ``1 / 0``). Blocks of ``block x block``
    distances stream through a running top-K, so the cost is
    ``O(segment^2 * D)`` and memory ``O(block^2)``. Ties: lowest position.
    """
    k_eff = jnp.minimum(knn, n_avail // 2)
    n_blocks = (end - start + block - 1) // block
    ar = jnp.arange(block)

    def rows(r0):
        pos = r0 + ar
        valid = jax.lax.dynamic_slice_in_dim(availp, r0, block) & (pos < end)
        xs = jax.lax.dynamic_slice_in_dim(xp, r0, block)
        return xs, jax.lax.dynamic_slice_in_dim(xp_sq, r0, block), pos, valid

    def row_block(rb, best):
        rx, rsq, rpos, rvalid = rows(start + rb * block)

        def col_block(cb, nearest):  # nearest: [block, knn] smallest sq. distances
            cx, csq, cpos, cvalid = rows(start + cb * block)
            d = dist.pairwise_sq_dists(rx, cx, rsq, csq)
            d = jnp.where(cvalid[None, :] & (rpos[:, None] != cpos[None, :]), d, jnp.inf)
            neg, _ = jax.lax.top_k(-jnp.concatenate([nearest, d], axis=1), knn)
            return -neg

        nearest = jax.lax.fori_loop(0, n_blocks, col_block, jnp.full((block, knn), jnp.inf))
        use = jnp.arange(knn) < k_eff
        mean = jnp.sum(jnp.where(use, jnp.sqrt(nearest), 0.0), axis=1) / jnp.maximum(k_eff, 1)
        mean = jnp.where(rvalid, mean, jnp.inf)
        j = jnp.argmin(mean)
        better = mean[j] < best[0]
        return jnp.where(better, mean[j], best[0]), jnp.where(better, rpos[j], best[1])

    return jax.lax.fori_loop(0, n_blocks, row_block, (jnp.float32(jnp.inf), jnp.int32(0)))[1]


def typiclust_from_clusters(
    embeddings: Array,
    clusters: Array,
    num_clusters: int,
    labeled: Array,
    k: int,
    knn: int = 20,
    min_cluster_size: int = 5,
    chunk_size: int = 256,
) -> Array:
    """TypiClust's selection given a clustering of the whole pool.

    Rules (Hacohen et al., 2022, and their code): clusters with more than
    ``min_cluster_size`` points are eligible and sorted by number of labeled
    points (ascending), then size (descending), then cluster id. Pick ``i`` goes to
    eligible cluster ``i mod #eligible`` in that order, skipping forward (cyclically)
    past clusters with no unlabeled, unpicked point left; if all eligible clusters
    are exhausted (or none exist), the other non-empty clusters follow in the same
    order. Within the cluster the pick is the most typical unlabeled, unpicked point,
    typicality measured among those points only (labeled and picked ones removed, as
    in the official code). Typicality is the paper's ``1 / mean Euclidean distance to
    the K nearest neighbours``; the official code feeds faiss' *squared* L2
    distances into the same formula, which can rank points differently.

    Args:
      embeddings: ``[N, D]`` (used as given: normalise before if wanted).
      clusters: ``int32[N]`` cluster ids in ``[0, num_clusters)``.
      num_clusters: static number of cluster ids.
      labeled: ``bool[N]``.
      k: static number of picks.
      knn: neighbours for typicality (``min(knn, n // 2)`` for a cluster of ``n``).
      min_cluster_size: clusters of at most this many points are not eligible.
      chunk_size: block size of the within-cluster neighbour search.

    Returns:
      ``int32[k]`` in acquisition order.
    """
    x = jnp.asarray(embeddings, jnp.float32)
    n = x.shape[0]
    clusters = jnp.asarray(clusters, jnp.int32)
    labeled = jnp.asarray(labeled, bool)
    size = jnp.bincount(clusters, length=num_clusters)
    existing = jnp.bincount(clusters, weights=labeled.astype(jnp.int32), length=num_clusters)
    avail_count = size - existing.astype(size.dtype)
    eligible = size > min_cluster_size
    ids = jnp.arange(num_clusters)
    order = jnp.lexsort((ids, -size, existing, ~eligible))  # primary key last
    rank = jnp.zeros(num_clusters, jnp.int32).at[order].set(ids.astype(jnp.int32))
    n_eligible = jnp.maximum(jnp.sum(eligible), 1)

    # Points sorted by cluster (stable: index order within a cluster) so that each
    # cluster is a contiguous segment; padded so block slices never run off the end.
    perm = jnp.argsort(clusters, stable=True)
    sorted_c = clusters[perm]
    start = jnp.searchsorted(sorted_c, ids, side="left").astype(jnp.int32)
    end = jnp.searchsorted(sorted_c, ids, side="right").astype(jnp.int32)
    xp = jnp.pad(x[perm], ((0, chunk_size), (0, 0)))
    xp_sq = dist.sq_norms(xp)
    availp = jnp.pad(~labeled[perm], (0, chunk_size))

    def body(i, state):
        availp, avail_count, picks = state
        first = i % n_eligible
        prio = jnp.where(eligible, (rank - first) % n_eligible, rank)
        c = jnp.argmin(jnp.where(avail_count > 0, prio, num_clusters + n))
        pos = _most_typical(xp, xp_sq, availp, start[c], end[c], avail_count[c], knn, chunk_size)
        picks = picks.at[i].set(perm[pos].astype(jnp.int32))
        return availp.at[pos].set(False), avail_count.at[c].add(-1), picks

    state = (availp, avail_count, jnp.zeros((k,), jnp.int32))
    return jax.lax.fori_loop(0, k, body, state)[2]


def typiclust_select(
    key: Array,
    embeddings: Array,
    labeled: Array,
    k: int,
    knn: int = 20,
    min_cluster_size: int = 5,
    max_clusters: int = 500,
    num_iters: int = 20,
    normalize: bool = True,
    chunk_size: int = 256,
) -> Array:
    """TypiClust: k-means into ``min(|L| + k, max_clusters)`` clusters, then
    :func:`typiclust_from_clusters`.

    The cluster count depends on ``|L|``, which is data, so k-means runs with
    ``K = min(max_clusters, N)`` centroid slots of which the first
    ``min(|L| + k, K)`` are active (k-means++ seeding over all points from
    ``jax.random.uniform(key, (K,))``, then :func:`lloyd`). Cost per Lloyd
    iteration: ``O(N * K * D)``.

    Returns:
      ``int32[k]``.
    """
    x = _prepare(embeddings, normalize)
    n = x.shape[0]
    num = min(max_clusters, n)
    labeled = jnp.asarray(labeled, bool)
    m = jnp.minimum(jnp.sum(labeled) + k, num)
    x_sq = dist.sq_norms(x)
    uniforms = jax.random.uniform(key, (num,))
    seeds = dist.d2_sampling(
        lambda i: dist.sq_dists_to_row(x, x_sq, i), jnp.ones((n,), bool), uniforms
    )
    active = jnp.arange(num) < m
    _, clusters = lloyd(x, jnp.ones((n,)), x[seeds], active, num_iters, chunk_size)
    return typiclust_from_clusters(x, clusters, num, labeled, k, knn, min_cluster_size, chunk_size)


def typiclust(
    knn: int = 20,
    min_cluster_size: int = 5,
    max_clusters: int = 500,
    num_iters: int = 20,
    normalize: bool = True,
    chunk_size: int = 256,
) -> Strategy:
    """TypiClust (Hacohen et al., 2022, "Active learning on a budget").

    Args:
      knn: neighbours in the typicality estimate.
      min_cluster_size: smaller clusters are used only when nothing else is left.
      max_clusters: cap on the number of clusters (500 in the official code).
      num_iters: maximum Lloyd iterations.
      normalize: L2-normalise embeddings first (as the official code does).
      chunk_size: block size for distance computations.
    """

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        return typiclust_select(
            key,
            outputs.embeddings,
            labeled,
            k,
            knn,
            min_cluster_size,
            max_clusters,
            num_iters,
            normalize,
            chunk_size,
        )

    return Strategy(name="typiclust", needs=Needs(embeddings=True), select=select)


# ProbCover -------------------------------------------------------------------


def probcover_select(
    embeddings: Array,
    labeled: Array,
    k: int,
    delta: float,
    normalize: bool = True,
    chunk_size: int = 256,
) -> Array:
    """Greedy max coverage of the δ-ball graph (Yehuda et al., 2022).

    Point ``i`` covers ``j`` iff ``|x_i - x_j| < delta`` (itself included). The
    balls of labeled points start covered; each pick is the unlabeled, unpicked
    point that covers the most still-uncovered points (ties: lowest index; once all
    is covered, the lowest unpicked index), whose ball is then marked covered.

    The graph is never stored: out-degrees towards uncovered points are counted
    once in blocks (``O(N^2 D)`` time, ``O(chunk^2)`` memory), then each pick
    subtracts the edges into the points it newly covered
    (``O(N * new * D)``, in chunks), so the total stays ``O(N^2 D)``.

    Returns:
      ``int32[k]`` in acquisition order.
    """
    x = _prepare(embeddings, normalize)
    x_sq = dist.sq_norms(x)
    labeled = jnp.asarray(labeled, bool)
    r2 = jnp.float32(delta) ** 2
    covered = dist.min_sq_dist_to_set(x, labeled, chunk_size) < r2
    degree = dist.ball_counts(x, ~covered, r2, chunk_size)  # int32[N]

    def body(j, state):
        degree, covered, taken, picks = state
        c = dist.argmax_first(jnp.where(taken, -1, degree))
        new = (dist.sq_dists_to_row(x, x_sq, c) < r2) & ~covered
        degree = degree - dist.ball_counts(x, new, r2, chunk_size)
        return degree, covered | new, taken.at[c].set(True), picks.at[j].set(c)

    state = (degree, covered, labeled, jnp.zeros((k,), jnp.int32))
    return jax.lax.fori_loop(0, k, body, state)[3]


def probcover(delta: float = 0.75, normalize: bool = True, chunk_size: int = 256) -> Strategy:
    """ProbCover: cover the pool with δ-balls around labeled points.

    Args:
      delta: ball radius. The paper takes the largest δ whose balls stay ≥ 95 %
        pure under a k-means pseudo-labelling of the embedding; tune it per
        embedding (the default suits L2-normalised self-supervised features).
      normalize: L2-normalise embeddings first (as the official code does).
      chunk_size: points per distance block.
    """

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        del key  # deterministic
        return probcover_select(outputs.embeddings, labeled, k, delta, normalize, chunk_size)

    return Strategy(name="probcover", needs=Needs(embeddings=True), select=select)
