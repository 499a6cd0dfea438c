"""Dataset options as pure numpy functions, and the one entry point ``load(cfg)``.

``load`` applies, in this order: long-tail imbalance of the pool -> a stratified
validation split carved from the pool -> a stratified fixed-size pool subset ->
normalization with statistics of the final pool. All random choices use
``np.random.default_rng(data_seed)``, independent of experiment seeds, so every
seed of a study sees the same pool. The test split is never subsampled.
"""

from __future__ import annotations

import math
import numbers
import os

import ml_collections
import numpy as np
from ml_collections import config_dict

from jaxal.data import tfds as tfds_source
from jaxal.data.base import Dataset
from jaxal.data.bundled import BUNDLED, load_bundled

NORMALIZE = ("none", "standardize")


# ---------------------------------------------------------------------------
# Pure numpy transforms
# ---------------------------------------------------------------------------


def longtail_counts(class_counts: np.ndarray, factor: float) -> np.ndarray:
    """Per-class sizes of a long-tailed pool (Cao et al. 2019, LDAM).

    Class ``c`` keeps ``floor(n_max * factor ** (-c / (C - 1)))`` examples (at
    least 1), where ``n_max`` is the smallest available class count, so class 0
    keeps ``n_max`` and class ``C-1`` keeps ``n_max / factor``: ``factor`` is the
    ratio largest / smallest class size. Classes are ordered by label.

    Args:
      class_counts: ``int [C]`` examples available per class.
      factor: imbalance factor ``>= 1`` (1 = balanced at ``n_max`` per class).

    Returns:
      ``int64 [C]`` examples to keep per class.
    """
    num_classes = len(class_counts)
    n_max = int(np.min(class_counts))
    exponent = np.arange(num_classes) / max(num_classes - 1, 1)
    keep = np.floor(n_max * float(factor) ** (-exponent) + 1e-9).astype(np.int64)
    return np.maximum(keep, 1)


