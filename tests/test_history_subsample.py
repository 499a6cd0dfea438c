"""``history_subsample`` as Németh & Matuszka's Algorithm 1: the first round
scores the whole pool, later rounds draw m candidates ∝ softmax(history / T)
without replacement and re-score only them."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from scipy import stats

from jaxal import strategies
from jaxal.strategies import wrappers
from jaxal.strategies.base import Outputs
from tests import reference as ref

DRAWS = 20_000


fixed_scores, _out = ref.fixed_scores, ref.score_outputs


def _round(s, key, pool_scores, labeled, k, state, first=False):
    """One loop round (as jaxal.loop drives it) where the model's score of pool
    point i is ``pool_scores[i]``. Returns (picked, candidates or None, state)."""
    k_prop, k_sel = jax.random.split(key)
    # As the loop drives it: a `score_pool_first` strategy's first round scores the pool.
    cand = None if first and s.score_pool_first else s.propose(k_prop, labeled, state)
    if cand is None:
        outs = _out(pool_scores)
        return s.select(k_sel, outs, labeled, k), None, s.update(state, None, outs)
    outs = _out(jnp.asarray(pool_scores)[cand])
    local = s.select(k_sel, outs, labeled[cand], k)
    return cand[local], cand, s.update(state, cand, outs)


SCORES1 = np.array([0.1, 0.5, 1.0, 2.0, 0.3, 0.7], np.float32)  # the round-1 model
LABELED = np.array([False, False, False, True, False, False])


def test_first_round_scores_the_whole_pool():
    s = strategies.get("history_subsample", base=fixed_scores(), m=2)
    state = s.init(6)
    assert s.score_pool_first  # the loop's round 0 scores the whole pool
    picked, cand, state = _round(
        s, jax.random.key(0), SCORES1, jnp.asarray(LABELED), 2, state, first=True
    )
    assert cand is None
    # Top-2 of the whole unlabeled pool: 2.0 (point 3) is labeled -> 1.0 (2), .7 (5).
    np.testing.assert_array_equal(picked, [2, 5])
    np.testing.assert_array_equal(state.scores, SCORES1)  # every point's history
    # The next round proposes m = 2 distinct unlabeled candidates, not the pool.
    cand = s.propose(jax.random.key(1), jnp.asarray(LABELED), state)
    assert cand.shape == (2,) and cand.dtype == jnp.int32 and len(set(cand.tolist())) == 2
    assert not LABELED[np.asarray(cand)].any()


# History h = ln(1, 2, 3, 4) with T = 1: weights exp(h) = 1, 2, 3, 4 (sum 10).
# Two candidates without replacement: P(i then j) = w_i/10 · w_j/(10 - w_i), so
#   {0,1}: 1/10·2/9 + 2/10·1/8 = .022222 + .025    = .047222
#   {0,2}: 1/10·3/9 + 3/10·1/7 = .033333 + .042857 = .076190
#   {0,3}: 1/10·4/9 + 4/10·1/6 = .044444 + .066667 = .111111
#   {1,2}: 2/10·3/8 + 3/10·2/7 = .075    + .085714 = .160714
#   {1,3}: 2/10·4/8 + 4/10·2/6 = .1      + .133333 = .233333
#   {2,3}: 3/10·4/7 + 4/10·3/6 = .171429 + .2      = .371429   (sum 1)
HIST = np.log(np.array([1.0, 2.0, 3.0, 4.0]))
PAIRS = list(itertools.combinations(range(4), 2))
PAIR_P = [0.047222, 0.076190, 0.111111, 0.160714, 0.233333, 0.371429]
# Point 3 labeled: weights 1, 2, 3 (sum 6) among 0, 1, 2:
#   {0,1}: 1/6·2/5 + 2/6·1/4 = .066667 + .083333 = .15
#   {0,2}: 1/6·3/5 + 3/6·1/3 = .1      + .166667 = .266667
#   {1,2}: 2/6·3/4 + 3/6·2/3 = .25     + .333333 = .583333
PAIR_P_LABELED = [0.15, 0.266667, 0.0, 0.583333, 0.0, 0.0]


def _candidate_sets(s, state, labeled):
    keys = jax.random.split(jax.random.key(7), DRAWS)
    cand = jax.jit(jax.vmap(lambda k: s.propose(k, jnp.asarray(labeled), state)))(keys)
    cand = np.sort(np.asarray(cand), axis=1)
    return np.array([sum((cand[:, 0] == i) & (cand[:, 1] == j)) for i, j in PAIRS])


@pytest.mark.parametrize(
    "labeled, want",
    [(np.zeros(4, bool), PAIR_P), (np.array([False, False, False, True]), PAIR_P_LABELED)],
)
def test_later_rounds_draw_candidates_by_softmax_of_history(labeled, want):
    s = strategies.get("history_subsample", base=fixed_scores(), m=2, temperature=1.0)
    state = wrappers.history_state(HIST)
    counts = _candidate_sets(s, state, labeled)
    want = np.asarray(want)
    np.testing.assert_allclose(sum(want), 1.0, atol=1e-5)
    assert counts[want == 0].sum() == 0  # a labeled point is never a candidate
    keep = want > 0
    assert stats.chisquare(counts[keep], want[keep] / want[keep].sum() * DRAWS).pvalue > 1e-3
    # Not uniform over the sets (what never-scored points got before).
    uniform = np.full(keep.sum(), DRAWS / keep.sum())
    assert stats.chisquare(counts[keep], uniform).pvalue < 1e-6


def test_temperature_scales_the_history():
    # T = 1/2 on h = ln(1, 2, 3, 4) is T = 1 on 2h: weights 1, 4, 9, 16 (sum 30);
    # P(first candidate = i) = w_i / 30.
    s = strategies.get("history_subsample", base=fixed_scores(), m=1, temperature=0.5)
    keys = jax.random.split(jax.random.key(3), DRAWS)
    state = wrappers.history_state(HIST)
    cand = jax.jit(jax.vmap(lambda k: s.propose(k, jnp.zeros(4, bool), state)))(keys)
    counts = np.bincount(np.asarray(cand)[:, 0], minlength=4)
    assert stats.chisquare(counts, np.array([1, 4, 9, 16]) / 30 * DRAWS).pvalue > 1e-3


def test_history_is_updated_only_for_rescored_points():
    s = strategies.get("history_subsample", base=fixed_scores(), m=3)
    labeled = jnp.asarray(LABELED)
    _, _, state = _round(s, jax.random.key(0), SCORES1, labeled, 1, s.init(6), first=True)
    # The round-2 model scores every point 10 higher; only the 3 candidates'
    # history moves, the others keep their round-1 score.
    scores2 = SCORES1 + 10.0
    picked, cand, state2 = _round(s, jax.random.key(1), scores2, labeled, 1, state)
    cand = np.asarray(cand)
    assert len(set(cand.tolist())) == 3 and not LABELED[cand].any()
    want = SCORES1.copy()
    want[cand] = scores2[cand]
    np.testing.assert_array_equal(state2.scores, want)
    # The pick is the base's top-1 among the candidates, on the new scores.
    assert int(picked[0]) == cand[np.argmax(scores2[cand])]


def test_rounds_jit_equals_nojit():
    rng = np.random.default_rng(0)
    s = strategies.get("history_subsample", base="margin", m=5, temperature=0.2)
    probs = jnp.asarray(rng.dirichlet(np.ones(3), size=20), jnp.float32)
    labeled = jnp.asarray(rng.random(20) < 0.2)

    def step(key, state, first):
        k_prop, k_sel = jax.random.split(key)
        cand = None if first else s.propose(k_prop, labeled, state)
        outs = Outputs(probs=probs if cand is None else probs[cand])
        lab = labeled if cand is None else labeled[cand]
        local = s.select(k_sel, outs, lab, 2)
        return (local if cand is None else cand[local]), s.update(state, cand, outs)

    state_j = state_n = s.init(20)
    for r in range(3):
        (pj, state_j), (pn, state_n) = (
            jax.jit(step, static_argnums=2)(jax.random.key(r), state_j, r == 0),
            step(jax.random.key(r), state_n, r == 0),
        )
        np.testing.assert_array_equal(pj, pn)
        np.testing.assert_array_equal(state_j.scores, state_n.scores)


# In the loop -------------------------------------------------------------------------


def _config():
    return tiny_config(
        strategy="history_subsample(base=entropy,m=40)", budget=30, **{"train.epochs": 2}
    )


def test_loop_scores_the_pool_first_then_m_candidates():
    from jaxal.assemble import assemble
    from jaxal.loop import rounds

    r = assemble(_config())
    engine = r.engine("history_subsample(base=entropy,m=40)")
    sizes = []

    def recording(phase):  # an engine score phase, recording what it scored
        def score(state, round_, data):
            cand, outputs = phase(state, round_, data)
            sizes.append((None if cand is None else cand.shape, outputs.probs.shape[1]))
            return cand, outputs

        return score

    spy = engine._replace(score=recording(engine.score), score_first=recording(engine.score_first))
    for _ in rounds(spy, r.seeds, r.data):
        pass
    n = r.plan.num_pool
    assert sizes == [(None, n), ((2, 40), 40), ((2, 40), 40), ((2, 40), 40)]  # 2 seeds


def test_a_seed_that_kept_its_old_state_draws_never_scored_points_uniformly():
    # Generic code may keep a seed's old state leaf by leaf (e.g. when its
    # training diverged): bool (first round) merged with int8 is int8.
    s = strategies.get("history_subsample", base=fixed_scores(), m=3)
    old = s.init(6)
    new = s.update(old, None, _out(SCORES1))
    for keep_old in (False, True):
        merged = jax.tree.map(lambda a, b, keep=keep_old: jnp.where(keep, b, a), new, old)
        cand = s.propose(jax.random.key(0), jnp.asarray(LABELED), merged)
        assert cand.shape == (3,) and not LABELED[np.asarray(cand)].any()
    # The kept seed's history is all "never scored": uniform candidates.
    keys = jax.random.split(jax.random.key(1), DRAWS)
    cand = jax.jit(jax.vmap(lambda k: s.propose(k, jnp.asarray(LABELED), merged)))(keys)
    counts = np.bincount(np.asarray(cand)[:, 0], minlength=6)
    assert counts[3] == 0
    assert stats.chisquare(counts[~LABELED], np.full(5, DRAWS / 5)).pvalue > 1e-3


def test_checkpoint_resume_gives_the_results_of_an_uninterrupted_run(tmp_path):
    from jaxal.assemble import assemble
    from jaxal.checkpoint import RunCheckpointer
    from jaxal.experiment import _from_flat
    from jaxal.loop import init_state, rounds

    r = assemble(_config())
    engine = r.engine("history_subsample(base=entropy,m=40)")
    full = [np.asarray(st.order) for _, st in rounds(engine, r.seeds, r.data)]
    with RunCheckpointer(tmp_path / "ckpt", async_save=False) as ckpt:
        for rec, st in rounds(engine, r.seeds, r.data):
            ckpt.save(rec.round, st, {})
            if rec.round == 1:
                break
        _, flat, _ = ckpt.restore_latest_good()
    template = init_state(engine, r.seeds, r.data)  # what a resume restores into
    state = _from_flat(flat, template, r.placement)
    resumed = [
        np.asarray(st.order)
        for _, st in rounds(engine, r.seeds, r.data, state=state, start_round=2)
    ]
    np.testing.assert_array_equal(resumed[-1], full[-1])
