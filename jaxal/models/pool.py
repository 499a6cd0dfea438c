"""Non-overlapping max pooling whose gradient XLA:CPU runs fast.

``flax.linen.max_pool`` is ``lax.reduce_window(max)``; its gradient is XLA's
``select-and-scatter``, which XLA:CPU expands into an iota, a scatter and
several full-size temporaries. For the BALD-paper CNN (a 2x2 pool over
``[64, 24, 24, 32]``) the gradient of ReLU + pool took 6.6-9.6 ms in
isolation (two runs) on the 2-core CPU this project is measured on, against
0.5-0.9 ms with this function, and the CNN's training step went from ~20 to
~15 ms (``benchmarks/README.md``, "Max pool").

:func:`max_pool` computes the same function from a reshape: a window of size
``k`` with stride ``k`` tiles the map, so ``[B, H, W, C]`` is viewed as
``[B, H/k, k, W/k, k, C]`` and reduced over the two window axes. Its JVP
(``jax.custom_jvp``) routes each tangent through the *first* maximum of its
window in row-major order -- what ``select-and-scatter`` with XLA's ``>=``
selection does, ties included -- so values and gradients are bit-identical
to ``nn.max_pool``'s (``tests/test_pool.py``; JAX transposes the linear JVP
into the VJP, so forward and reverse mode both work). ``padding="SAME"``
pads with ``-inf`` as ``reduce_window`` does; ``"VALID"`` drops the
trailing rows and columns a window does not cover.

A NaN in a window makes its maximum NaN, as with ``reduce_window``; the
gradient then reaches no element of that window (a diverged step; jaxal's
divergence check stops such a run from its loss).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxal.models.base import Array


def _pad_or_crop(x: Array, k: int, padding: str) -> Array:
    """``x [B, H, W, C]`` with H and W made multiples of ``k`` as ``reduce_window``
    with window = stride = k sees them."""
    if padding == "VALID":
        h, w = (x.shape[1] // k) * k, (x.shape[2] // k) * k
        return x[:, :h, :w]
    if padding == "SAME":
        pads = []
        for n in x.shape[1:3]:
            total = -(-n // k) * k - n  # ceil(n / k) * k - n
            pads.append((total // 2, total - total // 2))
        if not any(lo or hi for lo, hi in pads):
            return x
        return jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    raise ValueError(f"max_pool padding must be 'VALID' or 'SAME', got {padding!r}")


def _windows(x: Array, k: int) -> Array:
    b, h, w, c = x.shape
    return x.reshape(b, h // k, k, w // k, k, c)  # [B, H/k, k, W/k, k, C]


def _first_max(xw: Array, y: Array, k: int) -> Array:
    """Bool ``[B, H/k, k, W/k, k, C]``: the first maximum of each window, row-major."""
    taken = jnp.zeros(y.shape, bool)
    rows = []
    for i in range(k):
        cols = []
        for j in range(k):
            hit = (xw[:, :, i, :, j, :] == y) & ~taken
            taken = taken | hit
            cols.append(hit)
        rows.append(jnp.stack(cols, axis=3))  # [B, H/k, W/k, k, C]
    return jnp.stack(rows, axis=2)  # [B, H/k, k, W/k, k, C]


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _pool(x: Array, k: int) -> Array:
    return _windows(x, k).max(axis=(2, 4))


@_pool.defjvp
def _pool_jvp(k: int, primals, tangents):
    (x,), (t,) = primals, tangents
    xw = _windows(x, k)
    y = xw.max(axis=(2, 4))
    first = _first_max(xw, y, k)
    y_dot = jnp.where(first, _windows(t, k), jnp.zeros((), t.dtype)).sum(axis=(2, 4))
    return y, y_dot


def max_pool(x: Array, window: int = 2, padding: str = "VALID") -> Array:
    """``nn.max_pool(x, (window, window), strides=(window, window), padding)``,
    bit for bit, with a cheap gradient.

    Args:
      x: ``[B, H, W, C]`` (channels last).
      window: the window's height and width, also its stride.
      padding: ``"VALID"`` or ``"SAME"``, as in ``nn.max_pool``.

    Returns:
      ``[B, H', W', C]`` with ``H' = H // window`` (``VALID``) or
      ``ceil(H / window)`` (``SAME``), likewise ``W'``.
    """
    if x.ndim != 4:
        raise ValueError(f"max_pool expects [B, H, W, C], got shape {x.shape}")
    return _pool(_pad_or_crop(x, window, padding), window)
