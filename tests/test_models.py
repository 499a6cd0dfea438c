"""Tests for jaxal.models: shapes, numpy references written from the definitions,
the batch-norm/dropout flag contract, MC head mode, jit and vmap."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import models
from jaxal.models.vgg import CFGS

C = 5  # classes in every test
TINY = {  # fast versions of every model
    "mlp": dict(hidden=(16, 12), dropout=0.5),
    "cnn": dict(dropout=0.5, conv_dropout=0.25),
    "resnet18": dict(width=4, dropout=0.3),
    "resnet34": dict(width=4, dropout=0.3),
    "vgg11": dict(width=8, dropout=0.3),
    "vgg16": dict(width=8, dropout=0.3),
    # the architecture study's additions (tests/test_architectures.py checks their layers)
    "resnet50": dict(width=4, dropout=0.3),
    "vgg19": dict(width=8, dropout=0.3),
    "vgg11_fc": dict(width=8, dropout=0.3),
    "vgg16_fc": dict(width=8, dropout=0.3),
    "vgg19_fc": dict(width=8, dropout=0.3),
}
BN_MODELS = ("resnet18", "resnet34", "vgg11", "vgg16", "resnet50", "vgg19")
FC_MODELS = ("vgg11_fc", "vgg16_fc", "vgg19_fc")  # batch norm too, App. B.2's FC head
# resnet34/vgg16 share all code with resnet18/vgg11 but for the layer config:
# they get the shape and head-mode tests; the flag tests skip their compiles.
CORE = ("mlp", "cnn", "resnet18", "vgg11")
DIGITS, CIFAR = (3, 8, 8, 1), (3, 32, 32, 3)


def _x(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _random_like(tree, seed):
    """Random numpy values with the structure of ``tree`` (kernels ~ N(0, 1/fan_in),
    BN scales near 1, running variances in [0.5, 1.5]): eval-mode batch norm is
    not the identity, and no threefry init has to be compiled (slow on CPU)."""
    rng = np.random.default_rng(seed)

    def draw(path, a):
        name, shape = path[-1].key, a.shape
        if name == "kernel":
            return rng.normal(0, 1 / np.sqrt(np.prod(shape[:-1])), shape).astype(np.float32)
        if name == "var":
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        base = 1.0 if name == "scale" else 0.0
        return (base + 0.1 * rng.normal(size=shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, tree)


class _Jitted(NamedTuple):
    model: models.Model
    variables: dict
    x: jax.Array
    apply: Callable  # jit(model.apply), ``train`` static
    features: Callable
    head: Callable


@functools.cache
def _setup(name, shape=DIGITS):
    """A tiny model, random variables of the right structure, a batch and the
    jitted functions (cached: each model compiles once per mode)."""
    m = models.get_model(name, C, **TINY[name])
    x = _x(shape)
    v = _random_like(jax.eval_shape(m.init, jax.random.key(0), x), seed=len(name))
    apply = jax.jit(m.apply, static_argnames="train")
    return _Jitted(m, v, x, apply, jax.jit(m.features), jax.jit(m.head))


# ---------------------------------------------------------------- numpy reference


def _np(a):
    return np.asarray(a, np.float64)


def np_conv(x, p, stride=1, padding="SAME"):
    """Cross-correlation of ``x [B, H, W, Ci]`` with ``p['kernel'] [kh, kw, Ci, Co]``."""
    w = _np(p["kernel"])
    kh, kw, _, co = w.shape
    b, h, wd, _ = x.shape
    if padding == "SAME":  # out = ceil(in / stride); extra padding goes high
        oh, ow = -(-h // stride), -(-wd // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((b, oh, ow, co))
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride
            ]
            out += patch @ w[i, j]
    return out + _np(p["bias"]) if "bias" in p else out


def np_max_pool(x, padding):
    b, h, w, c = x.shape
    if padding == "SAME":
        oh, ow = -(-h // 2), -(-w // 2)
        x = np.pad(x, ((0, 0), (0, 2 * oh - h), (0, 2 * ow - w), (0, 0)), constant_values=-np.inf)
    else:
        oh, ow = h // 2, w // 2
    x = x[:, : 2 * oh, : 2 * ow].reshape(b, oh, 2, ow, 2, c)
    return x.max(axis=(2, 4))


def _at(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def np_bn_fn(v, train, new):
    """``bn(x, *path)``: batch norm with the variables at ``backbone/*path``; in
    train mode the updated running stats are recorded in ``new[path]``."""

    def bn(x, *path):
        p, s = _at(v["params"]["backbone"], path), _at(v["batch_stats"]["backbone"], path)
        if train:
            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
            new[path] = (0.9 * _np(s["mean"]) + 0.1 * mean, 0.9 * _np(s["var"]) + 0.1 * var)
        else:
            mean, var = _np(s["mean"]), _np(s["var"])
        return (x - mean) / np.sqrt(var + 1e-5) * _np(p["scale"]) + _np(p["bias"])

    return bn


def relu(a):
    return np.maximum(a, 0)


def np_dense(h, p):
    return h @ _np(p["kernel"]) + _np(p["bias"])


def np_mlp(v, x):
    p = v["params"]
    h = _np(x).reshape(len(x), -1)
    for i in range(len(p["backbone"])):
        h = relu(np_dense(h, p["backbone"][f"Dense_{i}"]))
    return np_dense(h, p["classifier"]["Dense_0"]), h, {}


def np_cnn(v, x, padding="VALID"):
    p = v["params"]
    h = relu(np_conv(_np(x), p["backbone"]["Conv_0"], padding=padding))
    h = relu(np_conv(h, p["backbone"]["Conv_1"], padding=padding))
    h = np_max_pool(h, "VALID").reshape(len(x), -1)
    emb = relu(np_dense(h, p["classifier"]["Dense_0"]))
    return np_dense(emb, p["classifier"]["Dense_1"]), emb, {}


def np_resnet(v, x, stages, train):
    p, new = v["params"]["backbone"], {}
    bn = np_bn_fn(v, train, new)
    h = relu(bn(np_conv(_np(x), p["Conv_0"]), "BatchNorm_0"))
    blk = 0
    for i, n in enumerate(stages):
        for j in range(n):
            b, stride = f"BasicBlock_{blk}", 2 if i and not j else 1
            y = relu(bn(np_conv(h, p[b]["Conv_0"], stride), b, "BatchNorm_0"))
            y = bn(np_conv(y, p[b]["Conv_1"]), b, "BatchNorm_1")
            if "Conv_2" in p[b]:  # projection shortcut
                h = bn(np_conv(h, p[b]["Conv_2"], stride), b, "BatchNorm_2")
            h, blk = relu(h + y), blk + 1
    emb = h.mean(axis=(1, 2))
    return np_dense(emb, v["params"]["classifier"]["Dense_0"]), emb, new


def np_vgg(v, x, cfg, train):
    p, new = v["params"]["backbone"], {}
    bn = np_bn_fn(v, train, new)
    h, i = _np(x), 0
    for c in cfg:
        if c == "M":
            h = np_max_pool(h, "SAME")
        else:
            h = relu(bn(np_conv(h, p[f"Conv_{i}"]), f"BatchNorm_{i}"))
            i += 1
    emb = h.mean(axis=(1, 2))
    return np_dense(emb, v["params"]["classifier"]["Dense_0"]), emb, new


def np_forward(name, v, x, train=False):
    if name == "mlp":
        return np_mlp(v, x)
    if name == "cnn":
        return np_cnn(v, x)
    if name.startswith("resnet"):
        return np_resnet(v, x, {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}[name], train)
    return np_vgg(v, x, CFGS[name], train)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("shape", [DIGITS, CIFAR], ids=["digits", "cifar"])
@pytest.mark.parametrize("name", models.NAMES)
def test_shapes_and_embedding_dim(name, shape):
    s = _setup(name, shape)  # traced only (the numpy tests run the models)
    logits, emb, stats = jax.eval_shape(
        functools.partial(s.model.apply, train=False), s.variables, s.x
    )
    assert logits.shape == (shape[0], C) and logits.dtype == jnp.float32
    assert emb.shape == (shape[0], s.model.embedding_dim)
    assert ("batch_stats" in s.variables) == (name in BN_MODELS + FC_MODELS)
    assert stats == {}
    v = jax.eval_shape(s.model.init, jax.random.key(0), s.x)
    assert jax.tree.structure(v) == jax.tree.structure(s.variables)


def test_paper_size_embedding_dims():
    dims = {"mlp": 256, "cnn": 128, "resnet18": 512, "resnet34": 512, "vgg11": 512, "vgg16": 512}
    for name, d in dims.items():
        m = models.get_model(name, 10)
        assert m.embedding_dim == d
        x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
        v = jax.eval_shape(m.init, jax.random.key(0), x)  # traced only: cheap
        logits, emb, _ = jax.eval_shape(functools.partial(m.apply, train=False), v, x)
        assert logits.shape == (2, 10) and emb.shape == (2, d)


@pytest.mark.parametrize("shape", [DIGITS, CIFAR], ids=["digits", "cifar"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet18", "vgg11"])
def test_eval_matches_numpy(name, shape):
    s = _setup(name, shape)
    logits, emb, _ = s.apply(s.variables, s.x, train=False)
    ref_logits, ref_emb, _ = np_forward(name, s.variables, s.x)
    np.testing.assert_allclose(emb, ref_emb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)


def test_cnn_same_padding_matches_numpy():
    m = models.get_model("cnn", C, padding="SAME")
    x = _x((2, 5, 5, 1))  # too small for 'VALID'
    v = m.init(jax.random.key(0), x)
    logits, emb, _ = m.apply(v, x, train=False)
    ref_logits, ref_emb, _ = np_cnn(v, x, padding="SAME")
    assert m.features(v, x).shape == (2, 2, 2, 32)
    np.testing.assert_allclose(emb, ref_emb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_train_mode_batch_norm_matches_numpy(name):
    s = _setup(name)
    logits, emb, stats = s.apply(s.variables, s.x, train=True)  # no key: dropout off
    ref_logits, ref_emb, ref_stats = np_forward(name, s.variables, s.x, train=True)
    # Batch norm over 3 images normalises the last 1x1 maps by the spread of 3
    # numbers: float32 rounding is amplified, hence the looser tolerance.
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-3, atol=1e-3)
    assert 2 * len(ref_stats) == len(jax.tree.leaves(stats))  # every BN layer checked
    for path, (rmean, rvar) in ref_stats.items():
        got = _at(stats["backbone"], path)
        np.testing.assert_allclose(got["mean"], rmean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["var"], rvar, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_train_true_returns_updated_batch_stats(name):
    s = _setup(name)
    _, _, stats = s.apply(s.variables, s.x, train=True)
    old = s.variables["batch_stats"]
    assert jax.tree.structure(stats) == jax.tree.structure(old)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a != b)), stats, old)))


@pytest.mark.parametrize("name", CORE)
def test_dropout_active_iff_key(name):
    s = _setup(name)
    v, x = s.variables, s.x
    k1, k2 = jax.random.key(10), jax.random.key(11)
    for train in (False, True):
        a, b = s.apply(v, x, train=train), s.apply(v, x, train=train)
        np.testing.assert_array_equal(a[0], b[0])
        s1, s1_again, s2 = (s.apply(v, x, train=train, dropout_key=k)[0] for k in (k1, k1, k2))
        np.testing.assert_array_equal(s1, s1_again)
        assert not np.allclose(s1, s2) and not np.allclose(s1, a[0])


def test_dropout_is_inverted_dropout_on_the_embedding():
    """Head = Dropout -> Dense: with an identity classifier, each logit is either
    0 or embedding / keep_prob, about half of them kept at rate 0.5."""
    m = models.get_model("mlp", 64, hidden=(64,), dropout=0.5)
    x = _x((32, 8, 8, 1))
    v = m.init(jax.random.key(0), x)
    v["params"]["classifier"]["Dense_0"] = {"kernel": jnp.eye(64), "bias": jnp.zeros(64)}
    logits, emb, _ = m.apply(v, x, train=False, dropout_key=jax.random.key(3))
    emb, logits = np.asarray(emb), np.asarray(logits)
    kept = np.isclose(logits, 2 * emb, rtol=1e-6) & (emb != 0)
    assert np.all(kept | (logits == 0))
    assert 0.4 < kept.sum() / (emb != 0).sum() < 0.6
    np.testing.assert_array_equal(emb, m.apply(v, x, train=False)[1])  # before dropout


def test_cnn_dropout_placement():
    """``conv_dropout`` acts before Dense(128) (the embedding moves under a key),
    ``dropout`` after it (the embedding does not)."""
    x, key = _x(DIGITS), jax.random.key(8)
    for dropout, conv_dropout, emb_moves in ((0.5, 0.0, False), (0.0, 0.25, True)):
        m = models.get_model("cnn", C, dropout=dropout, conv_dropout=conv_dropout)
        v = _random_like(jax.eval_shape(m.init, key, x), seed=0)
        logits, emb, _ = m.apply(v, x, train=False)
        mc_logits, mc_emb, _ = m.apply(v, x, train=False, dropout_key=key)
        assert not np.allclose(logits, mc_logits)
        assert np.allclose(emb, mc_emb) != emb_moves


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_mc_mode_uses_running_stats_and_returns_no_stats(name):
    s = _setup(name)
    key = jax.random.key(4)
    logits, emb, stats = s.apply(s.variables, s.x, train=False, dropout_key=key)
    assert stats == {}
    _, ref_emb, _ = np_forward(name, s.variables, s.x, train=False)  # running stats
    np.testing.assert_allclose(emb, ref_emb, rtol=1e-4, atol=1e-5)
    train_logits = s.apply(s.variables, s.x, train=True, dropout_key=key)[0]
    assert not np.allclose(logits, train_logits)


@pytest.mark.parametrize("name", models.NAMES)
def test_head_of_features_equals_mc_apply_exactly(name):
    """MC "head" mode: backbone once, then stochastic head passes, bit-exact
    with full MC passes (eager, and jitted as the loop runs it)."""
    s = _setup(name)
    v, x, m = s.variables, s.x, s.model
    h = m.features(v, x)
    for key in (None, jax.random.key(5), jax.random.key(6)):
        got, want = m.head(v, h, dropout_key=key), m.apply(v, x, train=False, dropout_key=key)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    key = jax.random.key(5)
    got = s.head(v, s.features(v, x), dropout_key=key)
    want = s.apply(v, x, train=False, dropout_key=key)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("name", CORE)
def test_jit_equals_eager(name):
    s = _setup(name)
    key = jax.random.key(7)
    # Train-mode BN over 3 images amplifies rounding (see the numpy BN test).
    tol = dict(rtol=1e-3, atol=1e-3) if name in BN_MODELS else dict(rtol=1e-6, atol=1e-6)
    for train in (False, True):
        eager = s.model.apply(s.variables, s.x, train=train, dropout_key=key)
        jitted = s.apply(s.variables, s.x, train=train, dropout_key=key)
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
            np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("name", CORE)
def test_vmap_over_seeds_equals_loop(name):
    s, num_seeds = _setup(name), 3
    m, x = s.model, s.x
    dkeys = jax.random.split(jax.random.key(1), num_seeds)
    if name in BN_MODELS:  # compiling their threefry inits twice would cost 20-30 s
        stacked = jax.tree.map(
            lambda *a: jnp.stack(a), *(_random_like(s.variables, i) for i in range(num_seeds))
        )
    else:
        keys = jax.random.split(jax.random.key(0), num_seeds)
        stacked = jax.jit(jax.vmap(m.init, in_axes=(0, None)))(keys, x)  # leading [S] axis
        for i in range(num_seeds):
            v, v_i = jax.jit(m.init)(keys[i], x), jax.tree.map(lambda a, i=i: a[i], stacked)
            for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(v_i), strict=True):
                np.testing.assert_array_equal(a, b)  # init is bit-exact under vmap

    def run(v, k):
        return m.apply(v, x, train=True, dropout_key=k)

    out = jax.jit(jax.vmap(run))(stacked, dkeys)
    tol = dict(rtol=1e-3, atol=1e-3) if name in BN_MODELS else dict(rtol=1e-5, atol=1e-6)
    for i in range(num_seeds):
        ref = s.apply(
            jax.tree.map(lambda a, i=i: a[i], stacked), x, train=True, dropout_key=dkeys[i]
        )
        got = jax.tree.map(lambda a, i=i: a[i], out)
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got), strict=True):
            np.testing.assert_allclose(b, a, **tol)


def test_params_of_lists_defaults():
    assert models.params_of("mlp") == {"hidden": (256,), "dropout": 0.5}
    assert models.params_of("cnn") == {
        "dropout": 0.5,
        "conv_dropout": 0.25,
        "padding": "VALID",
        "conv": "xla",
    }
    for name in BN_MODELS:
        assert models.params_of(name) == {"width": 64, "dropout": 0.0, "conv": "xla"}
    for name in FC_MODELS:
        assert models.params_of(name) == {"width": 64, "dropout": 0.5, "conv": "xla"}
    assert models.NAMES[:6] == ("mlp", "cnn", "resnet18", "resnet34", "vgg11", "vgg16")
    assert models.NAMES[6:] == ("resnet50", "vgg19", "vgg11_fc", "vgg16_fc", "vgg19_fc")


@pytest.mark.parametrize(
    "name, params, where",
    [
        ("lenet", {}, "model.name"),
        ("mlp", {"width": 8}, "model.width"),
        ("resnet18", {"hidden": (3,)}, "model.hidden"),
        ("mlp", {"dropout": 1.0}, "model.dropout"),
        ("cnn", {"conv_dropout": -0.1}, "model.conv_dropout"),
        ("vgg11", {"width": 0}, "model.width"),
        ("resnet34", {"width": 8.0}, "model.width"),
        ("mlp", {"hidden": ()}, "model.hidden"),
        ("mlp", {"hidden": (8, 0)}, "model.hidden"),
        ("cnn", {"padding": "same"}, "model.padding"),
    ],
)
def test_validate_names_the_key(name, params, where):
    with pytest.raises(ValueError, match=where):
        models.validate(name, params)
    with pytest.raises(ValueError, match=where):
        models.get_model(name, C, **params)


def test_validate_accepts_good_params_and_lists_allowed():
    models.validate("cnn", {"dropout": 0.0, "conv_dropout": 0.0, "padding": "SAME"})
    models.validate("vgg16", {"width": 16, "dropout": 0.5})
    with pytest.raises(ValueError, match="allowed: mlp, cnn, resnet18"):
        models.validate("resnet101", {})
    with pytest.raises(ValueError, match="allowed: hidden, dropout"):
        models.validate("mlp", {"depth": 3})
