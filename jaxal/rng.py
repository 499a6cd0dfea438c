"""Derived randomness (DESIGN.md point 6).

Every random draw of a run comes from ``jax.random.key(seed)`` by folding in the
round, a fixed purpose code and, where needed, a step. Nothing carries a key
from one use to the next, so the same seed gives bit-identical pools and metrics
whether seeds run vmapped, looped, sharded or resumed from a checkpoint.
Keys do not depend on the strategy: every strategy of one seed starts from the
same initial pool and re-initialises its model with the same weights each round.
"""

from __future__ import annotations

import enum

import jax

Array = jax.Array


class Purpose(enum.IntEnum):
    INITIAL_POOL = 1
    MODEL_INIT = 2
    TRAIN = 3
    SCORE = 4
    PROPOSE = 5
    SELECT = 6
    FALLBACK = 7  # random selection of a seed whose training diverged


def seed_keys(seeds) -> Array:
    """Typed root keys ``[S]`` for the given integer seeds."""
    return jax.vmap(jax.random.key)(jax.numpy.asarray(seeds, jax.numpy.uint32))


def derive(root: Array, round_: int | Array, purpose: Purpose) -> Array:
    """The key for ``purpose`` in ``round_`` of the run rooted at ``root``."""
    return jax.random.fold_in(jax.random.fold_in(root, round_), int(purpose))
