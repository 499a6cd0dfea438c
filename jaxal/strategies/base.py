"""The strategy interface: a small NamedTuple of pure functions, like optax's
``GradientTransformation``.

A strategy never sees the model. The loop (or a researcher, standalone) runs the
model over the pool and hands the strategy an :class:`Outputs`; the strategy
returns ``k`` pool indices. Everything is jit-able and vmap-able: ``k`` is a
static Python int, the pool size ``N`` is fixed for a run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
StrategyState = Any  # a pytree; ``()`` for stateless strategies


class Outputs(NamedTuple):
    """What the model produced for the pool (or for a candidate subset of it).

    Attributes:
      probs: ``[N, C]`` predictive probabilities of one deterministic pass, or
        ``[T, N, C]`` for T MC-dropout passes / ensemble members.
      embeddings: ``[N, D]`` penultimate-layer embeddings (deterministic pass).
    """

    probs: Array | None = None
    embeddings: Array | None = None


class Needs(NamedTuple):
    """Which model outputs a strategy reads; the loop computes only these."""

    probs: bool = False
    embeddings: bool = False
    samples: bool = False  # probs must be [T, N, C] (MC dropout or ensemble)
    # Sample t must be ONE network draw for the whole pool: the same dropout
    # masks for every row and every scoring chunk ("consistent MC dropout", as
    # BatchBALD's joint p(y_1..y_n | ω_t) = prod_j p(y_j | ω_t) assumes). The
    # loop then samples consistently whatever ``mc.consistent`` says.
    consistent: bool = False


def _no_state(num_pool: int) -> StrategyState:
    del num_pool
    return ()


def _no_propose(key: Array, labeled: Array, state: StrategyState) -> Array | None:
    del key, labeled, state
    return None


def _no_update(state: StrategyState, candidates: Array | None, outputs: Outputs) -> StrategyState:
    del candidates, outputs
    return state


class Strategy(NamedTuple):
    """An acquisition strategy.

    Attributes:
      name: config name.
      needs: which outputs ``select`` reads.
      select: ``select(key, outputs, labeled, k) -> int32[k]``: k distinct
        indices of unlabeled rows of ``outputs`` (``labeled`` is ``bool[N]``),
        in acquisition order.
      init: ``init(num_pool) -> state`` for strategies that keep run state
        (e.g. the score history of ``history_subsample``); ``()`` otherwise.
      propose: ``propose(key, labeled, state) -> int32[m] | None``: the
        candidate pool indices the model must score this round (``None``: all).
      update: ``update(state, candidates, outputs) -> state`` after selection
        (``outputs`` are those of the candidates, or of the pool if ``None``).
      score: ``score(outputs) -> float[N]`` (higher = more informative) for
        strategies that rank points by a per-point score; ``None`` otherwise.
        Wrappers such as ``history_subsample`` need it.
      score_pool_first: the first acquisition scores the whole pool
        (``propose`` is not called, ``update`` gets ``candidates=None``);
        ``history_subsample``'s first round (Németh & Matuszka, Algorithm 1).

    How the loop drives a strategy each round::

        cand = s.propose(k_propose, labeled, state)            # None: whole pool
                                     # (not called in round 0 if s.score_pool_first)
        outs = model outputs for pool[cand] (or the pool)
        local = s.select(k_select, outs, labeled[cand], k)     # indices into outs
        picked = cand[local] (or local)
        state = s.update(state, cand, outs)
    """

    name: str
    needs: Needs
    select: Callable[..., Array]
    init: Callable[[int], StrategyState] = _no_state
    propose: Callable[..., Array | None] = _no_propose
    update: Callable[..., StrategyState] = _no_update
    score: Callable[[Outputs], Array] | None = None
    score_pool_first: bool = False


# Masked top-k ---------------------------------------------------------------


def masked_top_k(scores: Array, labeled: Array, k: int) -> Array:
    """Indices of the ``k`` highest scores among unlabeled points.

    Labeled points are excluded; NaN scores rank below every finite score and
    ``-inf`` (they are picked only when nothing else is left), ``+inf`` ranks
    first. Ties break towards the lower index (``lax.top_k`` is stable).

    Args:
      scores: ``float[N]``, higher = more informative.
      labeled: ``bool[N]``.
      k: static number of picks; must not exceed the number of unlabeled points.

    Returns:
      ``int32[k]`` indices, highest score first.
    """
    scores = jnp.asarray(scores, jnp.float32)
    lowest = jnp.finfo(jnp.float32).min
    # Three tiers: real scores (finite or +inf, clamped just above `lowest`),
    # then unlabeled NaN / -inf at `lowest`, then labeled points at -inf.
    bad = jnp.isnan(scores) | (scores == -jnp.inf)
    ranked = jnp.maximum(scores, jnp.nextafter(lowest, jnp.float32(0)))
    ranked = jnp.where(bad, lowest, ranked)
    ranked = jnp.where(labeled, -jnp.inf, ranked)
    _, idx = jax.lax.top_k(ranked, k)
    return idx.astype(jnp.int32)
