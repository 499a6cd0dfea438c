"""CIFAR VGG-11/16 with batch norm (Simonyan & Zisserman 2015, the CIFAR variant).

Each number of the config is a ``Conv3x3-BN-ReLU`` layer, each ``M`` a 2x2 max
pool; then global average pooling (the embedding, ``D = 8 * width``),
``Dropout(dropout)``, ``Dense(C)``. On 32x32 CIFAR the last map is 1x1, so the
average pool equals the usual flatten. Pools use 'SAME' padding so that inputs
smaller than 32x32 (8x8 digits) stay 1x1 instead of vanishing; for even sides
'SAME' and 'VALID' pools agree. ``width = 64`` is the paper size (channels scale
as ``c * width // 64``).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.adapter import DenseHead, batch_norm, from_linen
from jaxal.models.base import Array, Model

CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
        *(512, 512, 512, "M", 512, 512, 512, "M"),
    ),
}


class VGGBackbone(nn.Module):
    """``[B, H, W, C] -> [B, cfg[-2] * width // 64]``."""

    cfg: Sequence[int | str]
    width: int = 64

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        for c in self.cfg:
            if c == "M":
                x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
            else:
                x = nn.Conv(int(c) * self.width // 64, (3, 3), padding="SAME")(x)
                x = nn.relu(batch_norm()(x, use_running_average=not train))
        return jnp.mean(x, axis=(1, 2))


def _vgg(name: str, num_classes: int, width: int, dropout: float) -> Model:
    cfg = CFGS[name]
    return from_linen(
        name,
        VGGBackbone(cfg=cfg, width=width),
        DenseHead(num_classes=num_classes, rate=dropout),
        embedding_dim=int(cfg[-2]) * width // 64,
        has_batch_norm=True,
    )


def vgg11(num_classes: int, *, width: int = 64, dropout: float = 0.0) -> Model:
    """CIFAR VGG-11 with batch norm.

    Args:
      num_classes: C.
      width: channels of the first conv (64 in the paper); D = 8 * width.
      dropout: rate of the dropout before the classifier (0: none).

    Returns:
      The :class:`Model`; ``features`` is the pooled embedding ``[B, 8 * width]``.
    """
    return _vgg("vgg11", num_classes, width, dropout)


def vgg16(num_classes: int, *, width: int = 64, dropout: float = 0.0) -> Model:
    """CIFAR VGG-16 with batch norm; arguments as :func:`vgg11`."""
    return _vgg("vgg16", num_classes, width, dropout)
