"""Occlusion: the drop in target probability when a sliding window is filled with a baseline.

Features ``(batch, freq, time)`` are occluded by (bins, frames) windows; waveforms
``(batch, n_samples)`` (``waveform=True``) by windows of samples, a stretch of time.
"""

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
    # A waveform (b, n) is occluded as a one-row picture (b, 1, n) with (1, samples) windows.
    b, f, t = x.shape if x.ndim == 3 else (x.shape[0], 1, x.shape[1])
    rf = jnp.asarray(_window_masks(f, window[0], stride[0]), jnp.float32)
    ct = jnp.asarray(_window_masks(t, window[1], stride[1]), jnp.float32)
    ni, nj = rf.shape[0], ct.shape[0]
    rows = (np.repeat(np.arange(b), ni * nj), np.tile(np.repeat(np.arange(ni), nj), b),
            np.tile(np.arange(nj), b * ni))

    def probs(r):
        e, i, j = r
        m = (rf[i][:, :, None] * ct[j][:, None, :]).reshape(-1, *x.shape[1:])
        return target_prob(logits_fn, jnp.where(m > 0, base[e], x[e]), target[e])

    drop = target_prob(logits_fn, x, target)[:, None, None] - \
        map_in_chunks(probs, rows, chunk=chunk).reshape(b, ni, nj)
    count = rf.sum(0)[:, None] * ct.sum(0)[None, :]
    return (jnp.einsum("bij,if,jt->bft", drop, rf, ct) / count).reshape(x.shape)


def occlusion(logits_fn: Callable, x, target, *, window: tuple[int, ...] = (16, 10),
              stride: tuple[int, ...] = (8, 5), baseline="silence", floor: float = -4.0,
              internal_batch_size: int = 64, waveform: bool = False) -> Array:
    """Drop in target probability when a window is filled with the baseline, averaged over all
    windows covering each cell; the shape of ``x``.

    ``window`` and ``stride`` are (bins, frames) for ``(batch, freq, time)`` features and
    (samples,) for ``(batch, n_samples)`` waveforms (``waveform=True``; silence is then
    ``floor=0.0``).
    References: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks".
    """
    x, target = check_batch(x, target, waveform=bool(waveform))
    window, stride = tuple(int(v) for v in window), tuple(int(v) for v in stride)
    if len(window) != x.ndim - 1 or len(stride) != x.ndim - 1:
        raise ValueError(f"window {window} and stride {stride} need one entry per axis of an "
                         f"example {x.shape[1:]}")
    names = ("window_f", "window_t", "stride_f", "stride_t") if x.ndim == 3 else \
        ("window", "stride")
    check_positive(**dict(zip(names, window + stride)))
    if any(w > n for w, n in zip(window, x.shape[1:])):
        raise ValueError(f"occlusion window {window} is larger than the input {x.shape[1:]}")
    base = make_baseline(x, baseline, floor=floor)
    if x.ndim == 2:
        window, stride = (1, *window), (1, *stride)
    return _occlusion(logits_fn, x, base, target, window, stride, int(internal_batch_size))
