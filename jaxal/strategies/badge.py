"""BADGE: k-means++ seeding on gradient embeddings (Ash et al., 2020).

The gradient embedding of pool point ``i`` is the last-layer gradient of the loss
at the model's own prediction: ``g_i = a_i ⊗ h_i`` with ``a_i = p_i - onehot(argmax
p_i)`` (``[C]``) and ``h_i`` the penultimate embedding (``[D]``). It is never
materialised (``N x C·D`` floats is the out-of-memory failure of several peers):

    <g_i, g_j> = <a_i, a_j> · <h_i, h_j>
    |g_i - g_j|^2 = |a_i|^2 |h_i|^2 + |a_j|^2 |h_j|^2 - 2 <a_i, a_j> <h_i, h_j>

so the distances of all points to one centre cost two mat-vecs, ``O(N·(C + D))``.

Seeding follows the BADGE reference code (``init_centers`` in
``JordanAsh/badge``): the first centre is the point with the largest ``|g|``, each
next one is drawn with probability ``∝ D^2`` (squared distance to the nearest
chosen centre) among the unlabeled, not yet chosen points. Labeled points are not
centres (BADGE embeds only the unlabeled pool). Draws are inverse-CDF on explicit
uniforms (:func:`_distances.sample_by_weight`), so a reference can reproduce them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.strategies import _distances as dist
from jaxal.strategies.base import Array, Needs, Outputs, Strategy
from jaxal.strategies.uncertainty import mean_probs


def gradient_embedding_factors(probs: Array, embeddings: Array):
    """The two factors of ``g = a ⊗ h``.

    Args:
      probs: ``[N, C]`` or ``[T, N, C]`` (the mean over T is used).
      embeddings: ``[N, D]``.

    Returns:
      ``(a [N, C], h [N, D])`` with ``a = p - onehot(argmax p)``.
    """
    p = mean_probs(probs)
    a = p - jax.nn.one_hot(jnp.argmax(p, axis=-1), p.shape[-1], dtype=p.dtype)
    return a, jnp.asarray(embeddings, jnp.float32)


def gradient_sq_dists_to_row(a: Array, h: Array, a_sq: Array, h_sq: Array, i: Array) -> Array:
    """``|g_n - g_i|^2`` for every ``n`` without forming ``g``. ``[N]``."""
    cross = (a @ a[i]) * (h @ h[i])
    return jnp.maximum(a_sq * h_sq + a_sq[i] * h_sq[i] - 2.0 * cross, 0.0)


def badge_from_uniforms(probs: Array, embeddings: Array, labeled: Array, uniforms: Array) -> Array:
    """BADGE picks given the uniforms for the D^2 draws.

    Args:
      probs: ``[N, C]`` or ``[T, N, C]``.
      embeddings: ``[N, D]``.
      labeled: ``bool[N]``.
      uniforms: ``float[k]`` in ``[0, 1)``; pick ``j >= 1`` uses ``uniforms[j]``
        (``uniforms[0]`` is unused: the first pick is the largest ``|g|``).

    Returns:
      ``int32[k]`` distinct unlabeled indices in the order chosen.
    """
    a, h = gradient_embedding_factors(probs, embeddings)
    a_sq, h_sq = dist.sq_norms(a), dist.sq_norms(h)
    unlabeled = ~jnp.asarray(labeled, bool)
    first = dist.argmax_first(jnp.where(unlabeled, a_sq * h_sq, -1.0))
    dist_to = lambda i: gradient_sq_dists_to_row(a, h, a_sq, h_sq, i)
    return dist.d2_sampling(dist_to, unlabeled, uniforms, first=first)


def badge_select(key: Array, probs: Array, embeddings: Array, labeled: Array, k: int) -> Array:
    """BADGE picks with uniforms ``jax.random.uniform(key, (k,))``. ``int32[k]``."""
    return badge_from_uniforms(probs, embeddings, labeled, jax.random.uniform(key, (k,)))


def badge() -> Strategy:
    """BADGE (Batch Active learning by Diverse Gradient Embeddings)."""

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        return badge_select(key, outputs.probs, outputs.embeddings, labeled, k)

    return Strategy(name="badge", needs=Needs(probs=True, embeddings=True), select=select)
