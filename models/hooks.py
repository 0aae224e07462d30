"""Interventions at sown activations: perturb, mask or replace a named layer's output.

Attribution (Grad-CAM needs the gradient at an intermediate) and unit ablation need to reach
inside a model without each architecture knowing about them. Every sow point calls
:func:`tap`, which leaves the activation alone unless an intervention is active. The
intervention lives in a context variable that is set only while a function is being traced or
run eagerly, so the jitted plain forward never sees it.

Semantics per layer name (engine.ablation's protocol): ``act * mask + (1 - mask) * replace +
perturb``, with ``mask`` broadcast over the channel (last) axis, ``replace`` defaulting to 0.
"""

from __future__ import annotations

import contextlib
import contextvars
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


def make_intervention(*, perturb: Mapping[str, jax.Array] | None = None,
                      mask: Mapping[str, jax.Array] | None = None,
                      replace: Mapping[str, jax.Array] | None = None) -> Intervention | None:
    """The intervention for the ablation protocol; ``None`` when nothing is asked."""
    if not (perturb or mask or replace):
        return None
    perturb, mask, replace = dict(perturb or {}), dict(mask or {}), dict(replace or {})

    def fn(name: str, act: jax.Array) -> jax.Array:
        if name in mask:
            m = jnp.asarray(mask[name], act.dtype)
            r = jnp.asarray(replace.get(name, 0.0), act.dtype)
            act = act * m + (1.0 - m) * r
        if name in perturb:
            act = act + perturb[name]
        return act

    return fn
