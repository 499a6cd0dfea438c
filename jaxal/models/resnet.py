"""CIFAR ResNet-18/34 (He et al. 2016, the 3x3-stem variant used across DAL papers).

``Conv3x3(w)-BN-ReLU`` stem (no max pool), four stages of BasicBlocks with
widths ``w, 2w, 4w, 8w`` and strides ``1, 2, 2, 2``, global average pool
(the embedding, ``D = 8w``), ``Dropout(dropout)``, ``Dense(C)``. ``w = 64`` is the
paper size; tests use tiny widths. Works on any input size (8x8 digits included:
strided 3x3 'SAME' convs never shrink a side below 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.adapter import DenseHead, batch_norm, from_linen
from jaxal.models.base import Array, Model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        s = (self.stride, self.stride)
        y = nn.Conv(self.features, (3, 3), s, padding="SAME", use_bias=False)(x)
        y = nn.relu(batch_norm()(y, use_running_average=not train))
        y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)(y)
        y = batch_norm()(y, use_running_average=not train)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), s, use_bias=False)(x)
            x = batch_norm()(x, use_running_average=not train)
        return nn.relu(x + y)


class ResNetBackbone(nn.Module):
    """``[B, H, W, C] -> [B, 8 * width]`` (after global average pooling)."""

    stage_sizes: Sequence[int]
    width: int = 64

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = nn.Conv(self.width, (3, 3), padding="SAME", use_bias=False)(x)
        x = nn.relu(batch_norm()(x, use_running_average=not train))
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                x = BasicBlock(self.width * 2**i, stride)(x, train)
        return jnp.mean(x, axis=(1, 2))


def _resnet(name: str, stage_sizes, num_classes: int, width: int, dropout: float) -> Model:
    return from_linen(
        name,
        ResNetBackbone(stage_sizes=tuple(stage_sizes), width=width),
        DenseHead(num_classes=num_classes, rate=dropout),
        embedding_dim=width * 2 ** (len(stage_sizes) - 1),
        has_batch_norm=True,
    )


def resnet18(num_classes: int, *, width: int = 64, dropout: float = 0.0) -> Model:
    """CIFAR ResNet-18 (BasicBlocks ``[2, 2, 2, 2]``).

    Args:
      num_classes: C.
      width: channels of the stem and first stage (64 in the paper); D = 8 * width.
      dropout: rate of the dropout before the classifier (0: none).

    Returns:
      The :class:`Model`; ``features`` is the pooled embedding ``[B, 8 * width]``.
    """
    return _resnet("resnet18", (2, 2, 2, 2), num_classes, width, dropout)


def resnet34(num_classes: int, *, width: int = 64, dropout: float = 0.0) -> Model:
    """CIFAR ResNet-34 (BasicBlocks ``[3, 4, 6, 3]``); arguments as :func:`resnet18`."""
    return _resnet("resnet34", (3, 4, 6, 3), num_classes, width, dropout)
