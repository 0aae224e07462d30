"""Layer kernels written for speed on CPU, with the same parameters and results as flax's.

XLA's CPU convolution handles a single input channel poorly: the d-DeVIS first layer
(1 → 16 channels, 7×7 on 160×150) took 1.1 ms per clip at batch 1 and at batch 8, about 60 %
of the whole forward pass, while the same arithmetic written as a sum of shifted, scaled copies
of the input takes 0.45-0.55 ms. :func:`conv_mono` does that (as a convolution over the
row-shifted copies); it reads the ``kernel`` and ``bias`` of an ``nnx.Conv`` so models
and checkpoints are unchanged. Small single-channel kernels (area ≤ 9, e.g. the Soomro CNN's
2×2 first layer) go faster still as one matrix product over the kernel-shifted copies,
:func:`conv_patches` (Soomro conv1: 0.12 → 0.05 ms at batch 1, 39 → 22 ms at batch 256);
on larger kernels or several input channels the copies cost more than they save.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _same_pads(k: int) -> tuple[int, int]:
    """Low and high padding of a 'SAME' convolution with kernel size ``k`` and stride 1."""
    lo = (k - 1) // 2
    return lo, k - 1 - lo


def conv_mono(conv: nnx.Conv, x: jax.Array) -> jax.Array:
    """``conv(x)`` for an ``nnx.Conv`` with one input channel, stride 1, 'SAME' padding.

    Args:
      conv: the layer (its ``kernel`` ``(kh, kw, 1, c_out)`` and optional ``bias``).
      x: ``(batch, h, w, 1)`` NHWC.

    Returns ``(batch, h, w, c_out)``, equal to ``conv(x)`` up to float rounding.
    """
    kernel = conv.kernel[...]
    kh, kw, c_in, c_out = kernel.shape
    if c_in != 1 or x.shape[-1] != 1:
        raise ValueError(f"conv_mono needs one input channel, got kernel {kernel.shape} "
                         f"and input {x.shape}")
    # Stack the kh row-shifted copies of the input as channels, then one XLA convolution
    # with a (1, kw) kernel over kh channels. (A fused sum of kh·kw shifted copies is a
    # little faster alone, but XLA then re-computes it inside every consumer: 5x slower.)
    h = x.shape[1]
    lo, hi = _same_pads(kh)
    xp = jnp.pad(x, ((0, 0), (lo, hi), (0, 0), (0, 0)))
    rows = jnp.concatenate([xp[:, dy:dy + h] for dy in range(kh)], axis=-1)
    out = jax.lax.conv_general_dilated(
        rows, kernel.reshape(kh, kw, c_out).transpose(1, 0, 2)[None], (1, 1),
        ((0, 0), _same_pads(kw)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if conv.bias is not None:
        out = out + conv.bias[...]
    return out


def conv_patches(conv: nnx.Conv, x: jax.Array) -> jax.Array:
    """``conv(x)`` for an ``nnx.Conv`` with stride 1 and 'SAME' padding, as one matrix product.

    The ``kh·kw`` shifted copies of the input are stacked on the channel axis (im2col) and
    multiplied by the kernel reshaped to ``(kh·kw·c_in, c_out)``. Worth it only while that
    stack is small (``kh·kw·c_in`` ≲ 9); :class:`models.architectures._ConvNet` decides.

    Args:
      conv: the layer (its ``kernel`` ``(kh, kw, c_in, c_out)`` and optional ``bias``).
      x: ``(batch, h, w, c_in)`` NHWC.

    Returns ``(batch, h, w, c_out)``, equal to ``conv(x)`` up to float rounding.
    """
    kernel = conv.kernel[...]
    kh, kw, c_in, c_out = kernel.shape
    if x.shape[-1] != c_in:
        raise ValueError(f"conv_patches: input has {x.shape[-1]} channels, kernel "
                         f"{kernel.shape} expects {c_in}")
    h, w = x.shape[1], x.shape[2]
    (lo_h, hi_h), (lo_w, hi_w) = _same_pads(kh), _same_pads(kw)
    xp = jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    # Channel order (dy, dx, c) matches kernel.reshape(kh * kw * c_in, c_out).
    cols = jnp.concatenate([xp[:, dy:dy + h, dx:dx + w] for dy in range(kh)
                            for dx in range(kw)], axis=-1)
    out = cols @ kernel.reshape(kh * kw * c_in, c_out)
    if conv.bias is not None:
        out = out + conv.bias[...]
    return out


def max_pool2(x: jax.Array) -> jax.Array:
    """2×2 max-pool with stride 2 and VALID padding on NHWC (odd sizes are floored).

    Written as a reshape and a max rather than ``reduce_window``: the same values, but its
    gradient is a mask instead of XLA's ``select_and_scatter``, which makes input gradients
    (attribution, activation maximisation, strips) ~1.8x faster on CPU (probed at batch 1
    and 256 on the Soomro CNN: 2.5 -> 1.4 ms per example). A max of the four strided
    quarter-grids has a faster gradient still (3x at batch 256) but its forward pass was 25 %
    slower inside the d-DeVIS CNN at batch 32, where XLA fuses it with its producer.
    """
    b, f, t, c = x.shape
    x = x[:, : f // 2 * 2, : t // 2 * 2]
    return x.reshape(b, f // 2, 2, t // 2, 2, c).max(axis=(2, 4))
