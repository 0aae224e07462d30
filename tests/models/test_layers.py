"""conv_mono and conv_patches give nnx.Conv's values (odd and even kernels, with and without
bias) and its gradients; they refuse input with the wrong number of channels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.layers import conv_mono, conv_patches


def _assert_same_as_nnx(fn, k, c_in, c_out, use_bias, shape, seed):
    """``fn(conv, x)`` equals ``conv(x)`` in values and in its input gradient."""
    conv = nnx.Conv(c_in, c_out, kernel_size=k, padding="SAME", use_bias=use_bias,
                    rngs=nnx.Rngs(seed))
    if use_bias:
        conv.bias[...] = jnp.linspace(-1.0, 1.0, c_out)
    x = jnp.asarray(np.random.default_rng(seed).standard_normal((*shape, c_in), np.float32))
    np.testing.assert_allclose(np.asarray(fn(conv, x)), np.asarray(conv(x)),
                               rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda v, f: (f(v) ** 2).sum(), argnums=0)
    np.testing.assert_allclose(np.asarray(grad(x, lambda v: fn(conv, v))),
                               np.asarray(grad(x, conv)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,use_bias", [((7, 7), True), ((2, 2), True), ((3, 5), False),
                                         ((4, 1), True)])
def test_conv_mono_matches_nnx_conv(k, use_bias):
    _assert_same_as_nnx(conv_mono, k, 1, 6, use_bias, (3, 17, 12), seed=3)


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
    _assert_same_as_nnx(conv_patches, k, c_in, 5, use_bias, (2, 9, 14), seed=2)


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
