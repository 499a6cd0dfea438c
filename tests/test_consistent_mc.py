"""Consistent MC dropout: sample t is ONE network draw (the same dropout masks)
for every pool row and every scoring chunk; BatchBALD asks for it.

A mask-revealing model makes the masks visible: identity backbone, then
``Dropout(0.5) -> Dense`` with an identity kernel and no bias, so row i's
logits are ``x_i * mask / 0.5``; with ``x_i = (i + 1) * ones`` the logits are
``2 (i + 1) mask`` exactly, and ``mask = logits > 0``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import config as config_lib
from jaxal import models, strategies
from jaxal.config import ConfigError
from jaxal.models.adapter import DenseHead, from_linen
from jaxal.models.ensemble import ensemble
from jaxal.models.outputs import sample_logits
from jaxal.predict import make_predict
from jaxal.strategies import batch
from jaxal.strategies.base import Needs, Outputs
from tests import reference as ref

D = 12  # features = classes of the mask model
N = 10  # pool rows; chunk 3 -> 4 chunks, the last one padded
T = 4
SAMPLES = Needs(probs=True, samples=True)
MODES = ("full", "head")


class _Flatten(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        del train
        return x.reshape(x.shape[0], -1)


def _mask_model():
    head = DenseHead(num_classes=D, rate=0.5)
    m = from_linen("mask", _Flatten(), head, embedding_dim=D, has_batch_norm=False)
    v = m.init(jax.random.key(0), jnp.zeros((1, D)))
    dense = {"kernel": jnp.eye(D), "bias": jnp.zeros(D)}
    v = {"params": {**v["params"], "classifier": {"Dense_0": dense}}}
    return m, v


X_MASK = jnp.arange(1.0, N + 1)[:, None] * jnp.ones((N, D))  # row i = (i + 1) * ones


def _masks_from_logits(logits):  # [T, N, D] -> bool masks
    scale = 2.0 * jnp.arange(1.0, N + 1)[None, :, None]
    np.testing.assert_array_equal(np.isin(np.asarray(logits / scale), [0.0, 1.0]), True)
    return np.asarray(logits > 0)


def _masks_from_probs(probs):  # kept classes have the larger probability
    probs = np.asarray(probs)
    return probs > probs.min(axis=-1, keepdims=True)


def _assert_one_draw_per_sample(masks):
    """``masks [T, N, D]``: every row the same mask for each t; t's masks differ."""
    for t in range(masks.shape[0]):
        np.testing.assert_array_equal(masks[t], np.broadcast_to(masks[t, :1], masks[t].shape))
        assert 0 < masks[t, 0].sum() < D  # a real draw, neither all kept nor all dropped
    draws = {masks[t, 0].tobytes() for t in range(masks.shape[0])}
    assert len(draws) == masks.shape[0], "samples t must be different draws"


@pytest.mark.parametrize("mode", MODES)
def test_sample_logits_consistent_share_one_mask_per_sample(mode):
    m, v = _mask_model()
    keys = jax.random.split(jax.random.key(3), T)
    logits = jax.jit(lambda x: sample_logits(m, v, x, keys, mode, consistent=True))(X_MASK)
    _assert_one_draw_per_sample(_masks_from_logits(logits))
    # Without it, each row has its own masks (today's default, kept).
    per_row = _masks_from_logits(sample_logits(m, v, X_MASK, keys, mode))
    assert not (per_row == per_row[:, :1]).all()


@pytest.mark.parametrize("mode", MODES)
def test_predict_consistent_shares_the_draw_across_rows_and_chunks(mode):
    m, v = _mask_model()
    for how in ({"consistent": True}, {"needs": batch.CONSISTENT_SAMPLES}):
        needs = how.get("needs", SAMPLES)
        consistent = how.get("consistent", False)
        predict = make_predict(m, needs, samples=T, mode=mode, chunk=3, consistent=consistent)
        probs = jax.jit(predict)(v, X_MASK, jax.random.key(5)).probs
        assert probs.shape == (T, N, D)
        _assert_one_draw_per_sample(_masks_from_probs(probs))
        # One call over all rows at once gives the same draws as four chunks.
        whole = make_predict(m, needs, samples=T, mode=mode, chunk=N, consistent=consistent)
        np.testing.assert_array_equal(
            _masks_from_probs(whole(v, X_MASK, jax.random.key(5)).probs), _masks_from_probs(probs)
        )
    default = make_predict(m, SAMPLES, samples=T, mode=mode, chunk=3)(v, X_MASK, jax.random.key(5))
    masks = _masks_from_probs(default.probs)
    assert not (masks == masks[:, :1]).all()  # the default still draws per row and chunk


@pytest.mark.parametrize("mode", MODES)
def test_cnn_conv_dropout_is_consistent(mode):
    # All of the CNN's dropout is the conv dropout here (dropout=0): identical
    # input rows must give identical samples for each t, in every chunk.
    m = models.get_model("cnn", 10, dropout=0.0, conv_dropout=0.5, padding="SAME")
    x1 = jax.random.normal(jax.random.key(1), (1, 8, 8, 1))
    x = jnp.repeat(x1, N, axis=0)
    v = m.init(jax.random.key(2), x1)
    predict = make_predict(m, SAMPLES, samples=T, mode=mode, chunk=3, consistent=True)
    probs = np.asarray(jax.jit(predict)(v, x, jax.random.key(4)).probs)
    np.testing.assert_allclose(probs, np.broadcast_to(probs[:, :1], probs.shape), rtol=1e-6)
    for a in range(T):
        for b in range(a):
            assert not np.allclose(probs[a, 0], probs[b, 0]), (a, b)
    default = make_predict(m, SAMPLES, samples=T, mode=mode, chunk=3)(v, x, jax.random.key(4))
    assert not np.allclose(default.probs[0, 0], default.probs[0, 1])


