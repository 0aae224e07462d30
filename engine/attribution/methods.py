"""The attribution methods by name: :data:`METHODS` and the :func:`attribute` dispatcher."""

from __future__ import annotations

from collections.abc import Callable

import jax

from engine.attribution.grad_cam import grad_cam
from engine.attribution.gradients import gradient_x_input, saliency, smoothgrad
from engine.attribution.integrated_gradients import integrated_gradients
from engine.attribution.occlusion import occlusion
from engine.attribution.targets import logits_from_acts

Array = jax.Array
METHODS = ("saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "grad_cam",
           "occlusion")


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
