"""The in-memory dataset every loader returns."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """A classification dataset as host arrays, ready to be put on device.

    Images are ``float32 [N, H, W, C]`` (channels last, also for 8×8 digits:
    ``[N, 8, 8, 1]``); labels are ``int32 [N]`` in ``[0, num_classes)``.
    ``x_train``/``y_train`` are the unlabeled *pool* of the active-learning run.
    ``x_val``/``y_val`` are empty (``len == 0``) unless a validation split was
    requested.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    # A second validation split (``dataset.val2_size``), e.g. for the stopping
    # decision of the Sherbrooke report; ``None`` = empty.
    x_val2: np.ndarray | None = None
    y_val2: np.ndarray | None = None

    def val2(self) -> tuple[np.ndarray, np.ndarray]:
        """The second validation split, ``[0, ...]`` arrays when there is none."""
        if self.x_val2 is None:
            return np.zeros((0, *self.x_train.shape[1:]), np.float32), np.zeros((0,), np.int32)
        return self.x_val2, self.y_val2


def without_validation(name: str, x_train, y_train, x_test, y_test, num_classes: int) -> Dataset:
    """A :class:`Dataset` with an empty validation split (what loaders return)."""
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        x_val=np.zeros((0, *x_train.shape[1:]), np.float32),
        y_val=np.zeros((0,), np.int32),
        num_classes=num_classes,
    )
