"""Tests for ``dataset.name = "npz:PATH"`` (jaxal.data.npz and its use by load).

Files are written with ``np.savez`` into ``tmp_path``; expected arrays and
statistics are computed here with numpy from the arrays that were saved.
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxal.data as D


def _save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def _images(n, shape=(5, 4, 3), dtype=np.uint8, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *shape)).astype(dtype)
    return x, (np.arange(n) % classes).astype(np.int64)


def _base(**over):
    """A valid file's arrays: uint8 [N, 5, 4, 3] images, labels 0..2."""
    x_tr, y_tr = _images(12, seed=0)
    x_te, y_te = _images(6, seed=1)
    arrays = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    arrays.update(over)
    return {k: v for k, v in arrays.items() if v is not None}


def _cfg(path, **kw):
    cfg = D.default_config()
    cfg.name = f"npz:{path}"
    cfg.update(kw)
    return cfg


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_uint8_images_keep_dtype_with_normalize_none(tmp_path):
    a = _base()
    path = _save(tmp_path, **a)
    ds = D.load(_cfg(path, normalize="none"))
    assert ds.name == f"npz:{path}"
    assert ds.num_classes == 3
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, a["x_train"])
    np.testing.assert_array_equal(ds.x_test, a["x_test"])
    for y, ref in ((ds.y_train, a["y_train"]), (ds.y_test, a["y_test"])):
        assert y.dtype == np.int32
        np.testing.assert_array_equal(y, ref)
    assert ds.x_val.shape == (0, 5, 4, 3) and ds.x_val.dtype == np.uint8
    assert ds.y_val.shape == (0,) and ds.y_val.dtype == np.int32


def test_uint8_images_standardized_per_channel(tmp_path):
    a = _base()
    ds = D.load(_cfg(_save(tmp_path, **a), normalize="standardize"))
    pool = a["x_train"].astype(np.float64)
    mean = np.array([pool[..., c].mean() for c in range(3)])
    std = np.array([pool[..., c].std() for c in range(3)])
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(ds.x_train[..., c].mean(), 0.0, atol=1e-5)
        np.testing.assert_allclose(ds.x_train[..., c].std(), 1.0, atol=1e-5)
        ref = (a["x_test"][..., c].astype(np.float64) - mean[c]) / std[c]
        np.testing.assert_allclose(ds.x_test[..., c], ref, atol=1e-5)


def test_grey_images_get_a_channel_axis(tmp_path):
    x, y = _images(8, shape=(6, 7))
    path = _save(tmp_path, x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    ds = D.load_npz(path)
    assert ds.x_train.shape == (8, 6, 7, 1) and ds.x_test.shape == (3, 6, 7, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], x)
    assert ds.x_val.shape == (0, 6, 7, 1)


def test_feature_pool_stays_2d_and_standardizes_per_feature(tmp_path):
    rng = np.random.default_rng(3)
    scale, shift = np.array([1.0, 4.0, 0.25, 2.0]), np.array([3.0, -2.0, 0.0, 10.0])
    x_tr = (rng.normal(size=(40, 4)) * scale + shift).astype(np.float16)
    x_tr[:, 3] = 10.0  # A constant feature is only centred.
    x_te = (rng.normal(size=(9, 4)) * scale + shift).astype(np.float16)
    y_tr, y_te = np.arange(40) % 4, np.arange(9) % 4
    path = _save(tmp_path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)

    raw = D.load(_cfg(path, normalize="none"))
    assert raw.x_train.shape == (40, 4) and raw.x_train.dtype == np.float16
    assert raw.x_val.shape == (0, 4)
    np.testing.assert_array_equal(raw.x_test, x_te)

    ds = D.load(_cfg(path, normalize="standardize"))
    assert ds.x_train.shape == (40, 4) and ds.x_train.dtype == np.float32
    pool = x_tr.astype(np.float64)
    for d in range(3):
        m, s = pool[:, d].mean(), pool[:, d].std()
        np.testing.assert_allclose(ds.x_train[:, d], (pool[:, d] - m) / s, atol=1e-5)
        np.testing.assert_allclose(
            ds.x_test[:, d], (x_te[:, d].astype(np.float64) - m) / s, atol=1e-5
        )
    np.testing.assert_allclose(ds.x_train[:, 3], 0.0)
    np.testing.assert_allclose(ds.x_test[:, 3], x_te[:, 3].astype(np.float64) - 10.0, atol=1e-5)


