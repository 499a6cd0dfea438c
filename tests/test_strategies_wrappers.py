"""Stochastic batch acquisition, candidate subsampling wrappers and the selector
contract (unique, unlabeled, int32[k], deterministic) for the strategies of
bayesian.py, batch.py and wrappers.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from jaxal import strategies
from jaxal.strategies import select, wrappers
from jaxal.strategies.base import Outputs
from tests import reference as ref

DRAWS = 20_000


fixed_scores, _out = ref.fixed_scores, ref.score_outputs


def _draws(s, scores, labeled, k, n=DRAWS):
    """``[n, k]`` selections of ``s`` under n independent keys (one compile)."""
    keys = jax.random.split(jax.random.key(0), n)
    sel = jax.jit(jax.vmap(lambda key: s.select(key, _out(scores), jnp.asarray(labeled), k)))
    return np.asarray(sel(keys))


def _chi2_p(counts, probs):
    keep = probs > 0
    assert counts[~keep].sum() == 0  # zero-probability outcomes never happen
    return stats.chisquare(counts[keep], probs[keep] * counts.sum()).pvalue


SCORES = np.array([0.1, 0.5, 1.0, 2.0, 0.3, 0.7], np.float32)
LABELED = np.array([False, False, False, True, False, False])


# Stochastic batch acquisition ----------------------------------------------------


@pytest.mark.parametrize(
    "name, beta, weights",
    [
        ("power", 1.5, SCORES.astype(np.float64) ** 1.5),  # P ∝ s^β
        ("softmax", 2.0, np.exp(2.0 * SCORES.astype(np.float64))),  # P ∝ exp(β s)
        ("softrank", 1.0, 1.0 / ref.ranks_desc(SCORES, LABELED).clip(1)),  # P ∝ rank^-β
    ],
)
def test_first_draw_frequencies(name, beta, weights):
    s = strategies.get(name, base=fixed_scores(), beta=beta)
    counts = np.bincount(_draws(s, SCORES, LABELED, 1)[:, 0], minlength=len(SCORES))
    want = ref.plackett_luce_first(weights, LABELED)
    assert _chi2_p(counts, want) > 1e-3
    assert _chi2_p(counts, ref.plackett_luce_first(SCORES, LABELED)) < 1e-6  # test has power


def test_power_pair_frequencies_plackett_luce():
    # k=2: P(first=i, second=j) = w_i/W · w_j/(W - w_i), sampling without replacement.
    scores, labeled = SCORES[:4], LABELED[:4]
    s = strategies.get("power", base=fixed_scores(), beta=1.0)
    draws = _draws(s, scores, labeled, 2)
    assert (draws[:, 0] != draws[:, 1]).all()
    counts = np.zeros((4, 4))
    np.add.at(counts, (draws[:, 0], draws[:, 1]), 1)
    assert _chi2_p(counts.ravel(), ref.plackett_luce_pairs(scores, labeled).ravel()) > 1e-3


@pytest.mark.parametrize("name", ["power", "softmax", "softrank"])
def test_large_beta_is_top_k(name):
    s = strategies.get(name, base=fixed_scores(), beta=1e3)
    want = ref.top_k(SCORES, LABELED, 3)
    for seed in range(5):
        got = s.select(jax.random.key(seed), _out(SCORES), jnp.asarray(LABELED), 3)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["power", "softmax", "softrank"])
def test_nan_scores_drawn_last(name):
    scores = SCORES.copy()
    scores[1] = np.nan
    s = strategies.get(name, base=fixed_scores(), beta=1.0)
    draws = _draws(s, scores, LABELED, 5, n=200)  # 5 unlabeled: NaN one last
    assert (draws[:, -1] == 1).all()


def test_beta_zero_power_is_uniform():
    s = strategies.get("power", base=fixed_scores(), beta=0.0)
    counts = np.bincount(_draws(s, SCORES, LABELED, 1)[:, 0], minlength=len(SCORES))
    assert _chi2_p(counts, ref.plackett_luce_first(np.ones(6), LABELED)) > 1e-3


def test_stochastic_with_registry_base_and_params():
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=(4, 8)).astype(np.float32)
    s = strategies.get("power", base="bald", beta=1e4)
    lab = np.zeros(8, bool)
    got = s.select(jax.random.key(1), Outputs(probs=p), lab, 3)
    np.testing.assert_array_equal(got, ref.top_k(ref.bald(p), lab, 3))
    assert s.needs.samples and s.name == "power"
    sub = strategies.get("softmax", base="batchbald", base_params={"num_samples": 10})
    np.testing.assert_allclose(sub.score(Outputs(probs=p)), ref.bald(p), atol=2e-6)


def test_wrapper_errors():
    with pytest.raises(ValueError, match="score"):
        strategies.get("power", base="random")
    with pytest.raises(ValueError, match="score"):
        strategies.get("history_subsample", base="random")
    with pytest.raises(ValueError, match="unknown strategy"):
        strategies.get("softmax", base="nope")
    with pytest.raises(ValueError, match="beta"):
        strategies.get("softrank", beta=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        strategies.get("history_subsample", temperature=0.0)
    with pytest.raises(ValueError, match="nest"):
        strategies.get("subsample", base=strategies.get("history_subsample"))
    s = strategies.get("subsample", m=8)
    with pytest.raises(ValueError, match="k=3"):
        s.select(jax.random.key(0), Outputs(probs=np.full((2, 3), 1 / 3)), np.zeros(2, bool), 3)
    with pytest.raises(ValueError, match="k=8"):
        s.propose(jax.random.key(0), jnp.zeros(5, bool), ())


# Subsample -----------------------------------------------------------------------


def _round(s, key, probs, labeled, k, state=(), first=False):
    """One loop round as base.py describes it; returns (picked, candidates, state).
    ``first``: the run's first round (``score_pool_first`` strategies score the pool)."""
    k_prop, k_sel = jax.random.split(key)
    cand = None if first and s.score_pool_first else s.propose(k_prop, labeled, state)
    if cand is None:  # the whole pool is scored
        outs = Outputs(probs=probs)
        picked = s.select(k_sel, outs, labeled, k)
        return picked, jnp.arange(labeled.shape[0], dtype=jnp.int32), s.update(state, None, outs)
    outs = Outputs(probs=probs[..., cand, :])  # [N, C] or [T, N, C]
    local = s.select(k_sel, outs, labeled[cand], k)
    return cand[local], cand, s.update(state, cand, outs)


