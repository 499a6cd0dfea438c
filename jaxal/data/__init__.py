"""Datasets as host arrays: bundled offline sets, any TFDS image dataset, options.

cfg = jaxal.data.default_config()   # name="digits", normalize="standardize", ...
cfg.name = "mnist5k"
ds = jaxal.data.load(cfg)           # Dataset(x_train=[4000, 28, 28, 1] float32, ...)
"""

from jaxal.data.base import Dataset
from jaxal.data.bundled import BUNDLED, load_bundled
from jaxal.data.tfds import DatasetUnavailableError, load_tfds
from jaxal.data.transforms import (
    NORMALIZE,
    apply_options,
    default_config,
    load,
    validate,
)

__all__ = [
    "BUNDLED",
    "NORMALIZE",
    "Dataset",
    "DatasetUnavailableError",
    "apply_options",
    "default_config",
    "load",
    "load_bundled",
    "load_tfds",
    "validate",
]
