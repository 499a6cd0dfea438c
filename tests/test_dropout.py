"""jaxal.models.Dropout: packed-lane masks, checked against a numpy unpacking of
the same random words, Bernoulli statistics, unbiased scaling and the usual
Dropout contract (deterministic, rate 0, vmap/jit)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.models import Dropout
from jaxal.models.dropout import effective_rate, keep_mask, lanes


@pytest.mark.parametrize(
    "rate,want",
    [(0.0, (1, 0)), (0.5, (1, 1)), (0.25, (2, 1)), (0.75, (2, 3)), (0.125, (4, 2)),
     (0.375, (4, 6)), (1 / 256, (8, 1)), (3 / 65536, (16, 3))],
)
def test_narrowest_lane_that_holds_the_rate_exactly(rate, want):
    assert lanes(rate) == want
    assert effective_rate(rate) == rate


def test_other_rates_round_to_16_bits():
    for rate in np.random.default_rng(0).uniform(0, 0.999, 200):
        b, t = lanes(rate)
        assert b == 16
        assert abs(effective_rate(rate) - rate) <= 2.0**-17
    assert lanes(0.1) == (16, 6554)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_bad_rate_is_refused(rate):
    with pytest.raises(ValueError, match="dropout rate must be in"):
        lanes(rate)


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.375, 0.1])
def test_mask_is_the_lanes_of_the_random_words(rate):
    """Reference: unpack the same threefry words bit by bit in numpy (lane k of
    a word = bits b*k .. b*k+b-1, least significant first)."""
    key = jax.random.key(3)
    shape = (7, 13, 5)  # 455 elements: not a multiple of any lanes-per-word
    b, t = lanes(rate)
    n = int(np.prod(shape))
    words = np.asarray(jax.random.bits(key, (-(-n // (32 // b)),), jnp.uint32))
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
    lane = (bits.reshape(-1, b) * (1 << np.arange(b))).sum(1)[:n]
    want = (lane >= t).reshape(shape)
    np.testing.assert_array_equal(np.asarray(keep_mask(key, rate, shape)), want)


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.1, 0.8])
def test_masks_are_independent_bernoulli_draws(rate):
    n = 400_000
    keep = np.asarray(keep_mask(jax.random.key(11), rate, (n,)), np.float64)
    p = 1 - effective_rate(rate)
    sd = np.sqrt(p * (1 - p) / n)
    assert abs(keep.mean() - p) < 5 * sd
    # Neighbours share a random word (same threefry output): their joint keep
    # rate must still be p^2, at every offset inside a word.
    for lag in (1, 2, 31, 32):
        both = (keep[:-lag] * keep[lag:]).mean()
        assert abs(both - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / (n - lag)), lag
    # Different keys give different masks.
    other = np.asarray(keep_mask(jax.random.key(12), rate, (n,)), np.float64)
    assert abs((keep * other).mean() - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / n)


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_kept_values_are_scaled_to_stay_unbiased(rate):
    x = jnp.full((200, 1000), 2.0)
    rngs = {"dropout": jax.random.key(0)}
    y = np.asarray(Dropout(rate).apply({}, x, deterministic=False, rngs=rngs))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / (1 - effective_rate(rate)), rtol=1e-6)
    assert abs(y.mean() - 2.0) < 5 * 2.0 * np.sqrt(rate / (1 - rate) / y.size)


def test_identity_when_deterministic_or_rate_zero():
    x = jax.random.normal(jax.random.key(1), (4, 6))
    rngs = {"dropout": jax.random.key(0)}
    np.testing.assert_array_equal(Dropout(0.5).apply({}, x, deterministic=True), x)
    np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs), x)
    np.testing.assert_array_equal(Dropout(0.5, deterministic=True).apply({}, x), x)
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs)


def test_broadcast_dims_share_one_mask():
    x = jnp.ones((3, 50, 8))
    y = Dropout(0.5, broadcast_dims=(1,)).apply(
        {}, x, deterministic=False, rngs={"dropout": jax.random.key(2)}
    )
    np.testing.assert_array_equal(y, jnp.broadcast_to(y[:, :1], y.shape))
    assert 0 < float((y == 0).mean()) < 1


def test_vmap_and_jit_give_the_loop_masks():
    keys = jax.random.split(jax.random.key(5), 4)
    x = jax.random.normal(jax.random.key(6), (16, 33))

    def f(k):
        return Dropout(0.25).apply({}, x, deterministic=False, rngs={"dropout": k})

    loop = np.stack([np.asarray(f(k)) for k in keys])
    np.testing.assert_array_equal(np.asarray(jax.vmap(f)(keys)), loop)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(f))(keys)), loop)


def test_in_a_module_it_draws_from_the_dropout_rng_like_flax():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, deterministic):
            return Dropout(0.5)(nn.Dense(64)(x), deterministic=deterministic)

    x = jnp.ones((8, 4))
    net = Net()
    v = net.init(jax.random.key(0), x, deterministic=True)
    a = net.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    b = net.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    c = net.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a) == 0, np.asarray(c) == 0)
    with pytest.raises(Exception, match="dropout"):
        net.apply(v, x, deterministic=False)
