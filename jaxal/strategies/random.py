"""Uniform random acquisition: the baseline every curve is compared with."""

from __future__ import annotations

import jax

from jaxal.strategies.base import Array, Needs, Outputs, Strategy, masked_top_k


def random() -> Strategy:
    """k distinct unlabeled points, uniformly at random (given the key)."""

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        del outputs
        return masked_top_k(jax.random.uniform(key, labeled.shape), labeled, k)

    return Strategy(name="random", needs=Needs(), select=select)