def imbalance_indices(
    y: np.ndarray, num_classes: int, factor: float, rng: np.random.Generator
) -> np.ndarray:
    """Indices (sorted) of a random long-tailed subset of labels ``y`` (``int [N]``).

    Args:
      y: labels ``int [N]``.
      num_classes: ``C``.
      factor: imbalance factor, see ``longtail_counts``.
      rng: numpy generator for which examples of each class are kept.

    Returns:
      ``int64 [M]`` sorted indices into ``y``.
    """
    counts = np.bincount(y, minlength=num_classes)
    keep = longtail_counts(counts, factor)
    picked = [rng.permutation(np.flatnonzero(y == c))[: keep[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(picked))


def stratified_indices(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of a random stratified subset of ``k`` examples.

    Class ``c`` with ``n_c`` of ``N`` examples gets ``floor(k n_c / N)`` or one more
    (largest remainders first, ties to the smaller label), so each class count is
    within 1 of proportional and the total is exactly ``k``.

    Args:
      y: labels ``int [N]``.
      k: subset size, ``0 <= k <= N``.
      rng: numpy generator for which examples of each class are taken.

    Returns:
      ``int64 [k]`` sorted indices into ``y``.
    """
    classes, counts = np.unique(y, return_counts=True)
    quota = k * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: k - take.sum()]] += 1
    picked = [
        rng.permutation(np.flatnonzero(y == c))[:t] for c, t in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of images ``x [N, H, W, C]`` (float64, ``[C]`` each)."""
    x64 = x.astype(np.float64)
    return x64.mean(axis=(0, 1, 2)), x64.std(axis=(0, 1, 2))


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel, float32; a constant channel is only centred."""
    std = np.where(std > 0, std, 1.0)
    return ((x - mean) / std).astype(np.float32)


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def default_config() -> ml_collections.ConfigDict:
    """The ``dataset`` config block with its defaults.

    ``data_dir`` and ``pool_size`` default to ``None`` as typed placeholders, so
    ``--config.dataset.pool_size=500`` works from the command line.
    """
    return ml_collections.ConfigDict(
        dict(
            name="digits",
            data_dir=config_dict.placeholder(str),
            download=False,
            normalize="standardize",
            pool_size=config_dict.placeholder(int),
            val_size=0,
            imbalance_factor=1.0,
            data_seed=0,
        )
    )


def _bad(key: str, value, allowed: str) -> ValueError:
    return ValueError(f"dataset.{key}={value!r} is invalid: {allowed}")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def validate(cfg) -> None:
    """Checks a ``dataset`` config without loading anything (cheap, offline).

    Sizes that depend on the data (``pool_size`` larger than the pool, ``val_size``
    leaving no pool) are checked by ``load``.

    Args:
      cfg: a ``ConfigDict`` (or any object with the attributes of ``default_config``).

    Raises:
      ValueError: naming the key as ``dataset.<key>``, the value and what is allowed.
    """
    name = cfg.name
    if not isinstance(name, str) or not name:
        raise _bad("name", name, f"expected a bundled name ({', '.join(BUNDLED)}) or a tfds name")
    if name not in BUNDLED:
        problem = tfds_source.registration_problem(name)
        if problem:
            raise _bad(
                "name",
                name,
                f"{problem}; bundled datasets are {', '.join(BUNDLED)}, and any registered "
                "tfds image-classification name is accepted (e.g. mnist, cifar10, "
                "emnist/balanced)",
            )
    if cfg.data_dir is not None and not isinstance(cfg.data_dir, (str, os.PathLike)):
        raise _bad("data_dir", cfg.data_dir, "expected None or a directory path string")
    if not isinstance(cfg.download, bool):
        raise _bad("download", cfg.download, "expected True or False")
    if cfg.normalize not in NORMALIZE:
        raise _bad("normalize", cfg.normalize, f"expected one of {', '.join(NORMALIZE)}")
    if cfg.pool_size is not None and not (_is_int(cfg.pool_size) and cfg.pool_size > 0):
        raise _bad("pool_size", cfg.pool_size, "expected None (whole pool) or an integer > 0")
    if not (_is_int(cfg.val_size) and cfg.val_size >= 0):
        raise _bad("val_size", cfg.val_size, "expected an integer >= 0")
    f = cfg.imbalance_factor
    if not (isinstance(f, numbers.Real) and not isinstance(f, bool) and math.isfinite(f)):
        raise _bad("imbalance_factor", f, "expected a finite number >= 1 (1 = balanced)")
    if f < 1:
        raise _bad("imbalance_factor", f, "expected >= 1 (largest / smallest class size)")
    if not _is_int(cfg.data_seed):
        raise _bad("data_seed", cfg.data_seed, "expected an integer")


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def apply_options(ds: Dataset, cfg) -> Dataset:
    """Applies imbalance -> val split -> pool subset -> normalize to a raw dataset.

    Args:
      ds: a dataset with images in ``[0, 1]`` and an empty validation split.
      cfg: the ``dataset`` config (validated).

    Returns:
      The transformed ``Dataset``; the test split keeps all its examples.

    Raises:
      ValueError: ``dataset.val_size`` or ``dataset.pool_size`` too large for the pool.
    """
    rng = np.random.default_rng(cfg.data_seed)
    x, y = ds.x_train, ds.y_train
    if cfg.imbalance_factor != 1.0:
        keep = imbalance_indices(y, ds.num_classes, cfg.imbalance_factor, rng)
        x, y = x[keep], y[keep]
    x_val, y_val = ds.x_val, ds.y_val
    if cfg.val_size:
        if cfg.val_size >= len(y):
            raise _bad("val_size", cfg.val_size, f"must leave a pool: the pool has {len(y)}")
        val = stratified_indices(y, cfg.val_size, rng)
        rest = np.setdiff1d(np.arange(len(y)), val)
        x_val, y_val, x, y = x[val], y[val], x[rest], y[rest]
    if cfg.pool_size is not None:
        if cfg.pool_size > len(y):
            raise _bad("pool_size", cfg.pool_size, f"larger than the pool ({len(y)} examples)")
        sub = stratified_indices(y, cfg.pool_size, rng)
        x, y = x[sub], y[sub]
    x_test = ds.x_test
    if cfg.normalize == "standardize":
        mean, std = channel_stats(x)
        x, x_val, x_test = (standardize(a, mean, std) for a in (x, x_val, x_test))
    return ds._replace(
        x_train=x.astype(np.float32, copy=False),
        y_train=y.astype(np.int32, copy=False),
        x_test=x_test.astype(np.float32, copy=False),
        y_test=ds.y_test.astype(np.int32, copy=False),
        x_val=x_val.astype(np.float32, copy=False),
        y_val=y_val.astype(np.int32, copy=False),
    )


def load(cfg) -> Dataset:
    """Loads the dataset named by ``cfg.name`` and applies the options in ``cfg``.

    Args:
      cfg: the ``dataset`` config: ``name, data_dir, download, normalize,
        pool_size, val_size, imbalance_factor, data_seed`` (see ``default_config``).

    Returns:
      A ``Dataset``: float32 ``[N, H, W, C]`` images, int32 labels, the pool as
      ``x_train``, ``[0, H, W, C]`` validation arrays when ``val_size == 0``.

    Raises:
      ValueError: a bad config value (naming ``dataset.<key>``).
      DatasetUnavailableError: a tfds dataset that is not available offline.
    """
    validate(cfg)
    if cfg.name in BUNDLED:
        raw = load_bundled(cfg.name)
    else:
        raw = tfds_source.load_tfds(cfg.name, data_dir=cfg.data_dir, download=cfg.download)
    return apply_options(raw, cfg)
