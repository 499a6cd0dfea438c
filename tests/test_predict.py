"""Pool outputs for acquisition: chunking, MC dropout modes, batch norm, ensembles."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from conftest import tiny_config

from jaxal import models
from jaxal import train as train_lib
from jaxal.models.adapter import DenseHead, from_linen
from jaxal.models.ensemble import ensemble
from jaxal.predict import make_predict
from jaxal.strategies import Needs

X = jax.random.normal(jax.random.key(0), (37, 8, 8, 1))
KEY3 = jax.random.key(3)


def test_chunking_and_padding_do_not_change_outputs():
    m = models.get_model("mlp", 10, hidden=(16,), dropout=0.5)
    v = m.init(jax.random.key(1), X[:1])
    needs = Needs(probs=True, embeddings=True)
    ref = make_predict(m, needs, samples=1, mode="full", chunk=64)(v, X, jax.random.key(2))
    for chunk in (1, 5, 37):
        out = make_predict(m, needs, samples=1, mode="full", chunk=chunk)(v, X, jax.random.key(2))
        np.testing.assert_allclose(out.probs, ref.probs, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out.embeddings, ref.embeddings, rtol=1e-5, atol=1e-6)
    logits, emb, _ = m.apply(v, X, train=False)
    np.testing.assert_allclose(ref.probs, jax.nn.softmax(logits), rtol=1e-5, atol=1e-7)


class _BNBackbone(nn.Module):
    """A tiny conv + batch-norm trunk (the resnet/vgg building block, cheap to compile)."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.relu(x).mean(axis=(1, 2))


def _bn_model(dropout: float):
    return from_linen(
        "bn",
        _BNBackbone(),
        DenseHead(num_classes=10, rate=dropout),
        embedding_dim=8,
        has_batch_norm=True,
    )


def test_mc_dropout_uses_running_batch_norm_statistics():
    # A model with batch norm: if MC passes used batch statistics (train mode, as
    # some peers do), outputs would depend on which points share a chunk.
    m = _bn_model(0.5)
    v = m.init(jax.random.key(1), jnp.zeros((1, 8, 8, 1)))
    # Make the running statistics differ from any batch's statistics.
    leaves, tree = jax.tree.flatten(v["params"])
    noise = [0.3 * jax.random.normal(jax.random.key(i), a.shape) for i, a in enumerate(leaves)]
    params = jax.tree.unflatten(tree, [a + n for a, n in zip(leaves, noise, strict=True)])
    v = {"params": params, "batch_stats": jax.tree.map(lambda a: a + 0.3, v["batch_stats"])}
    needs = Needs(probs=True, samples=True)
    outs = [
        make_predict(m, needs, samples=3, mode="full", chunk=c)(v, X, jax.random.key(5))
        for c in (4, 37)
    ]
    # Same dropout masks per chunk index differ by chunking, so compare with
    # dropout off: T deterministic passes with running statistics.
    m0 = _bn_model(0.0)
    outs0 = [
        make_predict(m0, needs, samples=2, mode="full", chunk=c)(v, X, jax.random.key(5))
        for c in (4, 37)
    ]
    np.testing.assert_allclose(outs0[0].probs, outs0[1].probs, rtol=1e-4, atol=1e-6)
    eval_probs = jax.nn.softmax(m0.apply(v, X, train=False)[0])
    np.testing.assert_allclose(outs0[0].probs[0], eval_probs, rtol=1e-4, atol=1e-6)
    train_probs = jax.nn.softmax(m0.apply(v, X, train=True)[0])
    assert not np.allclose(train_probs, eval_probs, atol=1e-3)
    assert outs[0].probs.shape == (3, 37, 10)
    # The dropout passes differ from each other (dropout is on).
    assert not np.allclose(outs[1].probs[0], outs[1].probs[1])


