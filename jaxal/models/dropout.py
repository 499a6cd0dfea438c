"""Dropout whose keep masks cost a few random bits per element, not 32.

``flax.linen.Dropout`` draws one 32-bit uniform per element
(``jax.random.bernoulli``) and compares it with the keep probability. On
XLA:CPU, generating those bits (threefry) is most of the cost of a dropout
layer: in MC-dropout scoring with "head" mode the backbone runs once and the
head ``T`` times, so the head's masks dominate (see ``benchmarks/dropout.py``).

:class:`Dropout` draws ``b`` bits per element instead, with ``b`` the
narrowest lane width in ``1, 2, 4, 8, 16`` for which ``rate * 2**b`` is an
integer ``t``: each 32-bit word of ``jax.random.bits`` holds ``32 / b``
independent ``b``-bit lanes, and an element is dropped iff its lane is
``< t``. So ``rate = 0.5`` costs 1 bit per element (32x fewer random words),
``0.25`` 2 bits, ``0.125``/``0.375`` 3 -> 4 bits; the drop probability is
exactly ``rate``. Any other rate uses 16-bit lanes with ``t = round(rate *
2**16)``: the drop probability is :func:`effective_rate` (within ``2**-17``
of ``rate``), and kept elements are scaled by ``1 / (1 - effective_rate)``
so the layer stays unbiased (``E[Dropout(x)] = x``) for the rate it really
applies.

The lanes of one word are disjoint bit fields of a threefry output, so masks
of different elements are independent Bernoulli draws, as with
``jax.random.bernoulli``. The masks differ from flax's for the same key
(another draw of the same distribution), so results of a run with dropout
differ from those of a jaxal that used ``nn.Dropout``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxal.models.base import Array

WIDTHS = (1, 2, 4, 8, 16)


def lanes(rate: float) -> tuple[int, int]:
    """``(b, t)``: lane width in bits and drop threshold; drop iff lane < t."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    for b in WIDTHS:
        t = rate * (1 << b)
        if t == int(t):
            return b, int(t)
    b = WIDTHS[-1]
    return b, min(int(round(rate * (1 << b))), (1 << b) - 1)


def effective_rate(rate: float) -> float:
    """The drop probability :class:`Dropout` applies for ``rate`` (``t / 2**b``)."""
    b, t = lanes(rate)
    return t / (1 << b)


def keep_mask(key: Array, rate: float, shape: Sequence[int]) -> Array:
    """``bool[shape]``: True where an element is kept, each with probability
    ``1 - effective_rate(rate)``, independently."""
    shape = tuple(int(d) for d in shape)
    b, t = lanes(rate)
    n = int(np.prod(shape, dtype=np.int64))
    if t == 0:
        return jnp.ones(shape, bool)
    per_word = 32 // b
    words = jax.random.bits(key, (-(-n // per_word),), jnp.uint32)
    shifts = jnp.arange(0, 32, b, dtype=jnp.uint32)
    lane = (words[:, None] >> shifts) & jnp.uint32((1 << b) - 1)
    return (lane.reshape(-1)[:n] >= t).reshape(shape)


class Dropout(nn.Module):
    """Drop-in for ``flax.linen.Dropout`` with packed masks (module docstring).

    Same call, ``Dropout(rate)(x, deterministic=...)``, and the same rng
    collection (``"dropout"``); ``broadcast_dims`` shares one mask along those
    axes, as in flax.
    """

    rate: float
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x: Array, deterministic: bool | None = None) -> Array:
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        b, t = lanes(self.rate)
        if deterministic or t == 0:
            return x
        shape = list(x.shape)
        for d in self.broadcast_dims:
            shape[d] = 1
        keep = keep_mask(self.make_rng(self.rng_collection), self.rate, shape)
        keep = jnp.broadcast_to(keep, x.shape)
        scale = (1 << b) / ((1 << b) - t)
        return jnp.where(keep, x * jnp.asarray(scale, x.dtype), jnp.zeros((), x.dtype))
