"""Layer kernels written for speed on CPU, with the same parameters and results as flax's.

XLA's CPU convolution handles a single input channel poorly: the d-DeVIS first layer
(1 → 16 channels, 7×7 on 160×150) took 1.1 ms per clip at batch 1 and at batch 8, about 60 %
of the whole forward pass, while the same arithmetic written as a sum of shifted, scaled copies
of the input takes 0.45-0.55 ms. :func:`conv_mono` does that (as a convolution over the
row-shifted copies); it reads the ``kernel`` and ``bias`` of an ``nnx.Conv`` so models
and checkpoints are unchanged.
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
