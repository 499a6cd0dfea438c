"""jaxal.models.pool.max_pool == flax's nn.max_pool, values and gradients, bit for bit.

The reference is ``nn.max_pool`` (``lax.reduce_window`` + XLA's
select-and-scatter gradient), plus a hand-computed case for the tie rule.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.models.pool import max_pool

CASES = [
    ((3, 8, 8, 2), 2, "VALID"),
    ((3, 7, 9, 2), 2, "VALID"),  # trailing row / column dropped
    ((3, 7, 9, 2), 2, "SAME"),  # padded with -inf at the end
    ((2, 6, 6, 3), 3, "SAME"),
    ((2, 9, 9, 1), 3, "VALID"),
    ((1, 1, 3, 2), 2, "SAME"),
]


def _inputs(shape, ties: bool, seed: int = 0) -> jax.Array:
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: most windows hold several maxima
        return jnp.asarray(rng.integers(-2, 3, shape).astype(np.float32))
    return jnp.asarray(rng.standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape,k,padding", CASES)
def test_values_and_gradients_equal_flax(shape, k, padding, ties):
    x = _inputs(shape, ties)

    def ref(x):
        return nn.max_pool(x, (k, k), strides=(k, k), padding=padding)

    def new(x):
        return max_pool(x, k, padding)

    y_ref, y_new = ref(x), new(x)
    assert y_new.shape == y_ref.shape
    np.testing.assert_array_equal(np.asarray(y_new), np.asarray(y_ref))
    w = _inputs(y_ref.shape, False, seed=1)
    g_ref = jax.jit(jax.grad(lambda x: jnp.sum(ref(jax.nn.relu(x)) * w)))(x)
    g_new = jax.jit(jax.grad(lambda x: jnp.sum(new(jax.nn.relu(x)) * w)))(x)
    np.testing.assert_array_equal(np.asarray(g_new), np.asarray(g_ref))


def test_tie_goes_to_the_first_maximum_in_row_major_order():
    # one 2x2 window [[1, 3], [3, 3]]: the maximum 3 first appears at (0, 1)
    x = jnp.asarray([[1.0, 3.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    g = jax.grad(lambda x: max_pool(x, 2).sum())(x)
    np.testing.assert_array_equal(np.asarray(g).reshape(2, 2), [[0.0, 1.0], [0.0, 0.0]])


def test_forward_mode_and_vmap():
    x = _inputs((2, 3, 4, 4, 2), False)  # [S, B, H, W, C]
    t = _inputs(x.shape, False, seed=2)
    ref = jax.vmap(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)))
    new = jax.vmap(lambda x: max_pool(x, 2))
    y1, d1 = jax.jvp(ref, (x,), (t,))
    y2, d2 = jax.jvp(new, (x,), (t,))
    np.testing.assert_array_equal(np.asarray(y2), np.asarray(y1))
    np.testing.assert_array_equal(np.asarray(d2), np.asarray(d1))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="padding"):
        max_pool(jnp.zeros((1, 4, 4, 1)), 2, "FULL")
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        max_pool(jnp.zeros((4, 4, 1)), 2)
