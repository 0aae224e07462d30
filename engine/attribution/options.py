"""What the Explain page and the faithfulness experiment share: a model's attribution
functions, its convolution layers, the deletion/insertion patch and every method's options.

One place, so that the experiment measures exactly what the page shows.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from engine.attribution.targets import logits_from_acts


def model_fns(predictor) -> tuple[Callable | None, Callable | None]:
    """``(acts_fn, logits_fn)`` of a predictor; ``logits_fn`` falls back to a cached view of
    ``acts_fn``; ``(None, None)`` when the model does not follow the protocol."""
    acts_fn = getattr(predictor, "acts_fn", None)
    if acts_fn is None:
        return None, None
    logits_fn = getattr(predictor, "logits_fn", None)
    return acts_fn, logits_fn if logits_fn is not None else logits_from_acts(acts_fn)


def conv_layer_names(acts_fn: Callable, shape: tuple[int, int]) -> list[str]:
    """Names of the NHWC (4-D) activations of ``acts_fn`` for inputs of ``shape``, in order."""
    acts = jax.eval_shape(lambda z: acts_fn(z)[1], jax.ShapeDtypeStruct((1, *shape), jnp.float32))
    return [k for k, v in acts.items() if len(v.shape) == 4]


def default_patch(shape: tuple[int, int]) -> tuple[int, int]:
    """Deletion/insertion patch (bins, frames): (8, 5) for d-DeVIS's 160 × 150 input, scaled."""
    return max(1, shape[0] // 20), max(1, shape[1] // 30)


def method_options(shape: tuple[int, int], *, steps: int = 32, baseline: str = "silence",
                   layer: str | None = None, floor: float = -4.0, seed: int = 0,
                   smooth_n: int = 16) -> dict[str, dict]:
    """Keyword arguments of every method for one input ``shape`` (freq, time).

    Occlusion slides a window of two curve patches with a one-patch stride (16 × 10 bins ×
    frames, stride 8 × 5, on the d-DeVIS input).
    """
    pf, pt = default_patch(shape)
    return {"saliency": {}, "gradient_x_input": {},
            "integrated_gradients": {"steps": int(steps), "baseline": baseline, "floor": floor},
            "smoothgrad": {"key": jax.random.PRNGKey(seed), "n": int(smooth_n)},
            "grad_cam": {"layer": layer},
            "occlusion": {"window": (min(2 * pf, shape[0]), min(2 * pt, shape[1])),
                          "stride": (pf, pt), "baseline": baseline, "floor": floor}}
