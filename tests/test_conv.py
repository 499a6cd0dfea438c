"""The im2col convolution (jaxal.models.conv) against lax.conv: forward and
gradients on hand-sized cases, and every conv model's forward and parameter
gradients with model.conv = 'im2col' vs 'xla'."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxal import models
from jaxal.models.conv import im2col_conv, shifted_conv, shifted_filter_grad


def _xla(x, k, strides, padding):
    return lax.conv_general_dilated(
        x, k, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )


def test_a_hand_computed_3x3_valid_conv():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    k = np.zeros((3, 3, 1, 1), np.float32)
    k[0, 0], k[2, 2] = 1.0, -1.0  # top-left minus bottom-right of each window
    y = im2col_conv(jnp.asarray(x), jnp.asarray(k), (1, 1), "VALID")
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], np.full((2, 2), -10.0))


@pytest.mark.parametrize(
    "shape,kernel,strides,padding",
    [
        ((2, 7, 6, 3), (3, 3), (1, 1), "VALID"),
        ((2, 7, 6, 3), (3, 3), (1, 1), "SAME"),
        ((2, 8, 8, 4), (3, 3), (2, 2), "SAME"),
        ((2, 7, 7, 4), (3, 3), (2, 2), "SAME"),  # odd side: the extra pad goes high
        ((2, 9, 9, 2), (5, 5), (1, 1), "SAME"),
        ((2, 8, 8, 4), (1, 1), (2, 2), "SAME"),  # ResNet projection shortcut
        ((2, 8, 8, 4), (1, 1), (1, 1), "VALID"),
    ],
)
@pytest.mark.parametrize("conv", [im2col_conv, shifted_conv], ids=["im2col", "shifted"])
def test_each_formulation_equals_lax_conv_forward_and_gradients(
    conv, shape, kernel, strides, padding
):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    k = jnp.asarray(rng.standard_normal((*kernel, shape[-1], 5)), jnp.float32)
    want, got = _xla(x, k, strides, padding), conv(x, k, strides, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ct = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)

    def grads(f):
        return jax.grad(lambda x, k: jnp.sum(f(x, k, strides, padding) * ct), (0, 1))(x, k)

    for g, w in zip(grads(conv), grads(_xla), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


MODELS = [
    ("cnn", {}, (28, 28, 1)),
    ("cnn", {"padding": "SAME"}, (8, 8, 1)),
    ("resnet18", {"width": 4}, (8, 8, 3)),
    ("vgg11", {"width": 8}, (8, 8, 3)),
]


@pytest.mark.parametrize("name,params,image", MODELS, ids=[m[0] + str(m[1]) for m in MODELS])
def test_every_conv_model_gives_the_same_outputs_and_gradients(name, params, image):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((4, *image)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 4))
    out = {}
    for impl in ("xla", "im2col", "shifted"):
        m = models.get_model(name, 10, conv=impl, **params)
        variables = m.init(jax.random.key(0), x[:1])

        def loss(p, m=m, variables=variables):
            key = jax.random.key(3)  # the same dropout masks for both
            logits, _, _ = m.apply({**variables, "params": p}, x, train=True, dropout_key=key)
            return jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y]), logits

        (_, logits), g = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        out[impl] = (variables, logits, g)
    for impl in ("im2col", "shifted"):
        _same_up_to_rounding(out["xla"], out[impl])


def _same_up_to_rounding(ref, new):
    (v0, l0, g0), (v1, l1, g1) = ref, new
    # the same parameter tree and initial values: variables are interchangeable
    assert jax.tree.structure(v0) == jax.tree.structure(v1)
    for a, b in zip(jax.tree.leaves(v0), jax.tree.leaves(v1), strict=True):
        np.testing.assert_array_equal(a, b)
    # float rounding (its size depends on the CPU's vector width: on an AVX-512
    # Xeon one ResNet logit of -0.072 moved by 2.7e-5), against the logits' scale
    np.testing.assert_allclose(l1, l0, rtol=1e-4, atol=1e-4 * float(np.abs(l0).max()))
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0), strict=True):
        # float rounding, grown through batch norm: small next to the leaf's scale
        # (a conv bias before batch norm has a true gradient of 0: pure rounding)
        atol = max(1e-3 * float(np.abs(b).max()), 1e-5)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=atol)


def test_the_shifted_filter_gradient_by_hand():
    # a 1x3x3x1 input and a 1x2x2x1 output gradient of ones (VALID 2x2 kernel):
    # dW[i, j] = sum of the 2x2 input window at (i, j)
    x = jnp.arange(9, dtype=jnp.float32).reshape(1, 3, 3, 1)
    dy = jnp.ones((1, 2, 2, 1), jnp.float32)
    dw = shifted_filter_grad(x, dy, (2, 2, 1, 1), "VALID")
    np.testing.assert_array_equal(np.asarray(dw)[:, :, 0, 0], [[8.0, 12.0], [20.0, 24.0]])


def test_an_unknown_conv_is_one_line():
    with pytest.raises(ValueError, match="model.conv: allowed: 'xla', 'shifted', 'im2col'"):
        models.validate("cnn", {"conv": "fft"})
