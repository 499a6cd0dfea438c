"""CIFAR VGG-11/16/19 with batch norm (Simonyan & Zisserman 2015, the CIFAR variant).

Each number of the config is a ``Conv3x3-BN-ReLU`` layer, each ``M`` a 2x2 max
pool. Pools use 'SAME' padding so that inputs smaller than 32x32 (8x8 digits)
stay 1x1 instead of vanishing; for even sides 'SAME' and 'VALID' pools agree.
``width = 64`` is the paper size (channels scale as ``c * width // 64``).

Two classifier heads:

* ``vgg11``, ``vgg16``, ``vgg19``: global average pooling (the embedding,
  ``D = 8 * width``), ``Dropout(dropout)``, ``Dense(C)`` -- the pooled linear
  head of the CIFAR VGGs common in DAL code. On 32x32 CIFAR the last map is 1x1,
  so the average pool equals the usual flatten.
* ``vgg11_fc``, ``vgg16_fc``, ``vgg19_fc``: the head of App. B.2 of *The
  Influence of Feature Space Complexity on Optimal Data Selection in Deep
  Active Learning* (``/work/shared/papers/feature-space-architectures.txt``):
  "FULLY CONNECTED LAYERS: 2 x [FC width 4096], FC width 1000, FC width C",
  i.e. torchvision's VGG classifier (4096, 4096, 1000) with an ``FC C`` on top.
  Here: flatten the last map, ``Dense(4096)-ReLU-Dropout``, ``Dense(4096)-ReLU-
  Dropout`` (torchvision's dropout placement), ``Dense(1000)-ReLU`` (the
  embedding, ``D = 1000``), ``Dense(C)``; the FC widths scale with ``width / 64``
  like the channels. Choices where the paper says nothing: the 1000-wide layer
  gets a ReLU (the paper lists it as a layer of the stack; without one it would
  fold linearly into the last layer), the conv trunk keeps batch norm (as
  jaxal's other VGGs; torchvision's ``vgg*_bn``), and the last map is
  flattened as it is (1x1x512 on inputs up to 32x32) instead of torchvision's
  adaptive pool to 7x7, which on CIFAR-sized inputs only repeats the one pixel
  49 times.

The conv configurations are App. B.2's (= Simonyan & Zisserman's A, D, E).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.adapter import DenseHead, batch_norm, from_linen
from jaxal.models.base import Array, Model
from jaxal.models.conv import Conv
from jaxal.models.dropout import Dropout
from jaxal.models.pool import max_pool

CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
        *(512, 512, 512, "M", 512, 512, 512, "M"),
    ),
    "vgg19": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"),
        *(512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ),
}
FC_WIDTHS = (4096, 4096, 1000)  # App. B.2's fully connected stack before FC C


class VGGBackbone(nn.Module):
    """``[B, H, W, C] -> [B, cfg[-2] * width // 64]`` (average pool), or the last
    map flattened (``flatten=True``: ``[B, H' * W' * cfg[-2] * width // 64]``)."""

    cfg: Sequence[int | str]
    width: int = 64
    flatten: bool = False
    conv: str = "xla"  # jaxal.models.conv.IMPLS

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        for c in self.cfg:
            if c == "M":
                x = max_pool(x, 2, padding="SAME")  # = nn.max_pool, cheaper gradient
            else:
                x = Conv(int(c) * self.width // 64, (3, 3), padding="SAME", impl=self.conv)(x)
                x = nn.relu(batch_norm()(x, use_running_average=not train))
        if self.flatten:
            return x.reshape(x.shape[0], -1)
        return jnp.mean(x, axis=(1, 2))


class VGGFCHead(nn.Module):
    """App. B.2's classifier: ``[Dense(w)-ReLU-Dropout] x 2, Dense(w3)-ReLU, Dense(C)``
    for ``widths = (w, w, w3)``; the embedding is the ``Dense(w3)`` ReLU output.
    All the model's dropout lives here (MC "head" mode is exact); the embedding
    is stochastic when dropout is on."""

    num_classes: int
    widths: Sequence[int] = FC_WIDTHS
    dropout: float = 0.5

    @nn.compact
    def __call__(self, h: Array, deterministic: bool) -> tuple[Array, Array]:
        *hidden, last = self.widths
        for w in hidden:
            h = nn.relu(nn.Dense(w)(h))
            h = Dropout(self.dropout)(h, deterministic=deterministic)
        emb = nn.relu(nn.Dense(last)(h))
        return nn.Dense(self.num_classes)(emb), emb


def _vgg(name: str, num_classes: int, width: int, dropout: float, conv: str = "xla") -> Model:
    cfg = CFGS[name]
    return from_linen(
        name,
        VGGBackbone(cfg=cfg, width=width, conv=conv),
        DenseHead(num_classes=num_classes, rate=dropout),
        embedding_dim=int(cfg[-2]) * width // 64,
        has_batch_norm=True,
    )


def vgg11(
    num_classes: int, *, width: int = 64, dropout: float = 0.0, conv: str = "xla"
) -> Model:
    """CIFAR VGG-11 with batch norm.

    Args:
      num_classes: C.
      width: channels of the first conv (64 in the paper); D = 8 * width.
      dropout: rate of the dropout before the classifier (0: none).
      conv: the convolutions' formulation, ``'xla'``, ``'shifted'`` or ``'im2col'``
        (:mod:`jaxal.models.conv`; same results up to float rounding).

    Returns:
      The :class:`Model`; ``features`` is the pooled embedding ``[B, 8 * width]``.
    """
    return _vgg("vgg11", num_classes, width, dropout, conv)


def vgg16(
    num_classes: int, *, width: int = 64, dropout: float = 0.0, conv: str = "xla"
) -> Model:
    """CIFAR VGG-16 with batch norm; arguments as :func:`vgg11`."""
    return _vgg("vgg16", num_classes, width, dropout, conv)


def vgg19(
    num_classes: int, *, width: int = 64, dropout: float = 0.0, conv: str = "xla"
) -> Model:
    """CIFAR VGG-19 with batch norm (App. B.2's conv layers); arguments as :func:`vgg11`."""
    return _vgg("vgg19", num_classes, width, dropout, conv)


def _vgg_fc(
    name: str, num_classes: int, width: int, dropout: float, conv: str = "xla"
) -> Model:
    cfg = CFGS[name.removesuffix("_fc")]
    widths = tuple(w * width // 64 for w in FC_WIDTHS)
    return from_linen(
        name,
        VGGBackbone(cfg=cfg, width=width, flatten=True, conv=conv),
        VGGFCHead(num_classes=num_classes, widths=widths, dropout=dropout),
        embedding_dim=widths[-1],
        has_batch_norm=True,
    )


def vgg11_fc(
    num_classes: int, *, width: int = 64, dropout: float = 0.5, conv: str = "xla"
) -> Model:
    """VGG-11 with App. B.2's fully connected head (see the module docstring).

    Args:
      num_classes: C.
      width: channels of the first conv (64 in the paper); the FC stack is
        ``(4096, 4096, 1000) * width / 64``.
      dropout: rate of the dropout after each 4096-wide layer (0.5 as torchvision).

    Returns:
      The :class:`Model`; ``embedding_dim = 1000 * width // 64`` (the ReLU output
      of the 1000-wide layer); ``features`` is the flattened last conv map.
    """
    return _vgg_fc("vgg11_fc", num_classes, width, dropout, conv)


def vgg16_fc(
    num_classes: int, *, width: int = 64, dropout: float = 0.5, conv: str = "xla"
) -> Model:
    """VGG-16 with App. B.2's fully connected head; arguments as :func:`vgg11_fc`."""
    return _vgg_fc("vgg16_fc", num_classes, width, dropout, conv)


def vgg19_fc(
    num_classes: int, *, width: int = 64, dropout: float = 0.5, conv: str = "xla"
) -> Model:
    """VGG-19 with App. B.2's fully connected head; arguments as :func:`vgg11_fc`."""
    return _vgg_fc("vgg19_fc", num_classes, width, dropout, conv)
