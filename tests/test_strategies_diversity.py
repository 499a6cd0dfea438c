"""Tests for the diversity strategies: coreset, kmeans, badge, typiclust, probcover.

Expected picks come from plain-numpy references written from the papers'
definitions (``reference_diversity``: full distance matrices, explicit BADGE
embeddings) or from hand-worked examples, never from the code under test.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_diversity as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxal import strategies
from jaxal.strategies import _distances as dist
from jaxal.strategies import badge, diversity, lowbudget
from jaxal.strategies.base import Outputs

KEY = jax.random.key(0)

# Jitted entry points (static: shapes / loop structure); reused across tests so
# that each compiles once per shape.
_kcenter = jax.jit(diversity.kcenter_greedy, static_argnums=(3, 4, 5))
_lloyd = jax.jit(diversity.lloyd, static_argnums=(5,))
_nearest_distinct = jax.jit(diversity.nearest_distinct)
_badge_from_uniforms = jax.jit(badge.badge_from_uniforms)
_typiclust_from_clusters = jax.jit(
    lowbudget.typiclust_from_clusters, static_argnames=("num_clusters", "k", "knn", "chunk_size")
)
_probcover = jax.jit(lowbudget.probcover_select, static_argnums=(2, 4, 5))
_draw = jax.jit(dist.sample_by_weight, static_argnums=3)


def _blobs(seed, n, d, centers=4, spread=0.3):
    """Well-separated Gaussian blobs (so float32/float64 ties do not arise)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(scale=4.0, size=(centers, d))
    return (mu[rng.integers(centers, size=n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def _mask(seed, n, count):
    m = np.zeros(n, bool)
    m[np.random.default_rng(seed).choice(n, count, replace=False)] = True
    return m


def _probs(seed, n, c, t=None):
    shape = (n,) if t is None else (t, n)
    return np.random.default_rng(seed).dirichlet(np.ones(c), size=shape).astype(np.float32)


# Distance kernels --------------------------------------------------------------


@pytest.mark.parametrize("chunk", [3])
def test_distance_kernels_match_bruteforce(chunk):
    x = np.random.default_rng(1).normal(size=(23, 5)).astype(np.float32)
    mask = _mask(2, 23, 9)
    d = ref.sq_dist_matrix(x, x)
    np.testing.assert_allclose(
        dist.min_sq_dist_to_set(x, mask, chunk), d[:, mask].min(1), rtol=1e-4, atol=1e-4
    )
    assert np.all(np.isinf(dist.min_sq_dist_to_set(x, np.zeros(23, bool), chunk)))
    r2 = np.median(d)
    np.testing.assert_array_equal(dist.ball_counts(x, mask, r2, chunk), (d[:, mask] < r2).sum(1))
    centroids, active = x[:6] + 0.1, np.array([1, 0, 1, 1, 0, 1], bool)
    labels, dmin = dist.nearest_centroid(x, centroids, active, chunk)
    dc = np.where(active[None], ref.sq_dist_matrix(x, centroids), np.inf)
    np.testing.assert_array_equal(labels, dc.argmin(1))
    np.testing.assert_allclose(dmin, dc.min(1), rtol=1e-4, atol=1e-4)


def test_sample_by_weight_hand_cases():
    w, everywhere = jnp.array([0.0, 1.0, 0.0, 3.0]), jnp.ones(4, bool)
    # cdf = [0, 1, 1, 4]: first index with cdf > 4u.
    assert int(_draw(w, everywhere, 0.2, 256)) == 1
    assert int(_draw(w, everywhere, 0.5, 256)) == 3
    assert int(_draw(w, everywhere, 0.0, 256)) == 1  # never a zero weight
    # Unavailable points never drawn; all-zero weights: uniform over available.
    assert int(_draw(w, jnp.array([1, 1, 1, 0], bool), 0.9, 256)) == 1
    assert int(_draw(jnp.zeros(4), jnp.array([0, 1, 1, 0], bool), 0.6, 256)) == 2
    # Blocks of 2: block sums (0, 2, 1), cdf (0, 2, 3); a leading empty block is skipped.
    w6 = jnp.array([0.0, 0.0, 0.0, 2.0, 1.0, 0.0])
    for u, want in [(0.0, 3), (0.5, 3), (0.7, 4), (0.99, 4)]:
        assert int(_draw(w6, jnp.ones(6, bool), u, 2)) == want


@pytest.mark.parametrize("block", [3, 4, 256])
def test_sample_by_weight_blocked_matches_flat_cdf(block):
    rng = np.random.default_rng(11)
    w = rng.random(10).astype(np.float32) * (rng.random(10) > 0.3)
    avail = rng.random(10) > 0.2
    for u in np.linspace(0.0, 0.999, 37, dtype=np.float32):
        assert int(_draw(w, avail, u, block)) == ref.draw(np.where(avail, w, 0.0), u)


def test_argmax_first_matches_numpy():
    v = np.array([[1.0, 3.0, 3.0, -2.0], [0.0, np.nan, 5.0, np.nan], [-1.0, -1.0, -1.0, -1.0]])
    np.testing.assert_array_equal(dist.argmax_first(v), np.argmax(v, axis=1))  # NaN is max
    np.testing.assert_array_equal(dist.argmin_first(v), np.argmin(v, axis=1))
    assert int(dist.argmax_first(jnp.array([2, 7, 7, 1]))) == 1


# Core-Set ------------------------------------------------------------------------


def test_coreset_hand_1d():
    # Points 0, 1, 2, 10 with 0 labeled: farthest is 10; then min distances are
    # (0, 1, 2, 0) so 2 is next, then 1.
    x = np.array([[0.0], [1.0], [2.0], [10.0]], np.float32)
    labeled = np.array([True, False, False, False])
    out = _kcenter(KEY, x, labeled, 3, 2)
    np.testing.assert_array_equal(out, [3, 2, 1])


def _coreset_inputs(seed, n_labeled):
    x = np.random.default_rng(seed).normal(size=(40, 6)).astype(np.float32)
    return x, _mask(seed, 40, n_labeled)


@pytest.mark.parametrize("n_labeled", [1, 5, 30])
def test_coreset_matches_reference(n_labeled):
    x, labeled = _coreset_inputs(n_labeled, n_labeled)
    np.testing.assert_array_equal(
        _kcenter(KEY, x, labeled, 9, 8), ref.kcenter_greedy(x, labeled, 9)
    )


def test_coreset_without_labels_random_first_then_greedy():
    x, none = _coreset_inputs(3, 0)
    outs = [np.asarray(_kcenter(jax.random.key(s), x, none, 9, 8)) for s in range(4)]
    for out in outs:
        np.testing.assert_array_equal(out, ref.kcenter_greedy(x, none, 9, first=int(out[0])))
    assert len({int(o[0]) for o in outs}) > 1  # the first pick depends on the key


def test_coreset_chunking_is_invisible():
    x, labeled = _coreset_inputs(4, 11)
    # 3 does not divide N = 40; 1024 > N is a single (padded) chunk.
    outs = [np.asarray(_kcenter(KEY, x, labeled, 9, c)) for c in (3, 8, 1024)]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    np.testing.assert_array_equal(outs[0], ref.kcenter_greedy(x, labeled, 9))


# BADGE -----------------------------------------------------------------------------


def test_badge_factorised_distances_equal_explicit():
    probs, h = _probs(5, 17, 4), np.random.default_rng(5).normal(size=(17, 6)).astype(np.float32)
    g = ref.badge_embeddings(probs, h)  # [17, 24], only in the test
    a, hh = badge.gradient_embedding_factors(probs, h)
    a_sq, h_sq = dist.sq_norms(a), dist.sq_norms(hh)
    want = ref.sq_dist_matrix(g, g)
    got = np.stack([badge.gradient_sq_dists_to_row(a, hh, a_sq, h_sq, i) for i in range(17)], 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a_sq * h_sq, (g**2).sum(1), rtol=1e-5)


@pytest.mark.parametrize("t", [None, 3])
def test_badge_matches_reference_with_same_uniforms(t):
    probs = _probs(6, 50, 5, t)
    h = np.random.default_rng(6).normal(size=(50, 7)).astype(np.float32)
    labeled = _mask(6, 50, 12)
    select = jax.jit(badge.badge().select, static_argnums=3)
    for seed in range(3):
        key = jax.random.key(seed)
        out = select(key, Outputs(probs=probs, embeddings=h), labeled, 10)
        u = np.asarray(jax.random.uniform(key, (10,)))
        np.testing.assert_array_equal(out, ref.badge(probs, h, labeled, u))


def test_badge_first_pick_largest_gradient_norm_hand():
    # p = onehot-ish: a = p - onehot(argmax p). Row 1 has |a| largest and |h| = 2.
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.8, 0.2]], np.float32)
    h = np.array([[1.0], [2.0], [1.0]], np.float32)
    # |g|^2 = |a|^2 |h|^2 = (0.02, 0.5 * 4, 0.08); row 1 wins unless labeled.
    u = jnp.zeros(1)
    assert int(_badge_from_uniforms(probs, h, np.zeros(3, bool), u)[0]) == 1
    assert int(_badge_from_uniforms(probs, h, np.array([0, 1, 0], bool), u)[0]) == 2


