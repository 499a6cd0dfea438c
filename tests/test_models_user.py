"""Tests for jaxal.models.user: user-supplied Flax Linen modules behind the Model adapter.

The user modules live in a helper module written into ``tmp_path`` and imported
from ``sys.path``, as a researcher's own package would be. Expected values are
computed independently: with numpy from the parameters, or with ``module.apply``
called directly.
"""

from __future__ import annotations

import inspect
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import models
from jaxal.models import user
from jaxal.models.ensemble import ensemble
from jaxal.predict import make_predict
from jaxal.strategies.base import Needs

C, B, F = 3, 6, 5  # classes, batch, input features

USERMODS = textwrap.dedent(
    '''
    import flax.linen as nn

    CONST = 42


    class MLP(nn.Module):
        num_classes: int
        width: int = 16
        dropout: float = 0.0

        @nn.compact
        def __call__(self, x, train):
            x = x.reshape((x.shape[0], -1))
            h = nn.relu(nn.Dense(self.width)(x))
            z = nn.Dropout(self.dropout, deterministic=not train)(h)
            return nn.Dense(self.num_classes)(z), h


    class BNMLP(nn.Module):
        num_classes: int
        width: int = 8
        dropout: float = 0.5

        @nn.compact
        def __call__(self, x, train):
            x = x.reshape((x.shape[0], -1))
            h = nn.Dense(self.width)(x)
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = nn.relu(h)
            z = nn.Dropout(self.dropout, deterministic=not train)(h)
            return nn.Dense(self.num_classes)(z), h


    class DeclaredBN(BNMLP):
        has_batch_norm = True


    class SeparableBN(nn.Module):
        """Batch norm and dropout on separate flags: MC dropout works with BN."""

        num_classes: int
        width: int = 8
        dropout: float = 0.5
        has_batch_norm = True

        @nn.compact
        def __call__(self, x, train, *, deterministic=True):
            h = nn.Dense(self.width)(x)
            h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
            z = nn.Dropout(self.dropout, deterministic=deterministic)(h)
            return nn.Dense(self.num_classes)(z), h


    class WrongShapes(nn.Module):
        num_classes: int
        what: str = "single"

        @nn.compact
        def __call__(self, x, train):
            logits = nn.Dense(self.num_classes)(x)
            if self.what == "single":
                return logits
            if self.what == "classes":
                return nn.Dense(self.num_classes + 1)(x), x
            if self.what == "emb3d":
                return logits, x[:, :, None]
            return logits, x, x


    class WithCache(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x, train):
            self.variable("cache", "count", lambda: 0)
            return nn.Dense(self.num_classes)(x), x


    class NoTrain(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x):
            return nn.Dense(self.num_classes)(x), x


    def small_mlp(num_classes, width=16, dropout=0.0):
        return MLP(num_classes, width=width, dropout=dropout)


    def bn_mlp(num_classes, width=8, dropout=0.5):
        return BNMLP(num_classes, width=width, dropout=dropout)


    def declared_bn(num_classes, width=8):
        return DeclaredBN(num_classes, width=width)


    def separable_bn(num_classes, width=8, dropout=0.5):
        return SeparableBN(num_classes, width=width, dropout=dropout)


    def needs_depth(num_classes, depth, width=4):
        return MLP(num_classes, width=width * depth)


    def anything(num_classes, width=4, **kwargs):
        return MLP(num_classes, width=width)


    def wrong(num_classes, what="single"):
        return WrongShapes(num_classes, what=what)


    def not_a_module(num_classes):
        return num_classes * 14


    def with_cache(num_classes):
        return WithCache(num_classes)


    def no_train(num_classes):
        return NoTrain(num_classes)


    def no_classes():
        return None


    class Zoo:
        @staticmethod
        def make(num_classes, width=7):
            return MLP(num_classes, width=width)
    '''
)

BROKEN = "import numpy\nraise ImportError('broken on\\npurpose')\n"


