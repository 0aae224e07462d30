"""Grad-CAM: class activation maps of a convolutional layer, weighted by the target logit's
gradient."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from engine.attribution.batching import check_batch

Array = jax.Array


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
