"""A 2-D convolution that can lower to one matrix product (im2col).

``Conv`` is a drop-in for ``flax.linen.Conv`` (same parameter names, shapes,
initialisers and auto-name ``Conv_<i>``, so variables are interchangeable)
with a choice of formulation:

* ``impl="xla"``: ``lax.conv_general_dilated``, as ``nn.Conv``.
* ``impl="shifted"``: forward and input gradient as ``lax.conv``, but the
  *filter* gradient -- which XLA:CPU ran 2.6x slower than the forward on the
  small CNN's conv2 (benchmarks/README.md, "Training step") -- as ``kh*kw``
  shifted matmuls
  (:func:`shifted_filter_grad`): the padded input is flattened to rows
  ``[B*H*W, C]``; tap ``(i, j)`` of the kernel sees the rows shifted by
  ``i*W + j``, one contiguous slice, so its gradient is one
  ``slice^T @ dy`` product with the output gradient laid on the full ``H x W``
  grid (zeros off the valid window, which also cancel the wrap-around
  between rows and images). Strides other than 1 fall back to ``lax.conv``'s
  filter gradient. A ``jax.custom_vjp``; equal to ``"xla"`` up to float
  rounding.
* ``impl="im2col"``: the ``kh x kw`` shifted windows of the (padded) input are
  concatenated along channels into patches ``[B, H', W', kh*kw*C]`` and
  multiplied by the kernel reshaped to ``[kh*kw*C, F]``. Forward and both
  gradients are then plain dots (the input gradient adds the shifted slices
  back), which XLA:CPU runs at matmul speed, while its convolution gradients
  (the filter gradient above all) run far slower -- see
  ``benchmarks/train_step.py``. Equal to ``"xla"`` up to float rounding (the
  sums run in another order): ``tests/test_conv.py``.

Padding follows XLA's ``'SAME'`` / ``'VALID'`` rules (for ``'SAME'`` with
stride ``s``: output ``ceil(H / s)``, the extra pad at the high end).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ("xla", "shifted", "im2col")


def _pads(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(low pad, high pad, output size) of one spatial axis."""
    if padding == "VALID":
        return 0, 0, (size - k) // s + 1
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def _lax_conv(x, kernel, strides, padding):
    return lax.conv_general_dilated(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def shifted_filter_grad(x, dy, kernel_shape, padding: str = "VALID"):
    """The filter gradient of a stride-1 ``lax.conv`` (NHWC/HWIO):
    ``dW[i, j, c, f] = sum_{b,h,w} xp[b, h+i, w+j, c] dy[b, h, w, f]`` with
    ``xp`` the padded input, as ``kh*kw`` matmuls over the flattened rows
    (module docstring)."""
    kh, kw, cin, cout = kernel_shape
    ph_lo, ph_hi, oh = _pads(x.shape[1], kh, 1, padding)
    pw_lo, pw_hi, ow = _pads(x.shape[2], kw, 1, padding)
    x = jnp.pad(x, ((0, 0), (ph_lo, ph_hi), (pw_lo, pw_hi), (0, 0)))
    b, h, w, _ = x.shape
    n = b * h * w
    tail = (kh - 1) * w + (kw - 1)  # the last tap reads this far past the end
    xf = jnp.pad(x.reshape(n, cin), ((0, tail), (0, 0)))
    dyf = jnp.pad(dy, ((0, 0), (0, h - oh), (0, w - ow), (0, 0))).reshape(n, cout)
    taps = [
        lax.dot_general(
            lax.slice(xf, (i * w + j, 0), (i * w + j + n, cin)), dyf, (((0,), (0,)), ((), ()))
        )
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.stack(taps).reshape(kh, kw, cin, cout)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def shifted_conv(x, kernel, strides: tuple[int, int] = (1, 1), padding: str = "SAME"):
    """``lax.conv_general_dilated(x, kernel, strides, padding)`` (NHWC/HWIO)
    whose filter gradient is :func:`shifted_filter_grad` (stride 1)."""
    return _lax_conv(x, kernel, strides, padding)


def _shifted_fwd(x, kernel, strides, padding):
    return _lax_conv(x, kernel, strides, padding), (x, kernel)


def _shifted_bwd(strides, padding, res, dy):
    x, kernel = res
    if tuple(strides) != (1, 1):
        _, vjp = jax.vjp(lambda x, k: _lax_conv(x, k, strides, padding), x, kernel)
        return vjp(dy)
    _, vjp_x = jax.vjp(lambda x: _lax_conv(x, kernel, strides, padding), x)
    (dx,) = vjp_x(dy)
    return dx, shifted_filter_grad(x, dy, kernel.shape, padding).astype(kernel.dtype)


shifted_conv.defvjp(_shifted_fwd, _shifted_bwd)


def im2col_conv(x, kernel, strides: Sequence[int] = (1, 1), padding: str = "SAME"):
    """``lax.conv_general_dilated(x, kernel, strides, padding)`` in NHWC/HWIO
    as patches @ kernel (see the module docstring)."""
    kh, kw, cin, cout = kernel.shape
    sh, sw = strides
    if kh == kw == 1 and padding in ("SAME", "VALID"):
        y = x[:, ::sh, ::sw, :]
        return jnp.einsum("bhwc,cf->bhwf", y, kernel[0, 0])
    ph_lo, ph_hi, oh = _pads(x.shape[1], kh, sh, padding)
    pw_lo, pw_hi, ow = _pads(x.shape[2], kw, sw, padding)
    x = jnp.pad(x, ((0, 0), (ph_lo, ph_hi), (pw_lo, pw_hi), (0, 0)))
    cols = [
        lax.slice(
            x,
            (0, i, j, 0),
            (x.shape[0], i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, cin),
            (1, sh, sw, 1),
        )
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1)  # [B, oh, ow, kh*kw*cin], (i, j, c) order
    return jnp.einsum("bhwk,kf->bhwf", patches, kernel.reshape(kh * kw * cin, cout))


class Conv(nn.Module):
    """``nn.Conv`` (NHWC, no groups or dilation) with ``impl`` in ``IMPLS``."""

    features: int
    kernel_size: Sequence[int]
    strides: int | Sequence[int] = 1
    padding: str = "SAME"
    use_bias: bool = True
    impl: str = "xla"

    @nn.compact
    def __call__(self, x):
        if self.impl not in IMPLS:
            raise ValueError(f"conv impl {self.impl!r}; allowed: {', '.join(IMPLS)}")
        ks = tuple(self.kernel_size)
        strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
        kernel = self.param(
            "kernel", nn.linear.default_kernel_init, (*ks, x.shape[-1], self.features)
        )
        if self.impl == "xla":
            y = _lax_conv(x, kernel, strides, self.padding)
        elif self.impl == "shifted":
            y = shifted_conv(x, kernel, strides, self.padding)
        else:
            y = im2col_conv(x, kernel, strides, self.padding)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y