def test_head_mode_equals_full_mode_when_dropout_is_in_the_head():
    m = models.get_model("cnn", 10, padding="SAME")
    v = m.init(jax.random.key(1), X[:1])
    needs = Needs(probs=True, samples=True)
    full = make_predict(m, needs, samples=4, mode="full", chunk=16)(v, X, jax.random.key(3))
    head = make_predict(m, needs, samples=4, mode="head", chunk=16)(v, X, jax.random.key(3))
    assert full.probs.shape == (4, 37, 10)
    np.testing.assert_allclose(full.probs, head.probs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(full.probs[0], full.probs[1])


def test_ensemble_samples_are_the_members_predictions():
    base = models.get_model("mlp", 10, hidden=(16,), dropout=0.0)
    ens = ensemble(base, 3)
    v = ens.init(jax.random.key(7), X[:1])
    out = make_predict(ens, Needs(probs=True, samples=True), samples=20, mode="full", chunk=8)(
        v, X, jax.random.key(0)
    )
    assert out.probs.shape == (3, 37, 10)
    for i, k in enumerate(jax.random.split(jax.random.key(7), 3)):
        vi = base.init(k, X[:1])
        np.testing.assert_allclose(
            out.probs[i], jax.nn.softmax(base.apply(vi, X, train=False)[0]), rtol=1e-5, atol=1e-7
        )
    mean_logp = ens.apply(v, X, train=False)[0]
    np.testing.assert_allclose(jnp.exp(mean_logp), out.probs.mean(0), rtol=1e-5, atol=1e-7)


def test_ensemble_members_train_as_independent_models():
    # With dropout off, member m of a jointly trained ensemble equals a single
    # model trained from member m's initialisation (Adam is elementwise).
    config = tiny_config(**{"train.epochs": 4, "train.batch_size": 8})
    base = models.get_model("mlp", 10, hidden=(16,), dropout=0.0)
    ens = ensemble(base, 2)
    x = jax.random.normal(jax.random.key(0), (40, 8, 8, 1))
    y = jnp.arange(40, dtype=jnp.int32) % 10
    empty = jnp.zeros((0, 8, 8, 1))
    data = train_lib.Data(x, y, x, y, empty, jnp.zeros((0,), jnp.int32))
    order = jnp.full((32,), -1, jnp.int32).at[:20].set(jnp.arange(20))
    v_ens, m_ens = jax.jit(train_lib.make_fit(ens, config.train))(
        ens.init(jax.random.key(3), x[:1]), order, jnp.int32(20), jax.random.key(4), data
    )
    fit1 = jax.jit(train_lib.make_fit(base, config.train))
    for i, k in enumerate(jax.random.split(jax.random.key(3), 2)):
        v1, _ = fit1(base.init(k, x[:1]), order, jnp.int32(20), jax.random.key(4), data)
        for a, b in zip(jax.tree.leaves(v1), jax.tree.leaves(v_ens), strict=True):
            np.testing.assert_allclose(b[i], a, rtol=1e-4, atol=1e-6)
    assert int(m_ens.steps) == 4 * 3


def test_head_mode_passes_in_groups_give_the_same_samples(monkeypatch):
    """Head-mode MC passes run in groups of keys to bound the masks held at
    once; the groups (here 3, 3, 2 of T = 8) draw the same masks, so samples
    agree up to float rounding of the batched products."""
    from jaxal.models import outputs

    m = models.get_model("cnn", 10, padding="SAME", dropout=0.5, conv_dropout=0.25)
    v = m.init(jax.random.key(1), X[:1])
    needs = Needs(probs=True, samples=True)

    def samples():
        return np.asarray(
            make_predict(m, needs, samples=8, mode="head", chunk=16)(v, X, KEY3).probs
        )

    whole = samples()
    feat = int(m.features(v, X[:1]).size)  # per row; chunks of 16 rows
    monkeypatch.setattr(outputs, "MASK_ELEMENTS", 3 * 16 * feat)
    grouped = samples()
    np.testing.assert_allclose(grouped, whole, rtol=1e-5, atol=1e-6)
    assert not np.allclose(whole[0], whole[1])  # the passes do differ
