"""Grad-CAM: class activation maps of a layer, weighted by the target logit's gradient.

A layer is a map over frequency × time, ``(batch, freq', time', channels)`` (a 2-d
convolution), or over time, ``(batch, time', channels)`` (a 1-d convolution, a transformer
layer's tokens). The CAM lives on the layer's grid and is resized (linear) onto the input:
a map over time onto the time axis of ``(batch, freq, time)`` features, where it is the same
in every row (a one-row map stretched over the picture), or onto the samples of
``(batch, n_samples)`` waveforms.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from engine.attribution.batching import check_batch

Array = jax.Array


def _onto_input(cam: Array, x_shape: tuple[int, ...]) -> Array:
    """A ``(batch, h, w)`` or ``(batch, t)`` CAM resized onto inputs of ``x_shape``."""
    b = x_shape[0]
    if len(x_shape) == 2:  # a waveform: only the layer's time axis maps onto the input
        line = cam.mean(axis=1) if cam.ndim == 3 else cam
        return jax.image.resize(line, x_shape, method="linear")
    if cam.ndim == 3:
        return jax.image.resize(cam, x_shape, method="linear")
    line = jax.image.resize(cam, (b, x_shape[2]), method="linear")
    return jnp.broadcast_to(line[:, None, :], x_shape)


@partial(jax.jit, static_argnames=("acts_fn", "layer"))
def _grad_cam(acts_fn, x, target, layer):
    act = acts_fn(x)[1][layer]

    def total(p):
        logits = acts_fn(x, perturb={layer: p})[0]
        return jnp.take_along_axis(logits, target[:, None], axis=1).sum()

    # Channel weights: the gradient's mean over the layer's positions (all axes but the
    # batch's and the channels').
    alpha = jax.grad(total)(jnp.zeros_like(act)).mean(axis=tuple(range(1, act.ndim - 1)))
    cam = jax.nn.relu(jnp.einsum("b...c,bc->b...", act, alpha))
    return _onto_input(cam, x.shape)


def grad_cam(acts_fn: Callable, x, target, *, layer: str, waveform: bool = False) -> Array:
    """Grad-CAM of a layer, upsampled (linear) to the shape of ``x``.

    Channel weights are the mean of the target logit's gradient with respect to the layer's
    channels-last activation over its positions (freq' × time', or time'); the map is the
    ReLU of the weighted channel sum. ``x`` is ``(batch, freq, time)`` features or, with
    ``waveform=True``, ``(batch, n_samples)``; a map over freq' × time' of a waveform model
    is averaged over its rows there (only its time axis corresponds to the input).
    References: Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep networks".
    """
    x, target = check_batch(x, target, waveform=bool(waveform))
    acts = jax.eval_shape(lambda z: acts_fn(z)[1], x)
    if layer not in acts:
        raise ValueError(f"layer {layer!r} is not among the model's activations {sorted(acts)}")
    if len(acts[layer].shape) not in (3, 4):
        raise ValueError(f"Grad-CAM needs a map over freq x time (batch, freq, time, channels) "
                         f"or over time (batch, time, channels); {layer!r} has shape "
                         f"{acts[layer].shape}")
    return _grad_cam(acts_fn, x, target, layer)