# k-means ---------------------------------------------------------------------------


def test_lloyd_matches_reference_with_inactive_centroids():
    x = _blobs(7, 60, 3)
    w = (~_mask(7, 60, 15)).astype(np.float32)
    c0 = x[[0, 5, 9, 20, 33, 41]]
    active = np.arange(6) < 4
    for iters in (0, 1, 3, 50):
        c, labels = _lloyd(x, w, c0, active, iters, 7)
        c_ref, labels_ref = ref.lloyd(x, w, c0, 4, iters)
        np.testing.assert_array_equal(labels, labels_ref)
        np.testing.assert_allclose(np.asarray(c)[:4], c_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(c)[4:], c0[4:])  # inactive stay put


def test_nearest_distinct_hand():
    x = np.array([[0.0], [1.0], [5.0], [6.0]], np.float32)
    centroids = np.array([[0.9], [0.8], [5.9]], np.float32)
    avail = np.array([True, True, True, True])
    # Both first centroids are nearest to 1.0; the second gets the next nearest, 0.0.
    np.testing.assert_array_equal(_nearest_distinct(x, centroids, avail), [1, 0, 3])
    avail[3] = False
    np.testing.assert_array_equal(_nearest_distinct(x, centroids, avail), [1, 0, 2])


@pytest.mark.parametrize("seed", [0, 1])
def test_kmeans_matches_reference(seed):
    x = _blobs(seed + 10, 48, 4, centers=5)
    labeled = _mask(seed, 48, 10)
    key = jax.random.key(seed)
    out = _jitted("kmeans")(key, Outputs(embeddings=x), labeled, 5)
    u = np.asarray(jax.random.uniform(key, (5,)))
    np.testing.assert_array_equal(
        out, ref.kmeans_sampling(x, labeled, u, ALL["kmeans"]["num_iters"])
    )


