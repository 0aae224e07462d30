"""Attribution maps over spectrograms: saliency, gradient × input, integrated gradients,
SmoothGrad, Grad-CAM and occlusion.

Model protocol (the real models are adapted to it)
---------------------------------------------------
``logits_fn(x) -> logits``
    ``x``: float32 ``(batch, freq, time)`` → ``(batch, n_classes)``. A pure, differentiable JAX
    function closing over the parameters, in inference mode (no dropout; batch-norm uses its
    running statistics) so that examples are independent. Then the gradient of
    ``sum_b logits[b, target[b]]`` with respect to ``x`` is every example's own gradient.
``acts_fn(x, *, perturb=None, mask=None, replace=None) -> (logits, acts)``
    ``acts``: ``dict[str, Array]`` of named intermediates (``conv1`` … ``dense1``);
    convolutional activations NHWC ``(batch, freq', time', channels)``, dense ``(batch, units)``.
    For each named layer the model passes the activation through
    :func:`engine.ablation.intervene` before using it and returns the intervened value in
    ``acts``. ``perturb[name]`` (the activation's shape) is added; the gradient with respect to
    it at zero equals the gradient with respect to the activation, which is how Grad-CAM reaches
    an intermediate without splitting the model. ``mask[name]`` and ``replace[name]``
    (``(channels,)``) switch channels off (``engine.ablation``).

Gradient methods explain the target *logit* (pre-softmax, as Grad-CAM prescribes); occlusion
explains the target *probability*. Every function takes a batch and per-example integer targets
and returns ``(batch, freq, time)``. Jitted cores take the model function as a static argument:
build ``logits_fn``/``acts_fn`` once per model and reuse the same object, or every call recompiles.
Work over many (example, step) rows runs in chunks of ``internal_batch_size`` rows inside a
``lax.scan``/``lax.map``, so memory is bounded by the chunk, never by ``steps × batch``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.attribution_helpers import (  # noqa: F401  (re-exported: public names live here too)
    BASELINES, _check_positive, check_batch, gaussian_blur, logits_from_acts, make_baseline,
    map_in_chunks, sum_in_chunks, target_logit_sum, target_prob)

Array = jax.Array
METHODS = ("saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "grad_cam",
           "occlusion")


@partial(jax.jit, static_argnames=("logits_fn", "absolute"))
def _saliency(logits_fn, x, target, absolute):
    g = jax.grad(lambda z: target_logit_sum(logits_fn, z, target))(x)
    return jnp.abs(g) if absolute else g


def saliency(logits_fn: Callable, x, target, *, absolute: bool = False) -> Array:
    """Gradient of the target logit with respect to the input, ``(batch, freq, time)``.

    ``absolute=True`` gives the magnitude, as in the original saliency map.
    References: Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional networks".
    """
    x, target = check_batch(x, target)
    return _saliency(logits_fn, x, target, bool(absolute))


def gradient_x_input(logits_fn: Callable, x, target) -> Array:
    """Input times gradient of the target logit, ``(batch, freq, time)``.

    References: Shrikumar et al. 2016, "Not just a black box" (gradient * input).
    """
    x, target = check_batch(x, target)
    return x * _saliency(logits_fn, x, target, False)


@partial(jax.jit, static_argnames=("logits_fn", "steps", "chunk"))
def _integrated_gradients(logits_fn, x, base, target, steps, chunk):
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    b = x.shape[0]
    rows = (np.repeat(np.arange(b), steps), np.tile((nodes + 1) / 2, b).astype(np.float32),
            np.tile(weights / 2, b).astype(np.float32))

    def add(acc, r):
        e, a, w = r
        xi = base[e] + a[:, None, None] * (x[e] - base[e])
        g = jax.grad(lambda z: target_logit_sum(logits_fn, z, target[e]))(xi)
        return acc.at[e].add(w[:, None, None] * g)

    return (x - base) * sum_in_chunks(add, rows, chunk=chunk, init=jnp.zeros_like(x))


def integrated_gradients(logits_fn: Callable, x, target, *, baseline="silence", steps: int = 64,
                         internal_batch_size: int = 64, floor: float = -4.0,
                         blur_sigma: tuple[float, float] = (4.0, 4.0)) -> Array:
    """Integrated gradients of the target logit along the straight path baseline → x.

    The path integral uses ``steps``-point Gauss–Legendre quadrature on [0, 1] (exact for
    polynomial paths of degree < 2·steps), evaluated ``internal_batch_size`` (example, node)
    rows at a time. Completeness: ``attr.sum((1, 2)) ≈ f(x) − f(baseline)``.
    References: Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep networks".
    """
    x, target = check_batch(x, target)
    _check_positive(steps=steps, internal_batch_size=internal_batch_size)
    base = make_baseline(x, baseline, floor=floor, blur_sigma=blur_sigma)
    chunk = min(int(internal_batch_size), x.shape[0] * int(steps))  # one compile per real chunk
    return _integrated_gradients(logits_fn, x, base, target, int(steps), chunk)

@partial(jax.jit, static_argnames=("logits_fn", "n", "chunk"))
def _smoothgrad(logits_fn, x, target, key, sigma, n, chunk):
    b = x.shape[0]
    scale = sigma * (x.max(axis=(1, 2)) - x.min(axis=(1, 2)))
    rows = (np.repeat(np.arange(b), n), np.arange(b * n), np.full(b * n, 1.0 / n, np.float32))

    def add(acc, r):
        e, rid, w = r
        noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), x.shape[1:]))(rid)
        xi = x[e] + scale[e, None, None] * noise
        g = jax.grad(lambda z: target_logit_sum(logits_fn, z, target[e]))(xi)
        return acc.at[e].add(w[:, None, None] * g)

    return sum_in_chunks(add, rows, chunk=chunk, init=jnp.zeros_like(x))


def smoothgrad(logits_fn: Callable, x, target, *, key: Array, n: int = 16, sigma: float = 0.1,
               internal_batch_size: int = 64) -> Array:
    """Mean gradient of the target logit over ``n`` noisy copies of each input.

    Noise is Gaussian with standard deviation ``sigma × (max − min)`` of each example; row ``i``
    draws from ``fold_in(key, i)`` so the result does not depend on ``internal_batch_size``.
    References: Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise".
    """
    x, target = check_batch(x, target)
    _check_positive(n=n, internal_batch_size=internal_batch_size)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 (a fraction of the value range), got {sigma}")
    return _smoothgrad(logits_fn, x, target, key, jnp.float32(sigma), int(n),
                       min(int(internal_batch_size), x.shape[0] * int(n)))


@partial(jax.jit, static_argnames=("acts_fn", "layer"))
def _grad_cam(acts_fn, x, target, layer):
    act = acts_fn(x)[1][layer]

    def total(p):
        logits = acts_fn(x, perturb={layer: p})[0]
        return jnp.take_along_axis(logits, target[:, None], axis=1).sum()

    alpha = jax.grad(total)(jnp.zeros_like(act)).mean(axis=(1, 2))
    cam = jax.nn.relu(jnp.einsum("bhwc,bc->bhw", act, alpha))
    return jax.image.resize(cam, x.shape, method="linear")


def grad_cam(acts_fn: Callable, x, target, *, layer: str) -> Array:
    """Grad-CAM of a convolutional layer, upsampled (linear) to ``(batch, freq, time)``.

    Channel weights are the spatial mean of the target logit's gradient with respect to the
    layer's NHWC activation; the map is the ReLU of the weighted channel sum.
    References: Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep networks".
    """
    x, target = check_batch(x, target)
    acts = jax.eval_shape(lambda z: acts_fn(z)[1], x)
    if layer not in acts:
        raise ValueError(f"layer {layer!r} is not among the model's activations {sorted(acts)}")
    if len(acts[layer].shape) != 4:
        raise ValueError(f"Grad-CAM needs an NHWC conv layer; {layer!r} has shape "
                         f"{acts[layer].shape}")
    return _grad_cam(acts_fn, x, target, layer)


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
    _check_positive(**dict(zip(("window_f", "window_t", "stride_f", "stride_t"), window + stride)))
    if window[0] > x.shape[1] or window[1] > x.shape[2]:
        raise ValueError(f"occlusion window {window} is larger than the input {x.shape[1:]}")
    base = make_baseline(x, baseline, floor=floor)
    return _occlusion(logits_fn, x, base, target, window, stride, int(internal_batch_size))


def attribute(method: str, x, target, *, logits_fn: Callable | None = None,
              acts_fn: Callable | None = None, **options) -> Array:
    """Dispatch to one of :data:`METHODS`; ``options`` go to that function.

    ``grad_cam`` needs ``acts_fn``; the others use ``logits_fn`` or derive it from ``acts_fn``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {METHODS}")
    if method == "grad_cam":
        if acts_fn is None:
            raise ValueError("grad_cam needs acts_fn (see engine.attribution's protocol)")
        return grad_cam(acts_fn, x, target, **options)
    if logits_fn is None:
        if acts_fn is None:
            raise ValueError(f"{method} needs logits_fn or acts_fn")
        logits_fn = logits_from_acts(acts_fn)
    fn = {"saliency": saliency, "gradient_x_input": gradient_x_input,
          "integrated_gradients": integrated_gradients, "smoothgrad": smoothgrad,
          "occlusion": occlusion}[method]
    return fn(logits_fn, x, target, **options)
