"""Unit ablation: switch channels of a layer off (to zero or to their mean) and measure the effect.

Model protocol (see also :mod:`engine.attribution`): ``acts_fn(x, *, mask=None, replace=None,
perturb=None) -> (logits, acts)``. For each named layer the model passes the activation
through :func:`models.hooks.intervene`, i.e. ``a * mask[name] + (1 - mask[name]) *
replace[name]``, with ``mask[name]`` and ``replace[name]`` of shape ``(channels,)`` broadcast over
the last axis (NHWC conv channels or dense units). ``mask`` 1 keeps a channel, 0 switches it off;
``replace`` gives the value used where it is off (absent → 0, "zero ablation").

References: Zhou et al. 2018, "Revisiting the importance of individual units in CNNs via
ablation"; Morcos et al. 2018, "On the importance of single directions for generalization".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.attribution import check_batch, map_in_chunks

Array = jax.Array
MODES = ("zero", "mean")
CRITERIA = ("probability", "accuracy")


def _layer_shape(acts_fn: Callable, x: Array, layer: str) -> tuple[int, ...]:
    acts = jax.eval_shape(lambda z: acts_fn(z)[1], x)
    if layer not in acts:
        raise ValueError(f"layer {layer!r} is not among the model's activations {sorted(acts)}")
    return tuple(acts[layer].shape)


@partial(jax.jit, static_argnames=("acts_fn", "layer"))
def _channel_means(acts_fn, x, layer):
    a = acts_fn(x)[1][layer]
    return a.reshape(-1, a.shape[-1]).mean(axis=0)


def channel_means(acts_fn: Callable, x, layer: str) -> Array:
    """Mean of each channel of ``layer`` over the batch and all positions, ``(channels,)``."""
    x, _ = check_batch(x, 0)
    _layer_shape(acts_fn, x, layer)
    return _channel_means(acts_fn, x, layer)


def _replacement(mode: str, means, n_channels: int) -> Array:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "zero":
        return jnp.zeros(n_channels)
    if means is None:
        raise ValueError("mode='mean' needs means=channel_means(acts_fn, x_reference, layer)")
    means = jnp.asarray(means, jnp.float32)
    if means.shape != (n_channels,):
        raise ValueError(f"means must have shape ({n_channels},), got {means.shape}")
    return means


def _channel_mask(channels, n_channels: int) -> Array:
    idx = np.atleast_1d(np.asarray(channels))
    if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0
                     or idx.max() >= n_channels):
        raise ValueError(f"channels must be ints in [0, {n_channels}), got {channels}")
    return jnp.ones(n_channels).at[jnp.asarray(idx, jnp.int32)].set(0.0)


@partial(jax.jit, static_argnames=("acts_fn", "layer"))
def _logits(acts_fn, x, layer, mask, replace):
    return acts_fn(x, mask={layer: mask}, replace={layer: replace})[0]


def per_class_accuracy(logits: Array, labels: Array, n_classes: int) -> Array:
    """Accuracy of argmax predictions for each class, ``(n_classes,)``; NaN for absent classes."""
    hit = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    count = jnp.zeros(n_classes).at[labels].add(1.0)
    return jnp.zeros(n_classes).at[labels].add(hit) / jnp.where(count > 0, count, jnp.nan)


def ablation_effect(acts_fn: Callable, x, labels, *, layer: str, channels, mode: str = "zero",
                    means=None) -> Array:
    """Per-class accuracy change when ``channels`` of ``layer`` are switched off together.

    Args:
      x: ``(batch, freq, time)``; labels: ``(batch,)`` true classes.
      mode: ``"zero"`` or ``"mean"`` (``means``: ``(channels,)``, e.g. :func:`channel_means`
        on reference data).
    Returns ``(n_classes,)`` ablated minus intact accuracy (negative = the class suffers; NaN
    for classes without examples).
    """
    x, labels = check_batch(x, labels)
    n_ch = _layer_shape(acts_fn, x, layer)[-1]
    mask, replace = _channel_mask(channels, n_ch), _replacement(mode, means, n_ch)
    base = _logits(acts_fn, x, layer, jnp.ones(n_ch), replace)
    ablated = _logits(acts_fn, x, layer, mask, replace)
    n_classes = base.shape[-1]
    return per_class_accuracy(ablated, labels, n_classes) - per_class_accuracy(base, labels,
                                                                                n_classes)


def _scores(logits: Array, target: Array, accuracy: bool) -> Array:
    if accuracy:
        return (jnp.argmax(logits, axis=-1) == target).astype(jnp.float32)
    p = jax.nn.softmax(logits, axis=-1)
    return jnp.take_along_axis(p, target[:, None], axis=1)[:, 0]


@partial(jax.jit, static_argnames=("acts_fn", "layer", "accuracy", "chunk"))
def _channel_drops(acts_fn, x, target, replace, layer, accuracy, chunk):
    n_ch = replace.shape[0]
    intact = _scores(acts_fn(x)[0], target, accuracy).mean()

    def one(c):
        mask = jnp.ones(n_ch).at[c].set(0.0)
        logits = acts_fn(x, mask={layer: mask}, replace={layer: replace})[0]
        return intact - _scores(logits, target, accuracy).mean()

    return map_in_chunks(lambda r: jax.vmap(one)(r[0]), (np.arange(n_ch),), chunk=chunk)


def rank_channels(acts_fn: Callable, x, target, *, layer: str, mode: str = "zero", means=None,
                  by: str = "probability", channel_batch_size: int = 16) -> tuple[Array, Array]:
    """Rank the channels of ``layer`` by the damage done when each alone is switched off.

    Channels run ``channel_batch_size`` at a time, ``vmap``-ed. ``by="probability"`` measures the
    mean drop in the target's softmax probability, ``"accuracy"`` the drop in accuracy (target =
    true labels).
    Returns ``(order, drop)``: channel indices, most damaging first, ``(channels,)``; and the
    drop per channel ``(channels,)`` in channel order.
    """
    x, target = check_batch(x, target)
    if by not in CRITERIA:
        raise ValueError(f"by must be one of {CRITERIA}, got {by!r}")
    if channel_batch_size < 1:
        raise ValueError(f"channel_batch_size must be >= 1, got {channel_batch_size}")
    n_ch = _layer_shape(acts_fn, x, layer)[-1]
    replace = _replacement(mode, means, n_ch)
    drop = _channel_drops(acts_fn, x, target, replace, layer, by == "accuracy",
                          int(channel_batch_size))
    return jnp.argsort(-drop), drop


@partial(jax.jit, static_argnames=("acts_fn",))
def _probs(acts_fn, x):
    return jax.nn.softmax(acts_fn(x)[0], axis=-1)


def class_probs(acts_fn: Callable, x: np.ndarray) -> np.ndarray:
    """Class probabilities ``(classes,)`` of one input ``(freq, time)`` through ``acts_fn``."""
    return np.asarray(_probs(acts_fn, jnp.asarray(x, jnp.float32)[None])[0])


@partial(jax.jit, static_argnames=("acts_fn", "layer"))
def _masked_probs(acts_fn, x, layer, mask):
    return jax.nn.softmax(acts_fn(x, mask={layer: mask})[0], axis=-1)


def masked_probs(acts_fn: Callable, x: np.ndarray, *, layer: str, on: np.ndarray) -> np.ndarray:
    """Class probabilities ``(classes,)`` of one input with the channels of ``layer`` where
    ``on`` is False switched off (zero ablation, ``acts_fn(x, mask={layer: on})``).

    One compilation per model and layer serves every ``on`` (the mask is traced), so toggling
    channels never recompiles.
    """
    on = np.asarray(on, np.float32)
    return np.asarray(_masked_probs(acts_fn, jnp.asarray(x, jnp.float32)[None], layer,
                                    jnp.asarray(on))[0])