# TypiClust -------------------------------------------------------------------------


def test_typiclust_hand():
    # Cluster 0: 0, 1, 2, 3, 10, 11 (6 points, eligible); K = min(20, 6 // 2) = 3.
    # Mean distance to 3 nearest: 0 -> 2, 1 -> 4/3, 2 -> 4/3, 3 -> 2, 10 -> 16/3,
    # 11 -> 6. Tie 1 / 2 -> index 1. Cluster 1 (3 points) is too small for pick 0;
    # pick 1 goes back to cluster 0 (only eligible), now without point 1, so
    # K = min(20, 5 // 2) = 2: 0 -> 2.5, 2 -> 1.5, 3 -> 2, 10 -> 4, 11 -> 4.5.
    x = np.array([0, 1, 2, 3, 10, 11, 50, 51, 53], np.float32)[:, None]
    clusters = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    kw = dict(num_clusters=2, k=2, knn=20, chunk_size=4)
    out = _typiclust_from_clusters(x, clusters, labeled=np.zeros(9, bool), **kw)
    np.testing.assert_array_equal(out, [1, 2])
    # With min_cluster_size=2, cluster 1 is eligible too: sorted by size, cluster 0
    # first, then cluster 1 with K = 1: 50 -> 1, 51 -> 1, 53 -> 2; the tie goes to 50.
    out = _typiclust_from_clusters(x, clusters, labeled=np.zeros(9, bool), min_cluster_size=2, **kw)
    np.testing.assert_array_equal(out, [1, 6])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_typiclust_from_clusters_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = 70
    x = rng.normal(size=(n, 3)).astype(np.float32)
    clusters = rng.choice(7, size=n, p=[0.3, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02])
    labeled = _mask(seed, n, 8)
    out = _typiclust_from_clusters(
        x, clusters, num_clusters=9, labeled=labeled, k=12, knn=4, chunk_size=5
    )
    np.testing.assert_array_equal(out, ref.typiclust_from_clusters(x, clusters, labeled, 12, 4))


