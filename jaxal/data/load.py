"""The one entry point ``load(cfg)`` and the dataset config's checks.

``cfg`` is any object with the attributes of the ``dataset`` config block
(``name, data_dir, download, normalize, pool_size, val_size,
imbalance_factor, data_seed``; defaults in :func:`jaxal.config.base_config`).
Names: a bundled dataset, ``npz:PATH`` (your own arrays), or a tfds name.
"""

from __future__ import annotations

import math
import numbers
import os

from jaxal.data import tfds as tfds_source
from jaxal.data.base import Dataset
from jaxal.data.bundled import BUNDLED, load_bundled
from jaxal.data.npz import load_npz
from jaxal.data.transforms import NORMALIZE, _bad, apply_options


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
        raise _bad(
            "name",
            name,
            f"expected a bundled name ({', '.join(BUNDLED)}), a tfds name or npz:PATH",
        )
    if name.startswith("npz:"):
        if not name[len("npz:") :].strip():
            raise _bad("name", name, "expected npz:PATH, the path of a .npz file after 'npz:'")
    elif name not in BUNDLED:
        problem = tfds_source.registration_problem(name)
        if problem:
            raise _bad(
                "name",
                name,
                f"{problem}; bundled datasets are {', '.join(BUNDLED)}, and any registered "
                "tfds image-classification name is accepted (e.g. mnist, cifar10, "
                "emnist/balanced), or npz:PATH for a local .npz file",
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
    val2 = cfg.get("val2_size", 0) if hasattr(cfg, "get") else getattr(cfg, "val2_size", 0)
    if not (_is_int(val2) and val2 >= 0):
        raise _bad("val2_size", val2, "expected an integer >= 0")
    f = cfg.imbalance_factor
    if not (isinstance(f, numbers.Real) and not isinstance(f, bool) and math.isfinite(f)):
        raise _bad("imbalance_factor", f, "expected a finite number >= 1 (1 = balanced)")
    if f < 1:
        raise _bad("imbalance_factor", f, "expected >= 1 (largest / smallest class size)")
    if not _is_int(cfg.data_seed):
        raise _bad("data_seed", cfg.data_seed, "expected an integer")


def load(cfg) -> Dataset:
    """Loads the dataset named by ``cfg.name`` and applies the options in ``cfg``.

    Args:
      cfg: the ``dataset`` config: ``name, data_dir, download, normalize,
        pool_size, val_size, imbalance_factor, data_seed`` (see ``default_config``).

    Returns:
      A ``Dataset``: float32 ``[N, H, W, C]`` images (``npz:PATH``: the file's
      ``[N, H, W, C]`` or ``[N, D]`` arrays, float32 when standardized and in the
      file's dtype with ``normalize="none"``), int32 labels, the pool as
      ``x_train``, ``[0, H, W, C]`` validation arrays when ``val_size == 0`` and
      the source has no validation split.

    Raises:
      ValueError: a bad config value (naming ``dataset.<key>``).
      DatasetUnavailableError: a tfds dataset that is not available offline.
      NpzDatasetError: a ``npz:PATH`` file that is missing or malformed.
    """
    validate(cfg)
    if cfg.name.startswith("npz:"):
        raw = load_npz(cfg.name[len("npz:") :])
    elif cfg.name in BUNDLED:
        raw = load_bundled(cfg.name)
    else:
        raw = tfds_source.load_tfds(cfg.name, data_dir=cfg.data_dir, download=cfg.download)
    return apply_options(raw, cfg)
