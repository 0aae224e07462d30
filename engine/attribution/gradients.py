"""Plain-gradient attributions of the target logit: saliency, gradient × input and SmoothGrad.

Inputs are ``(batch, freq, time)`` features or, with ``waveform=True``, ``(batch, n_samples)``
waveforms; every map has the shape of ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.attribution.batching import check_batch, check_positive, sum_in_chunks
from engine.attribution.targets import target_logit_sum

Array = jax.Array


@partial(jax.jit, static_argnames=("logits_fn",))
def _saliency(logits_fn, x, target):
    return jax.grad(lambda z: target_logit_sum(logits_fn, z, target))(x)


def saliency(logits_fn: Callable, x, target, *, absolute: bool = False,
             waveform: bool = False) -> Array:
    """Gradient of the target logit with respect to the input, the shape of ``x``.

    ``absolute=True`` gives the magnitude, as in the original saliency map (a waveform's
    signed gradient oscillates with the wave).
    References: Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional networks".
    """
    x, target = check_batch(x, target, waveform=bool(waveform))
    g = _saliency(logits_fn, x, target)  # one compile serves both (and gradient × input)
    return jnp.abs(g) if absolute else g


def gradient_x_input(logits_fn: Callable, x, target, *, waveform: bool = False) -> Array:
    """Input times gradient of the target logit, the shape of ``x``.

    References: Shrikumar et al. 2016, "Not just a black box" (gradient * input).
    """
    x, target = check_batch(x, target, waveform=bool(waveform))
    return x * _saliency(logits_fn, x, target)


@partial(jax.jit, static_argnames=("logits_fn", "n", "chunk", "absolute"))
def _smoothgrad(logits_fn, x, target, key, sigma, n, chunk, absolute=False):
    b, axes = x.shape[0], tuple(range(1, x.ndim))
    scale = sigma * (x.max(axis=axes) - x.min(axis=axes))
    each = (slice(None),) + (None,) * (x.ndim - 1)  # (rows,) -> (rows, 1, ...)
    rows = (np.repeat(np.arange(b), n), np.arange(b * n), np.full(b * n, 1.0 / n, np.float32))

    def add(acc, r):
        e, rid, w = r
        noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), x.shape[1:]))(rid)
        xi = x[e] + scale[e][each] * noise
        g = jax.grad(lambda z: target_logit_sum(logits_fn, z, target[e]))(xi)
        return acc.at[e].add(w[each] * (jnp.abs(g) if absolute else g))

    return sum_in_chunks(add, rows, chunk=chunk, init=jnp.zeros_like(x))


def smoothgrad(logits_fn: Callable, x, target, *, key: Array, n: int = 16, sigma: float = 0.1,
               internal_batch_size: int = 64, absolute: bool = False,
               waveform: bool = False) -> Array:
    """Mean gradient of the target logit over ``n`` noisy copies of each input.

    Noise is Gaussian with standard deviation ``sigma × (max − min)`` of each example; row ``i``
    draws from ``fold_in(key, i)`` so the result does not depend on ``internal_batch_size``.
    ``absolute=True`` averages the gradient's magnitude (SmoothGrad of the saliency map).
    References: Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise".
    """
    x, target = check_batch(x, target, waveform=bool(waveform))
    check_positive(n=n, internal_batch_size=internal_batch_size)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 (a fraction of the value range), got {sigma}")
    return _smoothgrad(logits_fn, x, target, key, jnp.float32(sigma), int(n),
                       min(int(internal_batch_size), x.shape[0] * int(n)), bool(absolute))
