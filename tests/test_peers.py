"""jaxal's selections against the PyTorch peers' own code on tiny inputs.

Needs the ``peers`` extra (torch, DISTIL, baal, scikit-activeml; see
``/work/shared/PEERS.md`` and ``benchmarks/README.md``); without torch the
module is skipped. The peers are independent implementations, so agreement
here checks jaxal's definitions, not just its self-consistency.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
distil_badge = pytest.importorskip("distil.active_learning_strategies.badge")
distil_core_set = pytest.importorskip("distil.active_learning_strategies.core_set")
distil_entropy = pytest.importorskip("distil.active_learning_strategies.entropy_sampling")
distil_lc = pytest.importorskip("distil.active_learning_strategies.least_confidence")
distil_margin = pytest.importorskip("distil.active_learning_strategies.margin_sampling")
baal_heuristics = pytest.importorskip("baal.active.heuristics")
skal_uncertainty = pytest.importorskip("skactiveml.pool._uncertainty_sampling")

from jaxal import strategies  # noqa: E402
from jaxal.strategies import badge, bayesian  # noqa: E402
from jaxal.strategies.base import Outputs  # noqa: E402

pytestmark = pytest.mark.peers

KEY = jax.random.key(0)


def _probs(seed, n, c, t=None):
    rng = np.random.default_rng(seed)
    shape = (n, c) if t is None else (t, n, c)
    z = rng.standard_normal(shape) * rng.uniform(0.3, 3.0, shape[:-1] + (1,))
    p = np.exp(z - z.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _jaxal(name, k, labeled, **outputs):
    """jaxal's picks for the given outputs (``labeled``: bool[N])."""
    out = Outputs(**{key: jnp.asarray(v) for key, v in outputs.items()})
    return np.asarray(strategies.get(name).select(KEY, out, jnp.asarray(labeled), k))


def _distil(cls, probs):
    s = cls(None, None, None, None, None, probs.shape[1], {})
    s.predict_prob = lambda x: torch.from_numpy(probs)
    return s


@pytest.mark.parametrize(
    "name, distil_cls, baal_cls, skal_method",
    [
        ("entropy", distil_entropy.EntropySampling, baal_heuristics.Entropy, "entropy"),
        ("margin", distil_margin.MarginSampling, baal_heuristics.Margin, "margin_sampling"),
        (
            "least_confidence",
            distil_lc.LeastConfidence,
            baal_heuristics.Certainty,
            "least_confident",
        ),
    ],
)
def test_uncertainty_top_k_matches_peers(name, distil_cls, baal_cls, skal_method):
    probs, k = _probs(0, 300, 6), 40
    ours = _jaxal(name, k, np.zeros(300, bool), probs=probs)
    distil = np.asarray(_distil(distil_cls, probs).select(k))
    baal = np.asarray(baal_cls()(probs))[:k]
    skal = skal_uncertainty.uncertainty_scores(probs, method=skal_method)
    skal_top = np.argsort(-skal, kind="stable")[:k]
    for other in (distil, baal, skal_top):
        assert set(ours.tolist()) == set(other.tolist())
    np.testing.assert_array_equal(ours, skal_top)  # same order: highest score first


def test_coreset_matches_distil_furthest_first():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((400, 8)) * rng.uniform(0.5, 2.0, (400, 1))).astype(np.float32)
    labeled = np.zeros(400, bool)
    labeled[rng.choice(400, 30, replace=False)] = True
    unl = np.flatnonzero(~labeled)
    theirs = distil_core_set.CoreSet.furthest_first(None, x[unl], x[labeled], 25)
    ours = _jaxal("coreset", 25, labeled, embeddings=x)
    np.testing.assert_array_equal(ours, unl[np.asarray(theirs)])


class _InverseCdf:
    """Stands in for ``scipy.stats.rv_discrete`` in DISTIL's ``init_centers``: each
    draw is the first index whose cumulative probability exceeds the next uniform
    (jaxal's inverse-CDF rule), so both sides consume the same uniforms."""

    uniforms: list[float] = []

    def __init__(self, name, values):
        self.cdf = np.cumsum(np.asarray(values[1], np.float64))

    def rvs(self, size):
        u = self.uniforms.pop(0)
        return [int(np.searchsorted(self.cdf, u * self.cdf[-1], side="right"))]


def test_badge_matches_distil_init_centers_on_explicit_embeddings(monkeypatch):
    n, c, d, k = 120, 4, 6, 12
    rng = np.random.default_rng(2)
    probs = _probs(2, n, c)
    h = np.maximum(rng.standard_normal((n, d)), 0).astype(np.float32)
    labeled = np.zeros(n, bool)
    labeled[:10] = True
    unl = np.flatnonzero(~labeled)
    # DISTIL's gradient embedding (Strategy.get_grad_embedding, bias_grad=False).
    p, hu = torch.from_numpy(probs[unl]), torch.from_numpy(h[unl])
    onehot = torch.zeros_like(p).scatter_(1, p.argmax(1, keepdim=True), 1)
    g = (torch.repeat_interleave(p - onehot, d, dim=1) * hu.repeat(1, c)).numpy()
    uniforms = np.asarray(jax.random.uniform(jax.random.key(5), (k,)))
    _InverseCdf.uniforms = [float(u) for u in uniforms[1:]]
    monkeypatch.setattr(distil_badge.stats, "rv_discrete", _InverseCdf)
    theirs = unl[np.asarray(distil_badge.init_centers(g, k, "cpu"))]
    ours = np.asarray(
        badge.badge_from_uniforms(
            jnp.asarray(probs), jnp.asarray(h), jnp.asarray(labeled), jnp.asarray(uniforms)
        )
    )
    np.testing.assert_array_equal(ours, theirs)


def test_bald_matches_baal():
    probs = _probs(3, 200, 5, t=8)  # [T, N, C]
    k = 30
    ours = _jaxal("bald", k, np.zeros(200, bool), probs=probs)
    theirs_scores = baal_heuristics.BALD().compute_score(np.moveaxis(probs, 0, -1))  # [N, C, T]
    ours_scores = np.asarray(bayesian.bald_scores(jnp.asarray(probs)))
    np.testing.assert_allclose(ours_scores, theirs_scores, rtol=1e-4, atol=1e-5)
    assert set(ours.tolist()) == set(np.argsort(-theirs_scores)[:k].tolist())
