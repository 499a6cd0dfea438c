"""CIFAR ResNet-18/34/50 (He et al. 2016, the 3x3-stem variant used across DAL papers).

``Conv3x3(w)-BN-ReLU`` stem (no max pool), four stages of blocks with
widths ``w, 2w, 4w, 8w`` and strides ``1, 2, 2, 2``, global average pool
(the embedding), ``Dropout(dropout)``, ``Dense(C)``. ResNet-18/34 use
BasicBlocks (two 3x3 convs; ``D = 8w``), ResNet-50 Bottlenecks (1x1, 3x3,
1x1 with 4x expansion; ``D = 32w``). ``w = 64`` is the paper size; tests use
tiny widths. Works on any input size (8x8 digits included: strided 3x3 'SAME'
convs never shrink a side below 1).

This is the zoo of *The Influence of Feature Space Complexity on Optimal Data
Selection in Deep Active Learning* (``/work/shared/papers/feature-space-architectures.txt``),
App. B.1: stem ``Conv 3, 64``; BasicBlocks ``[Conv 3, 64; Conv 3, 64]`` x 2, 2, 2, 2
(ResNet-18) and x 3, 4, 6, 3 (ResNet-34), widths doubling per stage; for
ResNet-50 Bottlenecks ``[Conv 1, 64; Conv 3, 64; Conv 1, 256]`` x 3, 4, 6, 3;
"FULLY CONNECTED LAYERS: FC width 512 (2048 for ResNet-50), FC width
C". We read the "FC width 512/2048" row as the width of the pooled feature that
the one ``Dense(C)`` classifier reads (``embedding_dim``), not as an extra hidden
layer: the paper's image code is DISTIL's (§3.2), whose ResNets pool into a
single linear layer, and 512 / 2048 are exactly the pooled widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.adapter import DenseHead, batch_norm, from_linen
from jaxal.models.base import Array, Model
from jaxal.models.conv import Conv


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    features: int
    stride: int = 1
    conv: str = "xla"  # jaxal.models.conv.IMPLS

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        s = (self.stride, self.stride)
        y = Conv(self.features, (3, 3), s, padding="SAME", use_bias=False, impl=self.conv)(x)
        y = nn.relu(batch_norm()(y, use_running_average=not train))
        y = Conv(self.features, (3, 3), padding="SAME", use_bias=False, impl=self.conv)(y)
        y = batch_norm()(y, use_running_average=not train)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = Conv(self.features, (1, 1), s, use_bias=False, impl=self.conv)(x)
            x = batch_norm()(x, use_running_average=not train)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """``Conv1x1(f)-BN-ReLU, Conv3x3(f, stride)-BN-ReLU, Conv1x1(4f)-BN`` plus an
    identity (or 1x1 conv-BN projection) shortcut, then ReLU (He et al. 2016,
    Fig. 5 right; the stride sits on the 3x3 conv, as in DISTIL's and
    torchvision's ResNet-50)."""

    features: int
    stride: int = 1
    expansion: int = 4
    conv: str = "xla"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        s = (self.stride, self.stride)
        out = self.features * self.expansion
        y = Conv(self.features, (1, 1), use_bias=False, impl=self.conv)(x)
        y = nn.relu(batch_norm()(y, use_running_average=not train))
        y = Conv(self.features, (3, 3), s, padding="SAME", use_bias=False, impl=self.conv)(y)
        y = nn.relu(batch_norm()(y, use_running_average=not train))
        y = Conv(out, (1, 1), use_bias=False, impl=self.conv)(y)
        y = batch_norm()(y, use_running_average=not train)
        if self.stride != 1 or x.shape[-1] != out:
            x = Conv(out, (1, 1), s, use_bias=False, impl=self.conv)(x)
            x = batch_norm()(x, use_running_average=not train)
        return nn.relu(x + y)


class ResNetBackbone(nn.Module):
    """``[B, H, W, C] -> [B, 8 * width]`` (``32 * width`` with bottlenecks), after
    global average pooling."""

    stage_sizes: Sequence[int]
    width: int = 64
    bottleneck: bool = False
    conv: str = "xla"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = Conv(self.width, (3, 3), padding="SAME", use_bias=False, impl=self.conv)(x)
        x = nn.relu(batch_norm()(x, use_running_average=not train))
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                block = Bottleneck if self.bottleneck else BasicBlock
                x = block(self.width * 2**i, stride, conv=self.conv)(x, train)
        return jnp.mean(x, axis=(1, 2))


def _resnet(
    name: str,
    stage_sizes,
    num_classes: int,
    width: int,
    dropout: float,
    bottleneck=False,
    conv: str = "xla",
) -> Model:
    expansion = 4 if bottleneck else 1
    return from_linen(
        name,
        ResNetBackbone(
            stage_sizes=tuple(stage_sizes), width=width, bottleneck=bottleneck, conv=conv
        ),
        DenseHead(num_classes=num_classes, rate=dropout),
        embedding_dim=width * 2 ** (len(stage_sizes) - 1) * expansion,
        has_batch_norm=True,
    )


def resnet18(
    num_classes: int, *, width: int = 64, dropout: float = 0.0, conv: str = "xla"
) -> Model:
    """CIFAR ResNet-18 (BasicBlocks ``[2, 2, 2, 2]``).

    Args:
      num_classes: C.
      width: channels of the stem and first stage (64 in the paper); D = 8 * width.
      dropout: rate of the dropout before the classifier (0: none).
      conv: the convolutions' formulation, ``'xla'``, ``'shifted'`` or ``'im2col'``
        (:mod:`jaxal.models.conv`; same results up to float rounding).

    Returns:
      The :class:`Model`; ``features`` is the pooled embedding ``[B, 8 * width]``.
    """
    return _resnet("resnet18", (2, 2, 2, 2), num_classes, width, dropout, conv=conv)


def resnet34(
    num_classes: int, *, width: int = 64, dropout: float = 0.0, conv: str = "xla"
) -> Model:
    """CIFAR ResNet-34 (BasicBlocks ``[3, 4, 6, 3]``); arguments as :func:`resnet18`."""
    return _resnet("resnet34", (3, 4, 6, 3), num_classes, width, dropout, conv=conv)


def resnet50(
    num_classes: int, *, width: int = 64, dropout: float = 0.0, conv: str = "xla"
) -> Model:
    """CIFAR ResNet-50 (Bottlenecks ``[3, 4, 6, 3]``, 4x expansion; App. B.1 of the
    feature-space paper).

    Args:
      num_classes: C.
      width: channels of the stem and of the first stage's 1x1/3x3 convs (64 in
        the paper); the stages output ``4w, 8w, 16w, 32w`` channels, D = 32 * width
        (2048 at the paper size).
      dropout: rate of the dropout before the classifier (0: none).
      conv: the convolutions' formulation, ``'xla'``, ``'shifted'`` or ``'im2col'``
        (:mod:`jaxal.models.conv`; same results up to float rounding).

    Returns:
      The :class:`Model`; ``features`` is the pooled embedding ``[B, 32 * width]``.
    """
    return _resnet("resnet50", (3, 4, 6, 3), num_classes, width, dropout, True, conv)
