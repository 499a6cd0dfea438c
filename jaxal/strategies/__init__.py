"""Acquisition strategies, found by config name.

Standalone use on precomputed model outputs::

    import jax, jax.numpy as jnp
    from jaxal import strategies
    s = strategies.get("entropy")
    idx = s.select(jax.random.key(0), strategies.Outputs(probs=probs), labeled, k=10)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from jaxal.strategies import badge as _badge
from jaxal.strategies import batch as _batch
from jaxal.strategies import bayesian as _bayesian
from jaxal.strategies import diversity as _diversity
from jaxal.strategies import lowbudget as _lowbudget
from jaxal.strategies import random as _random
from jaxal.strategies import uncertainty as _uncertainty
from jaxal.strategies import wrappers as _wrappers
from jaxal.strategies.base import Needs, Outputs, Strategy, masked_top_k

# name -> factory(**params) -> Strategy. Factories' keyword arguments are the
# strategy's config parameters; `get` checks them by signature.
REGISTRY: dict[str, Callable[..., Strategy]] = {
    "random": _random.random,
    "least_confidence": _uncertainty.least_confidence,
    "margin": _uncertainty.margin,
    "entropy": _uncertainty.entropy,
    "coreset": _diversity.coreset,
    "kmeans": _diversity.kmeans,
    "badge": _badge.badge,
    "typiclust": _lowbudget.typiclust,
    "probcover": _lowbudget.probcover,
    "variation_ratios": _bayesian.variation_ratios,
    "bald": _bayesian.bald,
    "mean_std": _bayesian.mean_std,
    "vote_entropy": _bayesian.vote_entropy,
    "batchbald": _batch.batchbald,
    "power": _wrappers.power,
    "softmax": _wrappers.softmax,
    "softrank": _wrappers.softrank,
    "subsample": _wrappers.subsample,
    "history_subsample": _wrappers.history_subsample,
}


def names() -> list[str]:
    """Sorted names of all registered strategies."""
    return sorted(REGISTRY)


def params_of(name: str) -> dict[str, object]:
    """The config parameters of strategy ``name`` with their defaults."""
    sig = inspect.signature(REGISTRY[name])
    return {p.name: p.default for p in sig.parameters.values()}


def get(name: str, **params) -> Strategy:
    """The strategy registered as ``name``, built with ``params``.

    Raises:
      ValueError: unknown name or parameter (the message lists what is allowed).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(names())}")
    allowed = params_of(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or '(none)'}"
        )
    return REGISTRY[name](**params)


__all__ = ["Needs", "Outputs", "Strategy", "REGISTRY", "get", "masked_top_k", "names", "params_of"]
