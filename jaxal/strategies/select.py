"""Selection helpers every strategy shares: host- and trace-time ``k`` checks,
the tiered ranking key (NaN / ``-inf`` / labeled / excluded), Gumbel-top-k.

``masked_top_k`` (the plain top-k of unlabeled scores) lives with the
interface in :mod:`jaxal.strategies.base`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.strategies.base import Array, masked_top_k


def check_k(labeled, k: int) -> None:
    """Host-side check that ``k`` picks are possible (call it outside jit).

    Inside jit the labeled count is not known, so selectors stay well-defined
    instead: when ``k`` exceeds the number of unlabeled points, the picks are
    still ``k`` distinct indices, the unlabeled ones first, then labeled ones.

    Args:
      labeled: ``bool[..., N]`` concrete mask (numpy or a committed jax array);
        leading axes (seeds) are checked row by row.
      k: number of picks.

    Raises:
      ValueError: ``k`` negative, or larger than the unlabeled count of a row.
    """
    labeled = np.asarray(labeled, dtype=bool)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    unlabeled = int((~labeled).sum(axis=-1).min()) if labeled.size else 0
    if k > unlabeled:
        raise ValueError(f"cannot select k={k} points: only {unlabeled} unlabeled remain")


def check_static_k(num: int, k: int, what: str = "pool") -> None:
    """Trace-time check that ``k`` distinct indices exist among ``num`` rows."""
    if not 0 <= k <= num:
        raise ValueError(f"cannot select k={k} distinct points from a {what} of {num}")


def rank_key(scores: Array, labeled: Array, excluded: Array | None = None) -> Array:
    """A float key whose descending order is the selection order.

    Four tiers: unlabeled points with a real score (finite or ``+inf``) by
    score, then unlabeled NaN / ``-inf`` scores, then labeled points, then
    ``excluded`` ones (``-inf``). Within the last three tiers the key ties, so
    ``lax.top_k`` / ``argmax`` break towards the lower index.

    Args:
      scores: ``float[N]``.
      labeled: ``bool[N]``.
      excluded: optional ``bool[N]`` ranked below everything (e.g. already picked).

    Returns:
      ``float32[N]``.
    """
    l1 = jnp.finfo(jnp.float32).min
    l2 = jnp.nextafter(l1, jnp.float32(0))
    l3 = jnp.nextafter(l2, jnp.float32(0))
    scores = jnp.asarray(scores, jnp.float32)
    bad = jnp.isnan(scores) | (scores == -jnp.inf)
    key = jnp.where(bad, l2, jnp.maximum(scores, l3))
    key = jnp.where(labeled, l1, key)
    if excluded is not None:
        key = jnp.where(excluded, -jnp.inf, key)
    return key


def gumbel_top_k(key: Array, log_weights: Array, labeled: Array, k: int) -> Array:
    """``k`` unlabeled indices drawn without replacement with P ∝ ``exp(log_weights)``.

    The Gumbel-top-k trick: the top-k of ``log_weights + Gumbel noise`` is an
    ordered sample without replacement (Plackett–Luce). NaN and ``-inf``
    log-weights are drawn only after every finite one (``masked_top_k`` tiers).

    Returns:
      ``int32[k]``, in draw order.
    """
    noise = jax.random.gumbel(key, log_weights.shape, jnp.float32)
    return masked_top_k(jnp.asarray(log_weights, jnp.float32) + noise, labeled, k)