def test_typiclust_end_to_end_matches_reference():
    x = _blobs(20, 64, 3, centers=6, spread=0.5)
    labeled = _mask(20, 64, 3)
    k, key = 4, jax.random.key(3)
    out = lowbudget.typiclust(num_iters=10, max_clusters=10, chunk_size=8).select(
        key, Outputs(embeddings=x), labeled, k
    )
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    u = np.asarray(jax.random.uniform(key, (10,)))
    m = 3 + k  # |L| + k active clusters out of 10 slots
    seeds = ref.kmeanspp(xn, np.ones(64, bool), u[:m])
    _, clusters = ref.lloyd(xn, np.ones(64), xn[seeds], m, 10)
    np.testing.assert_array_equal(out, ref.typiclust_from_clusters(xn, clusters, labeled, k))


# ProbCover -------------------------------------------------------------------------


def test_probcover_hand():
    # delta = 0.6 balls: 0 -> {0, .5}, .5 -> {0, .5, 1}, 1 -> {.5, 1}, 5 -> {5, 5.4},
    # 5.4 -> {5, 5.4}, 9 -> {9}. Greedy: .5 (3 new), 5 (2 new), 9 (1 new), then all
    # covered -> lowest unpicked index 0.
    x = np.array([0.0, 0.5, 1.0, 5.0, 5.4, 9.0], np.float32)[:, None]
    out = _probcover(x, np.zeros(6, bool), 4, 0.6, False, 4)
    np.testing.assert_array_equal(out, [1, 3, 5, 0])
    # 9 labeled: its ball starts covered, so after .5 and 5 everything is covered
    # and the remaining picks are the lowest unpicked unlabeled indices.
    out = _probcover(x, np.array([0, 0, 0, 0, 0, 1], bool), 4, 0.6, False, 4)
    np.testing.assert_array_equal(out, [1, 3, 0, 2])


def test_coreset_bfloat16_storage_rounds_the_points():
    # 0 is labeled; 257 is farther than 256 in float32, but bfloat16 (8 mantissa
    # bits) stores both as 256: a tie, so the lower index goes first.
    x = np.array([[0.0], [256.0], [257.0]], np.float32)
    labeled = np.array([True, False, False])
    np.testing.assert_array_equal(_kcenter(KEY, x, labeled, 2, 2), [2, 1])
    np.testing.assert_array_equal(_kcenter(KEY, x, labeled, 2, 2, jnp.bfloat16), [1, 2])


def _greedy_margin(x, labeled, k):
    """Smallest relative gap between the best and second-best ``mind`` over k picks."""
    d, taken, gaps = ref.sq_dist_matrix(x, x), labeled.copy(), []
    for _ in range(k):
        mind = np.where(taken, -1.0, d[:, taken].min(axis=1))
        top = np.sort(mind)[::-1]
        gaps.append((top[0] - top[1]) / top[0])
        taken[np.argmax(mind)] = True
    return min(gaps)


@pytest.mark.parametrize("seed", [4, 8, 13])
def test_coreset_bfloat16_picks_equal_float32_on_separated_points(seed):
    rng = np.random.default_rng(seed)
    x = (3.0 * rng.normal(size=(24, 6))).astype(np.float32)
    labeled = np.zeros(24, bool)
    labeled[rng.choice(24, 2, replace=False)] = True
    # Every greedy choice wins by > 2 %: far above bfloat16 rounding (~0.4 %).
    assert _greedy_margin(x, labeled, 8) > 0.02
    outs = Outputs(embeddings=x)
    picks = {}
    for dtype in ("float32", "bfloat16"):
        s = strategies.get("coreset", chunk_size=8, embedding_dtype=dtype)
        picks[dtype] = np.asarray(jax.jit(s.select, static_argnums=3)(KEY, outs, labeled, 8))
    np.testing.assert_array_equal(picks["bfloat16"], picks["float32"])
    np.testing.assert_array_equal(picks["float32"], ref.kcenter_greedy(x, labeled, 8))


