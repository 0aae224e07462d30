"""Occlusion: the drop in target probability when a sliding window is filled with a baseline."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.attribution.baselines import make_baseline
from engine.attribution.batching import check_batch, check_positive, map_in_chunks
from engine.attribution.targets import target_prob

Array = jax.Array


def _window_masks(n: int, size: int, stride: int) -> np.ndarray:
    """``(n_windows, n)`` 0/1 rows; a last window flush with the end covers every cell."""
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] + size < n:
        starts.append(n - size)
    return (np.arange(n)[None, :] >= np.array(starts)[:, None]) & \
        (np.arange(n)[None, :] < np.array(starts)[:, None] + size)


@partial(jax.jit, static_argnames=("logits_fn", "window", "stride", "chunk"))
def _occlusion(logits_fn, x, base, target, window, stride, chunk):
    b, f, t = x.shape
    rf = jnp.asarray(_window_masks(f, window[0], stride[0]), jnp.float32)
    ct = jnp.asarray(_window_masks(t, window[1], stride[1]), jnp.float32)
    ni, nj = rf.shape[0], ct.shape[0]
    rows = (np.repeat(np.arange(b), ni * nj), np.tile(np.repeat(np.arange(ni), nj), b),
            np.tile(np.arange(nj), b * ni))

    def probs(r):
        e, i, j = r
        m = rf[i][:, :, None] * ct[j][:, None, :]
        return target_prob(logits_fn, jnp.where(m > 0, base[e], x[e]), target[e])

    drop = target_prob(logits_fn, x, target)[:, None, None] - \
        map_in_chunks(probs, rows, chunk=chunk).reshape(b, ni, nj)
    count = rf.sum(0)[:, None] * ct.sum(0)[None, :]
    return jnp.einsum("bij,if,jt->bft", drop, rf, ct) / count


def occlusion(logits_fn: Callable, x, target, *, window: tuple[int, int] = (16, 10),
              stride: tuple[int, int] = (8, 5), baseline="silence", floor: float = -4.0,
              internal_batch_size: int = 64) -> Array:
    """Drop in target probability when a window (bins, frames) is filled with the baseline,
    averaged over all windows covering each cell, ``(batch, freq, time)``.

    References: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks".
    """
    x, target = check_batch(x, target)
    window, stride = tuple(int(v) for v in window), tuple(int(v) for v in stride)
    check_positive(**dict(zip(("window_f", "window_t", "stride_f", "stride_t"), window + stride)))
    if window[0] > x.shape[1] or window[1] > x.shape[2]:
        raise ValueError(f"occlusion window {window} is larger than the input {x.shape[1:]}")
    base = make_baseline(x, baseline, floor=floor)
    return _occlusion(logits_fn, x, base, target, window, stride, int(internal_batch_size))
