"""Any TFDS image-classification dataset, read without TensorFlow.

Reading goes through ``tfds.data_source`` (random-access ``array_record`` files,
decoded with PIL/OpenCV), which needs no TensorFlow. *Preparing* an image dataset
(``download=True`` or ``tfds build``) encodes PNGs with TensorFlow, so that step
needs the ``jaxal[tfds]`` extra on a machine with internet; afterwards the
prepared ``data_dir`` can be copied anywhere and read offline.

The train split is the active-learning pool; the test split is ``test`` (else
``validation``), and for a dataset with neither, a fixed stratified 20% (at most
10,000 examples) of ``train`` is held out as test.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from jaxal.data.base import Dataset, without_validation

_FILE_FORMAT = {"file_format": "array_record"}  # The random-access format; no TF needed.
_TEST_SPLITS = ("test", "validation", "valid", "val")
_HOLDOUT_FRACTION, _HOLDOUT_MAX, _HOLDOUT_SEED = 0.2, 10_000, 0


class DatasetUnavailableError(ValueError):
    """A TFDS dataset is not prepared in ``data_dir`` and could not be downloaded."""


def _split_name(name: str) -> tuple[str, str | None]:
    """``'emnist/balanced:3.1.0'`` -> ``('emnist', 'balanced')``."""
    base, _, config = name.split(":", 1)[0].partition("/")
    return base, (config or None)


def registration_problem(name: str) -> str | None:
    """Says why ``name`` is not a registered TFDS dataset (``None`` if it is).

    Cheap: looks only at the registry of builder classes, never at data or the
    network (community datasets, whose index lives on GCS, are not consulted).

    Args:
      name: a TFDS name, ``'dataset[/config][:version]'``.

    Returns:
      ``None`` when the builder (and config, if given) exists, else a sentence.
    """
    base, config = _split_name(name)
    if base not in tfds.list_builders(with_community_datasets=False):
        return f"{base!r} is not a registered tfds dataset"
    if config is not None and "=" not in config:  # 'name/a=1,b=2' are builder kwargs.
        configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS]
        if config not in configs:
            allowed = ", ".join(configs) if configs else "none"
            return f"tfds dataset {base!r} has no config {config!r} (configs: {allowed})"
    return None


def _unavailable(name: str, data_dir: str | None, download: bool, cause: Exception):
    root = os.fspath(data_dir) if data_dir else tfds.core.constants.get_default_data_dir()
    first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    how = "download failed" if download else "dataset.download=False"
    return DatasetUnavailableError(
        f"tfds dataset {name!r} is not available: not prepared in array_record format under "
        f"data_dir {root!r}, and {how} ({type(cause).__name__}: {first_line}). "
        "To get it: on a machine with internet run once with --config.dataset.download=True "
        f"--config.dataset.data_dir={root} (needs `pip install 'jaxal[tfds]'`), or run "
        f"`tfds build {name} --data_dir={root} --file_format=array_record` there; then copy "
        "that data_dir here and point --config.dataset.data_dir at it"
    )


def _feature_keys(features) -> tuple[str, str]:
    """The image and label keys: ``image``/``label``, else the first of each kind."""
    keys = list(features.keys())

    def pick(preferred, kind):
        if preferred in keys and isinstance(features[preferred], kind):
            return preferred
        for k in keys:
            if isinstance(features[k], kind):
                return k
        raise ValueError(f"no {kind.__name__} feature among {keys}: not image classification")

    return pick("image", tfds.features.Image), pick("label", tfds.features.ClassLabel)


def _pick_splits(available: list[str]) -> tuple[str, str | None]:
    if "train" not in available:
        raise ValueError(f"dataset has no 'train' split (splits: {available})")
    test = next((s for s in _TEST_SPLITS if s in available), None)
    return "train", test


def _read(source, image_key: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a whole split into ``float32 [N, H, W, C]`` in [0, 1] and ``int32 [N]``."""
    n = len(source)
    first = np.asarray(source[0][image_key]) if n else np.zeros((0, 0, 1), np.uint8)
    x = np.empty((n, *first.shape), first.dtype)
    y = np.empty((n,), np.int32)
    for i in range(n):  # Per record: works for every data source (and tfds' mocks).
        example = source[i]
        x[i] = example[image_key]
        y[i] = example[label_key]
    if x.ndim == 3:  # [N, H, W] -> [N, H, W, 1]
        x = x[..., None]
    if x.dtype == np.uint8:
        x = np.divide(x, 255, dtype=np.float32)
    return x.astype(np.float32, copy=False), y


def _holdout(x: np.ndarray, y: np.ndarray):
    from sklearn.model_selection import train_test_split

    size = min(_HOLDOUT_MAX, int(round(_HOLDOUT_FRACTION * len(y))))
    return train_test_split(x, y, test_size=size, stratify=y, random_state=_HOLDOUT_SEED)


def load_tfds(name: str, *, data_dir: str | None = None, download: bool = False) -> Dataset:
    """Loads a TFDS image-classification dataset as host arrays.

    Args:
      name: TFDS name, e.g. ``'mnist'``, ``'cifar10'``, ``'emnist/balanced'``.
      data_dir: where prepared datasets live (``None``: TFDS' default,
        ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      download: prepare the dataset (download + convert to ``array_record``) when
        it is not in ``data_dir``. Needs internet and the ``jaxal[tfds]`` extra.

    Returns:
      A ``Dataset`` with float32 ``[N, H, W, C]`` images in ``[0, 1]``, int32
      labels, the train split as pool and an empty validation split.

    Raises:
      DatasetUnavailableError: not prepared in ``data_dir`` and ``download`` is
        False, or the download/preparation failed.
    """
    if download:
        try:
            tfds.data_source(name, data_dir=data_dir, download=True, builder_kwargs=_FILE_FORMAT)
        except Exception as e:  # Network, missing TensorFlow, disk: all mean "not here".
            raise _unavailable(name, data_dir, download, e) from e
    builder = tfds.builder(name, data_dir=data_dir, **_FILE_FORMAT)
    features = builder.info.features
    image_key, label_key = _feature_keys(features)
    if None in features[image_key].shape[:2]:
        raise ValueError(f"tfds dataset {name!r} has images of varying size; need a fixed size")
    # Splits are known once prepared; when they are not (unprepared, or mocked in
    # tests), assume the usual pair and let the read below decide.
    pool_split, test_split = _pick_splits(list(builder.info.splits) or ["train", "test"])
    wanted = [pool_split] + ([test_split] if test_split else [])
    try:
        sources = tfds.data_source(
            name, split=wanted, data_dir=data_dir, download=False, builder_kwargs=_FILE_FORMAT
        )
    except Exception as e:  # tfds raises assorted types for "not prepared here".
        raise _unavailable(name, data_dir, download, e) from e
    x_tr, y_tr = _read(sources[0], image_key, label_key)
    if test_split:
        x_te, y_te = _read(sources[1], image_key, label_key)
    else:
        x_tr, x_te, y_tr, y_te = _holdout(x_tr, y_tr)
    return without_validation(name, x_tr, y_tr, x_te, y_te, int(features[label_key].num_classes))
