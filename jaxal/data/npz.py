"""Bring-your-own data: ``dataset.name = "npz:PATH"`` loads a numpy ``.npz`` file.

The file holds ``x_train, y_train, x_test, y_test``, optionally ``x_val, y_val``
(both or neither) and optionally a scalar ``num_classes``::

    np.savez("my.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    cfg.name = "npz:my.npz"

``x`` keeps the dtype it was saved with (``uint8`` images, ``float16`` features,
...): ``[N, H, W, C]`` channels-last images, ``[N, H, W]`` grey images (a channel
axis is appended) or ``[N, D]`` flat features (e.g. precomputed embeddings), which
stay 2-D. Labels of any integer dtype become ``int32``. Every problem with the
file is one :class:`NpzDatasetError` line naming ``dataset.name``.
"""

from __future__ import annotations

import os

import numpy as np

from jaxal.data.base import Dataset, without_validation

_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
_EXPECTED_X = "[N, H, W, C] images, [N, H, W] grey images or [N, D] features"


class NpzDatasetError(ValueError):
    """A ``npz:PATH`` dataset that cannot be loaded; the message is one line."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _error(name: str, problem: str, expected: str) -> NpzDatasetError:
    return NpzDatasetError(_one_line(f"dataset.name={name!r}: {problem}; expected {expected}"))


def _read(name: str, path: str) -> dict[str, np.ndarray]:
    """All arrays of the file, read eagerly (the file is closed on return)."""
    layout = "a .npz file written by np.savez with keys " + ", ".join(_REQUIRED)
    if not os.path.exists(path):
        raise _error(name, f"file not found: {path}", layout)
    if not os.path.isfile(path):
        raise _error(name, f"not a file: {path}", layout)
    try:
        obj = np.load(path, allow_pickle=False)
    except Exception as e:  # Any failure to parse means "not an npz".
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic.startswith(b"PK") or magic == b"\x93NUMPY":
            why = f"{type(e).__name__}: {e}"
        else:  # np.load falls back to pickle and says so: not helpful here.
            why = "not a zip archive of .npy arrays"
        raise _error(name, f"not a valid npz file ({why})", layout) from e
    if not isinstance(obj, np.lib.npyio.NpzFile):
        raise _error(name, "not a valid npz file (it holds a single array: a .npy file?)", layout)
    with obj:
        try:
            return {k: obj[k] for k in obj.files}
        except Exception as e:  # Object arrays, corrupt members, ...
            raise _error(
                name, f"not a valid npz file ({type(e).__name__}: {e})", layout + " (no pickles)"
            ) from e


def _features(name: str, split: str, x: np.ndarray) -> np.ndarray:
    key = f"x_{split}"
    if x.dtype.kind not in "biuf":
        raise _error(name, f"{key} has dtype {x.dtype}", "real numbers (integer, float or bool)")
    if x.ndim not in (2, 3, 4):
        raise _error(name, f"{key} has shape {x.shape} (ndim {x.ndim})", _EXPECTED_X)
    return x[..., None] if x.ndim == 3 else x


def _labels(name: str, split: str, y: np.ndarray, n: int) -> np.ndarray:
    key = f"y_{split}"
    if y.dtype.kind not in "iu":
        raise _error(name, f"{key} has dtype {y.dtype}, labels are not integers", "integer labels")
    if y.ndim != 1:
        raise _error(name, f"{key} has shape {y.shape}", "integer labels of shape [N]")
    if len(y) != n:
        raise _error(
            name,
            f"x_{split} has {n} examples but {key} has {len(y)} labels",
            f"one label per example of the {split} split",
        )
    return y


def _num_classes(name: str, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> int:
    int32_max = int(np.iinfo(np.int32).max)
    if "num_classes" in arrays:
        c = arrays["num_classes"]
        if c.ndim != 0 or not np.issubdtype(c.dtype, np.integer) or int(c) < 1:
            raise _error(
                name, f"num_classes={c.tolist()!r} (dtype {c.dtype})", "a scalar integer >= 1"
            )
        num_classes = int(c)
        if num_classes > int32_max:
            raise _error(name, f"num_classes={num_classes}", f"at most {int32_max}")
    else:
        num_classes = 1 + max(int(y.max()) for y in labels.values() if len(y))
        if num_classes > int32_max:
            raise _error(name, f"largest label {num_classes - 1}", f"labels below {int32_max}")
    for split, y in labels.items():
        if not len(y):
            continue
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            where = "from the file" if "num_classes" in arrays else "inferred as max label + 1"
            raise _error(
                name,
                f"y_{split} has label {bad} outside 0..{num_classes - 1} "
                f"(num_classes={num_classes}, {where})",
                f"labels in 0..C-1 with C={num_classes}",
            )
    return num_classes


def load_npz(path: str) -> Dataset:
    """Loads a dataset from a numpy ``.npz`` file (``dataset.name = "npz:PATH"``).

    Args:
      path: the file; a leading ``~`` is expanded. Read with
        ``np.load(path, allow_pickle=False)``.

    Returns:
      A ``Dataset`` named ``npz:PATH`` (``path`` as given): ``x`` in the file's
      dtype as ``[N, H, W, C]`` (``[N, H, W]`` gains a channel axis) or ``[N, D]``;
      ``int32`` labels; ``num_classes`` from the file or ``max label + 1`` over all
      splits; an empty validation split (of ``x_train``'s dtype) when the file has
      none.

    Raises:
      NpzDatasetError: one line starting ``dataset.name='npz:PATH'`` saying what is
        wrong with the file and what is expected.
    """
    name = f"npz:{path}"
    return _dataset(name, _read(name, os.path.expanduser(path)))


def from_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    x_val=None,
    y_val=None,
    *,
    num_classes: int | None = None,
    name: str = "arrays",
) -> Dataset:
    """A dataset from Python arrays (``run_experiment(config, workdir, dataset=...)``).

    The same rules and checks as an ``npz:PATH`` file (see :func:`load_npz`);
    ``config.dataset`` options (normalisation, pool size, validation split, ...)
    are applied to it by the run like to any other dataset.

    Raises:
      NpzDatasetError: one line naming the problem.
    """
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if x_val is not None or y_val is not None:
        arrays.update(x_val=x_val, y_val=y_val)
    if num_classes is not None:
        arrays["num_classes"] = num_classes
    arrays = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    return _dataset(name, arrays)


def _dataset(name: str, arrays: dict[str, np.ndarray]) -> Dataset:
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "none"
        raise _error(
            name,
            f"missing keys {', '.join(missing)} (keys found: {found})",
            "keys " + ", ".join(_REQUIRED) + ", optionally x_val and y_val and num_classes",
        )
    has_val = ("x_val" in arrays, "y_val" in arrays)
    if any(has_val) and not all(has_val):
        only, other = ("x_val", "y_val") if has_val[0] else ("y_val", "x_val")
        raise _error(name, f"{only} is present without {other}", "both x_val and y_val or neither")
    splits = ("train", "test", "val") if all(has_val) else ("train", "test")

    xs, ys = {}, {}
    for split in splits:
        xs[split] = _features(name, split, arrays[f"x_{split}"])
        ys[split] = _labels(name, split, arrays[f"y_{split}"], len(xs[split]))
    shape = xs["train"].shape[1:]
    for split in splits[1:]:
        if xs[split].shape[1:] != shape:
            raise _error(
                name,
                f"x_train examples have shape {shape} but x_{split} examples have shape "
                f"{xs[split].shape[1:]}",
                "the same per-example shape in every split",
            )
    if not len(xs["train"]):
        raise _error(name, "the train split (x_train, y_train) is empty", "at least one example")
    for split in splits:
        x = xs[split]
        if np.issubdtype(x.dtype, np.floating):
            finite = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise _error(
                    name,
                    f"x_{split} has NaN or inf values in {len(bad)} of {len(x)} examples "
                    f"(first: example {bad[0]})",
                    "finite features",
                )
    num_classes = _num_classes(name, arrays, ys)

    y32 = {split: y.astype(np.int32) for split, y in ys.items()}
    ds = without_validation(name, xs["train"], y32["train"], xs["test"], y32["test"], num_classes)
    if "val" in xs:
        return ds._replace(x_val=xs["val"], y_val=y32["val"])
    return ds._replace(x_val=np.zeros((0, *shape), xs["train"].dtype))
