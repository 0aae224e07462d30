"""models.layers: conv_mono and conv_patches give nnx.Conv's values (odd and even kernels, with
and without bias) and its gradients, and refuse input with the wrong number of channels;
max_pool2 floors odd sizes and routes the gradient to each window's maximum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.layers import conv_mono, conv_patches, max_pool2


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


def test_max_pool2_floors_odd_sizes():
    x = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype(np.float32)
    ref = x[:, :4, :6].reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(np.asarray(jax.jit(max_pool2)(jnp.asarray(x))), ref)


def test_max_pool2_gradient_is_one_at_each_windows_maximum():
    x = np.random.default_rng(3).normal(size=(2, 5, 7, 3)).astype(np.float32)
    g = np.asarray(jax.grad(lambda v: max_pool2(v).sum())(jnp.asarray(x)))
    windows = x[:, :4, :6].reshape(2, 2, 2, 3, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 2, 3, 3, 4)
    want = np.zeros_like(x)
    for b, i, j, c in np.ndindex(2, 2, 3, 3):
        k = int(np.argmax(windows[b, i, j, c]))
        want[b, 2 * i + k // 2, 2 * j + k % 2, c] = 1.0
    np.testing.assert_array_equal(g, want)     # the cropped odd row/column gets no gradient