@pytest.fixture(autouse=True)
def usermods(tmp_path, monkeypatch):
    (tmp_path / "usermods.py").write_text(USERMODS)
    (tmp_path / "brokenmod.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("usermods", "brokenmod"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    yield
    for mod in ("usermods", "brokenmod"):
        sys.modules.pop(mod, None)


def _x(seed=0, b=B):
    return jax.random.normal(jax.random.key(seed), (b, F), jnp.float32)


def _one_line_error(fn, *match):
    with pytest.raises(ValueError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for m in match:
        assert m in msg, msg
    return msg


def _module(spec, **kw):
    return user.resolve_factory(spec)(C, **kw)


# --- resolving the factory -------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expect",
    [
        ("usermods.small_mlp", "expected 'module:factory'"),
        (":small_mlp", "expected 'module:factory'"),
        ("usermods:", "expected 'module:factory'"),
        ("usermods:a:b", "expected 'module:factory'"),
        ("usermods:Zoo..make", "empty attribute name"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz': ModuleNotFound"),
        ("brokenmod:f", "cannot import module 'brokenmod': ImportError: broken on purpose"),
        ("usermods:nope", "module 'usermods' has no attribute 'nope'"),
        ("usermods:Zoo.nope", "'Zoo' has no attribute 'nope'"),
        ("usermods:CONST", "'CONST' is not callable (it is a int)"),
    ],
)
def test_resolve_errors_are_one_line(spec, expect):
    msg = _one_line_error(lambda: user.resolve_factory(spec), expect)
    assert msg.startswith(f"model.name={spec!r}: "), msg


def test_resolve_dotted_attribute_and_function():
    import usermods

    assert user.resolve_factory("usermods:small_mlp") is usermods.small_mlp
    assert user.resolve_factory("usermods:Zoo.make") is usermods.Zoo.make
    assert user.is_user_spec("usermods:small_mlp") and not user.is_user_spec("mlp")


# --- parameters, validation, construction ----------------------------------------


def test_factory_params():
    p = user.factory_params("usermods:small_mlp")
    assert p == {"width": 16, "dropout": 0.0} and not p.accepts_any
    assert list(p) == ["width", "dropout"]
    req = user.factory_params("usermods:needs_depth")
    assert req == {"depth": inspect.Parameter.empty, "width": 4}
    anyp = user.factory_params("usermods:anything")
    assert anyp == {"width": 4} and anyp.accepts_any
    assert user.factory_params("usermods:Zoo.make") == {"width": 7}
    # a Linen module class as the factory: its fields, without flax's parent/name
    assert user.factory_params("usermods:MLP") == {"width": 16, "dropout": 0.0}
    _one_line_error(
        lambda: user.factory_params("usermods:no_classes"), "num_classes as its first positional"
    )


def test_params_of_and_validate_through_registry_api():
    name = "usermods:small_mlp"
    assert models.params_of(name) == {"width": 16, "dropout": 0.0}
    models.validate(name, {})
    models.validate(name, {"width": 3, "dropout": 0.2})
    msg = _one_line_error(lambda: models.validate(name, {"depth": 2}))
    assert msg == (
        "model.depth: model 'usermods:small_mlp' has no parameter 'depth'; allowed: width, dropout"
    )
    # the built-in value checks are not applied to user factories
    models.validate(name, {"dropout": 1.5, "width": 0})
    models.validate("usermods:anything", {"hidden": "not checked", "padding": 3})
    msg = _one_line_error(lambda: models.validate("usermods:needs_depth", {"width": 2}))
    assert msg.startswith("model.depth: model 'usermods:needs_depth' requires parameter(s) depth")
    models.validate("usermods:needs_depth", {"depth": 2})
    _one_line_error(lambda: models.validate("usermods:nope", {}), "model.name='usermods:nope'")


def test_builtin_behaviour_unchanged():
    assert "dropout" in models.params_of("mlp")
    _one_line_error(lambda: models.validate("mlp", {"dropout": 1.5}), "model.dropout:")
    _one_line_error(lambda: models.get_model("nope", C), "model.name: unknown model 'nope'")
    m = models.get_model("mlp", C, hidden=(4,))
    assert m.supports_head and m.mc_dropout and m.embedding_dim == 4


def test_get_model():
    m = models.get_model("usermods:small_mlp", C, width=12)
    assert m.name == "usermods:small_mlp"
    assert m.embedding_dim == -1 and not m.supports_head and m.mc_dropout
    assert m.members is None and m.ensemble_size == 1
    v = m.init(jax.random.key(0), _x())
    assert v["params"]["Dense_0"]["kernel"].shape == (F, 12)
    _one_line_error(
        lambda: models.get_model("usermods:small_mlp", C, depth=2), "model.depth: model"
    )
    _one_line_error(lambda: models.get_model("usermods:small_mlp", 0), "num_classes")
    m = models.get_model("usermods:needs_depth", C, depth=3)
    assert m.init(jax.random.key(0), _x())["params"]["Dense_0"]["kernel"].shape == (F, 12)


def test_factory_returning_non_module():
    msg = _one_line_error(
        lambda: user.get_user_model("usermods:not_a_module", C),
        "model.name='usermods:not_a_module'",
        "must return a flax.linen.Module",
        "returned 42 (int)",
    )
    assert msg


@pytest.mark.parametrize(
    "what, got",
    [
        ("single", "got float32[6, 3]"),
        ("classes", "got (float32[6, 4], float32[6, 5])"),
        ("emb3d", "got (float32[6, 3], float32[6, 5, 1])"),
        ("triple", "got (float32[6, 3], float32[6, 5], float32[6, 5])"),
    ],
)
def test_wrong_outputs_are_one_line_errors_at_init(what, got):
    m = user.get_user_model("usermods:wrong", C, what=what)  # lazily checked
    _one_line_error(
        lambda: m.init(jax.random.key(0), _x()),
        "model.name='usermods:wrong'",
        "must return (logits [B, C], embedding [B, D]) with B=6, C=3",
        got,
    )


def test_other_collections_and_signature_refused():
    m = user.get_user_model("usermods:with_cache", C)
    _one_line_error(lambda: m.init(jax.random.key(0), _x()), "only params, batch_stats", "cache")
    _one_line_error(
        lambda: user.get_user_model("usermods:no_train", C), "must be __call__(x, train: bool)"
    )


# --- apply: train/eval/MC dropout without batch norm -------------------------------


def _mlp_numpy(params, x):
    p = jax.tree.map(np.asarray, params)
    h = np.maximum(np.asarray(x) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)
    return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], h


def test_apply_shapes_and_eval_matches_numpy():
    m = models.get_model("usermods:small_mlp", C, width=16, dropout=0.5)
    x = _x()
    v = m.init(jax.random.key(1), x[:1])
    assert set(v) == {"params"}
    logits, emb, bs = m.apply(v, x, train=False)
    assert logits.shape == (B, C) and emb.shape == (B, 16) and bs == {}
    want_logits, want_emb = _mlp_numpy(v["params"], x)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(emb, want_emb, rtol=1e-5, atol=1e-5)
    # integer / float64 input is cast to float32
    out = m.apply(v, np.asarray(x, np.float64), train=False)[0]
    np.testing.assert_allclose(out, logits, rtol=1e-6)


def test_train_vs_eval_determinism():
    m = models.get_model("usermods:small_mlp", C, dropout=0.5)
    x = _x()
    v = m.init(jax.random.key(1), x)
    apply = jax.jit(m.apply, static_argnames="train")
    e1, e2 = apply(v, x, train=False)[0], apply(v, x, train=False)[0]
    np.testing.assert_array_equal(e1, e2)
    k1, k2 = jax.random.key(7), jax.random.key(8)
    t1, _, bs = apply(v, x, train=True, dropout_key=k1)
    assert bs == {}
    np.testing.assert_array_equal(t1, apply(v, x, train=True, dropout_key=k1)[0])
    assert not np.allclose(t1, apply(v, x, train=True, dropout_key=k2)[0])
    assert not np.allclose(t1, e1)
    module = _module("usermods:small_mlp", dropout=0.5)
    want = module.apply(v, x, train=True, rngs={"dropout": k1})[0]
    np.testing.assert_allclose(t1, want, rtol=1e-6)


def test_mc_dropout_without_batch_norm():
    m = models.get_model("usermods:small_mlp", C, dropout=0.5)
    x = _x()
    v = m.init(jax.random.key(2), x)
    module = _module("usermods:small_mlp", dropout=0.5)
    k1, k2 = jax.random.key(3), jax.random.key(4)
    mc1, emb1, bs = m.apply(v, x, train=False, dropout_key=k1)
    mc2 = m.apply(v, x, train=False, dropout_key=k2)[0]
    assert bs == {}
    assert not np.allclose(mc1, mc2)
    assert not np.allclose(mc1, m.apply(v, x, train=False)[0])
    want_logits, want_emb = module.apply(v, x, train=True, rngs={"dropout": k1})
    np.testing.assert_allclose(mc1, want_logits, rtol=1e-6)
    np.testing.assert_allclose(emb1, want_emb, rtol=1e-6)
    # inverted dropout on the hidden layer before a linear layer: unbiased, the mean of
    # many MC passes is the eval output (computed with numpy)
    keys = jax.random.split(jax.random.key(9), 4000)
    mean = jax.vmap(lambda k: m.apply(v, x, train=False, dropout_key=k)[0])(keys).mean(0)
    np.testing.assert_allclose(mean, _mlp_numpy(v["params"], x)[0], atol=0.1)


def test_predict_full_mode_works_head_mode_refused():
    m = models.get_model("usermods:small_mlp", C, dropout=0.5)
    x = _x(b=10)
    v = m.init(jax.random.key(2), x)
    predict = make_predict(m, Needs(samples=True), samples=4, mode="full", chunk=8)
    probs = predict(v, x, jax.random.key(5)).probs
    assert probs.shape == (4, 10, C)
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
    assert not np.allclose(probs[0], probs[1])
    head = make_predict(m, Needs(samples=True), samples=4, mode="head", chunk=8)
    msg = "mc.mode='head' needs a model with a backbone/head split; use mc.mode='full'"
    _one_line_error(lambda: head(v, x, jax.random.key(5)), msg)
    _one_line_error(lambda: m.features(v, x), msg)
    _one_line_error(lambda: m.head(v, x, dropout_key=jax.random.key(0)), msg)


def test_train_mode_without_dropout_key():
    x = _x()
    m0 = models.get_model("usermods:small_mlp", C, dropout=0.0)
    v = m0.init(jax.random.key(0), x)
    np.testing.assert_allclose(m0.apply(v, x, train=True)[0], m0.apply(v, x, train=False)[0])
    m = models.get_model("usermods:small_mlp", C, dropout=0.5)
    _one_line_error(lambda: m.apply(v, x, train=True), "needs a dropout rng in train mode")


# --- batch norm ---------------------------------------------------------------------


def test_batch_norm_module():
    m = models.get_model("usermods:bn_mlp", C)
    assert m.mc_dropout  # undeclared batch norm: known only once initialised
    x = _x()
    v = m.init(jax.random.key(0), x)
    assert set(v) == {"params", "batch_stats"}
    k = jax.random.key(1)
    logits, emb, new_bs = m.apply(v, x, train=True, dropout_key=k)
    assert logits.shape == (B, C) and emb.shape == (B, 8)
    # running averages from the batch statistics of the first Dense layer (numpy)
    p = jax.tree.map(np.asarray, v["params"])
    h = np.asarray(x) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    stats = new_bs["BatchNorm_0"]
    np.testing.assert_allclose(stats["mean"], 0.1 * h.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * h.var(0), rtol=1e-4, atol=1e-6)
    module = _module("usermods:bn_mlp")
    (want, _), upd = module.apply(v, x, train=True, rngs={"dropout": k}, mutable=["batch_stats"])
    np.testing.assert_allclose(logits, want, rtol=1e-6)
    # eval uses the running averages, returns no stats, deterministic
    e, _, bs = m.apply(v, x, train=False)
    assert bs == {}
    np.testing.assert_allclose(e, module.apply(v, x, train=False)[0], rtol=1e-6)
    msg = _one_line_error(
        lambda: m.apply(v, x, train=False, dropout_key=k),
        "model.name='usermods:bn_mlp'",
        "MC dropout (mc.mode='full'",
        "needs dropout separable from batch norm",
        "ensemble_size > 1",
        "deterministic strategy",
        "jaxal model",
    )
    assert msg
    _one_line_error(lambda: m.features(v, x), "mc.mode='head' needs a model with a backbone")


def test_declared_batch_norm_known_without_tracing():
    m = models.get_model("usermods:declared_bn", C)
    assert not m.mc_dropout and not m.supports_head
    v = m.init(jax.random.key(0), _x())  # declaration agrees with the variables
    assert "batch_stats" in v

    # a declaration that disagrees with the variables is refused at init
    class Liar(nn.Module):
        num_classes: int
        has_batch_norm = True

        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(self.num_classes)(x), x

    liar = user.from_module("x:liar", Liar(C), num_classes=C)
    assert not liar.mc_dropout
    _one_line_error(
        lambda: liar.init(jax.random.key(0), _x()), "declares has_batch_norm=True", "hold no"
    )


def test_separable_dropout_flag_allows_mc_with_batch_norm():
    m = models.get_model("usermods:separable_bn", C)
    assert m.mc_dropout
    x = _x()
    v = m.init(jax.random.key(0), x)
    module = _module("usermods:separable_bn")
    k1, k2 = jax.random.key(1), jax.random.key(2)
    mc1, _, bs = m.apply(v, x, train=False, dropout_key=k1)
    assert bs == {}
    want = module.apply(v, x, train=False, deterministic=False, rngs={"dropout": k1})[0]
    np.testing.assert_allclose(mc1, want, rtol=1e-6)
    assert not np.allclose(mc1, m.apply(v, x, train=False, dropout_key=k2)[0])
    ev = m.apply(v, x, train=False)[0]
    np.testing.assert_allclose(ev, module.apply(v, x, train=False)[0], rtol=1e-6)
    # train=True with a key: batch statistics and dropout
    tk = m.apply(v, x, train=True, dropout_key=k1)[0]
    (want_tk, _), _ = module.apply(
        v, x, train=True, deterministic=False, rngs={"dropout": k1}, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(tk, want_tk, rtol=1e-6)
    # train=True without a key: batch statistics, no dropout
    t, _, new_bs = m.apply(v, x, train=True)
    (want_t, _), upd = module.apply(v, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(t, want_t, rtol=1e-6)
    np.testing.assert_allclose(
        new_bs["BatchNorm_0"]["mean"], upd["batch_stats"]["BatchNorm_0"]["mean"]
    )


# --- ensembles ----------------------------------------------------------------------


def test_ensemble_of_user_model():
    m = models.get_model("usermods:small_mlp", C, dropout=0.5)
    e = ensemble(m, 3)
    x = _x()
    v = e.init(jax.random.key(0), x)
    assert v["params"]["Dense_0"]["kernel"].shape == (3, F, 16)
    logits, embs, bs = e.members(v, x, train=False)
    assert logits.shape == (3, B, C) and embs.shape == (3, B, 16) and bs == {}
    for i in range(3):
        vi = jax.tree.map(lambda a, i=i: a[i], v)
        np.testing.assert_allclose(logits[i], _mlp_numpy(vi["params"], x)[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits[0], logits[1])
    mean, emb0, _ = e.apply(v, x, train=False)
    want = np.log(np.mean(np.asarray(jax.nn.softmax(logits)), axis=0))
    np.testing.assert_allclose(mean, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(emb0, embs[0])
    tl, _, _ = e.members(v, x, train=True, dropout_key=jax.random.key(1))
    assert tl.shape == (3, B, C)
    # ensemble samples need no MC dropout: predict uses the members, any mc.mode
    predict = make_predict(e, Needs(samples=True), samples=5, mode="head", chunk=8)
    assert predict(v, x, jax.random.key(2)).probs.shape == (3, B, C)


def test_ensemble_of_batch_norm_user_model():
    e = ensemble(models.get_model("usermods:bn_mlp", C), 2)
    x = _x()
    v = e.init(jax.random.key(0), x)
    logits, _, bs = e.members(v, x, train=True, dropout_key=jax.random.key(1))
    assert logits.shape == (2, B, C)
    assert bs["BatchNorm_0"]["mean"].shape == (2, 8)
    assert not np.allclose(bs["BatchNorm_0"]["mean"], v["batch_stats"]["BatchNorm_0"]["mean"])
    predict = make_predict(e, Needs(samples=True), samples=5, mode="full", chunk=8)
    assert predict(v, x, jax.random.key(2)).probs.shape == (2, B, C)