def test_cnn_consistent_head_mode_equals_full_mode():
    # All dropout lives in the head, so both modes compute the same draws.
    m = models.get_model("cnn", 10, padding="SAME")
    x = jax.random.normal(jax.random.key(1), (N, 8, 8, 1))
    v = m.init(jax.random.key(2), x[:1])
    full, head = (
        make_predict(m, SAMPLES, samples=T, mode=mode, chunk=3, consistent=True)(
            v, x, jax.random.key(4)
        ).probs
        for mode in MODES
    )
    np.testing.assert_allclose(full, head, rtol=1e-5, atol=1e-6)


def test_consistent_row_equals_a_fixed_network():
    # A consistent sample is a deterministic network: row i's output does not
    # depend on the other rows of its chunk (it is what one row alone gets).
    m = models.get_model("mlp", 10, hidden=(16,), dropout=0.5)
    x = jax.random.normal(jax.random.key(1), (N, 8, 8, 1))
    v = m.init(jax.random.key(2), x[:1])
    keys = jax.random.split(jax.random.key(6), T)
    together = sample_logits(m, v, x, keys, "full", consistent=True)
    for i in (0, 4, 9):
        alone = sample_logits(m, v, x[i : i + 1], keys, "full", consistent=True)
        np.testing.assert_allclose(together[:, i], alone[:, 0], rtol=1e-5, atol=1e-6)


def test_ensemble_samples_are_consistent_anyway():
    ens = ensemble(models.get_model("mlp", 10, hidden=(16,), dropout=0.0), 3)
    x = jax.random.normal(jax.random.key(1), (N, 8, 8, 1))
    v = ens.init(jax.random.key(7), x[:1])
    a, b = (
        make_predict(ens, SAMPLES, samples=5, mode="full", chunk=3, consistent=c)(
            v, x, jax.random.key(0)
        ).probs
        for c in (False, True)
    )
    np.testing.assert_array_equal(a, b)


# BatchBALD ---------------------------------------------------------------------------


def test_batchbald_declares_consistent_samples():
    assert strategies.get("batchbald").needs == Needs(probs=True, samples=True, consistent=True)
    # Wrappers keep the base's needs.
    assert strategies.get("subsample", base="batchbald", m=5).needs.consistent
    assert strategies.get("power", base="batchbald").needs.consistent
    for name in ("bald", "variation_ratios", "mean_std", "vote_entropy", "entropy"):
        assert not strategies.get(name).needs.consistent  # per-point scores: either is fine


def test_batchbald_on_consistent_samples_matches_exact_reference():
    # Consistent samples of a small dropout MLP; all greedy steps exact
    # (C**2 = 9 <= num_samples): the numpy reference's exact-joint-entropy greedy.
    m = models.get_model("mlp", 3, hidden=(8,), dropout=0.5)
    x = jax.random.normal(jax.random.key(1), (14, 8, 8, 1))
    v = m.init(jax.random.key(2), x[:1])
    s = strategies.get("batchbald", num_samples=100, chunk_size=4)
    probs = make_predict(m, s.needs, samples=5, mode="full", chunk=4)(v, x, jax.random.key(3)).probs
    labeled = np.zeros(14, bool)
    labeled[[2, 7]] = True
    got = s.select(jax.random.key(0), Outputs(probs=probs), jnp.asarray(labeled), 3)
    np.testing.assert_array_equal(got, ref.batchbald_greedy(np.asarray(probs), labeled, 3))


# Config ------------------------------------------------------------------------------


def test_mc_consistent_config_key_reaches_make_predict(monkeypatch):
    from jaxal import loop
    from jaxal.assemble import assemble

    assert config_lib.base_config().mc.consistent is False
    assert config_lib.settings(tiny_config()).mc.consistent is False
    seen = []
    real = loop.make_predict

    def spy(*args, **kwargs):
        seen.append(kwargs.get("consistent"))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "make_predict", spy)
    for value in (False, True):
        c = tiny_config(strategy="bald", **{"model.dropout": 0.5, "mc.consistent": value})
        assert config_lib.settings(c).mc.consistent is value
        assemble(c).engine("bald")
    assert seen == [False, True]


def test_mc_consistent_must_be_a_bool():
    c = tiny_config()
    c.mc = ml_collections.ConfigDict({"samples": 20, "mode": "full", "consistent": "yes"})
    with pytest.raises(ConfigError, match=r"config\.mc\.consistent"):
        config_lib.validate(c)


def test_batchbald_without_mc_consistent_is_accepted_and_consistent():
    # BatchBALD needs consistent samples and gets them whatever mc.consistent says.
    c = tiny_config(strategy="batchbald", **{"model.dropout": 0.5})
    config_lib.validate(c)
    assert config_lib.settings(c).mc.consistent is False
