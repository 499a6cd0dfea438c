"""Datasets as host arrays: bundled offline sets, any TFDS image dataset, npz files.

cfg = jaxal.data.default_config()   # name="digits", normalize="standardize", ...
cfg.name = "mnist5k"
ds = jaxal.data.load(cfg)           # Dataset(x_train=[4000, 28, 28, 1] float32, ...)
cfg.name = "npz:~/my_data.npz"      # x_train, y_train, x_test, y_test (+ x_val, y_val)
"""

from jaxal.data.base import Dataset
from jaxal.data.bundled import BUNDLED, load_bundled
from jaxal.data.load import load, validate
from jaxal.data.npz import NpzDatasetError, from_arrays, load_npz
from jaxal.data.tfds import DatasetUnavailableError, load_tfds
from jaxal.data.transforms import NORMALIZE, apply_options


def default_config():
    """The ``dataset`` config block with its defaults (:func:`jaxal.config.dataset_config`)."""
    from jaxal.config import dataset_config

    return dataset_config()


__all__ = [
    "BUNDLED",
    "NORMALIZE",
    "Dataset",
    "DatasetUnavailableError",
    "NpzDatasetError",
    "apply_options",
    "default_config",
    "from_arrays",
    "load",
    "load_bundled",
    "load_npz",
    "load_tfds",
    "validate",
]
