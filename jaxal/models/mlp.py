"""Multi-layer perceptron on flattened images."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from jaxal.models.adapter import DenseHead, from_linen
from jaxal.models.base import Array, Model


class MLPBackbone(nn.Module):
    """``flatten -> [Dense(w) -> ReLU] for w in hidden``; ``[B, ...] -> [B, hidden[-1]]``."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        del train  # no batch norm
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        return h


def mlp(num_classes: int, *, hidden: Sequence[int] = (256,), dropout: float = 0.5) -> Model:
    """MLP: flatten, ``Dense+ReLU`` per width in ``hidden``, ``Dropout(dropout)``, ``Dense(C)``.

    Args:
      num_classes: C.
      hidden: widths of the hidden layers (at least one).
      dropout: rate of the dropout before the classifier (the only dropout).

    Returns:
      The :class:`Model`; the embedding is the last hidden activation (before
      dropout), ``D = hidden[-1]``.
    """
    hidden = tuple(int(w) for w in hidden)
    return from_linen(
        "mlp",
        MLPBackbone(hidden=hidden),
        DenseHead(num_classes=num_classes, rate=dropout),
        embedding_dim=hidden[-1],
        has_batch_norm=False,
    )