def test_coreset_embedding_dtype_is_float32_by_default_and_checked():
    assert strategies.params_of("coreset")["embedding_dtype"] == "float32"
    with pytest.raises(ValueError, match="embedding_dtype must be one of float32, bfloat16"):
        strategies.get("coreset", embedding_dtype="float16")


@pytest.mark.parametrize(
    "overrides",
    [
        {"strategy": "coreset(embedding_dtype=float16)"},
        {"strategy": "coreset", "strategy_params.embedding_dtype": "fp16"},
    ],
)
def test_bad_embedding_dtype_is_one_config_line_before_compiling(overrides, tmp_path):
    from conftest import tiny_config

    from jaxal import config as config_lib
    from jaxal.experiment import run_experiment

    compiles = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.raises(config_lib.ConfigError) as e:
            run_experiment(tiny_config(**overrides), str(tmp_path / "w"), progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    msg = str(e.value)
    assert "config.strategy" in msg and "embedding_dtype" in msg, msg
    assert "float32, bfloat16" in msg and "\n" not in msg, msg
    assert compiles == [] and not (tmp_path / "w").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_probcover_matches_reference(seed):
    x = _blobs(seed + 30, 80, 3, centers=5, spread=0.6)
    labeled = _mask(seed, 80, 6)
    out = _probcover(x, labeled, 10, 0.9, False, 16)
    np.testing.assert_array_equal(out, ref.probcover(x, labeled, 10, 0.9))


# Properties ------------------------------------------------------------------------

ALL = {
    "coreset": dict(chunk_size=4),
    "kmeans": dict(num_iters=10, chunk_size=8),
    "badge": {},
    "typiclust": dict(num_iters=5, max_clusters=8, knn=3, chunk_size=8),
    "probcover": dict(delta=0.5, chunk_size=8),
}


@functools.cache
def _jitted(name):
    return jax.jit(strategies.get(name, **ALL[name]).select, static_argnums=3)


def _outputs(seed, n, d, c=3):
    rng = np.random.default_rng(seed)
    return Outputs(
        probs=rng.dirichlet(np.ones(c), size=n).astype(np.float32),
        embeddings=rng.normal(size=(n, d)).astype(np.float32),
    )


@settings(max_examples=8, deadline=None)
@given(
    name=st.sampled_from(sorted(ALL)),
    n=st.sampled_from([5, 12]),
    d=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_selectors_return_unique_unlabeled_int32(name, n, d, seed, data):
    labeled = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if labeled.all():
        labeled[0] = False
    k = data.draw(st.integers(1, min(int((~labeled).sum()), 3)))
    out = np.asarray(_jitted(name)(jax.random.key(seed), _outputs(seed, n, d), labeled, k))
    assert out.dtype == np.int32 and out.shape == (k,)
    assert len(set(out.tolist())) == k
    assert not labeled[out].any()


@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_equals_no_jit_and_registry(name):
    assert name in strategies.names()
    outs, labeled = _outputs(9, 30, 4), _mask(9, 30, 5)
    s = strategies.get(name, **ALL[name])
    eager = s.select(KEY, outs, labeled, 6)
    np.testing.assert_array_equal(_jitted(name)(KEY, outs, labeled, 6), eager)


@pytest.mark.parametrize("name", ["coreset", "typiclust"])
def test_vmap_over_seeds_equals_loop(name):
    # Data-dependent trip counts (labeled chunks, cluster segments, Lloyd convergence)
    # must survive batching: vmapped picks == per-seed picks.
    outs = _outputs(9, 30, 4)
    labeled = np.stack([_mask(s, 30, c) for s, c in [(1, 0), (2, 3), (3, 12)]])
    keys = jax.random.split(jax.random.key(1), 3)
    select = strategies.get(name, **ALL[name]).select
    vmapped = jax.jit(jax.vmap(select, in_axes=(0, None, 0, None)), static_argnums=3)
    looped = [_jitted(name)(keys[i], outs, labeled[i], 6) for i in range(3)]
    np.testing.assert_array_equal(vmapped(keys, outs, labeled, 6), np.stack(looped))