def test_subsample_picks_only_unlabeled_candidates():
    rng = np.random.default_rng(0)
    probs = jnp.asarray(rng.dirichlet(np.ones(3), size=40), jnp.float32)
    labeled = jnp.asarray(rng.random(40) < 0.4)
    s = strategies.get("subsample", base="entropy", m=10)
    step = jax.jit(lambda key: _round(s, key, probs, labeled, 4))
    for seed in range(5):
        picked, cand, _ = step(jax.random.key(seed))
        cand = np.asarray(cand)
        assert cand.dtype == np.int32 and len(set(cand.tolist())) == 10
        assert not np.asarray(labeled)[cand].any()
        ent = np.array([ref.entropy(q) for q in np.asarray(probs)])
        np.testing.assert_array_equal(picked, cand[ref.top_k(ent[cand], np.zeros(10, bool), 4)])
        np.testing.assert_array_equal(picked, _round(s, jax.random.key(seed), probs, labeled, 4)[0])


def test_subsample_candidates_uniform():
    labeled = jnp.asarray(LABELED)
    s = strategies.get("subsample", base="entropy", m=1)
    keys = jax.random.split(jax.random.key(1), DRAWS)
    cand = jax.jit(jax.vmap(lambda key: s.propose(key, labeled, ())))(keys)
    counts = np.bincount(np.asarray(cand)[:, 0], minlength=6)
    assert _chi2_p(counts, ref.plackett_luce_first(np.ones(6), LABELED)) > 1e-3


# History subsample ---------------------------------------------------------------


def test_history_update_writes_candidate_slots():
    s = strategies.get("history_subsample", base=fixed_scores(), m=3)
    state = s.init(8)
    assert state.scores.shape == (8,) and np.isposinf(state.scores).all()
    state = s.update(state, jnp.array([5, 0, 3]), _out([0.2, 0.9, 0.4]))
    want = np.full(8, np.inf, np.float32)
    want[[5, 0, 3]] = [0.2, 0.9, 0.4]
    np.testing.assert_array_equal(state.scores, want)
    state = jax.jit(s.update)(state, jnp.array([3, 7, 1]), _out([-1.0, 2.0, np.nan]))
    want[[3, 7, 1]] = [-1.0, 2.0, np.nan]
    np.testing.assert_array_equal(state.scores, want)
    full = s.update(state, None, _out(np.arange(8.0)))  # whole pool scored
    np.testing.assert_array_equal(full.scores, np.arange(8.0))


def test_history_propose_softmax_frequencies():
    temperature = 0.5
    s = strategies.get("history_subsample", base=fixed_scores(), m=1, temperature=temperature)
    state = wrappers.history_state(SCORES)
    keys = jax.random.split(jax.random.key(2), DRAWS)
    cand = jax.jit(jax.vmap(lambda key: s.propose(key, jnp.asarray(LABELED), state)))(keys)
    counts = np.bincount(np.asarray(cand)[:, 0], minlength=6)
    want = ref.plackett_luce_first(np.exp(SCORES.astype(np.float64) / temperature), LABELED)
    assert _chi2_p(counts, want) > 1e-3
    assert _chi2_p(counts, ref.plackett_luce_first(np.exp(SCORES), LABELED)) < 1e-6