def test_optional_val_split(tmp_path):
    x_va, y_va = _images(4, seed=2)
    a = _base(x_val=x_va, y_val=y_va.astype(np.uint8))
    path = _save(tmp_path, **a)
    raw = D.load(_cfg(path, normalize="none"))
    np.testing.assert_array_equal(raw.x_val, x_va)
    assert raw.x_val.dtype == np.uint8 and raw.y_val.dtype == np.int32
    np.testing.assert_array_equal(raw.y_val, y_va)

    ds = D.load(_cfg(path))  # Standardized with the pool's statistics, val included.
    pool = a["x_train"].astype(np.float64)
    mean, std = pool.mean(axis=(0, 1, 2)), pool.std(axis=(0, 1, 2))
    np.testing.assert_allclose(ds.x_val, (x_va - mean) / std, atol=1e-5)
    assert ds.x_val.dtype == np.float32


def test_num_classes_from_file_and_inferred(tmp_path):
    a = _base(num_classes=np.int64(7))
    assert D.load_npz(_save(tmp_path, "a.npz", **a)).num_classes == 7
    # Inferred over all splits: the largest label (5) is only in the val split.
    x_va, _ = _images(2, seed=4)
    b = _base(x_val=x_va, y_val=np.array([5, 0], np.int16))
    assert D.load_npz(_save(tmp_path, "b.npz", **b)).num_classes == 6
    c = _base(y_test=np.array([0, 1, 2, 0, 1, 4], np.uint32))
    ds = D.load_npz(_save(tmp_path, "c.npz", **c))
    assert ds.num_classes == 5 and ds.y_test.dtype == np.int32


def test_load_with_options_and_tilde(tmp_path, monkeypatch):
    a = _base()
    _save(tmp_path, **a)
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = _cfg("~/d.npz", normalize="none", pool_size=6, val_size=3)
    ds = D.load(cfg)
    assert ds.name == "npz:~/d.npz"
    assert len(ds.y_train) == 6 and len(ds.y_val) == 3 and len(ds.y_test) == 6
    assert ds.x_train.dtype == np.uint8 and ds.x_val.dtype == np.uint8
    rows = {(xi.tobytes(), int(yi)) for xi, yi in zip(a["x_train"], a["y_train"], strict=True)}
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        assert {(xi.tobytes(), int(yi)) for xi, yi in zip(x, y, strict=True)} <= rows
    np.testing.assert_array_equal(np.bincount(ds.y_val, minlength=3), [1, 1, 1])


def test_validate_npz_names():
    D.validate(_cfg("/no/such/file.npz"))  # Existence is checked by load, not validate.
    for name in ("npz:", "npz:  "):
        cfg = D.default_config()
        cfg.name = name
        with pytest.raises(ValueError) as e:
            D.validate(cfg)
        msg = str(e.value)
        assert f"dataset.name={name!r}" in msg and "npz:PATH" in msg
        assert not isinstance(e.value, D.NpzDatasetError)


# ---------------------------------------------------------------------------
# Bad files: one NpzDatasetError line each
# ---------------------------------------------------------------------------


def _write_text(tmp_path):
    path = tmp_path / "d.npz"
    path.write_text("x_train,y_train\n1,2\n")
    return str(path)


def _write_npy(tmp_path):
    path = tmp_path / "d.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return str(path)


def _write_pickled(tmp_path):
    return _save(tmp_path, **_base(y_test=np.array([0, 1, None], dtype=object)))


def _nan_test():
    x = _base()["x_test"].astype(np.float32)
    x[4, 1, 1, 0] = np.nan
    return _base(x_test=x)


def _inf_val():
    x = _images(3, seed=5)[0].astype(np.float64)
    x[1, 0, 0, 2] = -np.inf
    return _base(x_val=x, y_val=np.array([0, 1, 2]))


