"""On-device rotation, contrast and hue augmentation (the Sherbrooke report's
§3.4 set): fixed-parameter transforms against hand formulas, keys, config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import config as config_lib
from jaxal import data as data_lib
from jaxal import models as models_lib
from jaxal import train as train_lib
from jaxal.experiment import to_device
from jaxal.settings import TrainSettings


def _images(b=2, h=5, w=5, c=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(b, h, w, c)), jnp.float32)


@pytest.mark.parametrize("size", [4, 5])
def test_rotation_by_right_angles_is_rot90(size):
    x = _images(h=size, w=size)
    xn = np.asarray(x)
    for deg, k in ((90.0, 1), (180.0, 2), (-90.0, 3), (270.0, 3), (0.0, 0)):
        got = np.asarray(train_lib.rotate(x, jnp.full((2,), deg)))
        want = np.rot90(xn, k=k, axes=(1, 2))  # counter-clockwise, as displayed
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{deg} degrees")
    assert np.array_equal(np.asarray(train_lib.rotate(x, jnp.zeros(2))), xn)


def test_rotation_per_image_angle_zero_fill_shape_dtype():
    x = jnp.ones((2, 6, 6, 1), jnp.float32)
    out = train_lib.rotate(x, jnp.array([0.0, 45.0]))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.array_equal(np.asarray(out[0]), np.ones((6, 6, 1)))  # image 0 untouched
    corner = np.asarray(out[1])
    assert corner[0, 0, 0] == 0.0 and corner[3, 3, 0] == pytest.approx(1.0)  # corners leave
    # a one-pixel asymmetric mark: "up" (row 0) goes to "left" (column 0) at +90
    m = np.zeros((1, 3, 3, 1), np.float32)
    m[0, 0, 1, 0] = 1.0
    r = np.asarray(train_lib.rotate(jnp.asarray(m), jnp.array([90.0])))[0, :, :, 0]
    assert r[1, 0] == pytest.approx(1.0) and r.sum() == pytest.approx(1.0)


def test_contrast_matches_the_formula():
    x = _images()
    xn = np.asarray(x, np.float64)
    f = np.array([0.5, 1.3])
    got = np.asarray(train_lib.adjust_contrast(x, jnp.asarray(f, jnp.float32)))
    luma = (xn * np.array([0.2989, 0.587, 0.114])).sum(-1).mean(axis=(1, 2))
    want = f[:, None, None, None] * xn + (1 - f[:, None, None, None]) * luma[:, None, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    g = _images(c=1)  # one channel: the mean value
    got1 = np.asarray(train_lib.adjust_contrast(g, jnp.array([0.0, 2.0])))
    gn = np.asarray(g, np.float64)
    np.testing.assert_allclose(got1[0], np.full_like(gn[0], gn[0].mean()), atol=1e-6)
    np.testing.assert_allclose(got1[1], 2 * gn[1] - gn[1].mean(), atol=1e-5)
    assert np.array_equal(np.asarray(train_lib.adjust_contrast(x, jnp.ones(2))), np.asarray(x))


def test_hue_shift():
    x = _images()
    xn = np.asarray(x)
    assert np.array_equal(np.asarray(train_lib.rotate_hue(x, jnp.zeros(2))), xn)  # exactly
    np.testing.assert_allclose(np.asarray(train_lib.rotate_hue(x, jnp.ones(2))), xn, atol=1e-5)
    half = train_lib.rotate_hue(x, jnp.full((2,), 0.5))
    twice = train_lib.rotate_hue(
        train_lib.rotate_hue(x, jnp.full((2,), 0.25)), jnp.full((2,), 0.25)
    )
    np.testing.assert_allclose(np.asarray(half), np.asarray(twice), atol=1e-5)
    assert not np.allclose(np.asarray(half), xn, atol=1e-2)  # it does change colours
    # greys stay grey, luma (Y of YIQ) is kept
    grey = jnp.broadcast_to(jnp.linspace(-1, 1, 25).reshape(1, 5, 5, 1), (2, 5, 5, 3))
    np.testing.assert_allclose(
        np.asarray(train_lib.rotate_hue(grey, jnp.array([0.1, -0.3]))), np.asarray(grey), atol=1e-6
    )
    y = lambda a: np.asarray(a) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    shifted = train_lib.rotate_hue(x, jnp.array([0.1, -0.2]))
    np.testing.assert_allclose(y(shifted), y(x), atol=1e-5)
    g = _images(c=1)
    assert train_lib.rotate_hue(g, jnp.full((2,), 0.3)) is g  # one channel: no-op


def test_augment_defaults_off_shapes_and_determinism():
    x = _images(b=4, h=8, w=8)
    key = jax.random.key(3)
    assert train_lib.augment(key, x, 0, False) is x
    assert train_lib.augment(key, x, 0, False, rotation=0.0, contrast=0.0, hue=0.0) is x
    kw = dict(rotation=15.0, contrast=0.1, hue=0.1)
    a = train_lib.augment(key, x, 2, True, **kw)
    assert a.shape == x.shape and a.dtype == x.dtype and np.isfinite(np.asarray(a)).all()
    assert np.array_equal(np.asarray(a), np.asarray(train_lib.augment(key, x, 2, True, **kw)))
    b = train_lib.augment(jax.random.key(4), x, 2, True, **kw)
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    flat = jnp.ones((4, 64))
    assert train_lib.augment(key, flat, 2, True, **kw) is flat  # not [B, H, W, C]


def test_turning_contrast_on_keeps_the_flip_draws_and_draws_independently():
    x = jnp.asarray(np.arange(16 * 3 * 3, dtype=np.float32).reshape(16, 3, 3, 1) ** 1.5)
    xn = np.asarray(x)
    seen = set()
    for s in range(5):
        key = jax.random.key(s)
        flip_only = np.asarray(train_lib.augment(key, x, 0, True))
        both = np.asarray(train_lib.augment(key, x, 0, True, contrast=0.5))
        for i in range(16):
            flipped = not np.array_equal(flip_only[i], xn[i])
            src = xn[i][:, ::-1] if flipped else xn[i]
            # contrast alone is affine in the pixels: both[i] = f * src + const
            f = (both[i].ravel()[1] - both[i].ravel()[0]) / (src.ravel()[1] - src.ravel()[0])
            np.testing.assert_allclose(
                both[i] - f * src, both[i].ravel()[0] - f * src.ravel()[0], rtol=1e-4, atol=1e-3
            )
            seen.add((flipped, bool(f < 1)))
    # the contrast factor is not drawn from the flip's key (fold_in(key, 1) is
    # split(key)[1]: it would flip exactly the images whose factor is < 1)
    assert len(seen) == 4, seen


def test_config_keys_parse_validate_and_train():
    c = tiny_config(
        **{"train.augment.rotation": 15.0, "train.augment.contrast": 0.1, "train.augment.hue": 0.1}
    )
    config_lib.validate(c)
    t = TrainSettings.of(c.train)
    assert (t.rotation, t.contrast, t.hue) == (15.0, 0.1, 0.1)
    assert (TrainSettings.of(tiny_config().train).rotation, TrainSettings().hue) == (0.0, 0.0)
    for key, bad in (
        ("train.augment.rotation", -5.0),
        ("train.augment.rotation", 200.0),
        ("train.augment.contrast", 1.5),
        ("train.augment.hue", 0.75),
    ):
        with pytest.raises(config_lib.ConfigError) as e:
            config_lib.validate(tiny_config(**{key: bad}))
        assert f"config.{key}=" in str(e.value) and "\n" not in str(e.value)
    # the augmentation runs inside the jitted fit (digits are [N, 8, 8, 1])
    ds = data_lib.load(c.dataset)
    model = models_lib.get_model("mlp", ds.num_classes, hidden=(16,), dropout=0.0)
    data = to_device(ds)
    variables = model.init(jax.random.key(0), data.x_pool[:1])
    order = jnp.full((32,), -1, jnp.int32).at[:20].set(jnp.arange(20))
    runs = {}
    for name, tc in (("on", c.train), ("off", tiny_config().train)):
        fit = jax.jit(train_lib.make_fit(model, tc))
        new, metrics = fit(variables, order, jnp.int32(20), jax.random.key(1), data)
        runs[name] = np.asarray(jax.tree.leaves(new)[0])
        assert np.isfinite(float(metrics.train_loss))
    assert not np.array_equal(runs["on"], runs["off"])
