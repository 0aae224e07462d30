"""conv_mono and conv_patches give nnx.Conv's values (odd and even kernels, with and without
bias) and its gradients; they refuse input with the wrong number of channels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.layers import conv_mono, conv_patches


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


@pytest.mark.parametrize("k,c_in,use_bias", [((2, 2), 1, True), ((3, 3), 1, False),
                                              ((2, 3), 4, True), ((1, 1), 2, True)])
def test_conv_patches_matches_nnx_conv_with_gradients(k, c_in, use_bias):
    conv = nnx.Conv(c_in, 5, kernel_size=k, padding="SAME", use_bias=use_bias,
                    rngs=nnx.Rngs(1))
    if use_bias:
        conv.bias[...] = jnp.linspace(-1.0, 1.0, 5)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 9, 14, c_in), np.float32))
    np.testing.assert_allclose(np.asarray(conv_patches(conv, x)), np.asarray(conv(x)),
                               rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda v, f: (f(v) ** 2).sum(), argnums=0)
    np.testing.assert_allclose(np.asarray(grad(x, lambda v: conv_patches(conv, v))),
                               np.asarray(grad(x, conv)), rtol=1e-4, atol=1e-4)


def test_conv_patches_on_a_delta_returns_the_flipped_kernel_at_the_same_offset():
    # A 2×2 'SAME' kernel pads one bin after: the delta at (2, 2) lands on (1..2, 1..2).
    conv = nnx.Conv(1, 3, kernel_size=(2, 2), padding="SAME", use_bias=False, rngs=nnx.Rngs(0))
    x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
    out = np.asarray(conv_patches(conv, x))[0, 1:3, 1:3]
    np.testing.assert_allclose(out, np.asarray(conv.kernel[...])[::-1, ::-1, 0], atol=1e-7)
    assert np.abs(np.asarray(conv_patches(conv, x))).sum() == pytest.approx(np.abs(out).sum())


def test_conv_patches_refuses_a_channel_mismatch():
    conv = nnx.Conv(2, 4, kernel_size=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="channels"):
        conv_patches(conv, jnp.zeros((1, 5, 5, 3)))
