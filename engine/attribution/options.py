"""What the Explain page and the faithfulness experiment share: a model's attribution
functions, the layers Grad-CAM and ablation can use, the deletion/insertion patch and every
method's options.

One place, so that the experiment measures exactly what the page shows. An input ``shape``
of one example is ``(freq, time)`` features or ``(n_samples,)`` a waveform.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from engine.attribution.targets import logits_from_acts

# Why a layer kind (models.contract) is not offered to Grad-CAM, by input kind.
_NO_CAM = {
    "vector": "one vector per clip, no positions to map",
    "sequence": "transformer tokens of a feature-input model need not lie along time "
                "(a patch model's tokens tile frequency × time)",
}


def model_fns(predictor) -> tuple[Callable | None, Callable | None]:
    """``(acts_fn, logits_fn)`` of a predictor; ``logits_fn`` falls back to a cached view of
    ``acts_fn``; ``(None, None)`` when the model does not follow the protocol."""
    acts_fn = getattr(predictor, "acts_fn", None)
    if acts_fn is None:
        return None, None
    logits_fn = getattr(predictor, "logits_fn", None)
    return acts_fn, logits_fn if logits_fn is not None else logits_from_acts(acts_fn)


def _act_shapes(acts_fn: Callable, shape: tuple[int, ...]) -> dict:
    return jax.eval_shape(lambda z: acts_fn(z)[1], jax.ShapeDtypeStruct((1, *shape), jnp.float32))


def conv_layer_names(acts_fn: Callable, shape: tuple[int, ...]) -> list[str]:
    """Names of the NHWC (4-D) activations of ``acts_fn`` for inputs of ``shape``, in order."""
    return [k for k, v in _act_shapes(acts_fn, shape).items() if len(v.shape) == 4]


def explain_layers(acts_fn: Callable, shape: tuple[int, ...],
                   kinds: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """``(names, hidden)``: the layers Grad-CAM and ablation use for inputs of ``shape``, in
    order, and ``{name: why not}`` for the others.

    Without ``kinds`` (hearsight's own models) the layers are the NHWC conv maps, as
    :func:`conv_layer_names`. With the layer kinds of :mod:`models.contract`: ``freq_time``
    and ``time`` layers, and ``sequence`` layers where the input is a waveform (their tokens
    are frames in time); a feature-input model's ``sequence`` layers and every ``vector``
    layer are hidden with the reason.
    """
    acts = _act_shapes(acts_fn, shape)
    if kinds is None:
        return conv_layer_names(acts_fn, shape), {}
    waveform = len(shape) == 1
    names, hidden = [], {}
    for name, v in acts.items():
        kind = kinds.get(name)
        if kind in ("freq_time", "time") or (kind == "sequence" and waveform):
            names.append(name)
        elif kind in _NO_CAM:
            hidden[name] = _NO_CAM[kind]
        elif kind is None and len(v.shape) == 4:
            names.append(name)
    return names, hidden


def default_patch(shape: tuple[int, ...], *, segment: int | None = None) -> tuple[int, ...]:
    """Deletion/insertion patch: (bins, frames), (8, 5) for d-DeVIS's 160 × 150 input, scaled;
    for a waveform ``(n_samples,)``, ``(segment,)`` samples (default: a hundredth of the clip,
    10 ms of a 1 s clip; the page passes its picture's hop so patches are picture frames)."""
    if len(shape) == 1:
        return (max(1, int(segment) if segment else shape[0] // 100),)
    return max(1, shape[0] // 20), max(1, shape[1] // 30)


def method_options(shape: tuple[int, ...], *, steps: int = 32, baseline="silence",
                   layer: str | None = None, floor: float = -4.0, seed: int = 0,
                   smooth_n: int = 16, segment: int | None = None) -> dict[str, dict]:
    """Keyword arguments of every method for one input ``shape``: ``(freq, time)`` features or
    ``(n_samples,)`` a waveform.

    Occlusion slides a window of two curve patches with a one-patch stride (16 × 10 bins ×
    frames, stride 8 × 5, on the d-DeVIS input; two ``segment`` of samples, stride one, on a
    waveform). On a waveform (``floor`` 0.0 is its silence) saliency and SmoothGrad are
    gradient magnitudes (a signed gradient oscillates with the wave and cancels within a
    frame) and integrated gradients spreads its nodes in log α (such models normalise each
    clip: :func:`engine.attribution.integrated_gradients.path_nodes`).
    """
    patch = default_patch(shape, segment=segment)
    window = tuple(min(2 * p, n) for p, n in zip(patch, shape))
    opts = {"saliency": {}, "gradient_x_input": {},
            "integrated_gradients": {"steps": int(steps), "baseline": baseline, "floor": floor},
            "smoothgrad": {"key": jax.random.PRNGKey(seed), "n": int(smooth_n)},
            "grad_cam": {"layer": layer},
            "occlusion": {"window": window, "stride": patch, "baseline": baseline,
                          "floor": floor}}
    if len(shape) == 1:
        opts["saliency"]["absolute"] = opts["smoothgrad"]["absolute"] = True
        opts["integrated_gradients"]["schedule"] = "log"
        for o in opts.values():
            o["waveform"] = True
    return opts
