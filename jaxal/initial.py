"""Initial labeled pools: the labels a run starts from, one home for all of them.

An initial-pool strategy is an :class:`InitialStrategy` of two functions,
registered by name in :data:`REGISTRY` (``config.initial.strategy``):

* ``size(settings, num_classes) -> int``: how many labels it picks (static);
* ``select(key, y_pool, settings, num_classes) -> int32[size]``: which pool
  indices, in order (on device, jit-able; ``y_pool`` is the oracle's labels).

Built in: ``random`` (``initial.size`` uniform picks) and ``class_balanced``
(``initial.per_class`` uniform picks of every class, interleaved c0, c1, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.settings import InitialSettings
from jaxal.strategies.base import masked_top_k

Array = jax.Array


class InitialStrategy(NamedTuple):
    size: Callable[[InitialSettings, int], int]
    select: Callable[[Array, Array, InitialSettings, int], Array]
    size_key: str  # the config key that sets the size (named in errors)


def _random(key: Array, y_pool: Array, s: InitialSettings, num_classes: int) -> Array:
    del num_classes
    n = y_pool.shape[0]
    return masked_top_k(jax.random.uniform(key, (n,)), jnp.zeros(n, bool), int(s.size))


def _class_balanced(key: Array, y_pool: Array, s: InitialSettings, num_classes: int) -> Array:
    u = jax.random.uniform(key, (y_pool.shape[0],))
    per = int(s.per_class)
    picks = jax.vmap(lambda c: masked_top_k(u, y_pool != c, per))(jnp.arange(num_classes))
    return picks.T.reshape(-1)  # interleave classes: c0, c1, ..., c0, c1, ...


REGISTRY: dict[str, InitialStrategy] = {
    "random": InitialStrategy(lambda s, c: int(s.size), _random, "size"),
    "class_balanced": InitialStrategy(
        lambda s, c: int(s.per_class) * int(c or 0), _class_balanced, "per_class"
    ),
}
NAMES = tuple(REGISTRY)


def initial_size(settings, num_classes: int | None = None) -> int:
    """Labels in the initial pool."""
    s = InitialSettings.of(settings)
    return REGISTRY[s.strategy].size(s, num_classes)


def size_key(settings) -> str:
    """The config key (``initial.size`` or ``initial.per_class``) that sets the size."""
    s = InitialSettings.of(settings)
    return f"initial.{REGISTRY[s.strategy].size_key}"


def validate(settings) -> None:
    """Checks that need no data.

    Raises:
      ValueError: ``config.initial.<key>=<value> is invalid; ...`` (one line).
    """
    if settings.strategy not in REGISTRY:
        raise ValueError(
            f"config.initial.strategy={settings.strategy!r} is invalid; allowed: {', '.join(NAMES)}"
        )
    s = InitialSettings.of(settings)
    key = REGISTRY[s.strategy].size_key
    if getattr(s, key) < 1:
        raise ValueError(f"config.initial.{key}={getattr(s, key)!r} is invalid; must be >= 1")


def validate_sizes(settings, y_pool: np.ndarray, num_classes: int) -> None:
    """Checks against the pool's labels (host numpy).

    Raises:
      ValueError: one line naming the key.
    """
    s = InitialSettings.of(settings)
    if s.strategy == "class_balanced":
        smallest = int(np.bincount(np.asarray(y_pool), minlength=num_classes).min())
        if s.per_class > smallest:
            raise ValueError(
                f"config.initial.per_class={s.per_class!r} is invalid; "
                f"the smallest class of the pool has {smallest} points"
            )


def initial_pool(key: Array, y_pool: Array, settings, num_classes: int, capacity: int):
    """``(labeled bool[N], order int32[capacity], num_labeled)`` of the initial pool."""
    s = InitialSettings.of(settings)
    picks = REGISTRY[s.strategy].select(key, y_pool, s, num_classes)
    size = picks.shape[0]
    n = y_pool.shape[0]
    labeled = jnp.zeros(n, bool).at[picks].set(True)
    order = jnp.full((capacity,), -1, jnp.int32).at[:size].set(picks)
    return labeled, order, jnp.int32(size)
