"""Uncertainty sampling (least confidence, margin, entropy) on hand-computed tables,
and their MC-dropout versions (``source="mc"``: the score of the predictive
mean over samples)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import config as config_lib
from jaxal import strategies
from jaxal.config import ConfigError
from jaxal.config.strategy_list import parse_strategies
from jaxal.strategies import uncertainty
from jaxal.strategies.base import Needs, Outputs

NAMES = ("least_confidence", "margin", "entropy")

# Four points, four classes.  Each strategy ranks them differently.
TABLE = np.array(
    [
        [0.40, 0.20, 0.20, 0.20],  # 0: flat tail
        [0.36, 0.34, 0.30, 0.00],  # 1: lowest top class
        [0.70, 0.28, 0.01, 0.01],  # 2: confident
        [0.50, 0.49, 0.005, 0.005],  # 3: two nearly tied classes
    ],
    np.float32,
)

# least confidence = 1 - max_c p_c:
#   0: 1 - .40 = .60   1: 1 - .36 = .64   2: 1 - .70 = .30   3: 1 - .50 = .50
LC = [0.60, 0.64, 0.30, 0.50]
LC_ORDER = [1, 0, 3, 2]
# margin = p_(2) - p_(1) (negative gap; higher = smaller gap):
#   0: .20 - .40 = -.20   1: .34 - .36 = -.02   2: .28 - .70 = -.42   3: .49 - .50 = -.01
MARGIN = [-0.20, -0.02, -0.42, -0.01]
MARGIN_ORDER = [3, 1, 0, 2]
# entropy = -sum_c p_c ln p_c (0 ln 0 = 0); -x ln x for the values used:
#   .40 -> .366516  .20 -> .321888  .36 -> .367794  .34 -> .366795  .30 -> .361192
#   .70 -> .249672  .28 -> .356430  .01 -> .046052  .50 -> .346574  .49 -> .349541
#   .005 -> .026492
#   0: .366516 + 3 x .321888            = 1.332180
#   1: .367794 + .366795 + .361192 + 0  = 1.095781
#   2: .249672 + .356430 + 2 x .046052  = 0.698206
#   3: .346574 + .349541 + 2 x .026492  = 0.749099
ENTROPY = [1.332180, 1.095781, 0.698206, 0.749099]
ENTROPY_ORDER = [0, 1, 3, 2]

EXPECTED = {
    "least_confidence": (uncertainty.least_confidence_scores, LC, LC_ORDER),
    "margin": (uncertainty.margin_scores, MARGIN, MARGIN_ORDER),
    "entropy": (uncertainty.entropy_scores, ENTROPY, ENTROPY_ORDER),
}


def _select(name, probs, labeled, k, **params):
    s = strategies.get(name, **params)
    return np.asarray(s.select(jax.random.key(0), Outputs(probs=probs), jnp.asarray(labeled), k))


@pytest.mark.parametrize("name", NAMES)
def test_hand_scores_and_picks(name):
    fn, scores, order = EXPECTED[name]
    np.testing.assert_allclose(fn(TABLE), scores, atol=1e-5)
    s = strategies.get(name)
    np.testing.assert_allclose(s.score(Outputs(probs=TABLE)), scores, atol=1e-5)
    # Top-1 differs for every strategy: LC -> 1, margin -> 3, entropy -> 0.
    np.testing.assert_array_equal(_select(name, TABLE, np.zeros(4, bool), 4), order)
    jitted = jax.jit(s.select, static_argnums=3)(
        jax.random.key(0), Outputs(probs=TABLE), jnp.zeros(4, bool), 4
    )
    np.testing.assert_array_equal(jitted, order)


@pytest.mark.parametrize("name", NAMES)
def test_hand_picks_skip_labeled(name):
    # Label each strategy's top point: the next two in its order come out.
    _, _, order = EXPECTED[name]
    labeled = np.zeros(4, bool)
    labeled[order[0]] = True
    np.testing.assert_array_equal(_select(name, TABLE, labeled, 2), order[1:3])


def test_margin_ties_break_to_lower_index():
    # Points 1 and 2 both have gap 0 (.4 - .4 and 1/3 - 1/3): margin 0 ties, the
    # lower index first; point 0's gap .5 - .3 = .2 comes last.
    p = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3]], np.float32)
    np.testing.assert_allclose(uncertainty.margin_scores(p), [-0.2, 0.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(_select("margin", p, np.zeros(3, bool), 3), [1, 2, 0])


# MC-dropout versions ---------------------------------------------------------------

# T=2 samples of two points (C=2).
#   point 0: samples (1, 0) and (0, 1)   -> mean (.5, .5)
#   point 1: samples (.9, .1), (.7, .3)  -> mean (.8, .2)
SAMPLES = np.array([[[1.0, 0.0], [0.9, 0.1]], [[0.0, 1.0], [0.7, 0.3]]], np.float32)
# Scores of the mean:
#   LC:      0: 1 - .5 = .5         1: 1 - .8 = .2
#   margin:  0: .5 - .5 = 0         1: .2 - .8 = -.6
#   entropy: 0: ln 2 = .693147      1: -(.8 ln .8 + .2 ln .2) = .178515 + .321888 = .500402
# Point 0's samples are each certain (entropy 0): the MC score is the entropy of
# the MEAN, not the mean of the entropies (that would be 0 for point 0).
MC_SCORES = {
    "least_confidence": [0.5, 0.2],
    "margin": [0.0, -0.6],
    "entropy": [math.log(2), 0.500402],
}
# One deterministic pass (dropout off) of the same two points:
#   (.95, .05) and (.6, .4): LC .05 vs .4, margin -.9 vs -.2,
#   entropy .198515 vs .673012 -> every deterministic strategy picks point 1,
#   every MC one picks point 0.
DETERMINISTIC = np.array([[0.95, 0.05], [0.6, 0.4]], np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_mc_source_scores_the_mean_of_samples(name):
    s = strategies.get(name, source="mc")
    assert s.needs == Needs(probs=True, samples=True)
    np.testing.assert_allclose(s.score(Outputs(probs=SAMPLES)), MC_SCORES[name], atol=1e-5)
    np.testing.assert_array_equal(_select(name, SAMPLES, np.zeros(2, bool), 1, source="mc"), [0])
    np.testing.assert_array_equal(_select(name, DETERMINISTIC, np.zeros(2, bool), 1), [1])


@pytest.mark.parametrize("name", NAMES)
def test_mc_source_needs_samples(name):
    s = strategies.get(name, source="mc")
    with pytest.raises(ValueError, match=r"\[T, N, C\]"):
        s.select(jax.random.key(0), Outputs(probs=DETERMINISTIC), jnp.zeros(2, bool), 1)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_source_is_the_default(name):
    assert strategies.params_of(name) == {"source": "deterministic"}
    assert strategies.get(name).needs == Needs(probs=True)
    assert strategies.get(name, source="deterministic").needs == Needs(probs=True)
    with pytest.raises(ValueError, match="source"):
        strategies.get(name, source="dropout")


@pytest.mark.parametrize("name", NAMES)
def test_mc_source_matches_deterministic_on_the_mean(name):
    # Scoring the samples with source=mc == scoring their mean deterministically.
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=(6, 30)).astype(np.float32)
    labeled = rng.random(30) < 0.3
    mc = _select(name, p, labeled, 7, source="mc")
    np.testing.assert_array_equal(mc, _select(name, p.mean(0), labeled, 7))


def test_source_reachable_from_the_config():
    c = tiny_config(strategy="entropy(source=mc),margin", **{"model.dropout": 0.5})
    specs = parse_strategies(c)
    assert dict(specs[0].kwargs) == {"source": "mc"} and dict(specs[1].kwargs) == {}
    config_lib.validate(c)
    flat = tiny_config(strategy="entropy,least_confidence", **{"model.dropout": 0.5})
    flat.strategy_params.source = "mc"  # the flat form applies to both
    assert [dict(s.kwargs) for s in parse_strategies(flat)] == [{"source": "mc"}] * 2
    config_lib.validate(flat)


def test_mc_source_without_dropout_is_refused():
    c = tiny_config(strategy="entropy(source=mc)")  # tiny_config: model.dropout = 0
    with pytest.raises(ConfigError, match=r"model\.dropout.*entropy\(source=mc\)"):
        config_lib.validate(c)
    with pytest.raises(ConfigError, match="source"):
        config_lib.validate(tiny_config(strategy="entropy(source=typo)"))


def test_mc_entropy_runs_in_the_loop():
    from jaxal.assemble import assemble
    from jaxal.loop import run_rounds

    c = tiny_config(strategy="entropy(source=mc)", budget=20, **{"model.dropout": 0.5})
    c.mc.samples = 4
    r = assemble(c)
    state, recs = run_rounds(r.engine("entropy(source=mc)"), r.seeds, r.data)
    order = np.asarray(state.order)
    assert len(recs) == 3 and (order >= 0).all()
    assert all(len(set(row.tolist())) == 20 for row in order)