CASES = {
    "missing_file": (lambda p: str(p / "nope.npz"), ["not found", "nope.npz"]),
    "text_file": (_write_text, ["not a valid npz", "not a zip archive"]),
    "npy_file": (_write_npy, ["not a valid npz", ".npy"]),
    "pickled_member": (_write_pickled, ["not a valid npz", "pickle"]),
    "missing_keys": (
        dict(x_train=np.zeros((3, 2)), y_train=np.zeros(3, int), x=np.zeros(1)),
        ["missing keys x_test, y_test", "keys found: x, x_train, y_train"],
    ),
    "x_val_only": (_base(x_val=np.zeros((2, 5, 4, 3), np.uint8)), ["x_val", "without y_val"]),
    "y_val_only": (_base(y_val=np.zeros(2, int)), ["y_val", "without x_val"]),
    "length_mismatch": (_base(y_test=np.zeros(5, int)), ["x_test has 6", "y_test has 5"]),
    "val_length_mismatch": (
        _base(x_val=np.zeros((2, 5, 4, 3), np.uint8), y_val=np.zeros(3, int)),
        ["x_val has 2", "y_val has 3"],
    ),
    "shape_mismatch": (
        _base(x_test=np.zeros((6, 5, 4, 1), np.uint8)),
        ["(5, 4, 3)", "x_test", "(5, 4, 1)", "same per-example shape"],
    ),
    "val_shape_mismatch": (
        _base(x_val=np.zeros((2, 20)), y_val=np.zeros(2, int)),
        ["x_val", "(20,)", "same per-example shape"],
    ),
    "empty_train": (
        _base(x_train=np.zeros((0, 5, 4, 3), np.uint8), y_train=np.zeros(0, int)),
        ["train split", "empty"],
    ),
    "float_labels": (_base(y_train=np.arange(12) % 3 * 1.0), ["y_train", "float64", "integer"]),
    "bool_labels": (_base(y_test=np.ones(6, bool)), ["y_test", "not integers"]),
    "negative_label": (
        _base(y_train=np.array([0, 1, 2] * 3 + [0, -1, 2])),
        ["y_train", "label -1", "0..2"],
    ),
    "label_too_large_for_file_classes": (
        _base(y_test=np.array([0, 1, 2, 3, 0, 1]), num_classes=3),
        ["y_test", "label 3", "0..2", "num_classes=3"],
    ),
    "val_label_out_of_range": (
        _base(x_val=np.zeros((2, 5, 4, 3), np.uint8), y_val=np.array([0, 9]), num_classes=4),
        ["y_val", "label 9", "C=4"],
    ),
    "nan_in_test": (_nan_test(), ["x_test", "NaN or inf", "1 of 6 examples", "example 4"]),
    "inf_in_val": (_inf_val(), ["x_val", "NaN or inf", "1 of 3 examples", "example 1"]),
    "x_ndim_1": (_base(x_train=np.zeros(12)), ["x_train", "ndim 1", "[N, D]"]),
    "x_ndim_5": (_base(x_test=np.zeros((6, 5, 4, 3, 1))), ["x_test", "ndim 5", "[N, H, W, C]"]),
    "y_2d": (_base(y_train=(np.arange(12) % 3)[:, None]), ["y_train", "(12, 1)", "[N]"]),
    "string_x": (_base(x_test=np.array([["a"] * 60] * 6)), ["x_test", "dtype"]),
    "bad_num_classes": (_base(num_classes=np.array([3, 4])), ["num_classes", "scalar integer"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_one_line_error(tmp_path, case):
    make, needles = CASES[case]
    path = make(tmp_path) if callable(make) else _save(tmp_path, **make)
    with pytest.raises(D.NpzDatasetError) as e:
        D.load_npz(path)
    msg = str(e.value)
    assert msg.startswith(f"dataset.name='npz:{path}'")
    assert "\n" not in msg and "expected" in msg
    for n in needles:
        assert n in msg, (n, msg)
    assert isinstance(e.value, ValueError)


def test_load_raises_npz_error_for_missing_file(tmp_path):
    path = str(tmp_path / "missing.npz")
    with pytest.raises(D.NpzDatasetError, match="not found") as e:
        D.load(_cfg(path))
    assert str(e.value).startswith(f"dataset.name='npz:{path}'")


def test_corrupt_zip_is_one_line_error(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)  # A zip header, then garbage.
    with pytest.raises(D.NpzDatasetError) as e:
        D.load_npz(str(path))
    msg = str(e.value)
    assert "not a valid npz" in msg and "\n" not in msg
