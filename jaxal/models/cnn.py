"""The small MNIST CNN of the BALD papers (Gal, Islam & Ghahramani 2017).

``Conv(32, 3x3)-ReLU-Conv(32, 3x3)-ReLU-MaxPool(2)-Dropout(conv_dropout)-Flatten-
Dense(128)-ReLU-Dropout(dropout)-Dense(C)``.

Convolutions use ``'VALID'`` padding by default, as the Keras reference does
(28x28 -> 24x24 -> 12x12x32 -> 4608 flattened features). 8x8 digits work too
(8 -> 4 -> 2x2x32 = 128 features); any input of at least 6x6 does. Pass
``padding='SAME'`` to keep the spatial size through the convs (then any H, W >= 2).
"""

from __future__ import annotations

import flax.linen as nn

from jaxal.models.adapter import from_linen
from jaxal.models.base import Array, Model
from jaxal.models.conv import Conv
from jaxal.models.dropout import Dropout
from jaxal.models.pool import max_pool


class CNNBackbone(nn.Module):
    """The conv trunk up to the max pool: ``[B, H, W, C] -> [B, H', W', 32]``."""

    padding: str = "VALID"
    conv: str = "xla"  # jaxal.models.conv.IMPLS

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        del train  # no batch norm
        x = nn.relu(Conv(32, (3, 3), padding=self.padding, impl=self.conv)(x))
        x = nn.relu(Conv(32, (3, 3), padding=self.padding, impl=self.conv)(x))
        return max_pool(x, 2)  # = nn.max_pool(x, (2, 2), strides=(2, 2)), cheaper gradient


class CNNHead(nn.Module):
    """Everything after the pool. All of the CNN's dropout lives here, so MC
    "head" mode is exact for every dropout setting. The embedding is the
    ``Dense(128)`` ReLU output, which is stochastic when ``conv_dropout > 0``
    and dropout is on."""

    num_classes: int
    dropout: float
    conv_dropout: float

    @nn.compact
    def __call__(self, h: Array, deterministic: bool) -> tuple[Array, Array]:
        h = Dropout(self.conv_dropout)(h, deterministic=deterministic)
        h = h.reshape(h.shape[0], -1)
        emb = nn.relu(nn.Dense(128)(h))  # [B, 128]
        z = Dropout(self.dropout)(emb, deterministic=deterministic)
        return nn.Dense(self.num_classes)(z), emb


def cnn(
    num_classes: int,
    *,
    dropout: float = 0.5,
    conv_dropout: float = 0.25,
    padding: str = "VALID",
    conv: str = "xla",
) -> Model:
    """The BALD-paper MNIST CNN.

    Args:
      num_classes: C.
      dropout: rate of the dropout before the classifier.
      conv_dropout: rate of the dropout after the conv trunk's max pool (0
        puts all dropout right before the classifier).
      padding: ``'VALID'`` (the paper; inputs >= 6x6) or ``'SAME'``.
      conv: the convolutions' formulation, ``'xla'``, ``'shifted'`` or ``'im2col'``
        (:mod:`jaxal.models.conv`; same results up to float rounding).

    Returns:
      The :class:`Model`; ``embedding_dim = 128``. ``features`` is the pooled
      conv map ``[B, H', W', 32]``.
    """
    return from_linen(
        "cnn",
        CNNBackbone(padding=padding, conv=conv),
        CNNHead(num_classes=num_classes, dropout=dropout, conv_dropout=conv_dropout),
        embedding_dim=128,
        has_batch_norm=False,
    )