def test_history_propose_never_scored_first():
    # +inf = never scored (after the first round only if a seed's update was
    # discarded, or a base score is +inf): drawn first, in random order.
    s = strategies.get("history_subsample", base=fixed_scores(), m=5, temperature=0.1)
    hist = np.array([np.inf, 3.0, np.inf, 9.0, np.inf, 1.0, 2.0, np.inf])
    labeled = jnp.asarray([False, False, False, False, True, False, False, False])
    state = wrappers.history_state(hist)
    firsts = set()
    for seed in range(10):
        cand = np.asarray(s.propose(jax.random.key(seed), labeled, state))
        assert cand.dtype == np.int32 and len(set(cand.tolist())) == 5
        assert set(cand[:3].tolist()) == {0, 2, 7}  # unseen & unlabeled
        assert not np.asarray(labeled)[cand].any()
        firsts.add(int(cand[0]))
    assert len(firsts) > 1  # random order among them


def test_history_propose_nan_last_and_overfull():
    s = strategies.get("history_subsample", base=fixed_scores(), m=6)
    hist = jnp.asarray([1.0, np.nan, np.inf, 0.5, 2.0, -np.inf])
    labeled = jnp.asarray([False, False, False, False, True, False])
    cand = np.asarray(s.propose(jax.random.key(0), labeled, wrappers.history_state(hist)))
    # +inf (2), then finite by sampling (0, 3), then NaN / -inf (1, 5), then labeled (4)
    assert cand[0] == 2 and set(cand[1:3]) == {0, 3} and set(cand[3:5]) == {1, 5}
    assert cand[5] == 4


def test_history_round_trip_jit_equals_nojit():
    rng = np.random.default_rng(3)
    probs = jnp.asarray(rng.dirichlet(np.ones(3), size=30), jnp.float32)
    labeled = jnp.asarray(rng.random(30) < 0.2)
    s = strategies.get("history_subsample", base="margin", m=8, temperature=0.3)
    state = s.init(30)
    step = jax.jit(
        lambda key, state, first: _round(s, key, probs, labeled, 3, state, first),
        static_argnums=2,
    )
    top2 = np.sort(np.asarray(probs), axis=1)[:, -2:]
    margins = top2[:, 0] - top2[:, 1]
    for r in range(3):
        a = step(jax.random.key(r), state, r == 0)
        b = _round(s, jax.random.key(r), probs, labeled, 3, state, r == 0)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(x, y)
        picked, cand, state = a
        assert len(cand) == (30 if r == 0 else 8)  # round 0 scores the whole pool
        assert set(np.asarray(picked).tolist()) <= set(np.asarray(cand).tolist())
        np.testing.assert_allclose(state.scores[cand], margins[np.asarray(cand)], atol=1e-6)
    assert np.isfinite(state.scores).all()


# check_k and the selector contract -----------------------------------------------


def test_check_k():
    select.check_k(np.array([True, False, False]), 2)
    with pytest.raises(ValueError, match="only 1 unlabeled"):
        select.check_k(np.array([[True, False, False], [True, True, False]]), 2)
    with pytest.raises(ValueError):
        select.check_k(jnp.zeros(3, bool), -1)


SELECTORS = [
    ("bald", {}),
    ("variation_ratios", {}),
    ("mean_std", {}),
    ("vote_entropy", {}),
    ("batchbald", {"num_samples": 4}),
    ("power", {"base": "bald"}),
    ("softmax", {"base": "mean_std"}),
    ("softrank", {"base": "entropy"}),
    ("subsample", {"base": "bald", "m": 5}),
    ("history_subsample", {"base": "entropy", "m": 5}),
]


@settings(max_examples=40, deadline=None)
@given(
    which=st.integers(0, len(SELECTORS) - 1),
    shape=st.sampled_from([(2, 9, 2), (3, 9, 4)]),
    k=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_selector_contract(which, shape, k, seed):
    name, params = SELECTORS[which]
    s = strategies.get(name, **params)
    rng = np.random.default_rng(seed)
    probs = jnp.asarray(rng.dirichlet(np.full(shape[2], 0.3), size=shape[:2]), jnp.float32)
    labeled = rng.random(shape[1]) < 0.4
    labeled[rng.permutation(shape[1])[:5]] = False  # >= 5 unlabeled
    labeled = jnp.asarray(labeled)
    key = jax.random.key(seed)
    select.check_k(labeled, k)
    picked, cand, _ = _round(s, key, probs, labeled, k, s.init(shape[1]))
    again, _, _ = _round(s, key, probs, labeled, k, s.init(shape[1]))
    picked = np.asarray(picked)
    assert picked.dtype == np.int32 and picked.shape == (k,)
    assert len(set(picked.tolist())) == k and not np.asarray(labeled)[picked].any()
    np.testing.assert_array_equal(picked, again)


@pytest.mark.parametrize("name, params", SELECTORS)
def test_jit_equals_nojit(name, params):
    s = strategies.get(name, **params)
    rng = np.random.default_rng(1)
    probs = jnp.asarray(rng.dirichlet(np.ones(3), size=(3, 9)), jnp.float32)
    labeled = jnp.asarray(rng.random(9) < 0.3)
    key = jax.random.key(4)
    jitted = jax.jit(lambda key: _round(s, key, probs, labeled, 2, s.init(9))[0])(key)
    np.testing.assert_array_equal(jitted, _round(s, key, probs, labeled, 2, s.init(9))[0])
    assert math.isfinite(float(jnp.sum(jitted)))
