"""conv_mono gives nnx.Conv's values (odd and even kernels, with and without bias) and its
gradients; it refuses multi-channel input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.layers import conv_mono


@pytest.mark.parametrize("k,use_bias", [((7, 7), True), ((2, 2), True), ((3, 5), False),
                                         ((4, 1), True)])
def test_conv_mono_matches_nnx_conv(k, use_bias):
    conv = nnx.Conv(1, 6, kernel_size=k, padding="SAME", use_bias=use_bias, rngs=nnx.Rngs(3))
    if use_bias:
        conv.bias[...] = jnp.linspace(-1.0, 1.0, 6)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 17, 12, 1), np.float32))
    np.testing.assert_allclose(np.asarray(conv_mono(conv, x)), np.asarray(conv(x)),
                               rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda v, f: (f(v) ** 2).sum(), argnums=0)
    np.testing.assert_allclose(np.asarray(grad(x, lambda v: conv_mono(conv, v))),
                               np.asarray(grad(x, conv)), rtol=1e-4, atol=1e-4)


def test_conv_mono_on_a_delta_returns_the_flipped_kernel():
    conv = nnx.Conv(1, 2, kernel_size=(3, 3), padding="SAME", use_bias=False, rngs=nnx.Rngs(0))
    x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
    out = np.asarray(conv_mono(conv, x))[0, 1:4, 1:4]        # the 3×3 around the delta
    np.testing.assert_allclose(out, np.asarray(conv.kernel[...])[::-1, ::-1, 0], atol=1e-7)


def test_conv_mono_refuses_several_input_channels():
    conv = nnx.Conv(2, 4, kernel_size=(3, 3), padding="SAME", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="one input channel"):
        conv_mono(conv, jnp.zeros((1, 5, 5, 2)))
