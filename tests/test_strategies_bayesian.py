"""Bayesian scores and BatchBALD vs the numpy references in tests/reference.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import strategies
from jaxal.strategies import batch, bayesian
from tests import reference as ref

SCORES = {
    "bald": (bayesian.bald_scores, ref.bald),
    "variation_ratios": (bayesian.variation_ratios_scores, ref.variation_ratios),
    "mean_std": (bayesian.mean_std_scores, ref.mean_std),
    "vote_entropy": (bayesian.vote_entropy_scores, ref.vote_entropy),
}
SAMPLE_STRATEGIES = [*SCORES, "batchbald"]


def _probs(seed, t, n, c, alpha=0.5):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(c, alpha), size=(t, n)).astype(np.float32)


def _labeled(seed, n, frac=0.3):
    return np.random.default_rng(seed + 100).random(n) < frac


# Hand-computed values ----------------------------------------------------------

# Point 0: two one-hot samples that disagree.  Point 1: two identical samples.
DISAGREE = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]], np.float32)


def test_bald_hand_values():
    # Point 0: H[(.5,.5)] - mean(H[one-hot]) = log 2 - 0.  Point 1: log 2 - log 2 = 0.
    np.testing.assert_allclose(bayesian.bald_scores(DISAGREE), [math.log(2), 0.0], atol=1e-6)


def test_variation_ratios_hand_values():
    # Argmaxes of point 0 over T=3: [0, 0, 1] -> modal count 2 -> 1 - 2/3 = 1/3.
    p = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.2, 0.8]]], np.float32)
    np.testing.assert_allclose(bayesian.variation_ratios_scores(p), [1 / 3], atol=1e-6)


def test_mean_std_hand_values():
    # Point 0: each class is 1 then 0 -> population std 0.5 for both -> 0.5.  Point 1: 0.
    np.testing.assert_allclose(bayesian.mean_std_scores(DISAGREE), [0.5, 0.0], atol=1e-6)


def test_vote_entropy_hand_values():
    # Votes [0, 0, 1, 1] -> fractions (.5, .5) -> log 2.  Unanimous votes -> 0.
    p = np.array([[[0.9, 0.1], [0.7, 0.3]]] * 2 + [[[0.2, 0.8], [0.6, 0.4]]] * 2, np.float32)
    np.testing.assert_allclose(bayesian.vote_entropy_scores(p), [math.log(2), 0.0], atol=1e-6)


@pytest.mark.parametrize("name", list(SCORES))
def test_scores_match_reference(name):
    fn, ref_fn = SCORES[name]
    for seed, (t, n, c) in enumerate([(3, 7, 2), (5, 11, 4), (8, 6, 10)]):
        p = _probs(seed, t, n, c)
        np.testing.assert_allclose(fn(p), ref_fn(p), atol=2e-6)
        np.testing.assert_allclose(jax.jit(fn)(p), ref_fn(p), atol=2e-6)


@pytest.mark.parametrize("name", SAMPLE_STRATEGIES)
def test_needs_samples_error(name):
    s = strategies.get(name)
    assert s.needs.samples and s.needs.probs
    flat = _probs(0, 1, 6, 3)[0]  # [N, C]
    with pytest.raises(ValueError, match=r"\[T, N, C\].*samples=True"):
        s.select(jax.random.key(0), strategies.Outputs(probs=flat), np.zeros(6, bool), 2)
    with pytest.raises(ValueError, match="samples"):
        s.score(strategies.Outputs(probs=flat))


@pytest.mark.parametrize("name", list(SCORES))
def test_selection_matches_reference_top_k(name):
    p, lab = _probs(3, 4, 20, 3), _labeled(3, 20)
    _, ref_fn = SCORES[name]
    s = strategies.get(name)
    out = strategies.Outputs(probs=p)
    got = s.select(jax.random.key(0), out, lab, 5)
    jitted = jax.jit(s.select, static_argnums=3)(jax.random.key(0), out, lab, 5)
    assert got.dtype == jnp.int32
    if name in ("variation_ratios", "vote_entropy"):  # discrete scores: compare score values
        np.testing.assert_allclose(ref_fn(p)[got], ref_fn(p)[ref.top_k(ref_fn(p), lab, 5)])
    else:
        np.testing.assert_array_equal(got, ref.top_k(ref_fn(p), lab, 5))
    np.testing.assert_array_equal(got, jitted)


def test_nan_scores_never_preferred():
    p = _probs(1, 3, 6, 3)
    p[:, 2] = np.nan  # BALD of point 2 is NaN
    got = strategies.get("bald").select(
        jax.random.key(0), strategies.Outputs(probs=p), np.zeros(6, bool), 6
    )
    assert int(got[-1]) == 2


# Joint entropy -------------------------------------------------------------------

_exact_je = jax.jit(batch.exact_joint_entropy)
_sampled_je = jax.jit(batch.sampled_joint_entropy, static_argnums=2)


def test_joint_entropy_hand_value():
    # T=4 models, two points that are one-hot functions of the model: point 0 says
    # class t // 2, point 1 says class t % 2 -> 4 equally likely configurations:
    # H = log 4.  Point 2 copies point 0, so adding it keeps H = log 4.
    onehot = np.eye(2, dtype=np.float32)
    t = np.arange(4)
    p = np.stack([onehot[t // 2], onehot[t % 2], onehot[t // 2]], axis=1)  # [4, 3, 2]
    np.testing.assert_allclose(_exact_je(p[:, :2]), math.log(4), atol=1e-6)
    np.testing.assert_allclose(_exact_je(p), math.log(4), atol=1e-6)
    assert ref.joint_entropy(p, [0, 1, 2]) == pytest.approx(math.log(4))


@pytest.mark.parametrize("num_points", [1, 2, 3])
def test_exact_joint_entropy_vs_enumeration(num_points):
    for seed, (t, c) in enumerate([(3, 2), (4, 3), (2, 4)]):
        p = _probs(seed, t, num_points, c)
        want = ref.joint_entropy(p, list(range(num_points)))
        np.testing.assert_allclose(_exact_je(p), want, rtol=1e-5)


def test_sampled_joint_entropy_close_to_exact():
    p = _probs(7, 5, 4, 3)  # exact: 27 configurations of the first 3 points
    want = ref.joint_entropy(p, [0, 1, 2, 3])
    got = [_sampled_je(jax.random.key(s), p, 2000) for s in range(3)]
    np.testing.assert_allclose(got, want, rtol=0.02)
    assert len({float(g) for g in got}) > 1  # it really samples


# BatchBALD -----------------------------------------------------------------------


def _bb(p, lab, k, key=0, **kw):
    return batch.batchbald_select(jax.random.key(key), p, lab, k, **kw)  # jitted itself


def test_batchbald_k1_is_bald_top1():
    for seed in range(3):
        p, lab = _probs(seed, 6, 15, 4), _labeled(seed, 15)
        assert int(_bb(p, lab, 1)[0]) == int(ref.top_k(ref.bald(p), lab, 1)[0])


def test_batchbald_exact_matches_reference_greedy():
    for seed in range(2):
        p, lab = _probs(seed, 4, 12, 3), _labeled(seed, 12)
        got = _bb(p, lab, 3, chunk_size=5)  # 3**2 = 9 <= 1000: all steps exact
        np.testing.assert_array_equal(got, ref.batchbald_greedy(p, lab, 3))


def test_batchbald_avoids_duplicates_that_bald_takes():
    # T=4 one-hot models.  Points 0, 1: copies saying t // 2 (BALD log 2 each).
    # Point 2: a softer t % 2 split (BALD < log 2).  Top-k BALD takes both copies;
    # BatchBALD knows the copy adds nothing once point 0 is in: takes [0, 2].
    t = np.arange(4)
    copy = np.eye(2, dtype=np.float32)[t // 2]
    soft = np.where((t % 2)[:, None] == 1, [0.05, 0.95], [0.95, 0.05]).astype(np.float32)
    p = np.stack([copy, copy, soft], axis=1)  # [4, 3, 2]
    lab = np.zeros(3, bool)
    np.testing.assert_array_equal(
        strategies.get("bald").select(None, strategies.Outputs(p), lab, 2), [0, 1]
    )
    np.testing.assert_array_equal(_bb(p, lab, 2), [0, 2])
    np.testing.assert_array_equal(ref.batchbald_greedy(p, lab, 2), [0, 2])


def test_batchbald_sampled_phase_is_greedy_optimal():
    # One-hot models: a configuration is a function of ω, so M = T stratified
    # samples give the exact joint entropy and every sampled-phase pick must be a
    # greedy argmax.  C=2, M=8: steps 0..3 exact, steps 4..5 sampled.
    rng = np.random.default_rng(0)
    t, n = 8, 14
    p = np.eye(2, dtype=np.float32)[rng.integers(0, 2, size=(t, n))]  # [T, N, 2]
    lab = _labeled(0, n, 0.2)
    assert batch.num_exact_steps(2, 6, 8) == 4
    got = [int(i) for i in _bb(p, lab, 6, num_samples=8, chunk_size=4)]
    assert len(set(got)) == 6 and not lab[got].any()
    for i in range(6):
        gains = ref.batchbald_gains(p, lab, got[:i])
        assert gains[got[i]] >= np.nanmax(gains) - 1e-5, (i, got)


def test_batchbald_sampled_valid_and_deterministic():
    p, lab = _probs(5, 5, 30, 4), _labeled(5, 30)
    a, b = (_bb(p, lab, 7, key=3, num_samples=20, chunk_size=8) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == jnp.int32 and len(set(a.tolist())) == 7 and not lab[np.asarray(a)].any()
    other = [_bb(p, lab, 7, key=s, num_samples=20, chunk_size=8).tolist() for s in range(4)]
    assert all(o[:2] == a.tolist()[:2] for o in other)  # steps 0, 1 are exact: key-free


def test_batchbald_jit_equals_nojit():
    p, lab = _probs(6, 3, 9, 2), _labeled(6, 9)  # C=2, M=2: 2 exact steps, 2 sampled
    with jax.disable_jit():  # op by op; lax.map / fori_loop become Python loops
        nojit = batch.batchbald_select(jax.random.key(1), p, lab, 4, num_samples=2, chunk_size=16)
    np.testing.assert_array_equal(_bb(p, lab, 4, key=1, num_samples=2, chunk_size=16), nojit)


def test_batchbald_more_picks_than_unlabeled_stay_distinct():
    p = _probs(2, 3, 5, 2)
    lab = np.array([True, False, True, False, True])
    got = _bb(p, lab, 4).tolist()
    assert sorted(got[:2]) == [1, 3] and len(set(got)) == 4


def test_batchbald_registry_params():
    s = strategies.get("batchbald", num_samples=50, chunk_size=16)
    p, lab = _probs(4, 4, 10, 3), _labeled(4, 10)
    np.testing.assert_array_equal(
        s.select(jax.random.key(0), strategies.Outputs(p), lab, 2), ref.batchbald_greedy(p, lab, 2)
    )
    np.testing.assert_allclose(s.score(strategies.Outputs(p)), ref.bald(p), atol=2e-6)
    with pytest.raises(ValueError):
        strategies.get("batchbald", num_samples=0)
