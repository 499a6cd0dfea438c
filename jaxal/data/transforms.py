"""Dataset options as pure numpy functions.

:func:`apply_options` applies, in this order: long-tail imbalance of the pool -> a stratified
validation split carved from the pool -> a stratified fixed-size pool subset ->
normalization with statistics of the final pool. All random choices use
``np.random.default_rng(data_seed)``, independent of experiment seeds, so every
seed of a study sees the same pool. The test split is never subsampled.
"""

from __future__ import annotations

import numpy as np

from jaxal.data.base import Dataset

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
    """Mean and std over every axis but the last (float64, ``[C]`` each).

    Per channel for images ``x [N, H, W, C]`` (axes 0, 1, 2), per feature for a
    feature pool ``x [N, D]`` (axis 0). Any numeric dtype.
    """
    x64 = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    return x64.mean(axis=axes), x64.std(axis=axes)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over the last axis (channel or feature), float32.

    ``x`` may have any numeric dtype; a constant channel or feature is only centred.
    """
    std = np.where(std > 0, std, 1.0)
    return ((x - mean) / std).astype(np.float32)


# ---------------------------------------------------------------------------
# Dataset options
# ---------------------------------------------------------------------------


def _bad(key: str, value, allowed: str) -> ValueError:
    return ValueError(f"dataset.{key}={value!r} is invalid: {allowed}")


def apply_options(ds: Dataset, cfg) -> Dataset:
    """Applies imbalance -> val split -> pool subset -> normalize to a raw dataset.

    ``normalize="standardize"`` uses the mean and std of the final pool over every
    axis but the last (per channel of ``[N, H, W, C]`` images, per feature of
    ``[N, D]`` features) and returns float32 ``x``; ``normalize="none"`` keeps the
    dtype of ``x`` (the models cast to float32). Labels become int32.

    Args:
      ds: a raw dataset (bundled and tfds images are float32 in ``[0, 1]``; npz
        features keep the file's dtype). Its validation split is replaced when
        ``cfg.val_size > 0``.
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
    x_val2, y_val2 = ds.val2()
    val2_size = int(getattr(cfg, "val2_size", 0) or 0)
    if val2_size:  # drawn after split 1, from what is left (disjoint from it)
        if val2_size >= len(y):
            raise _bad("val2_size", val2_size, f"must leave a pool: {len(y)} examples are left")
        val = stratified_indices(y, val2_size, rng)
        rest = np.setdiff1d(np.arange(len(y)), val)
        x_val2, y_val2, x, y = x[val], y[val], x[rest], y[rest]
    if cfg.pool_size is not None:
        if cfg.pool_size > len(y):
            raise _bad("pool_size", cfg.pool_size, f"larger than the pool ({len(y)} examples)")
        sub = stratified_indices(y, cfg.pool_size, rng)
        x, y = x[sub], y[sub]
    x_test = ds.x_test
    if cfg.normalize == "standardize":
        mean, std = channel_stats(x)
        x, x_val, x_val2, x_test = (
            standardize(a, mean, std) for a in (x, x_val, x_val2, x_test)
        )
    # No cast of x: standardize already returns float32, and "none" keeps the dtype
    # (float32 for the bundled and tfds sets, so those arrays are unchanged).
    return ds._replace(
        x_train=x,
        y_train=y.astype(np.int32, copy=False),
        x_test=x_test,
        y_test=ds.y_test.astype(np.int32, copy=False),
        x_val=x_val,
        y_val=y_val.astype(np.int32, copy=False),
        x_val2=x_val2,
        y_val2=np.asarray(y_val2).astype(np.int32, copy=False),
    )
