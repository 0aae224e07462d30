"""Interventions at sown activations: perturb, mask or replace a named layer's output.

Attribution (Grad-CAM needs the gradient at an intermediate) and unit ablation need to reach
inside a model without each architecture knowing about them. Every sow point calls
:func:`tap`, which leaves the activation alone unless an intervention is active. The
intervention lives in a context variable that is set only while a function is being traced or
run eagerly, so the jitted plain forward never sees it.

Semantics per layer name (the attribution and ablation protocol, :func:`intervene`): ``act *
mask + (1 - mask) * replace + perturb``, with ``mask`` broadcast over the channel (last) axis,
``replace`` defaulting to 0.
"""

from __future__ import annotations

import contextlib
import contextvars
from functools import partial
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

Intervention = Callable[[str, jax.Array], jax.Array]

_ACTIVE: contextvars.ContextVar[Intervention | None] = contextvars.ContextVar(
    "hearsight_intervention", default=None)


def tap(name: str, value: jax.Array) -> jax.Array:
    """The activation ``value`` of layer ``name``, changed by the active intervention if any."""
    fn = _ACTIVE.get()
    return value if fn is None else fn(name, value)


@contextlib.contextmanager
def intervening(fn: Intervention | None):
    """Run the block with ``fn(name, act) -> act`` applied at every sow point."""
    token = _ACTIVE.set(fn)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def intervene(name: str, act: jax.Array, *, perturb: Mapping[str, jax.Array] | None = None,
              mask: Mapping[str, jax.Array] | None = None,
              replace: Mapping[str, jax.Array] | None = None) -> jax.Array:
    """The intervention at layer ``name``: ``act * m + (1 - m) * r + p`` (each term optional).

    ``mask[name]`` (``m``, 1 keeps a channel, 0 switches it off) and ``replace[name]`` (``r``,
    the value where it is off; absent: 0, zero ablation) are ``(channels,)``, broadcast over the
    last axis and cast to the activation's dtype; ``perturb[name]`` (``p``) has the
    activation's shape (Grad-CAM's route to an intermediate). Layers named in none of them
    pass unchanged. Models written to the protocol by hand call it on every named activation;
    the registered architectures reach it through :func:`tap` and :func:`make_intervention`.
    """
    if mask is not None and name in mask:
        m = jnp.asarray(mask[name], act.dtype)
        r = jnp.asarray(replace[name] if replace is not None and name in replace else 0.0,
                        act.dtype)
        act = act * m + (1.0 - m) * r
    if perturb is not None and name in perturb:
        act = act + perturb[name]
    return act


def make_intervention(*, perturb: Mapping[str, jax.Array] | None = None,
                      mask: Mapping[str, jax.Array] | None = None,
                      replace: Mapping[str, jax.Array] | None = None) -> Intervention | None:
    """:func:`intervene` with these terms, as an intervention; ``None`` when nothing is asked."""
    if not (perturb or mask or replace):
        return None
    return partial(intervene, perturb=dict(perturb or {}), mask=dict(mask or {}),
                   replace=dict(replace or {}))
