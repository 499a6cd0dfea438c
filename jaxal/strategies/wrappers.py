"""Strategies built around another strategy (the ``base``).

* Stochastic batch acquisition (Kirsch et al. 2023, "Stochastic Batch
  Acquisition: A Simple Baseline for Deep Active Learning"): ``power``,
  ``softmax``, ``softrank`` replace the base's top-k by a draw of k points
  without replacement, P ∝ ``score**β`` / ``exp(β·score)`` / ``rank**-β``, via
  the Gumbel-top-k trick on device.
* Candidate subsampling: ``subsample`` scores a uniform random candidate set of
  ``m`` unlabeled points each round; ``history_subsample`` (Németh &
  Matuszka, compute-efficient active learning, Algorithm 1) scores the whole
  pool once, then draws the candidates ∝ ``softmax(last known score /
  temperature)`` and re-scores only them.

The base is a registry name plus a ``base_params`` dict, so a config can say::

    config.strategy = "power"
    config.strategy_params = dict(base="bald", beta=1.0, base_params={})

or ``dict(base="batchbald", m=5000, base_params=dict(num_samples=500))`` for
``subsample``. A :class:`Strategy` object may also be passed as ``base``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal.strategies.base import (
    Array,
    Outputs,
    Strategy,
    StrategyState,
    _no_propose,
    masked_top_k,
)
from jaxal.strategies.select import check_static_k, gumbel_top_k, rank_key

BaseSpec = str | Strategy


def resolve(base: BaseSpec, base_params: Mapping | None = None) -> Strategy:
    """The base strategy: ``get(base, **base_params)``, or ``base`` itself."""
    if isinstance(base, Strategy):
        if base_params:
            raise ValueError("base_params only apply when base is a strategy name")
        return base
    from jaxal.strategies import get  # the registry imports this module

    return get(base, **dict(base_params or {}))


def _require_score(wrapper: str, inner: Strategy) -> None:
    if inner.score is None:
        raise ValueError(
            f"{wrapper!r} needs a base strategy with a per-point score; "
            f"{inner.name!r} has score=None"
        )


# Stochastic batch acquisition ----------------------------------------------------


def power_log_weights(scores: Array, beta: float) -> Array:
    """``β·log(max(score, tiny))``: P ∝ ``score**β`` with scores clipped to > 0."""
    tiny = jnp.finfo(jnp.float32).tiny
    return beta * jnp.log(jnp.maximum(jnp.asarray(scores, jnp.float32), tiny))


def softmax_log_weights(scores: Array, beta: float) -> Array:
    """``β·score``: P ∝ ``exp(β·score)`` (a Gibbs distribution)."""
    return beta * jnp.asarray(scores, jnp.float32)


def softrank_log_weights(scores: Array, labeled: Array, beta: float) -> Array:
    """``-β·log(rank)``, rank 1 = highest score among unlabeled points.

    Ties rank towards the lower index; NaN scores keep a NaN log-weight (drawn
    only after every real score).
    """
    order = jnp.argsort(-rank_key(scores, labeled), stable=True)
    ranks = (
        jnp.zeros(order.shape, jnp.float32)
        .at[order]
        .set(jnp.arange(1, order.shape[0] + 1, dtype=jnp.float32))
    )
    return jnp.where(jnp.isnan(scores), jnp.nan, -beta * jnp.log(ranks))


def _stochastic(name: str, base: BaseSpec, beta: float, base_params, log_weights) -> Strategy:
    if not (beta >= 0 and math.isfinite(beta)):
        raise ValueError(f"{name}: beta must be finite and >= 0, got {beta}")
    inner = resolve(base, base_params)
    _require_score(name, inner)

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        check_static_k(labeled.shape[0], k)
        return gumbel_top_k(key, log_weights(inner.score(outputs), labeled), labeled, k)

    # Only the selection changes; candidates, state and score stay the base's.
    return inner._replace(name=name, select=select)


def power(base: BaseSpec = "bald", beta: float = 1.0, base_params: dict | None = None):
    """Draw k points without replacement, P ∝ ``max(score, tiny)**β`` (PowerBALD etc.).

    Meant for non-negative scores (BALD, entropy, least confidence, ...).
    NaN scores are drawn only after every finite one; ``+inf`` scores first.
    ``β = 0`` is uniform; ``β → ∞`` tends to the base's top-k.

    Args:
      base: registry name (or Strategy) of a strategy with a ``score``.
      beta: coldness ``β >= 0``.
      base_params: keyword parameters of the base strategy.
    """
    return _stochastic("power", base, beta, base_params, lambda s, lab: power_log_weights(s, beta))


def softmax(base: BaseSpec = "bald", beta: float = 1.0, base_params: dict | None = None):
    """Draw k points without replacement, P ∝ ``exp(β·score)`` (see :func:`power`)."""
    return _stochastic(
        "softmax", base, beta, base_params, lambda s, lab: softmax_log_weights(s, beta)
    )


def softrank(base: BaseSpec = "bald", beta: float = 1.0, base_params: dict | None = None):
    """Draw k points without replacement, P ∝ ``rank**-β`` (see :func:`power`)."""
    return _stochastic(
        "softrank", base, beta, base_params, lambda s, lab: softrank_log_weights(s, lab, beta)
    )


# Candidate subsampling -----------------------------------------------------------


def _candidate_base(name: str, base: BaseSpec, base_params, m: int) -> Strategy:
    if m < 1:
        raise ValueError(f"{name}: m must be >= 1, got {m}")
    inner = resolve(base, base_params)
    if inner.propose is not _no_propose:
        raise ValueError(f"{name}: base {inner.name!r} proposes its own candidates; cannot nest")
    return inner


def _delegate_select(inner: Strategy):
    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        check_static_k(labeled.shape[0], k, "candidate set")
        return inner.select(key, outputs, labeled, k)

    return select


def subsample(base: BaseSpec = "entropy", m: int = 10_000, base_params: dict | None = None):
    """Run ``base`` on ``m`` uniformly drawn unlabeled candidates per round.

    ``propose`` draws ``m`` distinct unlabeled pool indices (uniform, on device;
    if fewer than ``m`` are unlabeled, labeled ones fill the rest -- the loop
    passes ``labeled[cand]``, so they are never selected). ``select`` is the
    base's on the candidates' outputs (local indices); the base's state and
    ``update`` are kept, with pool indices.

    Args:
      base: registry name (or Strategy); must not propose candidates itself.
      m: candidates per round (static; ``k <= m <= N``).
      base_params: keyword parameters of the base strategy.
    """
    inner = _candidate_base("subsample", base, base_params, m)

    def propose(key: Array, labeled: Array, state: StrategyState) -> Array:
        del state
        check_static_k(labeled.shape[0], m)
        return masked_top_k(jax.random.uniform(key, labeled.shape), labeled, m)

    return inner._replace(name="subsample", propose=propose, select=_delegate_select(inner))


class HistoryState(NamedTuple):
    """State of :func:`history_subsample`."""

    scores: Array  # float32[N] last known base score; +inf = never scored
    base: StrategyState  # the base strategy's own state


def history_state(scores: Array, base: StrategyState = ()) -> HistoryState:
    """A :class:`HistoryState` with history ``scores``."""
    return HistoryState(jnp.asarray(scores, jnp.float32), base)


def history_subsample(
    base: BaseSpec = "entropy",
    m: int = 10_000,
    temperature: float = 1.0,
    base_params: dict | None = None,
):
    """Compute-efficient active learning (Németh & Matuszka, Algorithm 1).

    The paper (Section 3, "Compute-Efficient Active Learning", Algorithm 1, and
    its "example realization of the proposed method"):

    1. the first round scores the *whole* unlabeled pool with the base's
       acquisition function and labels its top-k (``propose`` returns
       ``None``); every score is kept as the point's history;
    2. every later round draws ``m`` distinct unlabeled candidates with
       probability ``P = softmax(history / temperature)`` over the unlabeled
       points -- without replacement, by Gumbel-top-k: the first candidate is
       ``i`` with P ∝ ``exp(h_i / T)``, the next among the rest, and so on --
       re-scores only those, labels the base's selection among them, and
       overwrites the history of the re-scored candidates only.

    Where the paper and its public code (aimotive/Compute-Efficient-Active-
    Learning, ``sampling_strategies/strategies.py``) disagree, and what is
    done here:

    * Sampling weights: Algorithm 1 says ``P = softmax(AcquisitionValues)``;
      the code uses ``softmax(values ** 1.2)`` (a power not in the paper, and
      undefined for negative scores such as margin's). Here ``softmax(h / T)``:
      ``temperature=1`` is Algorithm 1; the paper's discussion names the
      softmax temperature as the knob between random and acquisition-driven
      sampling.
    * Candidate count: Algorithm 1 draws ``α·N`` (``α`` a ratio of the
      unlabeled pool); Section 3.1 sets it to 2500/5000/10000 points and the
      code uses a fixed ``candidate_pool_size`` (cut to the unlabeled count).
      Here a fixed ``m`` (static shapes).
    * First pick: read literally, Algorithm 1 scores the pool before the loop
      and already the first acquisition draws candidates from those scores and
      re-scores them with the retrained model; the example realization and the
      code label the first batch straight from the whole-pool scores (the
      code's first candidate pool is the whole unlabeled pool). Here the code's
      and realization's version: the round's one model scores the pool once.
    * History update: the code writes the candidates' new values through a
      boolean mask in unlabeled-pool order while the values come in the
      (random) candidate order, so they land on other points; here each
      re-scored candidate gets its own score.

    Non-finite history: NaN and ``-inf`` scores are drawn only after every
    finite one; ``+inf`` ("never scored": none after the first round, unless
    a base score is ``+inf`` or the loop kept a seed's old state, e.g. after
    its training diverged) first, uniformly at random among themselves. Fewer
    than ``m`` unlabeled points: labeled ones fill the candidate set (the loop
    passes ``labeled[cand]``, so they are never selected). The loop compiles
    the scoring and selection phases twice (whole pool in the first round,
    ``m`` candidates after): the strategy sets ``score_pool_first``, so the
    loop's first acquisition (round 0) scores the whole pool without calling
    ``propose``, and resuming at a later round needs no extra state.

    Args:
      base: registry name (or Strategy) with a per-point ``score``; must not
        propose candidates itself.
      m: candidates per round after the first (static; ``k <= m <= N``).
      temperature: softmax temperature ``T > 0`` on the base score's scale.
      base_params: keyword parameters of the base strategy.
    """
    if not temperature > 0:
        raise ValueError(f"history_subsample: temperature must be > 0, got {temperature}")
    inner = _candidate_base("history_subsample", base, base_params, m)
    _require_score("history_subsample", inner)

    def init(num_pool: int) -> HistoryState:
        never = jnp.full((num_pool,), jnp.inf, jnp.float32)
        return history_state(never, inner.init(num_pool))

    def propose(key: Array, labeled: Array, state: HistoryState) -> Array:
        # (Algorithm 1, line 1 -- the whole unlabeled pool -- is the loop's
        # round 0: ``score_pool_first`` below.)
        check_static_k(labeled.shape[0], m)
        hist = state.scores
        noise = jax.random.gumbel(key, hist.shape, jnp.float32)
        # Never-scored points (+inf) -- none after the whole-pool round, unless
        # a seed's round was discarded or a base score is +inf -- come first,
        # in random order; then Gumbel-top-k: P ∝ exp(h / T) without replacement.
        unseen = (hist == jnp.inf) & ~labeled
        _, first = jax.lax.top_k(jnp.where(unseen, noise, -jnp.inf), m)
        key_seen = rank_key(hist / temperature + noise, labeled, excluded=unseen)
        _, rest = jax.lax.top_k(key_seen, m)
        num_unseen = unseen.sum()
        slot = jnp.arange(m)
        cand = jnp.where(slot < num_unseen, first, rest[jnp.maximum(slot - num_unseen, 0)])
        return cand.astype(jnp.int32)

    def update(state: HistoryState, candidates: Array | None, outputs: Outputs):
        new = jnp.asarray(inner.score(outputs), jnp.float32)
        scores = new if candidates is None else state.scores.at[candidates].set(new)
        return HistoryState(scores, inner.update(state.base, candidates, outputs))

    return inner._replace(
        name="history_subsample",
        init=init,
        propose=propose,
        select=_delegate_select(inner),
        update=update,
        score_pool_first=True,
    )
