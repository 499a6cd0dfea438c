"""The MNIST CNN of Németh & Matuszka's compute-efficient active learning.

Section 3.1: "a simple and compact convolutional neural network architecture with
two Conv-MaxPool-Dropout-ReLU layers and a Linear layer". The authors' code
(``aimotive/Compute-Efficient-Active-Learning``, ``src/models/networks.py``,
``MNISTCNN``) fills in the sizes:

    Conv(32, 5x5, valid) - MaxPool(2) - Dropout(0.5) - ReLU
    Conv(64, 5x5, valid) - MaxPool(2) - Dropout(0.5) - ReLU - Flatten (4x4x64 = 1024)
    Linear(128) - Dropout(0.5) - ReLU - Linear(C)

so the "Linear layer" of the paper is a two-layer classifier. Dropout before a
ReLU equals dropout after it (the dropout mask and its 1/(1-p) scale commute
with max(0, .)). The conv dropout means MC dropout needs ``mc.mode = "full"``
(every pass runs the whole network), as the code's ``forward_mc_dropout`` does.
Parameters use Flax's default initialisers (lecun normal), not PyTorch's
(kaiming uniform) -- an initialisation detail the paper does not state.

Used as a user module: ``model.name =
"experiments.compute_efficient.models:mnist_cnn"`` (run from the repository
root, so that ``experiments`` is importable; ``python -m jaxal`` puts the
working directory on ``sys.path``).
"""

from __future__ import annotations

import flax.linen as nn


class MNISTCNN(nn.Module):
    """The paper's MNIST CNN; ``__call__(x, train) -> (logits, embedding)``."""

    num_classes: int
    dropout: float = 0.5
    has_batch_norm = False  # declared for jaxal's MC-dropout check (no batch norm)

    @nn.compact
    def __call__(self, x, train: bool):
        def drop(h):
            return nn.Dropout(self.dropout, deterministic=not train)(h)

        h = nn.Conv(32, (5, 5), padding="VALID")(x)
        h = nn.relu(drop(nn.max_pool(h, (2, 2), strides=(2, 2))))
        h = nn.Conv(64, (5, 5), padding="VALID")(h)
        h = nn.relu(drop(nn.max_pool(h, (2, 2), strides=(2, 2))))
        h = h.reshape(h.shape[0], -1)  # 1024 on 28x28 inputs
        emb = nn.relu(drop(nn.Dense(128)(h)))
        return nn.Dense(self.num_classes)(emb), emb


def mnist_cnn(num_classes: int, dropout: float = 0.5) -> MNISTCNN:
    """The paper's MNIST CNN (28x28 inputs; any side >= 16 works)."""
    return MNISTCNN(num_classes=num_classes, dropout=dropout)
