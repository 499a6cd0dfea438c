"""Bayesian / committee uncertainty scores on sampled predictions.

These scores read the individual samples ``p_t`` of ``[T, N, C]`` probabilities
(T MC-dropout passes or T ensemble members), not only their mean, so they need
``Needs(samples=True)``; given ``[N, C]`` probabilities they raise a
``ValueError`` at trace time. Scores are "higher = more informative" and
selection is a masked top-k on device: labeled points are never picked, NaN
scores (and ``-inf``) rank below every finite score, ties break towards the
lower pool index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.strategies.base import Array, Needs, Strategy
from jaxal.strategies.uncertainty import score_strategy

SAMPLES = Needs(probs=True, samples=True)


def require_samples(probs: Array | None, name: str) -> Array:
    """``probs`` as float32 ``[T, N, C]``, or a ValueError naming ``name``.

    Raised at trace time (shapes are static), so a misconfigured run fails
    before anything is computed.
    """
    if probs is None or jnp.ndim(probs) != 3:
        shape = None if probs is None else tuple(jnp.shape(probs))
        raise ValueError(
            f"strategy {name!r} needs sampled predictions: probs must be [T, N, C] "
            f"(T MC-dropout passes or ensemble members; Needs(samples=True)), got shape {shape}"
        )
    return jnp.asarray(probs, jnp.float32)


def _entropy(p: Array, axis: int = -1) -> Array:
    """Entropy in nats along ``axis`` with ``0 log 0 = 0``."""
    safe = jnp.where(p > 0, p, 1.0)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(safe), 0.0), axis=axis)


def _vote_counts(probs: Array) -> Array:
    """``[N, C]`` number of samples whose argmax is each class (first max on ties)."""
    num_classes = probs.shape[-1]
    return jax.nn.one_hot(jnp.argmax(probs, axis=-1), num_classes, dtype=jnp.float32).sum(0)


def variation_ratios_scores(probs: Array) -> Array:
    """``1 - (count of the modal class among the T argmaxes) / T``. ``[N]``.

    Freeman's variation ratio over the sampled predictions (Gal et al. 2017):
    0 when all samples agree, ``1 - 1/T``-ish when they scatter.
    """
    probs = require_samples(probs, "variation_ratios")
    return 1.0 - _vote_counts(probs).max(axis=-1) / probs.shape[0]


def bald_scores(probs: Array) -> Array:
    """BALD mutual information ``H[p̄] - mean_t H[p_t]`` in nats. ``[N]``.

    Houlsby et al. 2011, Gal et al. 2017: the information the label carries
    about the model parameters. Not clipped: float rounding can leave values a
    few ulps below 0 for points where all samples agree.
    """
    probs = require_samples(probs, "bald")
    return _entropy(probs.mean(axis=0)) - _entropy(probs).mean(axis=0)


def mean_std_scores(probs: Array) -> Array:
    """Mean over classes of the (population, ddof=0) std over samples. ``[N]``.

    Kampffmeyer et al. 2016: ``(1/C) sum_c sqrt(E_t[p_tc^2] - E_t[p_tc]^2)``.
    """
    probs = require_samples(probs, "mean_std")
    return probs.std(axis=0).mean(axis=-1)


def vote_entropy_scores(probs: Array) -> Array:
    """Entropy of the committee's vote distribution ``V_c / T`` (nats). ``[N]``.

    Query-by-committee vote entropy (Dagan & Engelson 1995) with the T samples
    / ensemble members as the committee; each member votes for its argmax.
    """
    probs = require_samples(probs, "vote_entropy")
    return _entropy(_vote_counts(probs) / probs.shape[0])


def _sampled(name: str, score_fn) -> Strategy:
    return score_strategy(name, score_fn)._replace(needs=SAMPLES)


def variation_ratios() -> Strategy:
    """Top-k by :func:`variation_ratios_scores`."""
    return _sampled("variation_ratios", variation_ratios_scores)


def bald() -> Strategy:
    """Top-k by :func:`bald_scores` (top-k BALD, not BatchBALD)."""
    return _sampled("bald", bald_scores)


def mean_std() -> Strategy:
    """Top-k by :func:`mean_std_scores`."""
    return _sampled("mean_std", mean_std_scores)


def vote_entropy() -> Strategy:
    """Top-k by :func:`vote_entropy_scores`."""
    return _sampled("vote_entropy", vote_entropy_scores)
